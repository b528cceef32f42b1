"""Rendering of IMAP values the server writes outside message data (RFC 3501 section 9).

Mailbox names go out in modified UTF-7 (RFC 3501 5.1.3); strings are quoted when they are
safe as quoted strings and sent as literals otherwise.
"""

from __future__ import annotations

import time
from collections.abc import Iterable

from mailsuite.imap.parser import MONTHS

_QUOTED_SAFE = frozenset(range(0x20, 0x7F))


def quote(value: str | bytes, utf8: bool = False) -> bytes:
    """A string as a quoted string, or as a literal if it holds CR, LF, NUL or 8-bit bytes
    (8-bit UTF-8 stays quoted once the client enabled UTF8=ACCEPT, RFC 6855 section 3)."""
    data = value.encode("utf-8") if isinstance(value, str) else value
    if len(data) < 1024 and all(c in _QUOTED_SAFE or (utf8 and c >= 0x80) for c in data):
        return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return b"{%d}\r\n" % len(data) + data


def nstring(value: str | bytes | None) -> bytes:
    return b"NIL" if value is None else quote(value)


def mailbox_to_wire(name: str) -> str:
    """Folder name (Unicode) to its modified UTF-7 wire form."""
    from mailsuite import mutf7

    return mutf7.encode(name)


def mailbox_from_wire(raw: bytes, utf8: bool = False) -> str:
    """A mailbox argument to Unicode; INBOX is case-insensitive (RFC 3501 5.1).

    Modified UTF-7 normally; plain UTF-8 once the client enabled UTF8=ACCEPT (RFC 6855).
    Raises ValueError on bad UTF-7 / UTF-8.
    """
    from mailsuite import mutf7

    name = raw.decode("utf-8") if utf8 else mutf7.decode(raw.decode("ascii"))
    if name.upper() == "INBOX":
        return "INBOX"
    if name[:6].upper() == "INBOX/":
        return "INBOX" + name[5:]
    return name


def mailbox(name: str, utf8: bool = False) -> bytes:
    """A folder name ready for the wire: quoted modified UTF-7, or UTF-8 (RFC 6855)."""
    return quote(name, utf8=True) if utf8 else quote(mailbox_to_wire(name))


def flag_list(flags: Iterable[str]) -> bytes:
    """``(\\Seen $Forwarded)`` with system flags first, in a stable order."""
    return b"(" + " ".join(sorted(flags, key=_flag_order)).encode("utf-8", "replace") + b")"


def _flag_order(flag: str) -> tuple[int, str]:
    return (0 if flag.startswith("\\") else 1, flag)


def internal_date(timestamp: float) -> bytes:
    """RFC 3501 date-time in UTC: ``"17-Jul-1996 02:44:25 +0000"``."""
    t = time.gmtime(timestamp)
    return b'"%02d-%s-%04d %02d:%02d:%02d +0000"' % (
        t.tm_mday, MONTHS[t.tm_mon - 1].encode(), t.tm_year, t.tm_hour, t.tm_min, t.tm_sec,
    )

"""Folder-name checks and LIST pattern matching (RFC 3501 5.1, 6.3.8, 6.3.9).

Every mailbox name from the wire passes ``checked_name`` before it reaches the store: bad
modified UTF-7, control characters (NUL included), empty or ``.``/``..`` components, names
starting with ``/`` or ``~``, and wildcards in names to be created are all refused. The store
checks again (its own Maildir mapping); one user can only ever name their own folders.
"""

from __future__ import annotations

import re
from functools import lru_cache

from mailsuite.imap import wire
from mailsuite.imap.responses import Code, no
from mailsuite.interfaces import HIERARCHY_DELIMITER

MAX_NAME_LENGTH = 512
MAX_DEPTH = 32


def checked_name(raw: bytes, creating: bool = False, utf8: bool = False) -> str:
    """The Unicode folder name of a mailbox argument, or NO [CANNOT] if it is not acceptable."""
    try:
        name = wire.mailbox_from_wire(raw, utf8)
    except (ValueError, UnicodeError):
        raise no("Invalid mailbox name (bad modified UTF-7).", Code.CANNOT) from None
    if creating and name.endswith(HIERARCHY_DELIMITER):
        name = name[:-1]  # RFC 3501 6.3.3: a trailing delimiter only declares a parent
    problem = name_problem(name, creating)
    if problem:
        raise no(f"Invalid mailbox name: {problem}.", Code.CANNOT)
    return name


def name_problem(name: str, creating: bool = False) -> str | None:
    """Why ``name`` is refused, or None."""
    if not name:
        return "empty name"
    if len(name.encode("utf-8")) > MAX_NAME_LENGTH:
        return "name too long"
    if any(ord(c) < 0x20 or ord(c) == 0x7F for c in name):
        return "control characters"
    if name.startswith((HIERARCHY_DELIMITER, "~")):
        return "names must be relative to your mailbox root"
    parts = name.split(HIERARCHY_DELIMITER)
    if len(parts) > MAX_DEPTH:
        return "too many levels"
    for part in parts:
        if part in ("", ".", ".."):
            return "empty, '.' or '..' level"
    if creating and ("*" in name or "%" in name):
        return "wildcards are not allowed in names"
    return None


def effective_pattern(reference: str, pattern: str) -> str:
    """Combine LIST reference and pattern (RFC 3501 6.3.8); INBOX is case-insensitive."""
    if reference and not pattern.startswith(HIERARCHY_DELIMITER):
        combined = reference + pattern
    else:
        combined = pattern
    if combined[:5].upper() == "INBOX" and (len(combined) == 5 or combined[5] in "/*%"):
        combined = "INBOX" + combined[5:]
    return combined


@lru_cache(maxsize=256)
def pattern_regex(pattern: str) -> re.Pattern[str]:
    """``*`` matches anything, ``%`` anything but the delimiter."""
    out = []
    for c in pattern:
        if c == "*":
            out.append(".*")
        elif c == "%":
            out.append("[^" + re.escape(HIERARCHY_DELIMITER) + "]*")
        else:
            out.append(re.escape(c))
    return re.compile("".join(out), re.DOTALL)


def matches(pattern: str, name: str) -> bool:
    return pattern_regex(pattern).fullmatch(name) is not None

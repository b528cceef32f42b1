"""IMAP syntax for message data: strings (RFC 3501 4.3), ENVELOPE (7.4.2), BODY and
BODYSTRUCTURE (7.4.2) rendered from a ``mailsuite.message.summarize`` summary.

All functions return ``bytes`` ready to go on the wire. ``str`` values are turned into octets
with latin-1 when they fit (summary strings are latin-1 views of the original octets, so this
restores them exactly), else UTF-8. NUL octets cannot appear in an IMAP4rev1 string or
literal (RFC 3501 4.3, CHAR8); they are sent as 0x80 instead, as Dovecot does, which keeps
every length (RFC822.SIZE, partial offsets) unchanged.

Owned by the message engineer; the IMAP engineer calls it.
"""

from __future__ import annotations

import re
from collections.abc import Iterable
from typing import Any

NIL = b"NIL"
QUOTED_MAX = 1024  # longer strings go as literals

_QUOTABLE = re.compile(rb"[\x01-\x09\x0b\x0c\x0e-\x7f]*")
# RFC 3501 ATOM-CHAR: any CHAR except atom-specials ( ) { SP CTL % * " \ ] (a "]" would be
# legal in an astring but confuses response-code parsers, so it is quoted too).
_ATOM = re.compile(rb"[!#$&'+,\-./0-9:;<=>?@A-Z\[^_`a-z|}~]+")


def octets(value: bytes | str) -> bytes:
    """The octets of a value: bytes as they are, str as latin-1 if possible, else UTF-8."""
    if isinstance(value, str):
        try:
            data = value.encode("latin-1")
        except UnicodeEncodeError:
            data = value.encode("utf-8", "surrogateescape")
    else:
        data = bytes(value)
    if b"\x00" in data:
        data = data.replace(b"\x00", b"\x80")
    return data


def literal(value: bytes | str) -> bytes:
    """A synchronising literal ``{n}\\r\\n`` followed by the octets (RFC 3501 4.3)."""
    data = octets(value)
    return b"{%d}\r\n" % len(data) + data


def string(value: bytes | str) -> bytes:
    """An IMAP string: quoted when the octets allow it (7-bit, no CR/LF, not too long),
    with ``"`` and ``\\`` escaped; a literal otherwise."""
    data = octets(value)
    if len(data) <= QUOTED_MAX and _QUOTABLE.fullmatch(data):
        return b'"' + data.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"'
    return b"{%d}\r\n" % len(data) + data


quote_string = string


def nstring(value: bytes | str | None) -> bytes:
    """``NIL`` for None, else a string."""
    return NIL if value is None else string(value)


def astring(value: bytes | str) -> bytes:
    """An atom when the value is one (and not ``NIL``), else a string."""
    data = octets(value)
    if _ATOM.fullmatch(data) and data.upper() != NIL:
        return data
    return string(data)


def _upper(value: str | None) -> bytes:
    return NIL if value is None else string(value.upper())


def _list(items: Iterable[bytes]) -> bytes:
    return b"(" + b" ".join(items) + b")"


# --- ENVELOPE ------------------------------------------------------------------------------


def _addresses(addresses: list[list[str | None]] | None) -> bytes:
    if not addresses:
        return NIL
    return b"(" + b"".join(_list(nstring(x) for x in address) for address in addresses) + b")"


def envelope(summary: dict[str, Any]) -> bytes:
    """RFC 3501 7.4.2 ENVELOPE of a summary (or of a bare envelope dict)."""
    env = summary.get("envelope", summary)
    return _list(
        [
            nstring(env.get("date")),
            nstring(env.get("subject")),
            _addresses(env.get("from")),
            _addresses(env.get("sender")),
            _addresses(env.get("reply_to")),
            _addresses(env.get("to")),
            _addresses(env.get("cc")),
            _addresses(env.get("bcc")),
            nstring(env.get("in_reply_to")),
            nstring(env.get("message_id")),
        ]
    )


# --- BODY / BODYSTRUCTURE ------------------------------------------------------------------


def _params(params: list[list[str]] | None) -> bytes:
    """body-fld-param: ``("CHARSET" "utf-8")`` or NIL when there are none."""
    if not params:
        return NIL
    return _list(b"%s %s" % (string(name.upper()), string(value)) for name, value in params)


def _disposition(disposition: dict[str, Any] | None) -> bytes:
    if not disposition:
        return NIL
    return _list([_upper(disposition["type"]), _params(disposition.get("params"))])


def _language(language: list[str] | None) -> bytes:
    if not language:
        return NIL
    return _list(string(tag) for tag in language)


def _node(node: dict[str, Any], extensible: bool) -> bytes:
    if "parts" in node:
        items = [b"".join(_node(part, extensible) for part in node["parts"])]
        items.append(_upper(node["subtype"]))
        if extensible:
            items += [
                _params(node.get("params")),
                _disposition(node.get("disposition")),
                _language(node.get("language")),
                nstring(node.get("location")),
            ]
        return b"(" + b" ".join(items) + b")"
    items = [
        _upper(node["type"]),
        _upper(node["subtype"]),
        _params(node.get("params")),
        nstring(node.get("id")),
        nstring(node.get("description")),
        _upper(node.get("encoding") or "7bit"),
        b"%d" % node["size"],
    ]
    message = node.get("message")
    if message is not None:
        items.append(envelope(message["envelope"]))
        items.append(_node(message["body"], extensible))
        items.append(b"%d" % (node.get("lines") or 0))
    elif node["type"] == "text":
        items.append(b"%d" % (node.get("lines") or 0))
    if extensible:
        items += [
            nstring(node.get("md5")),
            _disposition(node.get("disposition")),
            _language(node.get("language")),
            nstring(node.get("location")),
        ]
    return _list(items)


def bodystructure(summary: dict[str, Any], extensible: bool = True) -> bytes:
    """FETCH BODYSTRUCTURE (``extensible=True``) or BODY (``False``) of a summary."""
    return _node(summary["body"], extensible)


def body(summary: dict[str, Any]) -> bytes:
    """FETCH BODY (the non-extensible BODYSTRUCTURE) of a summary."""
    return _node(summary["body"], False)

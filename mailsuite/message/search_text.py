"""Text matching for IMAP SEARCH (RFC 3501 6.4.4): case-insensitive substring search over
decoded header fields, decoded body text, and both.

Decoding: header fields get RFC 2047 encoded words decoded in any charset Python knows, and raw
8-bit octets read as UTF-8 (else Windows-1252). Body text is every text/* part (also inside
message/rfc822 parts, whose headers count as body text too) with its Content-Transfer-Encoding
undone (base64, quoted-printable) and its charset decoded. Matching uses ``str.casefold`` on
both sides, so it is case-insensitive beyond ASCII, as CHARSET UTF-8 searches expect.

Every function takes the raw message bytes; ``summary`` (from ``summarize``) is optional and
lets FROM/TO/CC/BCC/SUBJECT and SENT* be answered without scanning the message.
"""

from __future__ import annotations

import binascii
import datetime
from collections.abc import Iterator
from typing import Any

from mailsuite.message import headers as hdr
from mailsuite.message.dates import (
    date_of_epoch,
    format_imap_datetime,
    parse_imap_date,
    parse_imap_datetime,
)
from mailsuite.message.scan import Entity, parse_message, split_header
from mailsuite.message.summary import DECODED_FIELDS

__all__ = [
    "DECODED_FIELDS",
    "body_matches",
    "body_text",
    "contains",
    "date_of_epoch",
    "format_imap_datetime",
    "header_matches",
    "header_values",
    "parse_imap_date",
    "parse_imap_datetime",
    "sent_date",
    "text_matches",
]

MAX_BODY_TEXT = 64 * 1024 * 1024  # decoded characters searched per message


def contains(haystack: str, needle: str) -> bool:
    """RFC 3501 6.4.4 matching: case-insensitive substring (an empty needle always matches)."""
    return needle.casefold() in haystack.casefold()


def header_values(raw: bytes, name: str, root: Entity | None = None) -> list[str]:
    """The decoded values of every top-level header field called ``name``."""
    fields = root.fields if root is not None else split_header(raw, 0, len(raw))[0]
    key = name.strip().lower().encode("latin-1", "replace")
    return [
        hdr.decode_words(hdr.unfold(raw[f.value_start : f.end])) for f in fields if f.name == key
    ]


def header_matches(
    raw: bytes | None, name: str, needle: str, summary: dict[str, Any] | None = None
) -> bool:
    """SEARCH HEADER name needle (and FROM/TO/CC/BCC/SUBJECT): a field called ``name`` exists
    and its decoded value contains ``needle``. With an empty needle, matches when the field
    exists at all.

    With a ``summary``, the fields in ``DECODED_FIELDS`` (subject, from, to, cc, bcc) are
    answered from it and ``raw`` is not looked at (pass ``None`` to avoid reading the file);
    other fields need ``raw``.
    """
    lname = name.strip().lower()
    if summary is not None and lname in DECODED_FIELDS:
        decoded = summary.get("decoded", {}).get(lname)
        return decoded is not None and contains(decoded, needle)
    return any(contains(value, needle) for value in header_values(raw or b"", lname))


def _transfer_decode(data: bytes, encoding: str) -> bytes:
    if encoding == "base64":
        return hdr._b64_lenient(data)
    if encoding == "quoted-printable":
        try:
            return binascii.a2b_qp(data)
        except (binascii.Error, ValueError):
            return data
    return data


def _param(params: list[tuple[str, str]], name: str) -> str | None:
    for key, value in params:
        if key == name:
            return value
    return None


def _chunks(raw: bytes, entity: Entity, depth: int = 0) -> Iterator[str]:
    if depth > 200:
        return
    if entity.is_multipart:
        for child in entity.children:
            yield from _chunks(raw, child, depth + 1)
        return
    if entity.message is not None:
        inner = entity.message
        for f in inner.fields:
            yield hdr.decode_words(hdr.unfold(raw[f.start : f.end]))
        yield from _chunks(raw, inner, depth + 1)
        return
    if entity.maintype != "text":
        return
    cte = entity.field_value(raw, b"content-transfer-encoding")
    encoding = (hdr.first_token(cte.decode("latin-1")) if cte else "") or "7bit"
    data = _transfer_decode(raw[entity.body_start : entity.end], encoding)
    yield hdr.decode_charset(data, _param(entity.params, "charset"))


def body_text(raw: bytes) -> str:
    """The decoded text of the message body (what SEARCH BODY looks in)."""
    out: list[str] = []
    total = 0
    try:
        for chunk in _chunks(raw, parse_message(raw)):
            out.append(chunk)
            total += len(chunk)
            if total > MAX_BODY_TEXT:
                break
    except RecursionError:
        pass
    return "\n".join(out)


def body_matches(raw: bytes, needle: str) -> bool:
    """SEARCH BODY needle."""
    return contains(body_text(raw), needle)


def header_text(raw: bytes) -> str:
    """All top-level header fields, decoded, one per line."""
    fields = split_header(raw, 0, len(raw))[0]
    return "\n".join(hdr.decode_words(hdr.unfold(raw[f.start : f.end])) for f in fields)


def text_matches(raw: bytes, needle: str) -> bool:
    """SEARCH TEXT needle: in the header or the body."""
    return contains(header_text(raw), needle) or body_matches(raw, needle)


def sent_date(raw: bytes, summary: dict[str, Any] | None = None) -> datetime.date | None:
    """The calendar date of the Date header (SENTBEFORE/SENTON/SENTSINCE), None if unknown."""
    if summary is not None:
        text = summary.get("sent_date")
    else:
        values = header_values(raw, "date")
        parsed = hdr.parse_date(values[0]) if values else None
        text = parsed[1] if parsed else None
    if not text:
        return None
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        return None

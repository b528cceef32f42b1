"""Body sections (RFC 3501 6.4.5 ``BODY[section]<partial>``): a typed section value, a parser
for its text form, and extraction from the raw message bytes.

Grammar (RFC 3501 9)::

    section-spec    = section-msgtext / (section-part ["." section-text])
    section-msgtext = "HEADER" / "HEADER.FIELDS" [".NOT"] SP header-list / "TEXT"
    section-part    = nz-number *("." nz-number)
    section-text    = section-msgtext / "MIME"
    header-list     = "(" header-fld-name *(SP header-fld-name) ")"

Extraction returns the exact stored bytes; a part that does not exist gives ``b""``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mailsuite.message.scan import Entity, header_end, parse_message, resolve, split_header
from mailsuite.message.summary import SUMMARY_VERSION

MAX_PART_DEPTH = 20  # section-part numbers beyond this many levels are refused
MAX_FIELDS = 200  # names in a HEADER.FIELDS list
MAX_PART_NUMBER = 10**6

HEADER = "HEADER"
HEADER_FIELDS = "HEADER.FIELDS"
HEADER_FIELDS_NOT = "HEADER.FIELDS.NOT"
TEXT = "TEXT"
MIME = "MIME"
_TEXTS = (HEADER, HEADER_FIELDS, HEADER_FIELDS_NOT, TEXT, MIME)


@dataclass(frozen=True, slots=True)
class Section:
    """A section specifier: ``part`` numbers (``()`` = the whole message), an optional
    ``text`` (one of HEADER, HEADER.FIELDS, HEADER.FIELDS.NOT, TEXT, MIME) and the field
    names for the two HEADER.FIELDS forms (as the client wrote them)."""

    part: tuple[int, ...] = ()
    text: str | None = None
    fields: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        if self.text is not None and self.text not in _TEXTS:
            raise ValueError(f"unknown section text {self.text!r}")
        if self.text == MIME and not self.part:
            raise ValueError("MIME needs a part number")
        if (self.text in (HEADER_FIELDS, HEADER_FIELDS_NOT)) != bool(self.fields):
            raise ValueError("field names go with HEADER.FIELDS only, and it needs one")
        if len(self.part) > MAX_PART_DEPTH:
            raise ValueError("section part nested too deep")
        if any(n < 1 or n > MAX_PART_NUMBER for n in self.part):
            raise ValueError("section part numbers are 1 and up")

    def __str__(self) -> str:
        """The text form used in a FETCH response: ``1.2.HEADER.FIELDS (From To)``."""
        pieces = [str(n) for n in self.part]
        if self.text is not None:
            pieces.append(self.text)
        spec = ".".join(pieces)
        if self.fields:
            spec += " (" + " ".join(_astring(f) for f in self.fields) + ")"
        return spec


def _astring(name: str) -> str:
    if name and re.fullmatch(r"[!#$&'+\-.0-9:<>=?@A-Z^_`a-z|~/;,]+", name):
        return name
    return '"' + name.replace("\\", "\\\\").replace('"', '\\"') + '"'


_PART = re.compile(r"[1-9][0-9]{0,6}")
_FIELD_NAME = re.compile(r"[!-9;-~]+")  # RFC 5322 ftext; an astring atom subset


def parse_section(spec: str) -> Section:
    """Parse the text between ``[`` and ``]``; raises ValueError on anything invalid."""
    if len(spec) > 10_000:
        raise ValueError("section too long")
    head, sep, rest = spec.partition(" ")
    pieces = head.split(".") if head else []
    part: list[int] = []
    while pieces and pieces[0].isdigit():
        if not _PART.fullmatch(pieces[0]):
            raise ValueError(f"bad part number {pieces[0]!r}")
        part.append(int(pieces.pop(0)))
        if len(part) > MAX_PART_DEPTH:
            raise ValueError("section part nested too deep")
    if "" in pieces:
        raise ValueError("empty section component")
    text = ".".join(pieces).upper() or None
    if text is not None and text not in _TEXTS:
        raise ValueError(f"bad section text {text!r}")
    fields: tuple[str, ...] = ()
    if text in (HEADER_FIELDS, HEADER_FIELDS_NOT):
        if not sep:
            raise ValueError("HEADER.FIELDS needs a list")
        fields = _parse_header_list(rest)
    elif sep:
        raise ValueError("unexpected text after section")
    return Section(tuple(part), text, fields)


def _parse_header_list(text: str) -> tuple[str, ...]:
    text = text.strip()
    if not (text.startswith("(") and text.endswith(")")):
        raise ValueError("header list must be parenthesised")
    inner = text[1:-1]
    names: list[str] = []
    pos, n = 0, len(inner)
    while pos < n:
        if inner[pos] == " ":
            pos += 1
            continue
        if inner[pos] == '"':
            out = []
            pos += 1
            while pos < n and inner[pos] != '"':
                if inner[pos] == "\\" and pos + 1 < n:
                    pos += 1
                out.append(inner[pos])
                pos += 1
            if pos >= n:
                raise ValueError("unterminated quoted field name")
            pos += 1
            name = "".join(out)
        else:
            end = inner.find(" ", pos)
            end = n if end < 0 else end
            name = inner[pos:end]
            pos = end
        if not _FIELD_NAME.fullmatch(name):
            raise ValueError(f"bad header field name {name!r}")
        names.append(name)
        if len(names) > MAX_FIELDS:
            raise ValueError("too many header field names")
    if not names:
        raise ValueError("empty header list")
    return tuple(names)


def _eol(raw: bytes, start: int, body_start: int) -> bytes:
    """The line break a header uses for its empty line (CRLF by default)."""
    if body_start > start and raw[body_start - 1] == 0x0A:
        if body_start - 2 >= start and raw[body_start - 2] == 0x0D:
            return b"\r\n"
        return b"\n"
    return b"\r\n"


def _header_fields(
    raw: bytes, start: int, body_start: int, names: tuple[str, ...], keep: bool
) -> bytes:
    """RFC 3501 6.4.5 HEADER.FIELDS / .NOT: the chosen fields as stored, then an empty line."""
    wanted = {n.lower().encode("latin-1", "replace") for n in names}
    eol = _eol(raw, start, body_start)
    out = []
    for f in split_header(raw, start, body_start)[0]:
        if (f.name in wanted) == keep:
            piece = raw[f.start : f.end]
            out.append(piece if piece.endswith(b"\n") else piece + eol)
    out.append(eol)
    return b"".join(out)


def _message_text(raw: bytes, start: int, body_start: int, end: int, section: Section) -> bytes:
    """HEADER, TEXT, HEADER.FIELDS[.NOT] of the message at ``raw[start:end]``."""
    text = section.text
    if text == HEADER:
        return raw[start:body_start]
    if text == TEXT:
        return raw[body_start:end]
    if text == HEADER_FIELDS:
        return _header_fields(raw, start, body_start, section.fields, True)
    if text == HEADER_FIELDS_NOT:
        return _header_fields(raw, start, body_start, section.fields, False)
    return raw[start:end]


def _part_text(
    raw: bytes,
    span: tuple[int, int, int],
    message: tuple[int, int, int] | None,
    section: Section,
) -> bytes:
    """A section of the part at ``span`` = (start, body start, end); ``message`` is the span of
    the message it encapsulates (message/rfc822) or None."""
    if section.text is None:
        return raw[span[1] : span[2]]
    if section.text == MIME:
        return raw[span[0] : span[1]]
    # HEADER / TEXT / HEADER.FIELDS on a part: only a message/rfc822 part has them
    # (RFC 3501 6.4.5).
    if message is not None:
        return _message_text(raw, *message, section)
    return b""


def extract_from(raw: bytes, root: Entity, section: Section) -> bytes:
    """Extract ``section`` given an already scanned message."""
    if not section.part:
        return _message_text(raw, root.start, root.body_start, root.end, section)
    entity = resolve(root, section.part)
    if entity is None:
        return b""
    inner = entity.message
    return _part_text(
        raw,
        (entity.start, entity.body_start, entity.end),
        None if inner is None else (inner.start, inner.body_start, inner.end),
        section,
    )


def _node_span(node: dict[str, Any]) -> tuple[int, int, int]:
    return node["offset"], node["body_offset"], node["body_offset"] + node["size"]


def _resolve_node(body: dict[str, Any], path: tuple[int, ...]) -> dict[str, Any] | None:
    """``scan.resolve`` over a summary's body tree (same numbering rules)."""
    container = body
    candidates = body.get("parts", [body])
    node: dict[str, Any] | None = None
    for number in path:
        if number < 1 or number > len(candidates):
            return None
        node = candidates[number - 1]
        message = node.get("message")
        if "parts" in node:
            candidates = node["parts"]
        elif message is not None and not message.get("opaque"):
            container = message["body"]
            candidates = container.get("parts", [container])
        elif node is container:
            candidates = []
        else:
            candidates = [node]
    return node


def extract_with_summary(raw: bytes, summary: dict[str, Any], section: Section) -> bytes:
    """Extract a part section using the offsets of a cached summary (no scan of the body)."""
    node = _resolve_node(summary["body"], section.part)
    if node is None:
        return b""
    message = node.get("message")
    inner = None
    if message is not None and not message.get("opaque"):
        inner = _node_span(message["body"])
    return _part_text(raw, _node_span(node), inner, section)


def extract(raw: bytes, section: Section | str, summary: dict[str, Any] | None = None) -> bytes:
    """The bytes of ``section`` of the message ``raw`` (without any partial range).

    ``section`` is a ``Section`` or its text form. Sections of the top-level message (``""``,
    HEADER, TEXT, HEADER.FIELDS) read only the header; part sections scan the MIME structure,
    unless ``summary`` (the cached ``summarize(raw)`` of these same bytes) is given, whose
    offsets are used instead. Missing parts give ``b""``; a malformed text form raises
    ValueError (parse first with ``parse_section`` to reject it earlier).
    """
    if isinstance(section, str):
        section = parse_section(section)
    raw = bytes(raw)
    if not section.part:
        if section.text is None:
            return raw
        if section.text in (HEADER_FIELDS, HEADER_FIELDS_NOT):
            _, body_start = split_header(raw, 0, len(raw))
        else:
            body_start = header_end(raw, 0, len(raw))[1]
        return _message_text(raw, 0, body_start, len(raw), section)
    try:
        if (
            summary is not None
            and summary.get("version") == SUMMARY_VERSION
            and summary.get("size") == len(raw)
        ):
            return extract_with_summary(raw, summary, section)
        return extract_from(raw, parse_message(raw), section)
    except (RecursionError, KeyError, TypeError, IndexError):
        return b""


def partial(data: bytes, start: int, count: int | None = None) -> bytes:
    """RFC 3501 6.4.5 ``<start.count>``: the octets from ``start``, at most ``count`` of them.

    A start past the end gives ``b""``. The FETCH response names the origin only:
    ``BODY[...]<start>``.
    """
    if start < 0 or (count is not None and count < 0):
        raise ValueError("partial range must not be negative")
    if count is None:
        return data[start:]
    return data[start : start + count]

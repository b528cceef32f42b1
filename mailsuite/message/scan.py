"""Scan the raw bytes of a message into a tree of MIME entities with byte offsets.

Nothing is re-serialised: every entity records where its header starts, where its body starts
and where it ends in the original bytes, so sizes and sections match the stored file exactly,
whether it uses CRLF or bare LF. The scan is linear per nesting level and bounded:
``MAX_DEPTH`` levels of multipart / message/rfc822 nesting and ``MAX_PARTS`` entities in all;
past either bound the content is kept as one opaque leaf.

Line ending rules used everywhere (RFC 5322 2.2, RFC 2046 5.1.1, tolerant of bare LF):
- the header ends at the first empty line (``\\r\\n`` or ``\\n`` alone); without one the whole
  entity is header and the body is empty;
- a boundary delimiter is a line starting with ``--boundary`` (``--boundary--`` closes); the
  line break before it belongs to it (RFC 2046 5.1.1). Like Dovecot, text after the boundary
  on that line is tolerated; delimiters are matched against every enclosing multipart,
  longest boundary first, then innermost. A delimiter at the very end of the data opens no
  new part.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

from mailsuite.message import headers as hdr

MAX_DEPTH = 100  # nesting of multipart and message/rfc822 entities
MAX_PARTS = 10_000  # entities in one message
MAX_HEADER_FIELDS = 10_000  # fields told apart in one header (the rest join the last one)
MAX_DELIMITER_CHECKS = 200_000  # "--" lines tested as delimiters in one message

IDENTITY_ENCODINGS = frozenset({"7bit", "8bit", "binary"})

DEFAULT_TYPE = ("text", "plain")
DIGEST_DEFAULT_TYPE = ("message", "rfc822")


@dataclass(slots=True)
class HeaderField:
    """One header field: ``name`` lower-cased (``b""`` for a line that is no field)."""

    name: bytes
    start: int  # first byte of the field
    value_start: int  # first byte after the colon
    end: int  # after the field's last line break


@dataclass(slots=True)
class Entity:
    """One MIME entity (a message or a body part) located in the raw bytes."""

    start: int  # first byte of the header
    body_start: int  # first byte of the body (after the empty line)
    end: int  # after the last byte of the body
    fields: list[HeaderField]
    maintype: str = "text"
    subtype: str = "plain"
    params: list[tuple[str, str]] = field(default_factory=list)
    typed: bool = False  # a valid Content-Type was present
    children: list[Entity] = field(default_factory=list)  # multipart parts
    message: Entity | None = None  # the encapsulated message of message/rfc822
    opaque: bool = False  # structure not scanned (bound reached): render as a leaf
    _index: dict[bytes, list[HeaderField]] | None = None

    def named(self, name: bytes) -> list[HeaderField]:
        """Every field called ``name`` (lower case), in order."""
        index = self._index
        if index is None:
            index = {}
            for f in self.fields:
                index.setdefault(f.name, []).append(f)
            self._index = index
        return index.get(name, [])

    def field_value(self, raw: bytes, name: bytes) -> bytes | None:
        """The unfolded value of the first field called ``name`` (lower case), or None."""
        found = self.named(name)
        if not found:
            return None
        f = found[0]
        return hdr.unfold(raw[f.value_start : f.end])

    @property
    def is_multipart(self) -> bool:
        return self.maintype == "multipart" and not self.opaque


_FIELD_START = re.compile(rb"\n(?![ \t])")
_EMPTY_LINE = re.compile(rb"\n\r?\n")
_NAME_CHARS = bytes(c for c in range(33, 127) if c != 0x3A)  # RFC 5322 ftext


def header_end(raw: bytes, start: int, end: int) -> tuple[int, int]:
    """(end of the header fields, start of the body) for the entity at ``raw[start:end]``."""
    if start >= end:
        return start, start
    if raw[start] == 0x0A:
        return start, start + 1
    if raw.startswith(b"\r\n", start) and start + 2 <= end:
        return start, start + 2
    found = _EMPTY_LINE.search(raw, start, end)  # one pass, stops at the first empty line
    if found is None:
        return end, end
    return found.start() + 1, found.end()


def split_header(raw: bytes, start: int, end: int) -> tuple[list[HeaderField], int]:
    """Split the header at ``raw[start:end]`` into fields; return (fields, body start).

    A field runs from a line that does not start with white space to the next such line
    (RFC 5322 2.2.3 folding). A line without a valid ``name:`` is kept as a nameless field.
    """
    fields_end, body_start = header_end(raw, start, end)
    if fields_end <= start:
        return [], body_start
    starts = [start]
    for m in _FIELD_START.finditer(raw, start, fields_end):
        starts.append(m.end())
        if len(starts) > MAX_HEADER_FIELDS:
            break  # the rest of the header stays inside the last field kept
    if starts[-1] >= fields_end:
        starts.pop()
    starts.append(fields_end)
    fields: list[HeaderField] = []
    find = raw.find
    for i in range(len(starts) - 1):
        pos, stop = starts[i], starts[i + 1]
        lf = find(b"\n", pos, stop)
        colon = find(b":", pos, stop if lf < 0 else lf)
        name = b""
        value_start = pos
        if colon > pos:
            candidate = raw[pos:colon].rstrip(b" \t")
            if candidate and not candidate.translate(None, _NAME_CHARS):
                name = candidate.lower()
                value_start = colon + 1
        fields.append(HeaderField(name, pos, value_start, stop))
    return fields, body_start


class _Budget:
    """How many more entities a scan may create, and how many more lines starting with
    ``--`` it may test as delimiters (which bounds the work of deep nesting over a body full
    of such lines; past it, no further delimiter is recognised)."""

    __slots__ = ("checks", "left")

    def __init__(self, left: int, checks: int = MAX_DELIMITER_CHECKS) -> None:
        self.left = left
        self.checks = checks


def _match_delimiter(
    raw: bytes, i: int, limit: int, stack: list[bytes]
) -> tuple[int, bool, int] | None:
    """The boundary that the line at ``i`` (which starts with ``--``) delimits: (index in
    ``stack``, is the close delimiter, end of the line), or None.

    As in Dovecot, a line that starts with ``--boundary`` is a delimiter even when other
    text follows (RFC 2046 5.1.1 allows only white space; damaged mail often has more).
    When several boundaries match, the longest wins, then the innermost, so nested
    boundaries that extend each other, or repeat each other, are told apart.
    """
    lf = raw.find(b"\n", i, limit)
    line_end = limit if lf < 0 else lf + 1
    best = -1
    for k in range(len(stack) - 1, -1, -1):
        boundary = stack[k]
        if (
            raw.startswith(boundary, i + 2)
            and i + 2 + len(boundary) <= line_end
            and (best < 0 or len(boundary) > len(stack[best]))
        ):
            best = k
    if best < 0:
        return None
    after = i + 2 + len(stack[best])
    return best, raw[after : after + 2] == b"--" and after + 2 <= limit, line_end


def _next_delimiter(
    raw: bytes, pos: int, limit: int, stack: list[bytes], budget: _Budget
) -> tuple[int, int, bool, int] | None:
    """The first delimiter line of any boundary in ``stack`` at or after the line start
    ``pos``: (line start, index in stack, is close, line end), or None before ``limit``."""
    if not stack:
        return None
    candidate = pos if pos + 2 <= limit and raw.startswith(b"--", pos) else -1
    search = pos
    while budget.checks > 0:
        if candidate < 0:
            j = raw.find(b"\n--", search, limit)
            if j < 0:
                return None
            candidate = j + 1
        budget.checks -= 1
        found = _match_delimiter(raw, candidate, limit, stack)
        if found is not None:
            return (candidate, *found)
        search = candidate
        candidate = -1
    return None


def _trim(raw: bytes, floor: int, delimiter: int) -> int:
    """Where content ends before a delimiter line: its preceding line break belongs to the
    delimiter (RFC 2046 5.1.1), but never before ``floor``."""
    end = delimiter
    if end - 2 >= floor and raw[end - 2 : end] == b"\r\n":
        return end - 2
    if end - 1 >= floor and raw[end - 1] == 0x0A:
        return end - 1
    return end


def _until_delimiter(
    raw: bytes, pos: int, floor: int, limit: int, stack: list[bytes], budget: _Budget
) -> tuple[int, int]:
    """(content end, next position) for content from ``pos`` up to the next delimiter."""
    found = _next_delimiter(raw, pos, limit, stack, budget)
    if found is None:
        return limit, limit
    return _trim(raw, floor, found[0]), found[0]


def _parse(
    raw: bytes,
    start: int,
    limit: int,
    stack: list[bytes],
    depth: int,
    budget: _Budget,
    default_type: tuple[str, str],
) -> tuple[Entity, int]:
    """Scan the entity at ``start``; it ends at the first delimiter line of an enclosing
    multipart (``stack``, innermost last) or at ``limit``. Returns the entity and where the
    scan stopped (that delimiter line, or ``limit``).

    Delimiters are matched innermost first, so a multipart nested in one with the same
    boundary (Outlook Express for Mac did that) is told apart as Dovecot does.
    """
    # The next delimiter of an enclosing multipart bounds this entity's header (so a part
    # without an empty line costs no scan beyond it) and, for a leaf, ends its body.
    outer = _next_delimiter(raw, start, limit, stack, budget)
    header_limit = limit if outer is None else outer[0]
    fields_end, body_start = header_end(raw, start, header_limit)
    fields, _ = split_header(raw, start, fields_end)
    entity = Entity(start, body_start, limit, fields)
    _content_type(raw, entity, default_type)
    if outer is not None and start < header_limit:
        no_empty_line = fields_end == body_start
        # An "empty line" right before the delimiter is only the delimiter's line break,
        # unless this part is a multipart whose own first delimiter comes there.
        own_boundary = entity.maintype == "multipart" and _param(entity.params, "boundary")
        if no_empty_line or (body_start == header_limit and not own_boundary):
            cut = _trim(raw, start, header_limit)
            entity.body_start = entity.end = cut  # a header-only part, as Dovecot reads it
            if entity.maintype == "multipart":
                entity.children.append(_stand_in(cut))
            return entity, header_limit
    if entity.maintype == "multipart" and depth < MAX_DEPTH:
        boundary = _param(entity.params, "boundary")
        child_default = DIGEST_DEFAULT_TYPE if entity.subtype == "digest" else DEFAULT_TYPE
        if boundary and len(boundary) <= 200:
            inner = [*stack, boundary.encode("latin-1")]
            own = len(stack)
            pos = body_start
            while True:
                found = _next_delimiter(raw, pos, limit, inner, budget)
                if found is None:  # never closed: runs to the end
                    entity.end, nxt = limit, limit
                    break
                line, k, close, line_end = found
                if k != own:  # an enclosing multipart goes on: this one was not closed
                    entity.end, nxt = _trim(raw, body_start, line), line
                    break
                if close or line_end >= limit or budget.left <= 0:
                    # Closed (the epilogue runs to the next outer delimiter), or a final
                    # delimiter that opens nothing, or out of budget.
                    entity.end, nxt = _until_delimiter(
                        raw, line_end, body_start, limit, stack, budget
                    )
                    break
                budget.left -= 1
                child, pos = _parse(raw, line_end, limit, inner, depth + 1, budget, child_default)
                entity.children.append(child)
        else:
            entity.end, nxt = _until_delimiter(raw, body_start, body_start, limit, stack, budget)
        if not entity.children:
            # No boundary or no delimiter found. RFC 3501 body-type-mpart needs one part:
            # an empty text/plain stands in (as in Dovecot).
            entity.children.append(_stand_in(entity.end))
        return entity, nxt
    if entity.maintype == "multipart":
        entity.opaque = True  # nested deeper than MAX_DEPTH: a leaf
    elif entity.maintype == "message" and entity.subtype == "rfc822":
        cte = entity.field_value(raw, b"content-transfer-encoding")
        encoding = (hdr.first_token(cte.decode("latin-1")) if cte else "") or "7bit"
        if depth < MAX_DEPTH and encoding in IDENTITY_ENCODINGS and budget.left > 0:
            budget.left -= 1
            message, nxt = _parse(raw, body_start, limit, stack, depth + 1, budget, DEFAULT_TYPE)
            entity.message = message
            entity.end = message.end
            return entity, nxt
        entity.opaque = True
    if outer is None:
        return entity, limit
    entity.end = _trim(raw, body_start, outer[0])
    return entity, outer[0]


def _stand_in(offset: int) -> Entity:
    """The empty text/plain part of a multipart that has none."""
    return Entity(offset, offset, offset, [], params=[("charset", "us-ascii")])


def _content_type(raw: bytes, entity: Entity, default_type: tuple[str, str]) -> None:
    """Set the media type of ``entity`` from its Content-Type (RFC 2045 5.2 defaults)."""
    entity.maintype, entity.subtype = default_type
    if default_type == DEFAULT_TYPE:
        entity.params = [("charset", "us-ascii")]
    ctype = entity.field_value(raw, b"content-type")
    if ctype is not None:
        parsed = hdr.parse_content_type(ctype.decode("latin-1"))
        if parsed is not None:
            entity.maintype, entity.subtype, entity.params = parsed
            entity.typed = True
        else:
            entity.maintype, entity.subtype = DEFAULT_TYPE
            entity.params = [("charset", "us-ascii")]


def parse_entity(raw: bytes, start: int = 0, end: int | None = None) -> Entity:
    """Scan the entity at ``raw[start:end]`` and, recursively, its parts."""
    limit = len(raw) if end is None else end
    return _parse(raw, start, limit, [], 0, _Budget(MAX_PARTS), DEFAULT_TYPE)[0]


def _param(params: list[tuple[str, str]], name: str) -> str | None:
    for key, value in params:
        if key == name:
            return value
    return None


def parse_message(raw: bytes) -> Entity:
    """Scan a whole message."""
    return parse_entity(raw)


def parts_of_message(message: Entity) -> list[Entity]:
    """RFC 3501 6.4.5 part numbering inside a message: a multipart message's parts are its
    children; any other message has exactly one part, its body (the message itself)."""
    if message.is_multipart:
        return message.children
    return [message]


def resolve(message: Entity, path: tuple[int, ...]) -> Entity | None:
    """The entity for part number ``path`` (1-based), or None when there is no such part.

    RFC 3501 6.4.5 numbering: the parts of a multipart are its children; the parts of a
    message/rfc822 part are those of the message it holds. A leaf part inside a multipart is
    also its own part 1 (``1.1`` of a text part is that text part), as Dovecot answers;
    the body of a single-part message has no parts below it.
    """
    container = message
    candidates = parts_of_message(message)
    entity: Entity | None = None
    for number in path:
        if number < 1 or number > len(candidates):
            return None
        entity = candidates[number - 1]
        if entity.is_multipart:
            candidates = entity.children
        elif entity.message is not None:
            container = entity.message
            candidates = parts_of_message(container)
        elif entity is container:
            candidates = []
        else:
            candidates = [entity]
    return entity

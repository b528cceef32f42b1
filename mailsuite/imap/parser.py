"""A pure, bounded parser for IMAP command syntax (RFC 3501 section 9, RFC 7888 literals).

The protocol frames one complete command (its lines and literals, with every ``{n}`` marker
followed by CRLF and exactly ``n`` bytes) and hands the bytes to a ``Reader``. Command modules
pull typed values from the reader in the order their grammar demands. Every limit (nesting,
number size, count of items) is enforced here; any violation raises ``ParseError``, which the
protocol turns into a tagged ``BAD``. Nothing here does I/O.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from dataclasses import dataclass

MAX_NUMBER = 4294967295  # RFC 3501 section 9: number = 32-bit unsigned
MAX_NUMBER64 = 9223372036854775807  # RFC 7162: mod-sequence-value is 63-bit
MAX_LIST_DEPTH = 16  # parenthesised lists inside one command
MAX_LIST_ITEMS = 10000
MAX_SEQSET_RANGES = 10000

# ATOM-CHAR: any CHAR except atom-specials: ( ) { SP CTL % * " \ ]   (RFC 3501 section 9)
_ATOM_SPECIALS = frozenset(b'(){ %*"\\]')
_ATOM_CHARS = bytes(c for c in range(0x21, 0x7F) if c not in _ATOM_SPECIALS)
_ASTRING_CHARS = _ATOM_CHARS + b"]"
_TAG_CHARS = bytes(c for c in _ASTRING_CHARS if c != ord("+"))
_LIST_CHARS = _ATOM_CHARS + b"%*]"  # list-mailbox allows list-wildcards and resp-specials

_ATOM_RE = re.compile(b"[" + re.escape(_ATOM_CHARS) + b"]+")
_ASTRING_RE = re.compile(b"[" + re.escape(_ASTRING_CHARS) + b"]+")
_TAG_RE = re.compile(b"[" + re.escape(_TAG_CHARS) + b"]+")
_LIST_RE = re.compile(b"[" + re.escape(_LIST_CHARS) + b"]+")
_DIGITS_RE = re.compile(rb"[0-9]+")
_LITERAL_RE = re.compile(rb"~?\{([0-9]+)(\+?)\}\r\n")
_TRAILING_LITERAL_RE = re.compile(rb"~?\{([0-9]{1,20})(\+?)\}$")

MONTHS = ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec")
_MONTH_NUMBER = {m.lower(): i + 1 for i, m in enumerate(MONTHS)}


class ParseError(Exception):
    """The command does not follow the grammar; the protocol answers ``BAD`` with this text."""


def trailing_literal(line: bytes) -> tuple[int, bool] | None:
    """If ``line`` ends with a literal announcement, return (size, non-synchronising).

    RFC 3501 section 4.3 (``{n}``) and RFC 7888 (``{n+}``). The size may be huge: the
    caller compares it with its limit before reading a single byte of the literal.
    """
    match = _TRAILING_LITERAL_RE.search(line)
    if match is None:
        return None
    return int(match.group(1)), match.group(2) == b"+"


@dataclass(frozen=True, slots=True)
class SequenceSet:
    """A parsed sequence-set: ranges of (low, high) where 0 stands for ``*``.

    RFC 3501 section 9: ``*`` is the largest number in use; ``a:b`` equals ``b:a``.
    """

    ranges: tuple[tuple[int, int], ...]

    def resolve(self, star: int) -> list[tuple[int, int]]:
        """Concrete, sorted, merged ranges once ``*`` is known (``star`` may be 0: empty)."""
        out: list[tuple[int, int]] = []
        for low, high in self.ranges:
            low = star if low == 0 else low
            high = star if high == 0 else high
            if low > high:
                low, high = high, low
            if high == 0:
                continue
            low = max(low, 1)
            out.append((low, high))
        out.sort()
        merged: list[tuple[int, int]] = []
        for low, high in out:
            if merged and low <= merged[-1][1] + 1:
                if high > merged[-1][1]:
                    merged[-1] = (merged[-1][0], high)
            else:
                merged.append((low, high))
        return merged

    def max_explicit(self) -> int:
        """The largest number written explicitly (0 if the set is only ``*``)."""
        return max((max(a, b) for a, b in self.ranges), default=0)

    def uses_star(self) -> bool:
        return any(a == 0 or b == 0 for a, b in self.ranges)


def compact_set(numbers: Iterator[int] | list[int]) -> str:
    """Render ascending numbers as a compact sequence-set (``1:3,7``); '' when empty."""
    parts: list[str] = []
    start = prev = -2
    for n in numbers:
        if n == prev + 1:
            prev = n
            continue
        if start > 0:
            parts.append(str(start) if start == prev else f"{start}:{prev}")
        start = prev = n
    if start > 0:
        parts.append(str(start) if start == prev else f"{start}:{prev}")
    return ",".join(parts)


class Reader:
    """A cursor over one complete command. Methods consume input or raise ``ParseError``."""

    __slots__ = ("data", "depth", "pos")

    def __init__(self, data: bytes, pos: int = 0) -> None:
        self.data = data
        self.pos = pos
        self.depth = 0

    # --- low level -------------------------------------------------------------------------

    def peek(self) -> int | None:
        """The next byte, or None at the end."""
        return self.data[self.pos] if self.pos < len(self.data) else None

    def at_end(self) -> bool:
        return self.pos >= len(self.data)

    def end(self) -> None:
        """Require the end of the command."""
        if self.pos != len(self.data):
            raise ParseError("Unexpected extra arguments")

    def sp(self) -> None:
        """Require exactly one space."""
        if self.peek() != 0x20:
            raise ParseError("Missing space")
        self.pos += 1

    def maybe_sp(self) -> bool:
        """Consume a space if there is one."""
        if self.peek() == 0x20:
            self.pos += 1
            return True
        return False

    def char(self, c: bytes) -> None:
        """Require one specific byte."""
        if self.data[self.pos : self.pos + 1] != c:
            raise ParseError(f"Expected {c.decode()!r}")
        self.pos += 1

    def maybe_char(self, c: bytes) -> bool:
        if self.data[self.pos : self.pos + 1] == c:
            self.pos += 1
            return True
        return False

    def _match(self, pattern: re.Pattern[bytes], what: str) -> bytes:
        match = pattern.match(self.data, self.pos)
        if match is None:
            raise ParseError(f"Expected {what}")
        self.pos = match.end()
        return match.group(0)

    # --- tokens ----------------------------------------------------------------------------

    def tag(self) -> str:
        return self._match(_TAG_RE, "tag").decode("ascii")

    def atom(self) -> str:
        """An atom, as text (ASCII)."""
        return self._match(_ATOM_RE, "atom").decode("ascii")

    def keyword(self) -> str:
        """An atom folded to upper case (command names, search keys, fetch items)."""
        return self.atom().upper()

    def number(self) -> int:
        """RFC 3501 number: 32-bit unsigned."""
        digits = self._match(_DIGITS_RE, "number")
        if len(digits) > 10 or int(digits) > MAX_NUMBER:
            raise ParseError("Number too large")
        return int(digits)

    def nz_number(self) -> int:
        value = self.number()
        if value == 0:
            raise ParseError("Zero is not a valid number here")
        return value

    def number64(self) -> int:
        """RFC 7162 mod-sequence value (63 bits)."""
        digits = self._match(_DIGITS_RE, "number")
        if len(digits) > 19 or int(digits) > MAX_NUMBER64:
            raise ParseError("Number too large")
        return int(digits)

    def quoted(self) -> bytes:
        """A quoted string (RFC 3501 section 9): only ``\\"`` and ``\\\\`` escapes, no CR/LF."""
        self.char(b'"')
        out = bytearray()
        data = self.data
        i = self.pos
        n = len(data)
        while i < n:
            c = data[i]
            if c == 0x22:
                self.pos = i + 1
                return bytes(out)
            if c == 0x5C:
                i += 1
                if i >= n or data[i] not in (0x22, 0x5C):
                    raise ParseError("Bad escape in quoted string")
                out.append(data[i])
            elif c in (0x0D, 0x0A, 0x00):
                raise ParseError("Bad character in quoted string")
            else:
                out.append(c)
            i += 1
        raise ParseError("Unterminated quoted string")

    def literal(self) -> bytes:
        """A literal whose bytes the protocol has already placed after its marker."""
        match = _LITERAL_RE.match(self.data, self.pos)
        if match is None:
            raise ParseError("Expected literal")
        size = int(match.group(1))
        start = match.end()
        if start + size > len(self.data):
            raise ParseError("Literal shorter than announced")
        self.pos = start + size
        return self.data[start : start + size]

    def string(self) -> bytes:
        """quoted / literal."""
        c = self.peek()
        if c == 0x22:
            return self.quoted()
        if c in (0x7B, 0x7E):
            return self.literal()
        raise ParseError("Expected string")

    def astring(self) -> bytes:
        """atom (with ``]``) / string."""
        c = self.peek()
        if c in (0x22, 0x7B, 0x7E):
            return self.string()
        return self._match(_ASTRING_RE, "string")

    def nstring(self) -> bytes | None:
        if self.data[self.pos : self.pos + 3].upper() == b"NIL" and not _is_atom_char(
            self.data, self.pos + 3
        ):
            self.pos += 3
            return None
        return self.string()

    def list_mailbox(self) -> bytes:
        """RFC 3501 list-mailbox: like astring but ``%`` and ``*`` are allowed in atoms."""
        c = self.peek()
        if c in (0x22, 0x7B, 0x7E):
            return self.string()
        return self._match(_LIST_RE, "mailbox pattern")

    def text_string(self, charset: str = "utf-8") -> str:
        """An astring decoded as text (UTF-8 with replacement for garbage)."""
        return self.astring().decode(charset, "replace")

    def seqset(self) -> SequenceSet:
        """RFC 3501 sequence-set: (nz-number / ``*``) with ``:`` ranges and ``,`` lists."""
        ranges: list[tuple[int, int]] = []
        while True:
            low = self._seq_number()
            high = low
            if self.maybe_char(b":"):
                high = self._seq_number()
            ranges.append((low, high))
            if len(ranges) > MAX_SEQSET_RANGES:
                raise ParseError("Sequence set too long")
            if not self.maybe_char(b","):
                break
        return SequenceSet(tuple(ranges))

    def _seq_number(self) -> int:
        if self.maybe_char(b"*"):
            return 0
        return self.nz_number()

    def looks_like_seqset(self) -> bool:
        c = self.peek()
        return c is not None and (0x30 <= c <= 0x39 or c == 0x2A)

    # --- lists -----------------------------------------------------------------------------

    def open_list(self) -> None:
        self.char(b"(")
        self.depth += 1
        if self.depth > MAX_LIST_DEPTH:
            raise ParseError("Too deeply nested")

    def close_list(self) -> bool:
        """Consume ``)`` if next (returns True), else require a separating space."""
        if self.maybe_char(b")"):
            self.depth -= 1
            return True
        return False

    def items(self, read_item) -> list:  # type: ignore[no-untyped-def]
        """``(`` item *(SP item) ``)`` (empty allowed)."""
        self.open_list()
        out: list = []
        if self.close_list():
            return out
        while True:
            out.append(read_item())
            if len(out) > MAX_LIST_ITEMS:
                raise ParseError("List too long")
            if self.close_list():
                return out
            self.sp()

    def flag(self) -> str:
        """flag: ``\\``atom or atom (keywords)."""
        if self.maybe_char(b"\\"):
            if self.maybe_char(b"*"):
                return "\\*"
            return "\\" + self.atom().capitalize()
        return self.atom()

    def flag_list(self) -> list[str]:
        return self.items(self.flag)

    def flags_argument(self) -> list[str]:
        """STORE flags: a parenthesised list or flags separated by spaces."""
        if self.peek() == 0x28:
            return self.flag_list()
        out = [self.flag()]
        while self.maybe_sp():
            out.append(self.flag())
            if len(out) > MAX_LIST_ITEMS:
                raise ParseError("Too many flags")
        return out

    # --- dates -----------------------------------------------------------------------------

    def date(self) -> tuple[int, int, int]:
        """RFC 3501 date: ``d-Mon-yyyy``, optionally quoted. Returns (year, month, day)."""
        quoted = self.maybe_char(b'"')
        match = re.compile(rb"([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4})").match(self.data, self.pos)
        if match is None:
            raise ParseError("Bad date")
        self.pos = match.end()
        if quoted:
            self.char(b'"')
        day, month_name, year = int(match.group(1)), match.group(2).decode().lower(), int(
            match.group(3)
        )
        month = _MONTH_NUMBER.get(month_name)
        if month is None or not 1 <= day <= 31:
            raise ParseError("Bad date")
        return year, month, day

    def date_time(self) -> float:
        """RFC 3501 date-time ``"dd-Mon-yyyy hh:mm:ss +zzzz"`` as seconds since the epoch."""
        import calendar

        raw = self.quoted()
        match = re.fullmatch(
            rb" ?([0-9]{1,2})-([A-Za-z]{3})-([0-9]{4}) ([0-9]{2}):([0-9]{2}):([0-9]{2}) "
            rb"([+-])([0-9]{2})([0-9]{2})",
            raw,
        )
        if match is None:
            raise ParseError("Bad date-time")
        day, year = int(match.group(1)), int(match.group(3))
        month = _MONTH_NUMBER.get(match.group(2).decode().lower())
        hh, mm, ss = int(match.group(4)), int(match.group(5)), int(match.group(6))
        if month is None or not (1 <= day <= 31 and hh < 24 and mm < 60 and ss < 61):
            raise ParseError("Bad date-time")
        offset = (int(match.group(8)) * 60 + int(match.group(9))) * 60
        if match.group(7) == b"-":
            offset = -offset
        try:
            return float(calendar.timegm((year, month, day, hh, mm, min(ss, 59), 0, 0, 0)) - offset)
        except (ValueError, OverflowError) as e:
            raise ParseError("Bad date-time") from e


def _is_atom_char(data: bytes, pos: int) -> bool:
    return pos < len(data) and data[pos] in _ASTRING_CHARS


def parse_head(reader: Reader) -> tuple[str, str]:
    """``tag SP command`` (``UID`` joins its sub-command: ``"UID FETCH"``)."""
    tag = reader.tag()
    reader.sp()
    name = reader.keyword()
    if name == "UID":
        reader.sp()
        name = "UID " + reader.keyword()
    return tag, name


def peek_tag(data: bytes) -> str | None:
    """The tag at the start of a (possibly invalid) command line, if it has one."""
    match = _TAG_RE.match(data)
    if match is None or data[match.end() : match.end() + 1] != b" ":
        return None
    return match.group(0).decode("ascii")


def peek_command(data: bytes) -> str:
    """The command name of a (possibly incomplete) line, upper case ('' if none)."""
    match = re.match(rb"[^ ]+ ([A-Za-z]+)(?: ([A-Za-z]+))?", data)
    if match is None:
        return ""
    name = match.group(1).decode().upper()
    if name == "UID" and match.group(2):
        name = "UID " + match.group(2).decode().upper()
    return name

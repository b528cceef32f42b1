"""Header field values: unfolding, MIME parameters (RFC 2045, RFC 2231), encoded words
(RFC 2047), charset decoding and the Date field (RFC 5322 3.3).

Everything here is pure and total: bad input gives a degraded value, never an exception.
Raw header bytes are carried as ``str`` decoded with latin-1, which maps every byte to one
character and back (``s.encode("latin-1")`` restores the octets exactly).
"""

from __future__ import annotations

import binascii
import calendar
import codecs
import datetime
import email.utils
import re

__all__ = [
    "decode_8bit",
    "decode_charset",
    "decode_rfc2231_value",
    "decode_words",
    "merge_rfc2231",
    "parse_content_type",
    "parse_date",
    "parse_params",
    "unfold",
]

_WSP = " \t"


_FOLD = re.compile(rb"\r*\n[ \t]*")


def unfold(value: bytes) -> bytes:
    """Unfold a field body (RFC 5322 2.2.3) and trim the surrounding white space.

    A line break and the white space after it become one space (as Dovecot shows folded
    fields in ENVELOPE); a stray CR becomes a space too.
    """
    if b"\n" in value or b"\r" in value:
        value = _FOLD.sub(b" ", value).replace(b"\r", b" ")
    return value.strip(b" \t")


# --- charsets --------------------------------------------------------------------------

_CHARSET_ALIASES = {
    "unknown-8bit": "latin-1",
    "x-unknown": "latin-1",
    "x-user-defined": "latin-1",
    "ansi_x3.4-1968": "ascii",
    "us-ascii": "ascii",
    "iso-8859-8-i": "iso-8859-8",
    "ks_c_5601-1987": "cp949",
    "gb2312": "gb18030",  # a superset; real-world gb2312 mail often needs it
    "gbk": "gb18030",
}


_NOT_CHARSETS = frozenset(
    {"undefined", "unicode-escape", "raw-unicode-escape", "idna", "punycode", "charmap"}
)


def _codec_name(charset: str) -> str | None:
    """A text codec for a MIME charset name, or None when Python has none."""
    name = charset.strip().strip('"').lower()
    name = _CHARSET_ALIASES.get(name, name)
    if not name or len(name) > 64:
        return None
    try:
        info = codecs.lookup(name)
    except (LookupError, ValueError):
        return None
    # Refuse bytes-to-bytes codecs ("base64", "rot13", ...) and Python's own codecs that
    # are no charsets: charsets are text encodings.
    if not getattr(info, "_is_text_encoding", True) or info.name in _NOT_CHARSETS:
        return None
    return info.name


def decode_8bit(data: bytes) -> str:
    """Bytes of unknown charset to text: UTF-8 when valid, else Windows-1252 / latin-1."""
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError:
        pass
    try:
        return data.decode("cp1252")
    except UnicodeDecodeError:
        return data.decode("latin-1")


def decode_charset(data: bytes, charset: str | None) -> str:
    """Decode with a declared MIME charset; unknown charsets fall back to ``decode_8bit``."""
    codec = _codec_name(charset) if charset else None
    if codec is None or codec == "ascii":
        return decode_8bit(data)
    for errors in ("strict", "replace"):
        try:
            return data.decode(codec, errors)
        except Exception:  # noqa: BLE001, S112 -- exotic codecs raise anything on garbage
            continue
    return decode_8bit(data)


# --- encoded words (RFC 2047) ----------------------------------------------------------

_ENCODED_WORD = re.compile(rb"=\?([^?\s]+)\?([bBqQ])\?([^?\s]*)\?=")
_QP_HEX = re.compile(rb"=([0-9A-Fa-f]{2})")


def _b64_lenient(data: bytes) -> bytes:
    """Base64 that ignores junk characters and tolerates missing padding."""
    data = re.sub(rb"[^A-Za-z0-9+/]", b"", data)
    data = data[: len(data) - len(data) % 4] if len(data) % 4 == 1 else data
    data += b"=" * (-len(data) % 4)
    try:
        return binascii.a2b_base64(data)
    except (binascii.Error, ValueError):
        return b""


def _q_decode(data: bytes) -> bytes:
    return _QP_HEX.sub(lambda m: bytes([int(m.group(1), 16)]), data.replace(b"_", b" "))


def decode_words(value: bytes) -> str:
    """Decode a header value to text: RFC 2047 encoded words in any charset, raw 8-bit text
    as UTF-8 (RFC 6532) or Windows-1252. White space between adjacent encoded words is
    dropped (RFC 2047 6.2); adjacent words in one charset are joined before decoding so that
    a multi-byte character split across words survives."""
    if b"=?" not in value:
        return decode_8bit(value)
    out: list[str] = []
    pending: bytearray = bytearray()
    pending_charset: str | None = None
    pos = 0
    for match in _ENCODED_WORD.finditer(value):
        between = value[pos : match.start()]
        if between and (pending_charset is None or between.strip(b" \t\r\n")):
            if pending_charset is not None:
                out.append(decode_charset(bytes(pending), pending_charset))
                pending, pending_charset = bytearray(), None
            out.append(decode_8bit(between))
        charset = match.group(1).split(b"*", 1)[0].decode("latin-1").lower()
        payload = match.group(3)
        data = _b64_lenient(payload) if match.group(2) in b"bB" else _q_decode(payload)
        if pending_charset is not None and charset != pending_charset:
            out.append(decode_charset(bytes(pending), pending_charset))
            pending = bytearray()
        pending_charset = charset
        pending += data
        pos = match.end()
    if pending_charset is not None:
        out.append(decode_charset(bytes(pending), pending_charset))
    out.append(decode_8bit(value[pos:]))
    return "".join(out)


# --- MIME parameters -------------------------------------------------------------------

_TSPECIALS_END = set(' \t;()<>@,:"/[]?=')


def _skip_cfws(s: str, pos: int) -> int:
    """Skip white space and (nested) comments."""
    n = len(s)
    while pos < n:
        c = s[pos]
        if c in _WSP or c in "\r\n":
            pos += 1
        elif c == "(":
            depth = 0
            while pos < n:
                c = s[pos]
                if c == "\\":
                    pos += 2
                    continue
                if c == "(":
                    depth += 1
                elif c == ")":
                    depth -= 1
                    if depth == 0:
                        pos += 1
                        break
                pos += 1
        else:
            break
    return min(pos, n)


def _read_quoted(s: str, pos: int) -> tuple[str, int, bool]:
    """Read a quoted string starting at the opening quote; return (content, next pos,
    whether the closing quote was found)."""
    out = []
    pos += 1
    n = len(s)
    while pos < n:
        c = s[pos]
        if c == "\\" and pos + 1 < n:
            out.append(s[pos + 1])
            pos += 2
            continue
        if c == '"':
            return "".join(out), pos + 1, True
        out.append(c)
        pos += 1
    return "".join(out), pos, False


def _read_token(s: str, pos: int, stops: str) -> tuple[str, int]:
    start = pos
    n = len(s)
    while pos < n and s[pos] not in stops:
        pos += 1
    return s[start:pos], pos


def parse_params(s: str, pos: int = 0) -> list[tuple[str, str]]:
    """Parse ``; name=value`` pairs (RFC 2045 5.1) leniently, from ``pos`` on.

    Names are lower-cased; quoted values are unquoted. Unquoted values run to the next
    ``;`` or white space (so the common ``boundary=----=_Part`` works). Junk is skipped.
    """
    params: list[tuple[str, str]] = []
    n = len(s)
    guard = 0
    while pos < n and guard < 10_000:
        guard += 1
        pos = _skip_cfws(s, pos)
        if pos >= n:
            break
        if s[pos] != ";":
            # Junk between parameters: skip to the next separator.
            nxt = s.find(";", pos)
            if nxt < 0:
                break
            pos = nxt
        pos = _skip_cfws(s, pos + 1)
        name, pos = _read_token(s, pos, ' \t;="(')
        pos = _skip_cfws(s, pos)
        if pos >= n or s[pos] != "=":
            continue
        pos = _skip_cfws(s, pos + 1)
        if pos < n and s[pos] == '"':
            value, pos, closed = _read_quoted(s, pos)
            if not closed:
                continue  # unterminated quoted string: drop the parameter, as Dovecot does
        else:
            value, pos = _read_token(s, pos, ' \t;"(')
        name = name.strip().lower()
        if name:
            params.append((name, value))
    return params


_SECTION_NAME = re.compile(r"^(.+?)\*(?:(\d{1,3})(\*)?)?$")


def merge_rfc2231(params: list[tuple[str, str]]) -> list[tuple[str, str]]:
    """Join RFC 2231 continuations (``name*0``, ``name*1*`` ...) into one parameter.

    A parameter with any extended section comes out as ``name*`` with the value
    ``charset'language'percent-encoded`` (plain sections are percent-encoded into it); one
    without comes out as ``name`` with the sections concatenated. Order of first appearance
    is kept; a name that occurs twice keeps its first value.
    """
    if not any("*" in name for name, _ in params):
        seen: set[str] = set()
        out = []
        for name, value in params:
            if name not in seen:
                seen.add(name)
                out.append((name, value))
        return out
    order: list[str] = []
    plain: dict[str, str] = {}
    sections: dict[str, dict[int, tuple[str, bool]]] = {}
    for name, value in params:
        m = _SECTION_NAME.match(name)
        if m is None:
            if name not in plain and name not in sections:
                order.append(name)
            plain.setdefault(name, value)
            continue
        base, number, star = m.group(1), m.group(2), m.group(3)
        if number is None:  # name*=charset'lang'value
            index, extended = 0, True
        else:
            index, extended = int(number), bool(star)
        if base not in plain and base not in sections:
            order.append(base)
        sections.setdefault(base, {}).setdefault(index, (value, extended))
    out = []
    for base in order:
        if base in plain:
            out.append((base, plain[base]))
            continue
        parts = sections[base]
        pieces = []
        for i in range(len(parts)):  # stop at the first gap (RFC 2231 3)
            if i not in parts:
                break
            pieces.append(parts[i])
        if not pieces:
            continue
        if any(ext for _, ext in pieces):
            # Sections are joined as written (plain ones are not percent-encoded), as Dovecot
            # shows them; a first section without charset'language' gets an empty one.
            joined = [value for value, _ in pieces]
            if not pieces[0][1]:
                joined[0] = "''" + joined[0]
            out.append((base + "*", "".join(joined)))
        else:
            out.append((base, "".join(v for v, _ in pieces)))
    return out


def decode_rfc2231_value(value: str) -> str:
    """Decode ``charset'language'percent%20encoded`` (RFC 2231 4) to text."""
    charset, _, rest = value.partition("'")
    _, _, data = rest.partition("'")
    raw = re.sub(r"%([0-9A-Fa-f]{2})", lambda m: chr(int(m.group(1), 16)), data).encode(
        "latin-1", "replace"
    )
    return decode_charset(raw, charset or None)


_TOKEN_CHARS = r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+"
_PARAM = rf'[ \t]*;[ \t]*({_TOKEN_CHARS})[ \t]*=[ \t]*("(?:[^"\\]|\\.)*"|[^;" \t(]*)[ \t]*'
_SIMPLE_TYPE = re.compile(
    rf"[ \t]*({_TOKEN_CHARS})[ \t]*/[ \t]*({_TOKEN_CHARS})[ \t]*((?:{_PARAM})*)(?:;[ \t]*)?",
    re.DOTALL,
)
_SIMPLE_MAX = 1000  # longest value given to _SIMPLE_TYPE
_SIMPLE_PARAM = re.compile(_PARAM, re.DOTALL)
_QUOTED_PAIR = re.compile(r"\\(.)", re.DOTALL)


def _simple_params(text: str) -> list[tuple[str, str]]:
    params = []
    for m in _SIMPLE_PARAM.finditer(text):
        value = m.group(2)
        if value.startswith('"'):
            value = value[1:-1]
            if "\\" in value:
                value = _QUOTED_PAIR.sub(r"\1", value)
        params.append((m.group(1).lower(), value))
    return params


def parse_content_type(value: str) -> tuple[str, str, list[tuple[str, str]]] | None:
    """``type/subtype; params`` to (type, subtype, params), lower-case type names.

    None when the value is not a syntactically valid media type (RFC 2045 5.2: the caller then
    uses the default). The common comment-free form is parsed by one regular expression; the
    rest by the general scanner (they agree: see the fuzz tests).
    """
    # Short values only: the expression backtracks quadratically on long runs of blanks.
    simple = _SIMPLE_TYPE.fullmatch(value) if len(value) <= _SIMPLE_MAX else None
    if simple is not None:
        maintype, subtype, rest = simple.group(1, 2, 3)
        return maintype.lower(), subtype.lower(), merge_rfc2231(_simple_params(rest))
    return parse_content_type_general(value)


def parse_content_type_general(value: str) -> tuple[str, str, list[tuple[str, str]]] | None:
    """``parse_content_type`` by the general scanner (comments, junk between parameters)."""
    pos = _skip_cfws(value, 0)
    maintype, pos = _read_token(value, pos, ' \t;/("')
    pos = _skip_cfws(value, pos)
    if pos >= len(value) or value[pos] != "/":
        return None
    pos = _skip_cfws(value, pos + 1)
    subtype, pos = _read_token(value, pos, ' \t;("')
    maintype, subtype = maintype.lower(), subtype.lower()
    if not maintype or not subtype or _bad_token(maintype) or _bad_token(subtype):
        return None
    return maintype, subtype, merge_rfc2231(parse_params(value, pos))


_TOKEN = re.compile(r"[!#$%&'*+\-.0-9A-Z^_`a-z{|}~]+")  # RFC 2045 5.1 token


def _bad_token(token: str) -> bool:
    return _TOKEN.fullmatch(token) is None


def parse_disposition(value: str) -> tuple[str, list[tuple[str, str]]] | None:
    """``attachment; filename=x`` (RFC 2183) to (type, params); None when empty."""
    pos = _skip_cfws(value, 0)
    kind, pos = _read_token(value, pos, ' \t;("')
    kind = kind.lower()
    if not kind or _bad_token(kind):
        return None
    return kind, merge_rfc2231(parse_params(value, pos))


def parse_language(value: str) -> list[str] | None:
    """Content-Language (RFC 3282): a comma-separated list of tags; None when empty."""
    tags = []
    for piece in re.sub(r"\([^)]*\)?", " ", value).split(","):
        words = piece.split()
        if words:
            tags.append(words[0])
    return tags or None


def first_token(value: str) -> str:
    """The single token of a structured field, lower-cased (Content-Transfer-Encoding);
    ``""`` when the value is not exactly one valid RFC 2045 token (comments aside)."""
    pos = _skip_cfws(value, 0)
    token, pos = _read_token(value, pos, ' \t;("')
    if _bad_token(token) or _skip_cfws(value, pos) != len(value):
        return ""  # not one token: Dovecot then assumes 7bit too
    return token.lower()


# --- dates (RFC 5322 3.3) --------------------------------------------------------------


def parse_date(value: str) -> tuple[int, str] | None:
    """A Date field to (UTC epoch seconds, ``YYYY-MM-DD`` in the field's own zone).

    The calendar date is what SENTON/SENTBEFORE/SENTSINCE compare (RFC 3501 6.4.4:
    "disregarding time and timezone"). None when the value cannot be understood.
    """
    if len(value) > 200:
        value = value[:200]
    try:
        parsed = email.utils.parsedate_tz(value)
    except Exception:  # noqa: BLE001 -- the stdlib parser is not total on garbage
        return None
    if not parsed:
        return None
    try:
        year, month, day, hour, minute, second = (int(x) for x in parsed[:6])
        datetime.date(year, month, day)
        if not (0 <= hour <= 23 and 0 <= minute <= 59 and 0 <= second <= 61):
            return None
        offset = parsed[9] or 0
        epoch = calendar.timegm((year, month, day, hour, minute, second, 0, 0, 0)) - offset
    except (ValueError, OverflowError, TypeError):
        return None
    return epoch, f"{year:04d}-{month:02d}-{day:02d}"

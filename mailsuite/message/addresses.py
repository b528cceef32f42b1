"""RFC 5322 address lists (3.4) as IMAP ENVELOPE addresses (RFC 3501 7.4.2).

Each address is ``[name, adl, mailbox, host]`` (each ``str`` or ``None``). A group
``team: a@x, b@y;`` becomes a start marker ``[None, None, "team", None]``, its members, and an
end marker ``[None, None, None, None]``, exactly as RFC 3501 represents it.

Strings are raw header text (latin-1 ``str`` of the original octets): encoded words are left
encoded, as IMAP clients decode them themselves. Quoted display names and local parts are
unquoted; comments are dropped, except that ``addr (Full Name)`` takes the comment as the name.
Empty list members are skipped.
The parser is lenient and total: any input gives some list, never an exception.
"""

from __future__ import annotations

import re

Address = list  # [name, adl, mailbox, host]

# A NIL host means group syntax in IMAP (RFC 3501 7.4.2), so a mailbox without a domain, or
# ``<>``, gets these placeholders instead, the same ones Dovecot uses.
MISSING_MAILBOX = "MISSING_MAILBOX"
MISSING_DOMAIN = "MISSING_DOMAIN"

_SPECIALS = frozenset('<>@,;:"[]()')
_WSP = " \t\r\n"

# Token kinds
_ATOM, _QUOTED, _COMMENT, _LITERAL, _SPECIAL = range(5)


_SCAN = re.compile(
    r"[ \t\r\n]+"  # white space
    r'|"((?:[^"\\]|\\.?)*)"?'  # 1: quoted string (unterminated: to the end)
    r"|(\[[^\]]*\]?)"  # 2: domain literal
    r"|([<>@,;:\])])"  # 3: specials
    r'|([^ \t\r\n<>@,;:"()\[\]]+)',  # 4: atom (dots included)
    re.DOTALL,
)
_ESCAPE = re.compile(r"\\(.)", re.DOTALL)


def _comment(s: str, pos: int) -> tuple[str, int]:
    """A (nested) comment starting at ``(``: (its text without the outer parentheses, next pos)."""
    depth, out, n = 0, [], len(s)
    while pos < n:
        c = s[pos]
        if c == "\\" and pos + 1 < n:
            out.append(s[pos + 1])
            pos += 2
            continue
        if c == "(":
            depth += 1
            if depth > 1:
                out.append(c)
        elif c == ")":
            depth -= 1
            if depth == 0:
                return "".join(out), pos + 1
            out.append(c)
        else:
            out.append(c)
        pos += 1
    return "".join(out), pos


def _tokenize(s: str) -> list[tuple[int, str]]:
    """RFC 5322 3.2 lexical tokens (comments kept: a bare address takes one as its name)."""
    tokens: list[tuple[int, str]] = []
    pos, n = 0, len(s)
    match = _SCAN.match
    while pos < n:
        if s[pos] == "(":
            text, pos = _comment(s, pos)
            tokens.append((_COMMENT, text))
            continue
        m = match(s, pos)
        if m is None:  # cannot happen: every character starts some alternative
            pos += 1
            continue
        kind = m.lastindex
        if kind == 1:
            text = m.group(1)
            tokens.append((_QUOTED, _ESCAPE.sub(r"\1", text) if "\\" in text else text))
        elif kind == 2:
            tokens.append((_LITERAL, m.group(2)))
        elif kind == 3:
            tokens.append((_SPECIAL, m.group(3)))
        elif kind == 4:
            tokens.append((_ATOM, m.group(4)))
        pos = m.end()
    return tokens


def _phrase(tokens: list[tuple[int, str]]) -> str | None:
    words = [text for kind, text in tokens if kind in (_ATOM, _QUOTED, _LITERAL)]
    name = " ".join(w for w in words if w != "")
    return name or None


def _addr_spec(tokens: list[tuple[int, str]]) -> tuple[str | None, str | None]:
    """(mailbox, host) from the tokens of an addr-spec."""
    parts = [(k, t) for k, t in tokens if k != _COMMENT]
    at = -1
    for i, (kind, text) in enumerate(parts):
        if kind == _SPECIAL and text == "@":
            at = i
    local_tokens = parts if at < 0 else parts[:at]
    domain_tokens = [] if at < 0 else parts[at + 1 :]
    # A quoted local part is shown unquoted, as Dovecot does.
    local = "".join(t for k, t in local_tokens if k != _SPECIAL or t == ".")
    domain = "".join(t for k, t in domain_tokens if k in (_ATOM, _LITERAL))
    if at < 0:
        return (local or None), None
    return local, domain


def _mailbox(tokens: list[tuple[int, str]]) -> Address | None:
    """One mailbox (``name <addr>`` or ``addr``) as an IMAP address, None when empty."""
    if not tokens:
        return None
    lt = next((i for i, (k, t) in enumerate(tokens) if k == _SPECIAL and t == "<"), -1)
    if lt >= 0:
        gt = next(
            (i for i, (k, t) in enumerate(tokens) if i > lt and k == _SPECIAL and t == ">"),
            len(tokens),
        )
        name = _phrase(tokens[:lt])
        inner = [tok for tok in tokens[lt + 1 : gt] if tok[0] != _COMMENT]
        adl = None
        colon = next((i for i, (k, t) in enumerate(inner) if k == _SPECIAL and t == ":"), -1)
        if colon >= 0 and inner and inner[0] == (_SPECIAL, "@"):
            adl = "".join(t for _, t in inner[:colon]) or None
            inner = inner[colon + 1 :]
        mailbox, host = _addr_spec(inner)
        if name is None:
            comments = [t.strip() for k, t in tokens[gt + 1 :] if k == _COMMENT and t.strip()]
            name = comments[-1] if comments else None
        return [name, adl, mailbox or MISSING_MAILBOX, host or MISSING_DOMAIN]
    mailbox, host = _addr_spec(tokens)
    if not mailbox and not host:
        return None
    comments = [t.strip() for k, t in tokens if k == _COMMENT and t.strip()]
    name = comments[-1] if comments else None
    return [name, None, mailbox or MISSING_MAILBOX, host or MISSING_DOMAIN]


MAX_ADDRESS_TEXT = 256 * 1024  # characters of one field parsed for addresses


_S_ATOM = r'[^ \t\r\n<>@,;:"()\[\]\\]+'
_S_ITEM = (
    rf'[ \t]*(?:(?:({_S_ATOM}(?:[ \t]+{_S_ATOM})*)|"([^"\\\r\n]*)")?[ \t]*'
    rf"<({_S_ATOM})@({_S_ATOM})>|({_S_ATOM})@({_S_ATOM}))[ \t]*"
)
_SIMPLE_ITEM = re.compile(_S_ITEM)
_SIMPLE_LIST = re.compile(rf"{_S_ITEM}(?:,{_S_ITEM})*")
_BLANKS = re.compile(r"[ \t]+")
_SIMPLE_MAX = 2000


def _simple_list(value: str) -> list[Address] | None:
    """The common shapes (``a@b``, ``Name <a@b>``, ``"Name" <a@b>``, comma-separated) by
    regular expression; None when the value has any other shape."""
    if len(value) > _SIMPLE_MAX or _SIMPLE_LIST.fullmatch(value) is None:
        return None
    out: list[Address] = []
    for m in _SIMPLE_ITEM.finditer(value):
        phrase, quoted, mailbox, host, bare_mailbox, bare_host = m.groups()
        if bare_mailbox is not None:
            out.append([None, None, bare_mailbox, bare_host])
            continue
        name = " ".join(_BLANKS.split(phrase)) if phrase is not None else quoted
        out.append([name or None, None, mailbox, host])
    return out


def parse_address_list(value: str) -> list[Address] | None:
    """An address-list header value to IMAP addresses; None when it holds no address.

    Only the first ``MAX_ADDRESS_TEXT`` characters are read, which bounds the work and the
    size of the cached summary for absurd headers.
    """
    simple = _simple_list(value)
    if simple is not None:
        return simple
    return parse_address_list_general(value)


def parse_address_list_general(value: str) -> list[Address] | None:
    """``parse_address_list`` by the general tokenizer (groups, comments, routes, junk)."""
    tokens = _tokenize(value[:MAX_ADDRESS_TEXT])
    out: list[Address] = []
    current: list[tuple[int, str]] = []
    in_group = False
    angle = 0

    def flush() -> None:
        address = _mailbox(current)
        if address is not None:
            out.append(address)
        current.clear()

    for token in tokens:
        kind, text = token
        if kind == _SPECIAL:
            if text == "<":
                angle += 1
            elif text == ">":
                angle = max(0, angle - 1)
            elif angle == 0:
                if text == ":" and not in_group:
                    out.append([None, None, _phrase(current) or "", None])
                    current.clear()
                    in_group = True
                    continue
                if text == ";" and in_group:
                    flush()
                    out.append([None, None, None, None])
                    in_group = False
                    continue
                if text == ",":
                    flush()
                    continue
                if text == ";":
                    continue
        current.append(token)
    flush()
    if in_group:
        out.append([None, None, None, None])
    return out or None

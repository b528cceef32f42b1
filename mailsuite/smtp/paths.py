"""Pure parsing of SMTP envelope paths and ESMTP parameters (RFC 5321 4.1.2, RFC 6531, RFC 3461).

Nothing here knows about accounts or policy: the parser turns the argument of MAIL FROM / RCPT TO
into a :class:`Mailbox` that records every feature a relay disguise can hide behind (source routes,
quoted local parts, ``%``/``!`` routing, trailing dots, address literals) so that
``mailsuite.policy`` can decide on a clean value.
"""

from __future__ import annotations

import ipaddress
import re
from dataclasses import dataclass, field

from mailsuite.smtp import replies
from mailsuite.smtp.replies import Reply

# RFC 5322 atext, as RFC 5321 4.1.2 uses it for Dot-string.
_ATEXT = "A-Za-z0-9!#$%&'*+\\-/=?^_`{|}~"
_ATOM_ASCII = re.compile(f"[{_ATEXT}]+")
_ATOM_UTF8 = re.compile(f"(?:[{_ATEXT}]|[^\\x00-\\x7f])+")
_DOT_STRING_ASCII = re.compile(f"[{_ATEXT}]+(?:\\.[{_ATEXT}]+)*")
_DOT_STRING_UTF8 = re.compile(f"(?:[{_ATEXT}]|[^\\x00-\\x7f])+(?:\\.(?:[{_ATEXT}]|[^\\x00-\\x7f])+)*")
# sub-domain = Let-dig [Ldh-str] (RFC 5321 4.1.2); U-labels allowed with SMTPUTF8 (RFC 6531 3.3).
_SUBDOMAIN_ASCII = "[A-Za-z0-9](?:[A-Za-z0-9-]*[A-Za-z0-9])?"
_SUBDOMAIN_UTF8 = "(?:[A-Za-z0-9]|[^\\x00-\\x7f])(?:(?:[A-Za-z0-9-]|[^\\x00-\\x7f])*(?:[A-Za-z0-9]|[^\\x00-\\x7f]))?"
_DOMAIN_ASCII = re.compile(f"{_SUBDOMAIN_ASCII}(?:\\.{_SUBDOMAIN_ASCII})*(\\.?)")
_DOMAIN_UTF8 = re.compile(f"{_SUBDOMAIN_UTF8}(?:\\.{_SUBDOMAIN_UTF8})*(\\.?)")
# esmtp-keyword and esmtp-value (RFC 5321 4.1.2; RFC 6531 3.3 widens the value to UTF-8).
_KEYWORD = re.compile(r"[A-Za-z0-9][A-Za-z0-9-]*\Z")
_VALUE_ASCII = re.compile(r"[\x21-\x3c\x3e-\x7e]+\Z")
_VALUE_UTF8 = re.compile(r"(?:[\x21-\x3c\x3e-\x7e]|[^\x00-\x7f])+\Z")
# The common case: <local@domain> with plain ASCII, no quoting, no route.
_FAST_PATH = re.compile(
    f"<({_DOT_STRING_ASCII.pattern})@({_SUBDOMAIN_ASCII}(?:\\.{_SUBDOMAIN_ASCII})*)>"
)
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")
_XTEXT_HEX = re.compile(r"\+([0-9A-F]{2})")

MAX_LOCAL_PART = 64  # RFC 5321 4.5.3.1.1
MAX_DOMAIN = 255  # RFC 5321 4.5.3.1.2
MAX_PATH = 256  # RFC 5321 4.5.3.1.3


class PathError(ValueError):
    """The path or its parameters are not acceptable; ``reply`` says why."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.text)
        self.reply = reply


@dataclass(frozen=True, slots=True)
class Mailbox:
    """A parsed mailbox with everything policy must look at.

    ``local`` is the local part with quoting removed; ``domain`` is lower case without a trailing
    dot (``trailing_dot`` records that one was there). ``literal`` is True for ``[192.0.2.1]`` and
    ``[IPv6:...]``; ``route`` holds the RFC 5321 source route (``@a,@b:``), which is ignored for
    delivery (RFC 5321 Appendix C) but never allowed to smuggle a relay.
    """

    local: str
    domain: str
    route: tuple[str, ...] = ()
    quoted: bool = False
    literal: bool = False
    trailing_dot: bool = False

    @property
    def address(self) -> str:
        """The mailbox as text, ``local@domain``, quoting the local part if it needs it."""
        local = self.local
        if self.quoted and not _DOT_STRING_UTF8.fullmatch(local):
            local = '"' + local.replace("\\", "\\\\").replace('"', '\\"') + '"'
        if not self.domain:
            return local
        return f"{local}@{self.domain}"

    @property
    def is_ascii(self) -> bool:
        return self.address.isascii()


@dataclass(frozen=True, slots=True)
class PathArgument:
    """The argument of MAIL FROM or RCPT TO: a mailbox (None for ``<>``) and parameters.

    ``params`` maps upper-case keywords to values (None for a keyword without ``=``).
    """

    mailbox: Mailbox | None
    params: dict[str, str | None] = field(default_factory=dict)


def parse_mail_from(argument: str, *, utf8_allowed: bool = True) -> PathArgument:
    """Parse what follows ``MAIL FROM:`` (reverse-path and Mail-parameters).

    ``utf8_allowed`` is False for clients that spoke HELO (no ESMTP at all). Whether the
    non-ASCII address is acceptable also depends on the SMTPUTF8 parameter in the same command
    (RFC 6531 3.4), which this function checks.
    """
    path, params = _split_path(argument, replies.BAD_SENDER_SYNTAX)
    parsed = _parse_params(params, utf8=utf8_allowed)
    utf8 = utf8_allowed and "SMTPUTF8" in parsed
    if path == "<>":
        return PathArgument(None, parsed)
    mailbox = parse_path(path, utf8=utf8, error=replies.BAD_SENDER_SYNTAX)
    return PathArgument(mailbox, parsed)


def parse_rcpt_to(argument: str, *, utf8: bool) -> PathArgument:
    """Parse what follows ``RCPT TO:`` (forward-path and Rcpt-parameters).

    ``<postmaster>`` without a domain is accepted (RFC 5321 4.1.1.3) with an empty domain.
    ``utf8`` is True when the transaction's MAIL carried SMTPUTF8.
    """
    path, params = _split_path(argument, replies.BAD_RECIPIENT_SYNTAX)
    parsed = _parse_params(params, utf8=utf8)
    if path.lower() == "<postmaster>":
        return PathArgument(Mailbox("postmaster", ""), parsed)
    mailbox = parse_path(path, utf8=utf8, error=replies.BAD_RECIPIENT_SYNTAX)
    return PathArgument(mailbox, parsed)


def _split_path(argument: str, error: Reply) -> tuple[str, str]:
    """Split ``<path> params`` (tolerating spaces after the colon, as Postfix does)."""
    if _CONTROL.search(argument):
        raise PathError(error.with_text("Control character in address"))
    argument = argument.lstrip(" ")
    if not argument:
        raise PathError(error)
    if argument[0] != "<":
        # Postfix accepts an address without angle brackets; so do we, strictly parsed.
        path, _, rest = argument.partition(" ")
        return f"<{path}>", rest
    # Find the closing '>' outside a quoted string.
    in_quote = False
    i = 1
    n = len(argument)
    while i < n:
        c = argument[i]
        if in_quote:
            if c == "\\":
                i += 1
            elif c == '"':
                in_quote = False
        elif c == '"':
            in_quote = True
        elif c == ">":
            rest = argument[i + 1 :]
            if rest and rest[0] != " ":
                raise PathError(error)
            return argument[: i + 1], rest.strip(" ")
        i += 1
    raise PathError(error)


def parse_path(path: str, *, utf8: bool, error: Reply) -> Mailbox:
    """Parse ``<[A-d-l:]Mailbox>`` (RFC 5321 4.1.2)."""
    if len(path) - 2 > MAX_PATH:
        raise PathError(error.with_text("Path too long"))
    if not path.isascii() and not utf8:
        raise PathError(replies.UTF8_NOT_ENABLED)
    fast = _FAST_PATH.fullmatch(path)
    if fast is not None:
        local, domain = fast.group(1), fast.group(2)
        _check_lengths(local, domain, error)
        return Mailbox(local, domain.lower())
    if not (path.startswith("<") and path.endswith(">")):
        raise PathError(error)
    inner = path[1:-1]
    route: tuple[str, ...] = ()
    if inner.startswith("@"):
        route_text, colon, inner = inner.partition(":")
        if not colon:
            raise PathError(error)
        hops = []
        for hop in route_text.split(","):
            if not hop.startswith("@"):
                raise PathError(error)
            domain, _ = _parse_domain(hop[1:], utf8=utf8, error=error)
            hops.append(domain)
        route = tuple(hops)
    local, quoted, rest = _parse_local_part(inner, utf8=utf8, error=error)
    if not rest.startswith("@"):
        raise PathError(error)
    domain_text = rest[1:]
    literal = domain_text.startswith("[")
    trailing_dot = False
    if literal:
        domain = _parse_address_literal(domain_text, error)
    else:
        domain, trailing_dot = _parse_domain(domain_text, utf8=utf8, error=error)
    _check_lengths(local, domain, error)
    return Mailbox(local, domain, route, quoted, literal, trailing_dot)


def _check_lengths(local: str, domain: str, error: Reply) -> None:
    if len(local.encode("utf-8")) > MAX_LOCAL_PART or len(domain.encode("utf-8")) > MAX_DOMAIN:
        raise PathError(error.with_text("Address too long (RFC 5321 4.5.3.1)"))


def _parse_local_part(text: str, *, utf8: bool, error: Reply) -> tuple[str, bool, str]:
    """Return (local part without quoting, was quoted, the rest starting at '@')."""
    if text.startswith('"'):
        # Quoted-string = DQUOTE *(qtextSMTP / quoted-pairSMTP) DQUOTE
        out = []
        i = 1
        n = len(text)
        while i < n:
            c = text[i]
            if c == "\\":
                if i + 1 >= n or not (" " <= text[i + 1] <= "~" or (utf8 and ord(text[i + 1]) > 127)):
                    raise PathError(error)
                out.append(text[i + 1])
                i += 2
                continue
            if c == '"':
                return "".join(out), True, text[i + 1 :]
            if not (" " <= c <= "~" or (utf8 and ord(c) > 127)):
                raise PathError(error)
            out.append(c)
            i += 1
        raise PathError(error)
    pattern = _DOT_STRING_UTF8 if utf8 else _DOT_STRING_ASCII
    match = pattern.match(text)
    if match is None:
        raise PathError(error)
    return match.group(0), False, text[match.end() :]


def _parse_domain(text: str, *, utf8: bool, error: Reply) -> tuple[str, bool]:
    """Return (lower-case domain without trailing dot, had a trailing dot)."""
    pattern = _DOMAIN_UTF8 if utf8 else _DOMAIN_ASCII
    match = pattern.fullmatch(text)
    if match is None:
        raise PathError(error)
    trailing = bool(match.group(1))
    domain = text[:-1] if trailing else text
    return domain.lower(), trailing


def _parse_address_literal(text: str, error: Reply) -> str:
    """``[IPv4]`` or ``[IPv6:...]`` (RFC 5321 4.1.3); returns the literal in brackets."""
    if not text.endswith("]"):
        raise PathError(error)
    inner = text[1:-1]
    try:
        if inner[:5].lower() == "ipv6:":
            return f"[IPv6:{ipaddress.IPv6Address(inner[5:]).compressed}]"
        return f"[{ipaddress.IPv4Address(inner)}]"
    except ValueError:
        raise PathError(error) from None


def _parse_params(text: str, *, utf8: bool) -> dict[str, str | None]:
    """Parse ``keyword[=value]`` parameters separated by spaces (RFC 5321 4.1.2)."""
    params: dict[str, str | None] = {}
    if not text:
        return params
    value_pattern = _VALUE_UTF8 if utf8 else _VALUE_ASCII
    for item in text.split(" "):
        if not item:
            continue
        keyword, eq, value = item.partition("=")
        if not _KEYWORD.match(keyword):
            raise PathError(replies.SYNTAX_ERROR)
        key = keyword.upper()
        if key in params and params[key] != (value if eq else None):
            raise PathError(replies.SYNTAX_ERROR.with_text(f"Duplicate parameter {key}"))
        if eq:
            if not value_pattern.match(value):
                raise PathError(replies.SYNTAX_ERROR.with_text(f"Bad value for {key}"))
            params[key] = value
        else:
            params[key] = None
    return params


def decode_xtext(text: str) -> str:
    """Decode RFC 3461 4 xtext (``+XX`` hex escapes); ValueError on malformed input."""
    if any(c == "=" or not ("!" <= c <= "~") for c in text):
        raise ValueError("invalid xtext")
    if "+" not in text:
        return text
    if len(_XTEXT_HEX.findall(text)) != text.count("+"):
        raise ValueError("invalid xtext escape")
    return _XTEXT_HEX.sub(lambda m: chr(int(m.group(1), 16)), text)


@dataclass(frozen=True, slots=True)
class DsnRecipientParams:
    """RFC 3461 4.1, 4.2: NOTIFY and ORCPT of one recipient."""

    notify: tuple[str, ...] = ()
    orcpt: str | None = None


def parse_rcpt_dsn(params: dict[str, str | None]) -> DsnRecipientParams:
    """NOTIFY and ORCPT from RCPT parameters; PathError if malformed (RFC 3461 4.1, 4.2)."""
    notify: tuple[str, ...] = ()
    orcpt = None
    if "NOTIFY" in params:
        value = params["NOTIFY"]
        if not value:
            raise PathError(replies.SYNTAX_ERROR.with_text("Bad NOTIFY parameter"))
        items = tuple(v.upper() for v in value.split(","))
        valid = {"SUCCESS", "FAILURE", "DELAY"}
        if items == ("NEVER",):
            notify = items
        elif not items or any(v not in valid for v in items) or len(set(items)) != len(items):
            raise PathError(replies.SYNTAX_ERROR.with_text("Bad NOTIFY parameter (RFC 3461 4.1)"))
        else:
            notify = items
    if "ORCPT" in params:
        value = params["ORCPT"] or ""
        addr_type, semi, xtext = value.partition(";")
        if not semi or not addr_type or not xtext:
            raise PathError(replies.SYNTAX_ERROR.with_text("Bad ORCPT parameter (RFC 3461 4.2)"))
        try:
            decoded = decode_xtext(xtext) if addr_type.lower() != "utf-8" else xtext
        except ValueError:
            raise PathError(
                replies.SYNTAX_ERROR.with_text("Bad ORCPT parameter (RFC 3461 4.2)")
            ) from None
        orcpt = f"{addr_type.lower()};{decoded}"
    return DsnRecipientParams(notify, orcpt)


@dataclass(frozen=True, slots=True)
class DsnMailParams:
    """RFC 3461 4.3, 4.4: RET and ENVID of the transaction."""

    ret: str | None = None
    envid: str | None = None


def parse_mail_dsn(params: dict[str, str | None]) -> DsnMailParams:
    """RET and ENVID from MAIL parameters; PathError if malformed."""
    ret = None
    envid = None
    if "RET" in params:
        value = (params["RET"] or "").upper()
        if value not in ("FULL", "HDRS"):
            raise PathError(replies.SYNTAX_ERROR.with_text("Bad RET parameter (RFC 3461 4.3)"))
        ret = value
    if "ENVID" in params:
        value = params["ENVID"] or ""
        try:
            envid = decode_xtext(value)
        except ValueError:
            raise PathError(
                replies.SYNTAX_ERROR.with_text("Bad ENVID parameter (RFC 3461 4.4)")
            ) from None
        if not value or len(value) > 100:
            raise PathError(replies.SYNTAX_ERROR.with_text("Bad ENVID parameter (RFC 3461 4.4)"))
    return DsnMailParams(ret, envid)

"""Mail addresses normalised by one set of pure functions.

Every part of mailsuite names users, aliases and recipients by the *canonical* form of an
address: surrounding white space removed, the local part lower-cased, the domain lower-cased and
converted to its IDNA ASCII form (``bücher.example`` -> ``xn--bcher-kva.example``). Address
literals (``[192.0.2.1]``, RFC 5321 4.1.3) are kept as written.

The functions here never consult the accounts or the network; they only decide whether a piece
of text is an acceptable address and what its canonical spelling is.
"""

from __future__ import annotations

import encodings.idna  # noqa: F401  (registers the "idna" codec)
import functools
import re

from mailsuite.errors import InvalidAddress

__all__ = ["InvalidAddress", "base_address", "canonical", "canonical_domain", "split"]

# RFC 5321 4.5.3.1.1 / 4.5.3.1.2: size limits of the parts.
MAX_LOCAL_PART = 64
MAX_DOMAIN = 255
# Separator of a sub-address ("alice+news@example.test" reaches alice).
PLUS_SEPARATOR = "+"

_FORBIDDEN = re.compile(r"[\x00-\x1f\x7f]")
_LABEL = re.compile(r"^(?!-)[a-z0-9-]{1,63}(?<!-)$")
_SPACE = re.compile(r"\s")


# Every message looks up the same few domains several times (parsing, policy, accounts).
@functools.lru_cache(maxsize=1024)
def canonical_domain(domain: str) -> str:
    """Return the canonical (lower-case, IDNA ASCII) form of a domain; raise InvalidAddress."""
    text = domain.strip().rstrip(".") if domain.strip() != "." else ""
    if not text:
        raise InvalidAddress("empty domain")
    if _FORBIDDEN.search(text):
        raise InvalidAddress("control character in domain")
    if text.startswith("[") and text.endswith("]"):
        # Address literal: kept as written (lower case for IPv6: tags), no IDNA.
        if _SPACE.search(text):
            raise InvalidAddress(f"bad address literal {text!r}")
        return text.lower()
    try:
        if text.isascii():
            ascii_form = text.lower()
        else:
            ascii_form = text.encode("idna").decode("ascii").lower()
    except UnicodeError as exc:
        raise InvalidAddress(f"bad domain {text!r}: {exc}") from None
    if len(ascii_form) > MAX_DOMAIN:
        raise InvalidAddress("domain longer than 255 octets")
    for label in ascii_form.split("."):
        if not _LABEL.match(label):
            raise InvalidAddress(f"bad domain {text!r}")
    return ascii_form


def split(addr: str) -> tuple[str, str]:
    """Split an address at its last ``@`` into (local part, domain), both canonical.

    Raises InvalidAddress for CR, LF, NUL or other control characters, a missing ``@``,
    an empty part, or parts longer than RFC 5321 allows.
    """
    if not isinstance(addr, str):
        raise InvalidAddress("address must be text")
    text = addr.strip()
    if _FORBIDDEN.search(text):
        raise InvalidAddress("control character in address")
    local, at, domain = text.rpartition("@")
    if not at:
        raise InvalidAddress(f"no @ in {text!r}")
    if not local:
        raise InvalidAddress(f"empty local part in {text!r}")
    if not domain:
        raise InvalidAddress(f"empty domain in {text!r}")
    if _SPACE.search(local) and not (local.startswith('"') and local.endswith('"')):
        raise InvalidAddress(f"white space in local part of {text!r}")
    if len(local.encode("utf-8")) > MAX_LOCAL_PART:
        raise InvalidAddress("local part longer than 64 octets")
    return local.lower(), canonical_domain(domain)


def canonical(addr: str) -> str:
    """The canonical spelling of an address: ``local@domain`` in lower case, IDNA domain."""
    local, domain = split(addr)
    return f"{local}@{domain}"


def base_address(addr: str) -> str:
    """The canonical address without its ``+tag``: ``Alice+News@D`` -> ``alice@d``.

    A local part that starts with ``+`` (``+x@d``) has no tag to drop and is kept.
    """
    local, domain = split(addr)
    head, sep, _tag = local.partition(PLUS_SEPARATOR)
    if sep and head:
        local = head
    return f"{local}@{domain}"

"""Flag arithmetic shared by every store implementation (STORE +FLAGS / -FLAGS / FLAGS)."""

from __future__ import annotations

from collections.abc import Iterable

from mailsuite.errors import StoreError
from mailsuite.interfaces import SYSTEM_FLAGS, FlagMode

_SYSTEM_BY_LOWER = {flag.lower(): flag for flag in SYSTEM_FLAGS}
MAX_KEYWORD_LENGTH = 100
_ATOM_SPECIALS = frozenset('(){ %*"\\]')


def normalize_flags(flags: Iterable[str]) -> frozenset[str]:
    """Validate flags and give system flags their canonical case (RFC 3501 2.3.2).

    ``\\Recent`` cannot be set by a client and is dropped. Raises ``StoreError`` for an unknown
    system flag or a keyword that is not an IMAP atom.
    """
    out: set[str] = set()
    for flag in flags:
        if flag.startswith("\\"):
            canonical = _SYSTEM_BY_LOWER.get(flag.lower())
            if canonical is None:
                if flag.lower() == "\\recent":
                    continue
                raise StoreError(f"unknown system flag {flag!r}")
            out.add(canonical)
            continue
        if (
            not flag
            or len(flag) > MAX_KEYWORD_LENGTH
            or any(ch in _ATOM_SPECIALS or not "\x21" <= ch <= "\x7e" for ch in flag)
        ):
            raise StoreError(f"invalid keyword {flag!r}")
        out.add(flag)
    return frozenset(out)


def apply_mode(current: frozenset[str], given: frozenset[str], mode: FlagMode) -> frozenset[str]:
    """The new flag set after a STORE of ``given`` in ``mode``."""
    if mode is FlagMode.ADD:
        return current | given
    if mode is FlagMode.REMOVE:
        return current - given
    return given


class FlagInterner:
    """Shares one frozenset per distinct flag combination (100,000 messages, a few sets)."""

    __slots__ = ("_sets",)

    def __init__(self) -> None:
        self._sets: dict[frozenset[str], frozenset[str]] = {}

    def __call__(self, flags: frozenset[str]) -> frozenset[str]:
        return self._sets.setdefault(flags, flags)

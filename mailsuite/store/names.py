"""Folder names: validation and canonical form, shared by every store implementation.

Names are Unicode with ``/`` as the hierarchy delimiter (``mailsuite.interfaces``). A name is
refused with ``InvalidFolderName`` when it could not be stored safely as a Maildir++ folder:

- empty, or with an empty component (leading, trailing or doubled ``/``): that includes
  absolute paths such as ``/etc``;
- a component containing ``.`` (the Maildir++ separator on disk; we refuse rather than
  escape, as Dovecot does without its listescape plugin), which also refuses ``.`` and ``..``;
- control characters (C0, DEL, C1), ``\\``, and the IMAP wildcards ``*`` and ``%``
  (RFC 3501 5.1.2 lets servers refuse them);
- lone surrogates, or a component whose modified UTF-7 form is longer than 200 bytes, or more
  than ``MAX_DEPTH`` levels.

``INBOX`` is case-insensitive (RFC 3501 5.1) and canonicalised to upper case, also as the first
component of a child (``inbox/x`` -> ``INBOX/x``).
"""

from __future__ import annotations

import functools

from mailsuite import mutf7
from mailsuite.errors import InvalidFolderName
from mailsuite.interfaces import HIERARCHY_DELIMITER, INBOX

MAX_COMPONENT_BYTES = 200
MAX_DEPTH = 16
_FORBIDDEN = frozenset("\\*%.")


def _check_component(component: str, whole: str) -> None:
    if not component:
        raise InvalidFolderName(f"empty hierarchy level in folder name {whole!r}")
    for ch in component:
        code = ord(ch)
        if code < 0x20 or 0x7F <= code <= 0x9F:
            raise InvalidFolderName(f"control character in folder name {whole!r}")
        if ch in _FORBIDDEN:
            raise InvalidFolderName(f"character {ch!r} is not allowed in folder name {whole!r}")
        if 0xD800 <= code <= 0xDFFF:
            raise InvalidFolderName(f"invalid character in folder name {whole!r}")
    if len(mutf7.encode(component)) > MAX_COMPONENT_BYTES:
        raise InvalidFolderName(f"folder name {whole!r} is too long")


def split_name(name: str) -> tuple[str, ...]:
    """Validate ``name`` and return its components; ``INBOX`` canonicalised. () for INBOX."""
    if not isinstance(name, str) or not name:
        raise InvalidFolderName("empty folder name")
    parts = name.split(HIERARCHY_DELIMITER)
    if len(parts) > MAX_DEPTH:
        raise InvalidFolderName(f"folder name {name!r} is nested too deeply")
    if parts[0].upper() == INBOX:
        parts[0] = INBOX
    for part in parts:
        _check_component(part, name)
    if parts == [INBOX]:
        return ()
    return tuple(parts)


def canonical_name(name: str) -> str:
    """The validated, canonical spelling of a folder name."""
    if type(name) is not str:
        split_name(name)  # raises InvalidFolderName
    return _canonical_name(name)


@functools.lru_cache(maxsize=1024)
def _canonical_name(name: str) -> str:
    # Every delivery and most IMAP commands name a folder, nearly always one of a few: the
    # checks (a Modified UTF-7 encoding per level) are made once per spelling. Invalid names
    # raise, and exceptions are not cached.
    parts = split_name(name)
    return HIERARCHY_DELIMITER.join(parts) if parts else INBOX


def is_inbox(name: str) -> bool:
    """True if ``name`` names the inbox."""
    return name.upper() == INBOX


def parent_names(name: str) -> list[str]:
    """The ancestors of a canonical name, outermost first (``a/b/c`` -> ``a``, ``a/b``)."""
    parts = name.split(HIERARCHY_DELIMITER)
    return [HIERARCHY_DELIMITER.join(parts[:i]) for i in range(1, len(parts))]

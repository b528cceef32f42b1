"""Where things live on disk: users' Maildirs and Maildir++ folder directories.

- A user ``local@domain`` (canonical address) has the Maildir ``<root>/<domain>/<local>/``.
- INBOX is that Maildir itself; folder ``a/b`` is the directory ``.a.b`` inside it, each
  component in modified UTF-7 (``Entwürfe`` -> ``.Entw&APw-rfe``), as Dovecot's Maildir++
  layout does. A ``.`` inside a component is refused (see ``mailsuite.store.names``).
- Every folder directory holds ``cur/ new/ tmp/`` and an empty ``maildirfolder`` file.
"""

from __future__ import annotations

import os

from mailsuite import mutf7
from mailsuite.errors import InvalidFolderName, StoreError
from mailsuite.store.names import canonical_name, split_name

SUBDIRS = ("cur", "new", "tmp")
MAILDIRFOLDER = "maildirfolder"


def _safe_component(text: str, what: str) -> str:
    if (
        not text
        or text in (".", "..")
        or text.startswith(".")
        or "/" in text
        or "\\" in text
        or any(ord(ch) < 0x20 or ord(ch) == 0x7F for ch in text)
        or len(text.encode("utf-8", "surrogateescape")) > 255
    ):
        raise StoreError(f"unusable {what} {text!r} for a Maildir path")
    return text


def user_dir(root: str, user: str) -> str:
    """The Maildir of ``user``; refuses addresses that could not be a safe path."""
    local, sep, domain = user.rpartition("@")
    if not sep:
        raise StoreError(f"not a mail address: {user!r}")
    return os.path.join(
        root, _safe_component(domain, "domain"), _safe_component(local, "local part")
    )


def folder_dir(user_directory: str, name: str) -> str:
    """The directory of folder ``name`` (validated) inside a user's Maildir."""
    parts = split_name(name)
    if not parts:
        return user_directory
    return os.path.join(user_directory, "." + ".".join(mutf7.encode(p) for p in parts))


def name_of_dir(dirname: str) -> str | None:
    """The folder name of a ``.a.b`` directory entry, or None if it is not a valid folder."""
    if not dirname.startswith(".") or dirname in (".", ".."):
        return None
    try:
        name = "/".join(mutf7.decode(p) for p in dirname[1:].split("."))
        return canonical_name(name)
    except (ValueError, InvalidFolderName):
        return None


def make_maildir(path: str, is_folder: bool) -> bool:
    """Create ``path`` with cur/new/tmp; True if it was created now."""
    created = False
    try:
        os.mkdir(path, 0o700)
        created = True
    except FileExistsError:
        pass
    for sub in SUBDIRS:
        try:
            os.mkdir(os.path.join(path, sub), 0o700)
        except FileExistsError:
            pass
    if is_folder:
        marker = os.path.join(path, MAILDIRFOLDER)
        if not os.path.exists(marker):
            open(marker, "ab").close()
    return created


def is_maildir(path: str) -> bool:
    """True if ``path`` looks like a Maildir (has cur/)."""
    return os.path.isdir(os.path.join(path, "cur"))

"""The per-user ``mailsuite-special-use`` file: special uses a user gave folders (RFC 6154 3).

The default folders (``Sent``, ``Trash``...) get theirs from their names
(``SPECIAL_USE_FOLDERS``) and need no record; this file keeps only the ones assigned with
``CREATE name (USE (\\Sent))``::

    {"version": 1, "folders": {"Outbox/2026": "\\\\Sent", ...}}

Names are the Unicode folder names (``/`` delimiter). The file is replaced atomically (write a
temporary file, fsync, rename) so a crash leaves the old or the new file, never half of one.
An unreadable file counts as empty: losing an attribute is better than losing the account.
"""

from __future__ import annotations

import json
import os

SPECIAL_USE_FILE = "mailsuite-special-use"
FORMAT_VERSION = 1


def read_special_uses(user_dir: str) -> dict[str, str]:
    """Folder name -> special-use attribute (may name folders that no longer exist)."""
    try:
        with open(os.path.join(user_dir, SPECIAL_USE_FILE), encoding="utf-8") as f:
            document = json.load(f)
    except (OSError, ValueError):
        return {}
    if not isinstance(document, dict) or document.get("version") != FORMAT_VERSION:
        return {}
    folders = document.get("folders")
    if not isinstance(folders, dict):
        return {}
    return {k: v for k, v in folders.items() if isinstance(k, str) and isinstance(v, str)}


def write_special_uses(user_dir: str, folders: dict[str, str], fsync: bool = True) -> None:
    """Replace the file with ``folders`` (removed when empty)."""
    path = os.path.join(user_dir, SPECIAL_USE_FILE)
    if not folders:
        try:
            os.unlink(path)
        except FileNotFoundError:
            pass
        return
    tmp = f"{path}.{os.getpid()}.tmp"
    document = {"version": FORMAT_VERSION, "folders": dict(sorted(folders.items()))}
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(document, f, ensure_ascii=False, indent=1)
        f.write("\n")
        if fsync:
            f.flush()
            os.fsync(f.fileno())
    os.replace(tmp, path)

"""The per-user ``subscriptions`` file, in Dovecot's version 2 format.

::

    V\t2
    <blank line>
    <name with the hierarchy delimiter written as a tab>
    ...

Names are UTF-8. A file without the ``V\t2`` header is read as one name per line with ``/`` as
the delimiter. The file is replaced atomically (write a temporary file, rename).
"""

from __future__ import annotations

import os

SUBSCRIPTIONS_FILE = "subscriptions"


def read_subscriptions(user_dir: str) -> set[str]:
    """The subscribed names (may include names that do not exist)."""
    try:
        with open(
            os.path.join(user_dir, SUBSCRIPTIONS_FILE), encoding="utf-8", errors="replace"
        ) as f:
            lines = f.read().split("\n")
    except FileNotFoundError:
        return set()
    if lines and lines[0] == "V\t2":
        return {line.replace("\t", "/") for line in lines[2:] if line}
    return {line for line in lines if line}


def write_subscriptions(user_dir: str, names: set[str]) -> None:
    """Replace the file with ``names``."""
    path = os.path.join(user_dir, SUBSCRIPTIONS_FILE)
    tmp = f"{path}.{os.getpid()}.tmp"
    body = "".join(name.replace("/", "\t") + "\n" for name in sorted(names))
    with open(tmp, "w", encoding="utf-8") as f:
        f.write("V\t2\n\n" + body)
    os.replace(tmp, path)

"""Unnamed files made ahead of need, so that a delivery does not wait for its inode.

Creating a file is where the file system allocates its inode, and that is not always cheap:
on the machines we measured (ext4 without a journal, which skips the inodes freed in the last
minutes) it cost 0.02 to 0.8 ms of CPU per file, the most right after much mail was deleted
near the folder. For a lone SMTP client that wait sat between the final dot and the ``250``.
:class:`SpareFiles` keeps one unnamed ``O_TMPFILE`` file open per recently used folder, made
by the committer's thread right after a batch has been answered, while the client is busy
with its next message; the next delivery to that folder takes it.

A spare holds no data and has no name: if the process dies, the kernel (or the next mount's
orphan cleanup) frees it, and nothing ever appears in the Maildir. Linking it into ``new/``
is the same commit as for a file opened at once. The number kept is bounded.
"""

from __future__ import annotations

import os
import threading
from collections import OrderedDict
from collections.abc import Iterable

# Folders that keep a spare; a server with more busy folders than this simply makes more files
# on demand, as without spares.
DEFAULT_LIMIT = 32


def open_unnamed(folder_dir: str) -> int:
    """A new unnamed file in ``folder_dir/tmp`` (Linux O_TMPFILE); raises OSError."""
    return os.open(os.path.join(folder_dir, "tmp"), os.O_TMPFILE | os.O_WRONLY, 0o600)


class SpareFiles:
    """At most ``limit`` open spare files, one per folder, the least recently used given up
    first. ``take`` and ``prepare`` are called from the commit thread, ``close`` from any thread."""

    def __init__(self, limit: int = DEFAULT_LIMIT) -> None:
        self._limit = limit
        self._lock = threading.Lock()
        self._fds: OrderedDict[str, int] = OrderedDict()

    def __len__(self) -> int:
        with self._lock:
            return len(self._fds)

    def take(self, folder_dir: str) -> int:
        """An unnamed file for ``folder_dir``: its spare if there is one, else a new one
        (OSError when it cannot be made)."""
        with self._lock:
            fd = self._fds.pop(folder_dir, None)
        return open_unnamed(folder_dir) if fd is None else fd

    def prepare(self, folder_dirs: Iterable[str]) -> None:
        """Make a spare for each of ``folder_dirs`` that has none. A folder where that fails
        (removed meanwhile, disk full) is skipped: its next delivery will report the error."""
        for folder_dir in folder_dirs:
            with self._lock:
                if folder_dir in self._fds:
                    self._fds.move_to_end(folder_dir)
                    continue
            try:
                fd = open_unnamed(folder_dir)
            except OSError:
                continue
            with self._lock:
                surplus = [fd] if folder_dir in self._fds else []  # made by another thread
                if not surplus:
                    self._fds[folder_dir] = fd
                surplus += [self._fds.popitem(last=False)[1]
                            for _ in range(len(self._fds) - self._limit)]
            for old in surplus:
                os.close(old)

    def close(self) -> None:
        """Give every spare back (the kernel frees the unnamed files)."""
        with self._lock:
            fds = list(self._fds.values())
            self._fds.clear()
        for fd in fds:
            os.close(fd)

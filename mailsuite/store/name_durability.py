"""Whether a file's own fsync makes its new name durable, so that its directory needs none.

A delivery links its file into ``new/`` and then fsyncs the file. On some file systems that
one fsync also makes the new name durable:

- ext4 with a journal: the fsync commits the journal transaction that holds the link;
- ext4 without one: the fsync writes the directory of a newly linked inode as well
  (``ext4_sync_parent``; before the 4.x kernels only for an entry that needed a new directory
  block). Checked here on Linux 6.18 with ``perf record -e block:block_rq_issue``: over 20
  links each followed by the file's fsync alone, ``new/``'s block was written 20 times;
- XFS: the fsync forces the log past the inode's last change, the link included;
- Btrfs: the fsync logs the inode's new names.

That is also all Postfix asks of a file system ("a file is not lost after fsync() for that
file (not its parent directory) returns successfully"). POSIX promises less, so on every other
file system, on Linux before 5.0 (where all four hold), and for a name made by a rename after
the file's fsync, the directory is fsynced too. Leaving out the directory's fsync took a lone delivery's commit from 387 to 296 µs (median,
ext4 without a journal), and a single SMTP client's messages per second up by a tenth.

``[store] directory_fsync = "always"`` keeps the directory fsync everywhere.
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from typing import Any

# File system types (as /proc/self/mountinfo names them) described above.
FILE_FSYNC_COVERS_NEW_NAME = frozenset({"ext4", "xfs", "btrfs"})
OLDEST_KERNEL = (5, 0)
MOUNTINFO = "/proc/self/mountinfo"
_CACHE_LIMIT = 4096  # directories remembered; then the cache starts again
_OCTAL_ESCAPE = re.compile(r"\\([0-7]{3})")
_RELEASE = re.compile(r"(\d+)\.(\d+)")


def recent_linux(system: str, release: str) -> bool:
    """``os.uname()``'s sysname and release name Linux ``OLDEST_KERNEL`` or later."""
    version = _RELEASE.match(release)
    return (system == "Linux" and version is not None
            and (int(version[1]), int(version[2])) >= OLDEST_KERNEL)


def _unescape(field: str) -> str:
    """mountinfo writes space, tab, newline and backslash in paths as octal escapes."""
    return _OCTAL_ESCAPE.sub(lambda m: chr(int(m.group(1), 8)), field)


def file_system_type(path: str, mountinfo: Iterable[str]) -> str | None:
    """The type of the file system ``path`` (absolute, symlinks resolved) is on: the mount with
    the longest mount point above it, the last one listed where several share a mount point
    (a mount over another). None when no line applies."""
    best: tuple[int, str] | None = None
    for line in mountinfo:
        left, sep, right = line.partition(" - ")
        fields = left.split()
        if not sep or len(fields) < 5 or not right.split():
            continue
        mount_point = _unescape(fields[4])
        inside = (path == mount_point or mount_point == "/"
                  or path.startswith(mount_point.rstrip("/") + "/"))
        if inside and (best is None or len(mount_point) >= best[0]):
            best = (len(mount_point), right.split()[0])
    return None if best is None else best[1]


class NameDurability:
    """``covers(directory)``: True when a file linked into ``directory`` and then fsynced has a
    durable name without an fsync of ``directory``. ``mode`` is the ``[store] directory_fsync``
    setting: "auto" decides by file system type (on a recent Linux), "always" answers False."""

    def __init__(
        self, mode: str = "auto", mountinfo: str = MOUNTINFO, uname: Any = None
    ) -> None:
        system = uname if uname is not None else os.uname()
        self._auto = mode == "auto" and recent_linux(system.sysname, system.release)
        self._mountinfo = mountinfo
        self._known: dict[str, bool] = {}

    def covers(self, directory: str) -> bool:
        if not self._auto:
            return False
        known = self._known.get(directory)
        if known is None:
            if len(self._known) >= _CACHE_LIMIT:
                self._known.clear()
            known = self._known[directory] = self._look_up(directory)
        return known

    def _look_up(self, directory: str) -> bool:
        try:
            with open(self._mountinfo, encoding="utf-8", errors="surrogateescape") as lines:
                kind = file_system_type(os.path.realpath(directory), lines)
        except OSError:
            return False  # no /proc: fsync the directory
        return kind in FILE_FSYNC_COVERS_NEW_NAME

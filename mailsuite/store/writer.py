"""The durable write path: tmp/ -> fsync -> rename into new/ or cur/ -> fsync the directory.

These functions block and run in the reactor's thread pool. A crash at any instant leaves
either nothing in ``new/``/``cur/`` or one complete message (rename is the commit); what is left
in ``tmp/`` is removed by ``clean_tmp`` once older than ``tmp_max_age``.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Sequence

from mailsuite.errors import TemporaryStoreError

_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)


def fsync_dir(path: str) -> None:
    """fsync a directory so that a rename in it is durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


class MessageWriter:
    """Writes message files durably. Tests subclass it to inject faults (a full disk)."""

    def write_chunks(self, fd: int, chunks: Sequence[bytes]) -> None:
        """Write every byte of ``chunks`` to ``fd``."""
        for chunk in chunks:
            view = memoryview(chunk)
            while view:
                view = view[os.write(fd, view) :]

    def deliver(
        self,
        folder_dir: str,
        chunks: Sequence[bytes],
        filename: str,
        subdir: str,
        fsync: bool,
        mtime: float | None,
        sync_dir: bool = True,
    ) -> None:
        """Write ``chunks`` as ``folder_dir/subdir/filename``; raise TemporaryStoreError on failure.

        With ``sync_dir`` False the caller fsyncs ``subdir`` itself before reporting the
        message as delivered (the store does it once for a whole batch of deliveries).
        """
        tmp = os.path.join(folder_dir, "tmp", filename)
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise TemporaryStoreError(f"cannot create {tmp}: {exc.strerror}") from exc
        try:
            try:
                self.write_chunks(fd, chunks)
                if fsync:
                    os.fsync(fd)
            finally:
                os.close(fd)
            if mtime is not None:
                os.utime(tmp, (mtime, mtime))
            os.rename(tmp, os.path.join(folder_dir, subdir, filename))
        except OSError as exc:
            _remove_quietly(tmp)
            kind = "disk full" if exc.errno in _DISK_FULL else "write failed"
            raise TemporaryStoreError(f"{kind}: {exc.strerror}") from exc
        except BaseException:
            _remove_quietly(tmp)
            raise
        if fsync and sync_dir:
            try:
                fsync_dir(os.path.join(folder_dir, subdir))
            except OSError as exc:
                raise TemporaryStoreError(f"fsync failed: {exc.strerror}") from exc

    def transfer(
        self,
        moves: Sequence[tuple[str, str, str]],
        link: bool,
        fsync: bool,
        dirs: Sequence[str],
    ) -> None:
        """Copy (hard link, or copy the bytes) or move files ``(source, tmp, target)``.

        For a copy the file goes through ``tmp`` (link or write+fsync) before the rename; for a
        move the source is renamed straight to the target (same file system). Then each of
        ``dirs`` is fsynced.
        """
        done: list[str] = []
        try:
            for source, tmp, target in moves:
                if not link:
                    os.rename(source, target)
                    done.append(target)
                    continue
                try:
                    os.link(source, tmp)
                except OSError:
                    with open(source, "rb") as f:
                        data = f.read()
                    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
                    try:
                        self.write_chunks(fd, [data])
                        if fsync:
                            os.fsync(fd)
                    finally:
                        os.close(fd)
                os.rename(tmp, target)
                done.append(target)
        except OSError as exc:
            for _, tmp, _ in moves:
                _remove_quietly(tmp)
            if link:
                for target in done:
                    _remove_quietly(target)
            raise TemporaryStoreError(f"copy failed: {exc.strerror}") from exc
        if fsync:
            for path in dirs:
                fsync_dir(path)


def _remove_quietly(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def clean_tmp(folder_dir: str, max_age: float, now: float) -> int:
    """Remove files in ``tmp/`` older than ``max_age`` seconds; return how many."""
    tmp_dir = os.path.join(folder_dir, "tmp")
    removed = 0
    try:
        entries = list(os.scandir(tmp_dir))
    except FileNotFoundError:
        return 0
    for entry in entries:
        try:
            st = entry.stat(follow_symlinks=False)
            if now - st.st_mtime > max_age and entry.is_file(follow_symlinks=False):
                os.unlink(entry.path)
                removed += 1
        except OSError:
            continue
    return removed

"""The durable write path: tmp/ -> fsync -> rename into new/ or cur/ -> fsync the directory.

These functions block and run in the reactor's thread pool. A crash at any instant leaves
either nothing in ``new/``/``cur/`` or one complete message (rename is the commit); what is left
in ``tmp/`` is removed by ``clean_tmp`` once older than ``tmp_max_age``.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Callable, Sequence

from mailsuite.errors import TemporaryStoreError
from mailsuite.store import spares, writeout

_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_IOV_MAX = 1024  # buffers per writev (Linux's limit; POSIX guarantees at least 16)


def fsync_dir(path: str) -> None:
    """fsync a directory so that a rename in it is durable."""
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


# Errors of open(O_TMPFILE) or of linking it that mean "not here": use tmp/ names instead.
_NO_TMPFILE = (
    errno.EOPNOTSUPP,
    errno.EISDIR,
    errno.EINVAL,
    errno.ENOENT,
    errno.EXDEV,
    errno.EPERM,
    errno.EACCES,
)


def sync_directory(path: str, fsync: Callable[[str], None] = fsync_dir) -> None:
    """``fsync(path)`` (a directory), its failure raised as TemporaryStoreError."""
    try:
        fsync(path)
    except OSError as exc:
        raise TemporaryStoreError(f"fsync failed: {exc.strerror}") from exc


class MessageWriter:
    """Writes message files durably. Tests subclass it to inject faults (a full disk).

    Where the file system allows it (Linux ``O_TMPFILE``: ext4, XFS, Btrfs, tmpfs), a message
    is written into an unnamed file in ``tmp/``, its data written out to the device, and then
    given its name in ``new/`` or ``cur/`` with ``linkat`` -- the same commit as the rename of
    the classic Maildir protocol (a reader only ever sees complete files), without creating and
    removing a name in ``tmp/``: on the machines we measured, creating a named file cost
    0.45 ms of CPU, an unnamed one 0.03 ms. One ``fsync`` after the link then makes data, size
    and name durable in a single journal commit (``mailsuite.store.writeout`` says why that is
    safe). A crash before the link leaves nothing behind at all. Elsewhere (NFS, no ``/proc``)
    the classic ``tmp/`` name, fsync and rename are used.
    """

    # None: not tried yet; True: works here; False: use tmp/ names.
    _unnamed: bool | None = None if hasattr(os, "O_TMPFILE") else False
    _root_fd = -1  # any directory fd: makes os.link use linkat(AT_SYMLINK_FOLLOW)

    @property
    def uses_unnamed_files(self) -> bool:
        """True once an O_TMPFILE delivery has worked here."""
        return self._unnamed is True

    def write_chunks(self, fd: int, chunks: Sequence[bytes]) -> None:
        """Write every byte of ``chunks`` to ``fd``, several chunks per system call (a message
        arrives as a few header lines and the body's pieces)."""
        views = [memoryview(chunk) for chunk in chunks if chunk]
        first = 0  # views before this one are written
        while first < len(views):
            written = os.writev(fd, views[first : first + _IOV_MAX])
            while first < len(views) and written >= len(views[first]):
                written -= len(views[first])
                first += 1
            if written:  # the kernel took part of this view
                views[first] = views[first][written:]

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
        tmp_dir = os.path.join(folder_dir, "tmp")
        target = os.path.join(folder_dir, subdir, filename)
        if self._unnamed is not False and self._deliver_unnamed(
            tmp_dir, chunks, target, fsync, mtime
        ):
            self._unnamed = True
        else:
            self._deliver_named(os.path.join(tmp_dir, filename), chunks, target, fsync, mtime)
        if fsync and sync_dir:
            sync_directory(os.path.join(folder_dir, subdir))

    def deliver_batch(
        self,
        items: Sequence[tuple[str, Sequence[bytes], str, str]],
        fsync: bool,
        sync_dir: Callable[[str], None] = sync_directory,
        open_unnamed: Callable[[str], int] = spares.open_unnamed,
        file_fsync_covers_name: Callable[[str], bool] = lambda directory: False,
    ) -> list[TemporaryStoreError | None]:
        """Write several messages ``(folder_dir, chunks, filename, subdir)`` so that they share
        one journal commit, and fsync their directories. Every file is written and its
        write-out started, then each is written out and linked; then each directory is synced
        with ``sync_dir`` (ext4 commits the journal for a directory: the names, sizes and
        blocks of the whole batch at once), and last each file is fsynced, which finds its
        inode committed already. A directory for which ``file_fsync_covers_name`` is True
        (``NameDurability.covers``) is not synced: every file linked into it is fsynced after
        its link instead. ``open_unnamed(folder_dir)`` gives each item its unnamed file
        (``SpareFiles.take`` hands out one made in advance). Returns each item's outcome: None,
        or the TemporaryStoreError that stopped it (the others go on)."""
        results: list[TemporaryStoreError | None] = [None] * len(items)
        start = 0
        if self._unnamed is None and items:  # the first delivery finds out what works here
            results[0] = self._deliver_one(items[0], fsync)
            start = 1
        if self._unnamed is not True:
            for i in range(start, len(items)):
                results[i] = self._deliver_one(items[i], fsync)
            if fsync:
                self._sync_dirs(items, results, sync_dir)
            return results
        opened: list[tuple[int, int, str]] = []  # (item index, fd, target)
        try:
            for i in range(start, len(items)):
                folder_dir, chunks, filename, subdir = items[i]
                try:
                    fd = open_unnamed(folder_dir)
                except OSError as exc:
                    results[i] = TemporaryStoreError(f"cannot create a file in tmp/: {exc.strerror}")
                    continue
                opened.append((i, fd, os.path.join(folder_dir, subdir, filename)))
                try:
                    self.write_chunks(fd, chunks)
                    if fsync:
                        writeout.start(fd)
                except OSError as exc:
                    results[i] = _write_error(exc)
            linked = []  # (item index, fd, target, fdatasynced before the link)
            for i, fd, target in opened:
                if results[i] is None:
                    results[i], synced = self._write_out_and_link(fd, target, fsync)
                    linked.append((i, fd, target, synced))
            if fsync:
                # The item delivered on its own above counts on its directory's fsync.
                own = {os.path.join(items[i][0], items[i][3]) for i in range(start)}
                unsynced_dirs = self._sync_dirs(
                    items, results, sync_dir,
                    lambda path: path not in own and file_fsync_covers_name(path))
                for i, fd, target, synced in linked:
                    if results[i] is None and (
                            not synced or os.path.dirname(target) in unsynced_dirs):
                        try:
                            os.fsync(fd)
                        except OSError as exc:
                            _remove_quietly(target)  # not durable: the client's retry is the copy
                            results[i] = _write_error(exc)
        finally:
            for _, fd, _ in opened:
                os.close(fd)
        return results

    @staticmethod
    def _sync_dirs(
        items: Sequence[tuple[str, Sequence[bytes], str, str]],
        results: list[TemporaryStoreError | None],
        sync_dir: Callable[[str], None],
        file_fsync_covers_name: Callable[[str], bool] = lambda directory: False,
    ) -> set[str]:
        """fsync each directory the batch's good items went into; its failure is theirs.
        Returns the directories left unsynced because ``file_fsync_covers_name`` said so."""
        dirs: dict[str, list[int]] = {}
        for i, (folder_dir, _, _, subdir) in enumerate(items):
            if results[i] is None:
                dirs.setdefault(os.path.join(folder_dir, subdir), []).append(i)
        covered = set()
        for path, members in dirs.items():
            if file_fsync_covers_name(path):
                covered.add(path)
                continue
            try:
                sync_dir(path)
            except TemporaryStoreError as exc:
                for i in members:
                    results[i] = exc
        return covered

    def _deliver_one(
        self, item: tuple[str, Sequence[bytes], str, str], fsync: bool
    ) -> TemporaryStoreError | None:
        folder_dir, chunks, filename, subdir = item
        try:
            self.deliver(folder_dir, chunks, filename, subdir, fsync, None, sync_dir=False)
        except TemporaryStoreError as exc:
            return exc
        return None

    def _write_out_and_link(
        self, fd: int, target: str, fsync: bool
    ) -> tuple[TemporaryStoreError | None, bool]:
        """Batch step two: the data on the device, then the name. Returns the error, and
        whether the file is already durable (fdatasync, where sync_file_range is missing)."""
        synced = False
        try:
            if fsync and not writeout.write_out(fd):
                os.fdatasync(fd)
                synced = True
        except OSError as exc:
            return _write_error(exc), False
        if self._root_fd < 0:
            self._root_fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
        try:
            os.link(f"/proc/self/fd/{fd}", target, src_dir_fd=self._root_fd)
        except OSError as exc:
            return TemporaryStoreError(f"write failed: {exc.strerror}"), False
        return None, synced

    def _fill(self, fd: int, chunks: Sequence[bytes], fsync: bool, mtime: float | None) -> None:
        """Write the message into ``fd``, fsync it, set its time (INTERNALDATE)."""
        self.write_chunks(fd, chunks)
        if fsync:
            os.fsync(fd)
        if mtime is not None:
            os.utime(fd, (mtime, mtime))

    def _deliver_unnamed(
        self, tmp_dir: str, chunks: Sequence[bytes], target: str, fsync: bool, mtime: float | None
    ) -> bool:
        """The O_TMPFILE way; False (nothing done) where this file system cannot do it."""
        try:
            fd = os.open(tmp_dir, os.O_TMPFILE | os.O_WRONLY, 0o600)
        except OSError as exc:
            if exc.errno in _NO_TMPFILE and not self._unnamed:
                self._unnamed = False
                return False
            raise TemporaryStoreError(f"cannot create a file in tmp/: {exc.strerror}") from exc
        try:
            try:
                self.write_chunks(fd, chunks)
                if mtime is not None:
                    os.utime(fd, (mtime, mtime))
                # The data go to disk now, the name and metadata with one fsync after the link
                # (mailsuite.store.writeout); without sync_file_range, fdatasync them first.
                synced_before_link = fsync and not writeout.write_out(fd)
                if synced_before_link:
                    os.fdatasync(fd)
            except OSError as exc:
                raise _write_error(exc) from exc
            if self._root_fd < 0:
                self._root_fd = os.open("/", os.O_RDONLY | os.O_DIRECTORY)
            try:
                os.link(f"/proc/self/fd/{fd}", target, src_dir_fd=self._root_fd)
            except OSError as exc:
                if exc.errno in _NO_TMPFILE and not self._unnamed:
                    self._unnamed = False  # no /proc, say: the caller writes it again
                    return False
                raise TemporaryStoreError(f"write failed: {exc.strerror}") from exc
            if fsync and not synced_before_link:
                try:
                    os.fsync(fd)
                except OSError as exc:
                    # Not durable: take the name back so that the client's retry is the only copy.
                    _remove_quietly(target)
                    raise _write_error(exc) from exc
        finally:
            os.close(fd)
        return True

    def _deliver_named(
        self, tmp: str, chunks: Sequence[bytes], target: str, fsync: bool, mtime: float | None
    ) -> None:
        """The classic Maildir way: a name in tmp/, renamed when complete."""
        try:
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        except OSError as exc:
            raise TemporaryStoreError(f"cannot create {tmp}: {exc.strerror}") from exc
        try:
            try:
                self._fill(fd, chunks, fsync, mtime)
            finally:
                os.close(fd)
            os.rename(tmp, target)
        except OSError as exc:
            _remove_quietly(tmp)
            raise _write_error(exc) from exc
        except BaseException:
            _remove_quietly(tmp)
            raise

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


def _write_error(exc: OSError) -> TemporaryStoreError:
    kind = "disk full" if exc.errno in _DISK_FULL else "write failed"
    return TemporaryStoreError(f"{kind}: {exc.strerror}")


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

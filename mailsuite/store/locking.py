"""Dot-lock files, NFS-safe.

The lock content ``<pid>:<host>`` is first written to a unique temporary file, which is then
hard-linked to the lock name: ``link`` fails if the lock exists, is atomic on NFS too, and the
lock is never seen empty (a process killed between creating and writing an O_EXCL lock would
leave an anonymous lock nobody can judge). If ``link`` reports an error, the link count of the
temporary file says whether it happened anyway (the classic NFS retry case). A lock is stale when its owner was on this host and is no
longer running, or when it has not been touched for ``STALE_AFTER`` seconds (a holder never
keeps it that long: it only appends a few lines to a small file).
"""

from __future__ import annotations

import errno
import os
import socket
import threading
import time

from mailsuite.errors import TemporaryStoreError

STALE_AFTER = 120.0


def _owner_is_dead(content: str, host: str) -> bool:
    pid_text, _, lock_host = content.strip().partition(":")
    if lock_host != host or not pid_text.isdigit():
        return False
    pid = int(pid_text)
    if pid == os.getpid():
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return True
    except PermissionError:
        return False
    return False


class DotLock:
    """One lock file; ``acquire(timeout)`` / ``release()``; not reentrant."""

    __slots__ = ("_held", "_host", "path")

    def __init__(self, path: str) -> None:
        self.path = path
        self._host = socket.gethostname()
        self._held = False

    def _try_once(self) -> bool:
        tmp = f"{self.path}.{self._host}.{os.getpid()}.{threading.get_ident()}"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            os.write(fd, f"{os.getpid()}:{self._host}\n".encode())
        finally:
            os.close(fd)
        try:
            try:
                os.link(tmp, self.path)
            except FileExistsError:
                return False
            except OSError:
                if os.stat(tmp).st_nlink != 2:
                    raise
        finally:
            os.unlink(tmp)
        self._held = True
        return True

    def _break_if_stale(self) -> None:
        try:
            st = os.stat(self.path)
            with open(self.path, encoding="ascii", errors="replace") as f:
                content = f.read(200)
        except FileNotFoundError:
            return
        if time.time() - st.st_mtime > STALE_AFTER or _owner_is_dead(content, self._host):
            try:
                # Only remove the lock we judged stale, not a fresh one that replaced it.
                if os.stat(self.path).st_ino == st.st_ino:
                    os.unlink(self.path)
            except FileNotFoundError:
                pass

    def acquire(self, timeout: float) -> None:
        """Take the lock, waiting up to ``timeout`` seconds; ``TemporaryStoreError`` if busy."""
        deadline = time.monotonic() + timeout
        delay = 0.001
        checked_stale = False
        while True:
            try:
                if self._try_once():
                    return
            except OSError as exc:
                if exc.errno in (errno.ENOSPC, errno.EDQUOT):
                    raise TemporaryStoreError("disk full while locking") from exc
                raise
            if not checked_stale:
                self._break_if_stale()
                checked_stale = True
                continue
            if time.monotonic() >= deadline:
                raise TemporaryStoreError(f"lock {self.path} is busy")
            time.sleep(delay)
            delay = min(delay * 2, 0.05)
            if delay >= 0.05:
                checked_stale = False

    def release(self) -> None:
        """Remove the lock file."""
        if self._held:
            self._held = False
            try:
                os.unlink(self.path)
            except FileNotFoundError:
                pass

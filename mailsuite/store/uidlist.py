"""The per-folder ``dovecot-uidlist``: persistent UIDs in Dovecot's version 3 format.

::

    3 V<uidvalidity> N<next uid> G<guid>
    <uid> :<base name>
    ...

UIDs are strictly ascending in the file. New UIDs are appended under the lock file
``dovecot-uidlist.lock`` after re-reading what other processes appended, so two processes never
hand out the same UID. The header's ``N`` is rewritten only when the whole file is rewritten
(creation, compaction); readers take ``max(N, last UID + 1)``, as Dovecot does for appended
records. A file replaced by someone else (new inode) is re-read from the start; one that grew
is read from where we stopped.

UIDVALIDITY of a new folder comes from the per-user ``dovecot-uidvalidity`` file and an
exclusive marker file ``dovecot-uidvalidity.<hex>``, so two folders created in the same second
(or a folder deleted and re-created) never share a value.
"""

from __future__ import annotations

import os
import threading
import time
import uuid
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager

from mailsuite.errors import TemporaryStoreError
from mailsuite.store.locking import DotLock

UIDLIST_FILE = "dovecot-uidlist"
LOCK_SUFFIX = ".lock"
UIDVALIDITY_FILE = "dovecot-uidvalidity"
LOCK_TIMEOUT = 10.0


def new_uidvalidity(user_dir: str, now: float) -> int:
    """A UIDVALIDITY never handed out before in this user's Maildir."""
    path = os.path.join(user_dir, UIDVALIDITY_FILE)
    last = 0
    try:
        with open(path, encoding="ascii") as f:
            last = int(f.read().strip() or "0", 16)
    except (FileNotFoundError, ValueError):
        pass
    value = max(int(now), last + 1) & 0xFFFFFFFF or 1
    for _ in range(10_000):
        marker = f"{path}.{value:08x}"
        try:
            os.close(os.open(marker, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        except FileExistsError:
            value = (value + 1) & 0xFFFFFFFF or 1
            continue
        tmp = f"{path}.{os.getpid()}.{threading.get_ident()}.tmp"
        with open(tmp, "w", encoding="ascii") as f:
            f.write(f"{value:08x}")
        os.replace(tmp, path)
        old = f"{path}.{last:08x}"
        if last and old != marker:
            try:
                os.unlink(old)
            except FileNotFoundError:
                pass
        return value
    raise TemporaryStoreError("cannot allocate a UIDVALIDITY")


class UidList:
    """The UID map of one folder: base name -> UID, plus UIDVALIDITY and the next UID.

    Thread-safe: deliveries assign UIDs from the thread pool while the reactor thread reads.
    """

    def __init__(self, folder_dir: str, user_dir: str, fsync: bool) -> None:
        self.path = os.path.join(folder_dir, UIDLIST_FILE)
        self._user_dir = user_dir
        self._fsync = fsync
        self._lock = DotLock(self.path + LOCK_SUFFIX)
        self._mutex = threading.Lock()
        self.uid_of: dict[str, int] = {}
        self.uidvalidity = 0
        self.next_uid = 1
        self.records = 0  # records in the file (live or not): for compaction
        self._inode = -1
        self._offset = 0
        self._last_uid = 0

    # --- reading ------------------------------------------------------------------------

    def _read_locked(self) -> bool:
        """Bring the map up to date with the file; True if something was read."""
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            return False
        try:
            st = os.fstat(fd)
            if st.st_ino == self._inode and st.st_size == self._offset:
                return False
            if st.st_ino != self._inode or st.st_size < self._offset:
                self.uid_of = {}
                self.records = 0
                self._offset = 0
                self._inode = st.st_ino
                self.next_uid = 1
                self._last_uid = 0
            os.lseek(fd, self._offset, os.SEEK_SET)
            chunks = []
            while True:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    break
                chunks.append(chunk)
        finally:
            os.close(fd)
        data = b"".join(chunks)
        end = data.rfind(b"\n") + 1  # ignore a partial last line being written
        if end == 0:
            return False
        text = data[:end].decode("utf-8", "surrogateescape")
        lines = text.split("\n")
        lines.pop()
        if self._offset == 0:
            self._parse_header(lines[0] if lines else "")
            lines = lines[1:]
        self._offset += end
        uid_of = self.uid_of
        last = self._last_uid
        count = 0
        for line in lines:
            uid_text, sep, base = line.partition(" :")
            if not sep:
                continue
            if not uid_text.isdigit():
                # Dovecot may put extension fields between the UID and the name.
                uid_text = uid_text.split(" ", 1)[0]
                if not uid_text.isdigit():
                    continue
            uid = int(uid_text)
            if uid <= last:
                continue  # not ascending: ignore (Dovecot would rebuild)
            uid_of[base] = uid
            last = uid
            count += 1
        self.records += count
        self._last_uid = last
        self.next_uid = max(self.next_uid, last + 1)
        return True

    def _parse_header(self, header: str) -> None:
        fields = header.split()
        if not fields:
            return
        if fields[0] == "3":
            for item in fields[1:]:
                if item[:1] == "V" and item[1:].isdigit():
                    self.uidvalidity = int(item[1:])
                elif item[:1] == "N" and item[1:].isdigit():
                    self.next_uid = max(self.next_uid, int(item[1:]))
        elif fields[0] == "1" and len(fields) >= 3 and fields[1].isdigit() and fields[2].isdigit():
            self.uidvalidity = int(fields[1])
            self.next_uid = max(self.next_uid, int(fields[2]))

    def reload(self) -> bool:
        """Read what other processes wrote (no lock needed: appends are whole lines)."""
        with self._mutex:
            return self._read_locked()

    def exists(self) -> bool:
        return os.path.exists(self.path)

    # --- writing ------------------------------------------------------------------------

    def _rewrite_locked(self, live: dict[str, int] | None = None) -> None:
        """Write the whole file through the lock file's sibling and rename it into place."""
        entries = sorted((self.uid_of if live is None else live).items(), key=lambda kv: kv[1])
        header = f"3 V{self.uidvalidity} N{self.next_uid} G{uuid.uuid4().hex}\n"
        body = "".join(f"{uid} :{base}\n" for base, uid in entries)
        tmp = f"{self.path}.{os.getpid()}.tmp"
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        try:
            data = (header + body).encode("utf-8", "surrogateescape")
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if self._fsync:
                os.fsync(fd)
        finally:
            os.close(fd)
        os.replace(tmp, self.path)
        st = os.stat(self.path)
        self._inode = st.st_ino
        self._offset = st.st_size
        if live is not None:
            self.uid_of = dict(live)
        self._last_uid = max(self.uid_of.values(), default=0)
        self.records = len(entries)

    def ensure(self, now: float) -> None:
        """Create the file with a fresh UIDVALIDITY if it does not exist yet."""
        with self._mutex:
            if self._read_locked() or self.uidvalidity:
                return
            self._lock.acquire(LOCK_TIMEOUT)
            try:
                if not self._read_locked() and not self.uidvalidity:
                    self.uidvalidity = new_uidvalidity(self._user_dir, now)
                    self.next_uid = 1
                    self.uid_of = {}
                    self._rewrite_locked()
            finally:
                self._lock.release()

    def assign(
        self,
        bases: Iterable[str],
        now: float,
        timeout: float = LOCK_TIMEOUT,
        under_lock: Callable[[list[int]], object] | None = None,
    ) -> list[int]:
        """UIDs for these base names (in order), appending new ones under the lock.

        ``under_lock(uids)`` is called before the lock is released (to log modseqs atomically
        with the UIDs, across processes).
        """
        bases = list(bases)
        with self._mutex:
            self._lock.acquire(timeout)
            try:
                self._read_locked()
                if not self.uidvalidity:
                    self.uidvalidity = new_uidvalidity(self._user_dir, now)
                    self._rewrite_locked()
                out: list[int] = []
                lines: list[str] = []
                for base in bases:
                    uid = self.uid_of.get(base)
                    if uid is None:
                        uid = self.next_uid
                        self.next_uid += 1
                        self.uid_of[base] = uid
                        self._last_uid = uid
                        lines.append(f"{uid} :{base}\n")
                    out.append(uid)
                if lines:
                    self._append_locked("".join(lines))
                if under_lock is not None:
                    under_lock(out)
                return out
            finally:
                self._lock.release()

    def _append_locked(self, text: str) -> None:
        data = text.encode("utf-8", "surrogateescape")
        fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        try:
            st = os.fstat(fd)
            view = memoryview(data)
            while view:
                view = view[os.write(fd, view) :]
            if self._fsync:
                os.fdatasync(fd)
        finally:
            os.close(fd)
        if st.st_ino == self._inode and st.st_size == self._offset:
            self._offset += len(data)
        self.records += text.count("\n")

    def compact(self, live_bases: Iterable[str], timeout: float = 0.5) -> bool:
        """Rewrite the file without records of files that are gone; False if the lock was busy."""
        with self._mutex:
            try:
                self._lock.acquire(timeout)
            except TemporaryStoreError:
                return False
            try:
                self._read_locked()
                live = {b: self.uid_of[b] for b in live_bases if b in self.uid_of}
                self._rewrite_locked(live)
                return True
            finally:
                self._lock.release()

    @contextmanager
    def locked(self, timeout: float) -> Iterator[None]:
        """Hold the folder lock (in this process and on disk) for other per-folder files."""
        with self._mutex:
            self._lock.acquire(timeout)
            try:
                yield
            finally:
                self._lock.release()

    def forget(self, bases: Iterable[str]) -> None:
        """Drop bases from the in-memory map (their files are gone)."""
        with self._mutex:
            for base in bases:
                self.uid_of.pop(base, None)


def now() -> float:
    """Wall-clock time for UIDVALIDITY (kept here so callers can inject a clock instead)."""
    return time.time()

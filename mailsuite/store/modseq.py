"""Per-folder modification sequences (RFC 7162 CONDSTORE), persisted in ``mailsuite-modseq``.

::

    mailsuite-modseq 1 V<uidvalidity>
    <uid> <modseq>
    ...

An append-only log: the last record of a UID wins; UID 0 records only raise the folder's
HIGHESTMODSEQ (used for expunges). A message without a record has modseq 1. The log is kept
apart from the metadata cache so that deleting the cache never makes HIGHESTMODSEQ go back.
It is compacted (rewritten and renamed into place) when it holds many dead records. Lines are
appended in one write each; the file is not fsynced (a flag change is not fsynced either).
"""

from __future__ import annotations

import os
import threading

MODSEQ_FILE = "mailsuite-modseq"
_MAGIC = "mailsuite-modseq"


class ModseqLog:
    """Modseq of each UID and the folder's highest modseq."""

    def __init__(self, folder_dir: str) -> None:
        self.path = os.path.join(folder_dir, MODSEQ_FILE)
        self.of: dict[int, int] = {}
        self.highest = 1
        self.records = 0
        self._uidvalidity = 0
        self._inode = -1
        self._offset = 0
        self._mutex = threading.Lock()

    def load(self, uidvalidity: int) -> dict[int, int]:
        """Read new records (all of them after a rewrite); return the UIDs they changed."""
        with self._mutex:
            return self._load_locked(uidvalidity)

    def _load_locked(self, uidvalidity: int) -> dict[int, int]:
        try:
            fd = os.open(self.path, os.O_RDONLY)
        except FileNotFoundError:
            self._start(uidvalidity)
            return {}
        try:
            st = os.fstat(fd)
            if st.st_ino == self._inode and st.st_size == self._offset:
                return {}
            if st.st_ino != self._inode or st.st_size < self._offset:
                self._offset = 0
                self._inode = st.st_ino
            os.lseek(fd, self._offset, os.SEEK_SET)
            data = b""
            while True:
                chunk = os.read(fd, 1 << 20)
                if not chunk:
                    break
                data += chunk
        finally:
            os.close(fd)
        end = data.rfind(b"\n") + 1
        lines = data[:end].decode("ascii", "replace").split("\n")[:-1]
        if self._offset == 0:
            head = lines[0].split() if lines else []
            if len(head) != 3 or head[0] != _MAGIC or head[2] != f"V{uidvalidity}":
                # Another folder's log (UIDVALIDITY changed) or garbage: start again, but
                # never let HIGHESTMODSEQ fall below what we had.
                self._start(uidvalidity)
                return {}
            self.of = {}
            self.records = 0
            lines = lines[1:]
        self._offset += end
        changed: dict[int, int] = {}
        of = self.of
        highest = self.highest
        for line in lines:
            uid_text, _, modseq_text = line.partition(" ")
            if not uid_text.isdigit() or not modseq_text.isdigit():
                continue
            uid = int(uid_text)
            modseq = int(modseq_text)
            self.records += 1
            highest = max(highest, modseq)
            if uid:
                of[uid] = modseq
                changed[uid] = modseq
        self.highest = highest
        self._uidvalidity = uidvalidity
        return changed

    def _start(self, uidvalidity: int) -> None:
        self.of = {}
        self.records = 0
        self._uidvalidity = uidvalidity
        self._rewrite_locked()

    def _rewrite_locked(self, live: set[int] | None = None) -> None:
        if live is not None:
            self.of = {uid: m for uid, m in self.of.items() if uid in live}
        body = "".join(f"{uid} {m}\n" for uid, m in sorted(self.of.items()))
        text = f"{_MAGIC} 1 V{self._uidvalidity}\n0 {self.highest}\n{body}"
        tmp = f"{self.path}.{os.getpid()}.{threading.get_ident()}.tmp"
        with open(tmp, "w", encoding="ascii") as f:
            f.write(text)
        os.replace(tmp, self.path)
        st = os.stat(self.path)
        self._inode = st.st_ino
        self._offset = st.st_size
        self.records = len(self.of) + 1

    def stamp(self, uidvalidity: int, uids: list[int]) -> int:
        """Read what others logged, then give ``uids`` (or just the folder) a new modseq.

        The caller holds the folder lock, so two processes never hand out the same number.
        """
        with self._mutex:
            self._load_locked(uidvalidity)
            modseq = self.highest + 1
            self._record_locked(uids, modseq)
            return modseq

    def record(self, uids: list[int], modseq: int) -> None:
        """Give ``uids`` (or just the folder, when empty) the new ``modseq`` and log it."""
        with self._mutex:
            self._record_locked(uids, modseq)

    def _record_locked(self, uids: list[int], modseq: int) -> None:
        self.highest = max(self.highest, modseq)
        for uid in uids:
            self.of[uid] = modseq
        lines = [f"{uid} {modseq}\n" for uid in uids] if uids else [f"0 {modseq}\n"]
        data = "".join(lines).encode("ascii")
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        except FileNotFoundError:
            self._rewrite_locked()
            return
        try:
            st = os.fstat(fd)
            os.write(fd, data)
        finally:
            os.close(fd)
        if st.st_ino == self._inode and st.st_size == self._offset:
            self._offset += len(data)
        self.records += len(lines)

    def next(self) -> int:
        """A new modseq, above every one seen."""
        return self.highest + 1

    def compact(self, live: set[int]) -> None:
        """Rewrite without records of expunged messages."""
        with self._mutex:
            self._rewrite_locked(live)

    def forget(self, uids: list[int]) -> None:
        """Drop expunged UIDs from memory."""
        with self._mutex:
            for uid in uids:
                self.of.pop(uid, None)

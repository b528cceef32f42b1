"""The per-folder metadata cache ``mailsuite-cache``: parsed summaries of messages.

::

    mailsuite-cache 1 V<uidvalidity>
    <uid>\t<base name>\t<summary as one line of JSON>
    ...

Size and internal date need no cache: they are in the file name (``,S=``, the leading seconds)
or, for names without them, in one ``stat``. Summaries are computed by
``mailsuite.message.summarize`` on the first ``summary(uid)`` and appended here. The cache is an
accelerator only: a missing file, a header for another UIDVALIDITY or version, an entry whose
base name no longer matches the UID, or a line that is not valid JSON is ignored (and the
summary recomputed). On first use the file is indexed (UID -> offset) without parsing JSON.
"""

from __future__ import annotations

import json
import os
from typing import Any

CACHE_FILE = "mailsuite-cache"
_MAGIC = "mailsuite-cache"
_VERSION = "1"
_MEMO_LIMIT = 2048


class SummaryCache:
    """Summaries of one folder, on disk with a small memo in memory."""

    def __init__(self, folder_dir: str) -> None:
        self.path = os.path.join(folder_dir, CACHE_FILE)
        self._index: dict[int, tuple[str, int, int]] | None = None  # uid -> (base, offset, length)
        self._memo: dict[int, dict[str, Any]] = {}
        self._uidvalidity = 0
        self._records = 0
        self._fd = -1  # kept open for reads; reopened whenever the file is replaced

    def _header(self) -> bytes:
        return f"{_MAGIC} {_VERSION} V{self._uidvalidity}\n".encode()

    def _close(self) -> None:
        if self._fd >= 0:
            os.close(self._fd)
            self._fd = -1

    def _load(self, uidvalidity: int) -> dict[int, tuple[str, int, int]]:
        if self._index is not None and self._uidvalidity == uidvalidity:
            return self._index
        self._close()
        self._uidvalidity = uidvalidity
        self._memo = {}
        index: dict[int, tuple[str, int, int]] = {}
        header = self._header()
        records = 0
        try:
            # Streamed line by line: the file can be far larger than the index we keep.
            with open(self.path, "rb") as f:
                if f.readline() != header:
                    raise ValueError("stale or foreign cache")
                pos = len(header)
                for line in f:
                    length = len(line)
                    if line.endswith(b"\n"):
                        tab1 = line.find(b"\t")
                        tab2 = line.find(b"\t", tab1 + 1) if tab1 > 0 else -1
                        if tab2 > 0 and line[:tab1].isdigit():
                            base = line[tab1 + 1 : tab2].decode("utf-8", "surrogateescape")
                            index[int(line[:tab1])] = (base, pos + tab2 + 1, length - tab2 - 2)
                            records += 1
                    pos += length
        except (OSError, ValueError):
            self._reset()
            index = {}
            records = 0
        self._records = records
        self._index = index
        return index

    def _reset(self) -> None:
        self._close()
        tmp = f"{self.path}.{os.getpid()}.tmp"
        try:
            with open(tmp, "wb") as f:
                f.write(self._header())
            os.replace(tmp, self.path)
        except OSError:
            pass
        self._records = 0

    def get(self, uid: int, base: str, uidvalidity: int) -> dict[str, Any] | None:
        """The cached summary of ``uid`` if it is for the file ``base``; else None."""
        memo = self._memo.get(uid)
        if memo is not None and self._uidvalidity == uidvalidity:
            return memo
        entry = self._load(uidvalidity).get(uid)
        if entry is None or entry[0] != base:
            return None
        prefix = f"{uid}\t{base}\t".encode("utf-8", "surrogateescape")
        try:
            if self._fd < 0:
                self._fd = os.open(self.path, os.O_RDONLY)
            # Read the record's own prefix too: if the file was replaced underneath us (another
            # process compacted it) the bytes at that offset are not this record.
            data = os.pread(self._fd, entry[2] + len(prefix), entry[1] - len(prefix))
            if not data.startswith(prefix):
                self._index = None
                self._uidvalidity = 0
                return None
            value = json.loads(data[len(prefix) :])
        except (OSError, ValueError):
            return None
        if not isinstance(value, dict):
            return None
        self._remember(uid, value)
        return value

    def _remember(self, uid: int, value: dict[str, Any]) -> None:
        if len(self._memo) >= _MEMO_LIMIT:
            self._memo.clear()
        self._memo[uid] = value

    def put(self, uid: int, base: str, uidvalidity: int, value: dict[str, Any]) -> None:
        """Remember a summary and append it to the file (best effort)."""
        index = self._load(uidvalidity)
        self._remember(uid, value)
        try:
            payload = json.dumps(value, separators=(",", ":"), ensure_ascii=True)
        except (TypeError, ValueError):
            return
        prefix = f"{uid}\t{base}\t".encode("utf-8", "surrogateescape")
        line = prefix + payload.encode("ascii") + b"\n"
        try:
            fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)
        except OSError:
            return
        try:
            offset = os.fstat(fd).st_size
            os.write(fd, line)
        except OSError:
            return
        finally:
            os.close(fd)
        index[uid] = (base, offset + len(prefix), len(payload))
        self._records += 1

    def forget(self, uids: list[int]) -> None:
        """Drop expunged messages from memory."""
        for uid in uids:
            self._memo.pop(uid, None)
            if self._index is not None:
                self._index.pop(uid, None)

    def needs_compaction(self) -> bool:
        return self._index is not None and self._records > 2 * len(self._index) + 1000

    def compact(self, live: dict[int, str], uidvalidity: int) -> None:
        """Rewrite keeping only entries of live messages."""
        index = self._load(uidvalidity)
        tmp = f"{self.path}.{os.getpid()}.tmp"
        try:
            with open(self.path, "rb") as source, open(tmp, "wb") as out:
                out.write(self._header())
                for uid, (base, offset, length) in sorted(index.items()):
                    if live.get(uid) == base:
                        source.seek(offset)
                        out.write(f"{uid}\t{base}\t".encode("utf-8", "surrogateescape"))
                        out.write(source.read(length) + b"\n")
            os.replace(tmp, self.path)
        except OSError:
            return
        self._close()
        self._index = None
        self._uidvalidity = 0
        self._load(uidvalidity)

    def close(self) -> None:
        """Release the read descriptor."""
        self._close()

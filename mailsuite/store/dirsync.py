"""Group commit of directory fsyncs: one ``fsync`` of ``new/`` makes many deliveries durable.

A rename into ``new/`` is durable once the directory itself is fsynced. Deliveries finishing
at the same time all wait for the same directory, so :class:`SharedDirectoryFsync` runs one
fsync for all of them, in the thread pool where the deliveries write their files (no extra
trip to the reactor thread). The relay spool does the same for its one directory from the
reactor thread (``Spool.sync_directory``).
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any


class SharedDirectoryFsync:
    """Group commit for callers in the thread pool: ``sync(path)`` returns once an fsync of
    ``path`` that began after the call has succeeded, running it itself when none is running.

    Each caller takes a ticket; a running fsync covers the tickets taken before it began.
    A caller whose ticket is not covered waits while another caller's fsync runs, then runs
    the next one itself (covering everyone who arrived meanwhile) unless someone else did.
    When an fsync fails its caller gets the error and nobody is counted as covered: each
    waiting caller then runs an fsync of its own and gets its own result.
    """

    def __init__(self, fsync: Callable[[str], None]) -> None:
        self._fsync = fsync
        self._changed = threading.Condition()
        # path -> [tickets taken, highest ticket covered, an fsync is running]
        self._dirs: dict[str, list[Any]] = {}

    def waiting(self, path: str) -> int:
        """How many callers have not been covered yet (for tests and monitoring)."""
        with self._changed:
            state = self._dirs.get(path)
            return 0 if state is None else state[0] - state[1]

    def sync(self, path: str) -> None:
        """Block until ``path`` has been fsynced after this call; raise OSError if our own
        fsync fails."""
        with self._changed:
            state = self._dirs.setdefault(path, [0, 0, False])
            state[0] += 1
            ticket = state[0]
            self._changed.notify_all()
            while state[1] < ticket:
                if not state[2]:
                    break
                self._changed.wait()
            else:
                return
            state[2] = True
            covers = state[0]
        try:
            self._fsync(path)
        except BaseException:
            with self._changed:
                state[2] = False
                self._changed.notify_all()
            raise
        with self._changed:
            state[2] = False
            state[1] = max(state[1], covers)
            if state[1] == state[0]:
                del self._dirs[path]
            self._changed.notify_all()

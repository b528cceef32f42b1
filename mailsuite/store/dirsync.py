"""Group commit of directory fsyncs: one ``fsync`` of ``new/`` makes many deliveries durable.

A rename into ``new/`` is durable once the directory itself is fsynced. Deliveries finishing
at the same time all wait for the same directory, so :class:`DirectorySync` runs one fsync for
all of them: ``sync(path)`` fires after an fsync of ``path`` that *began after the call* (so it
covers every rename the caller made before calling), and calls arriving while an fsync of
that directory is running wait for the next one, which then covers them all. The relay spool
does the same for its one directory (``Spool.sync_directory``).

A failed fsync fails every caller of that round (none of their renames is known durable);
the next round starts afresh.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.python.failure import Failure

FsyncRunner = Callable[[str], "defer.Deferred[Any]"]


class _Round:
    """The callers waiting for one directory: those of the running fsync and the next."""

    __slots__ = ("next", "running")

    def __init__(self) -> None:
        self.running = False
        self.next: list[defer.Deferred[None]] = []


class DirectorySync:
    """Batches directory fsyncs per path; see the module docstring.

    ``run_fsync(path)`` does the fsync (normally in a thread pool) and returns a Deferred.
    """

    def __init__(self, run_fsync: FsyncRunner) -> None:
        self._run_fsync = run_fsync
        self._rounds: dict[str, _Round] = {}

    def sync(self, path: str) -> defer.Deferred[None]:
        """Fires once an fsync of ``path`` that began after this call has succeeded."""
        state = self._rounds.get(path)
        if state is None:
            state = self._rounds[path] = _Round()
        waiter: defer.Deferred[None] = defer.Deferred()
        state.next.append(waiter)
        if not state.running:
            self._start(path, state)
        return waiter

    def _start(self, path: str, state: _Round) -> None:
        waiters, state.next = state.next, []
        state.running = True
        try:
            done = self._run_fsync(path)
        except Exception:  # noqa: BLE001 (reported to the waiters like a failed fsync)
            done = defer.fail()
        done.addBoth(self._finished, path, state, waiters)

    def _finished(
        self, result: Any, path: str, state: _Round, waiters: list[defer.Deferred[None]]
    ) -> None:
        state.running = False
        if state.next:
            self._start(path, state)
        else:
            del self._rounds[path]
        for waiter in waiters:
            if isinstance(result, Failure):
                waiter.errback(result)
            else:
                waiter.callback(None)

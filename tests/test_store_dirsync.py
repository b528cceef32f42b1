"""mailsuite.store.dirsync: group commit of directory fsyncs across pool threads.

The fsync is a stand-in that blocks until the test lets it go, so every interleaving below
is forced, not hoped for; waits are bounded and nothing is timed.
"""

from __future__ import annotations

import threading
import unittest

from mailsuite.store.dirsync import SharedDirectoryFsync

WAIT = 30.0  # a bound on every wait (a hang fails the test instead of blocking the run)


class HeldFsync:
    """Each fsync blocks until released; a failing one raises OSError once released."""

    def __init__(self) -> None:
        self.started = threading.Semaphore(0)
        self.lock = threading.Lock()
        self.calls: list[str] = []
        self.gates: list[threading.Event] = []
        self.fail: set[int] = set()  # indexes of fsyncs that fail

    def __call__(self, path: str) -> None:
        gate = threading.Event()
        with self.lock:
            index = len(self.calls)
            self.calls.append(path)
            self.gates.append(gate)
        self.started.release()
        assert gate.wait(WAIT)
        if index in self.fail:
            raise OSError(5, "Input/output error")

    def wait_started(self, count: int) -> None:
        for _ in range(count):
            assert self.started.acquire(timeout=WAIT)

    def release(self, index: int) -> None:
        self.gates[index].set()


class Caller(threading.Thread):
    """One delivery thread calling sync(path); records what it got."""

    def __init__(self, syncer: SharedDirectoryFsync, path: str = "/m/new") -> None:
        super().__init__(daemon=True)
        self.syncer, self.path = syncer, path
        self.result: str | None = None

    def run(self) -> None:
        try:
            self.syncer.sync(self.path)
            self.result = "ok"
        except OSError:
            self.result = "failed"

    def finish(self) -> str | None:
        self.join(WAIT)
        return self.result


def wait_waiting(syncer: SharedDirectoryFsync, path: str, count: int) -> None:
    with syncer._changed:
        assert syncer._changed.wait_for(lambda: syncer.waiting(path) == count, WAIT)


class SharedDirectoryFsyncTests(unittest.TestCase):
    def setUp(self) -> None:
        self.fsync = HeldFsync()
        self.syncer = SharedDirectoryFsync(self.fsync)

    def start(self, count: int, path: str = "/m/new") -> list[Caller]:
        callers = [Caller(self.syncer, path) for _ in range(count)]
        for caller in callers:
            caller.start()
        return callers

    def test_nobody_returns_before_an_fsync_that_began_after_its_call(self) -> None:
        [first] = self.start(1)
        self.fsync.wait_started(1)
        later = self.start(10)  # arrive while the first fsync runs: it may predate them
        wait_waiting(self.syncer, "/m/new", 11)
        self.fsync.release(0)
        self.assertEqual(first.finish(), "ok")
        self.fsync.wait_started(1)  # the second fsync has begun; nobody later has returned
        self.assertEqual([c.result for c in later], [None] * 10)
        self.fsync.release(1)
        self.assertEqual([c.finish() for c in later], ["ok"] * 10)
        self.assertEqual(len(self.fsync.calls), 2)  # one fsync for all ten

    def test_a_failed_fsync_fails_its_caller_and_the_others_get_their_own(self) -> None:
        self.fsync.fail = {0}
        [first] = self.start(1)
        self.fsync.wait_started(1)
        later = self.start(3)
        wait_waiting(self.syncer, "/m/new", 4)
        self.fsync.release(0)
        self.assertEqual(first.finish(), "failed")
        self.fsync.wait_started(1)
        self.fsync.release(1)
        self.assertEqual([c.finish() for c in later], ["ok"] * 3)
        self.assertEqual(self.syncer.waiting("/m/new"), 0)

    def test_directories_do_not_wait_for_each_other(self) -> None:
        [inbox] = self.start(1, "/m/new")
        self.fsync.wait_started(1)
        [sent] = self.start(1, "/m/.Sent/new")
        self.fsync.wait_started(1)
        self.fsync.release(1)
        self.assertEqual((sent.finish(), inbox.result), ("ok", None))
        self.fsync.release(0)
        self.assertEqual(inbox.finish(), "ok")

    def test_a_lone_caller_runs_its_own_fsync(self) -> None:
        syncer = SharedDirectoryFsync(self.fsync.calls.append)
        syncer.sync("/m/new")
        syncer.sync("/m/new")
        self.assertEqual((self.fsync.calls, syncer.waiting("/m/new")), (["/m/new"] * 2, 0))

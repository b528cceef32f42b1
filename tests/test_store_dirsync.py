"""mailsuite.store.dirsync: group commit of directory fsyncs (driven by hand, no threads)."""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest

from mailsuite.store.dirsync import DirectorySync


class FakeFsync:
    """Records each fsync asked for; the test fires them one by one."""

    def __init__(self) -> None:
        self.calls: list[tuple[str, defer.Deferred[None]]] = []

    def __call__(self, path: str) -> defer.Deferred[None]:
        d: defer.Deferred[None] = defer.Deferred()
        self.calls.append((path, d))
        return d


def outcomes(waiters: list[defer.Deferred[None]]) -> list[str]:
    """'pending', 'ok' or 'failed' for each waiter (failures are consumed)."""
    seen: list[str] = []
    for waiter in waiters:
        box: list[str] = []
        waiter.addCallbacks(lambda _r, b=box: b.append("ok"), lambda _f, b=box: b.append("failed"))
        seen.append(box[0] if box else "pending")
    return seen


class DirectorySyncTests(unittest.TestCase):
    def setUp(self) -> None:
        self.fsync = FakeFsync()
        self.sync = DirectorySync(self.fsync)

    def test_nothing_is_acknowledged_before_its_fsync(self) -> None:
        waiters = [self.sync.sync("/m/new") for _ in range(5)]
        self.assertEqual(len(self.fsync.calls), 1)
        self.assertEqual(outcomes(waiters), ["pending"] * 5)
        self.fsync.calls[0][1].callback(None)
        self.assertEqual(outcomes(waiters), ["ok"] + ["pending"] * 4)
        self.fsync.calls[1][1].callback(None)
        self.assertEqual(outcomes(waiters), ["ok"] * 5)
        self.assertEqual(len(self.fsync.calls), 2)

    def test_callers_during_an_fsync_wait_for_the_next_one_and_share_it(self) -> None:
        first = self.sync.sync("/m/new")
        later = [self.sync.sync("/m/new") for _ in range(10)]
        self.assertEqual(len(self.fsync.calls), 1)  # a running fsync may predate their renames
        self.fsync.calls[0][1].callback(None)
        self.assertEqual((outcomes([first]), outcomes(later)), (["ok"], ["pending"] * 10))
        self.assertEqual(len(self.fsync.calls), 2)  # one fsync for all ten
        self.fsync.calls[1][1].callback(None)
        self.assertEqual(outcomes(later), ["ok"] * 10)

    def test_failed_fsync_fails_its_round_only(self) -> None:
        first = self.sync.sync("/m/new")
        second = [self.sync.sync("/m/new") for _ in range(3)]
        self.fsync.calls[0][1].errback(OSError(5, "Input/output error"))
        self.assertEqual(outcomes([first, *second]), ["failed"] + ["pending"] * 3)
        self.fsync.calls[1][1].callback(None)
        self.assertEqual(outcomes(second), ["ok"] * 3)

    def test_directories_are_synced_independently(self) -> None:
        inbox = self.sync.sync("/m/new")
        sent = self.sync.sync("/m/.Sent/new")
        self.assertEqual([p for p, _ in self.fsync.calls], ["/m/new", "/m/.Sent/new"])
        self.fsync.calls[1][1].callback(None)
        self.assertEqual(outcomes([inbox, sent]), ["pending", "ok"])

    def test_fsync_that_raises_at_once_is_a_failure(self) -> None:
        def broken(path: str) -> defer.Deferred[None]:
            raise OSError(9, "Bad file descriptor")

        sync = DirectorySync(broken)
        self.assertEqual(outcomes([sync.sync("/m/new")]), ["failed"])
        self.assertEqual(outcomes([sync.sync("/m/new")]), ["failed"])  # and it tries again

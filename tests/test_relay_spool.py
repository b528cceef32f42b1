"""The durable spool: files written, reloaded, updated atomically; ids unique and sortable."""

from __future__ import annotations

import json

from twisted.internet import task
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from mailsuite.interfaces import ISpool, SpoolEnvelope, SpoolRecipient
from mailsuite.relay.spool import DELIVERED, PENDING, Spool, read_all, removed_ids

MESSAGE = b"From: a@a.test\r\nTo: b@b.test\r\nSubject: hi\r\n\r\nbody\r\n"


def envelope(*rcpts: str, sender: str = "alice@a.test") -> SpoolEnvelope:
    return SpoolEnvelope(
        sender=sender,
        recipients=tuple(SpoolRecipient(r, notify=("FAILURE",), orcpt="rfc822;" + r) for r in rcpts),
        ret="HDRS",
        envid="env-1",
        body_8bit=True,
    )


class SpoolTests(unittest.TestCase):
    def setUp(self) -> None:
        self.dir = self.mktemp()
        self.clock = task.Clock()
        self.clock.advance(1_700_000_000)
        self.spool = Spool(self.dir, self.clock)

    def enqueue(self, env: SpoolEnvelope, message: bytes | list[bytes] = MESSAGE) -> str:
        d = self.spool.enqueue(env, message)
        return self.successResultOf(d)

    def test_provides_ispool(self):
        self.assertTrue(verifyObject(ISpool, self.spool))

    def test_spool_directory_is_private(self):
        import stat

        self.assertEqual(stat.S_IMODE(self.spool.directory.stat().st_mode), 0o700)

    def test_enqueue_writes_message_and_json_envelope(self):
        queue_id = self.enqueue(envelope("b@b.test"))
        self.assertEqual(self.spool.message_path(queue_id).read_bytes(), MESSAGE)
        doc = json.loads(self.spool.envelope_path(queue_id).read_text())
        self.assertEqual(doc["sender"], "alice@a.test")
        self.assertEqual(doc["recipients"][0]["state"], PENDING)
        self.assertEqual(doc["recipients"][0]["notify"], ["FAILURE"])
        self.assertEqual((doc["ret"], doc["envid"], doc["body_8bit"]), ("HDRS", "env-1", True))

    def test_enqueue_accepts_chunks(self):
        queue_id = self.enqueue(envelope("b@b.test"), [MESSAGE[:10], MESSAGE[10:]])
        self.assertEqual(self.spool.message_path(queue_id).read_bytes(), MESSAGE)
        self.assertEqual(self.spool.items[queue_id].size, len(MESSAGE))

    def test_reload_restores_every_item(self):
        ids = [self.enqueue(envelope(f"r{i}@b.test")) for i in range(3)]
        fresh = Spool(self.dir, self.clock)
        loaded = fresh.load()
        self.assertEqual([i.id for i in loaded], ids)
        self.assertEqual(loaded[1].recipients[0].address, "r1@b.test")
        self.assertEqual(loaded[1].recipients[0].orcpt, "rfc822;r1@b.test")

    def test_ids_are_unique_and_sort_by_arrival(self):
        ids = []
        for _ in range(50):
            ids.append(self.enqueue(envelope("b@b.test")))
            self.clock.advance(0.000001)
        self.assertEqual(len(set(ids)), 50)
        self.assertEqual(sorted(ids), ids)

    def test_state_update_survives_reload(self):
        queue_id = self.enqueue(envelope("b@b.test", "c@b.test"))
        item = self.spool.items[queue_id]
        item.recipients[0].state = DELIVERED
        item.recipients[1].reply = "451 4.3.0 later"
        item.attempts = 1
        self.successResultOf(self.spool.save(item))
        reloaded = Spool(self.dir, self.clock)
        reloaded.load()
        again = reloaded.items[queue_id]
        self.assertEqual([r.state for r in again.recipients], [DELIVERED, PENDING])
        self.assertEqual(again.recipients[1].reply, "451 4.3.0 later")
        self.assertEqual(again.attempts, 1)

    def test_message_without_envelope_is_an_unfinished_enqueue_and_is_removed(self):
        queue_id = self.enqueue(envelope("b@b.test"))
        self.spool.envelope_path(queue_id).unlink()
        fresh = Spool(self.dir, self.clock)
        self.assertEqual(fresh.load(), [])
        self.assertFalse(fresh.message_path(queue_id).exists())

    def test_leftover_tmp_files_are_cleared_at_load(self):
        (self.spool.tmp / "junk.json.1234").write_bytes(b"{")
        Spool(self.dir, self.clock).load()
        self.assertEqual(list(self.spool.tmp.iterdir()), [])

    def test_remove_deletes_both_files(self):
        queue_id = self.enqueue(envelope("b@b.test"))
        self.successResultOf(self.spool.remove(queue_id))
        self.assertFalse(self.spool.envelope_path(queue_id).exists())
        self.assertFalse(self.spool.message_path(queue_id).exists())
        self.assertNotIn(queue_id, self.spool.items)

    def test_save_after_remove_does_not_resurrect(self):
        queue_id = self.enqueue(envelope("b@b.test"))
        item = self.spool.items[queue_id]
        self.successResultOf(self.spool.remove(queue_id))
        self.successResultOf(self.spool.save(item))
        self.assertFalse(self.spool.envelope_path(queue_id).exists())

    def test_enqueue_without_recipients_fails(self):
        d = self.spool.enqueue(SpoolEnvelope(sender="a@a.test", recipients=()), MESSAGE)
        self.failureResultOf(d, ValueError)

    def test_enqueue_wakes_listeners_after_the_write(self):
        seen = []
        self.spool.on_enqueue(lambda item: seen.append(self.spool.envelope_path(item.id).exists()))
        self.enqueue(envelope("b@b.test"))
        self.assertEqual(seen, [True])


class ManualThreadPool:
    """Stands in for the reactor's thread pool: jobs run only when the test says so."""

    def __init__(self) -> None:
        self.jobs: list[tuple[object, object, tuple]] = []

    def callInThreadWithCallback(self, on_result, fn, *args, **kwargs):
        self.jobs.append((on_result, fn, args))

    def run_next(self) -> None:
        on_result, fn, args = self.jobs.pop(0)
        try:
            result = fn(*args)
        except Exception as e:  # noqa: BLE001 - handed back like the real pool does
            on_result(False, e)
        else:
            on_result(True, result)


class ManualReactor:
    """Just enough of a reactor for the spool's thread-pool I/O."""

    def __init__(self) -> None:
        self.pool = ManualThreadPool()

    def getThreadPool(self):
        return self.pool

    def callFromThread(self, fn, *args, **kwargs):
        fn(*args, **kwargs)


class BatchedIOTests(unittest.TestCase):
    """Reads and removals asked for meanwhile share one trip to the thread pool."""

    def setUp(self) -> None:
        self.dir = self.mktemp()
        self.clock = task.Clock()
        inline = Spool(self.dir, self.clock)  # writes inline, to set the scene
        self.ids = [self.successResultOf(inline.enqueue(envelope(f"u{n}@b.test"), MESSAGE + b"%d" % n))
                    for n in range(3)]
        self.reactor = ManualReactor()
        self.spool = Spool(self.dir, self.clock, self.reactor)
        self.spool.load()

    def test_reads_asked_meanwhile_go_in_one_batch(self):
        first = self.spool.read_message(self.ids[0])
        rest = [self.spool.read_message(i) for i in self.ids[1:]]
        missing = self.spool.read_message("0" * 24)
        self.assertEqual(len(self.reactor.pool.jobs), 1)  # the first batch runs alone
        self.reactor.pool.run_next()
        self.assertEqual(self.successResultOf(first), MESSAGE + b"0")
        self.assertEqual(len(self.reactor.pool.jobs), 1)  # everything else: one more trip
        self.reactor.pool.run_next()
        self.assertEqual([self.successResultOf(d) for d in rest], [MESSAGE + b"1", MESSAGE + b"2"])
        self.failureResultOf(missing, FileNotFoundError)
        self.assertEqual(self.reactor.pool.jobs, [])

    def test_removals_ride_on_one_log_write(self):
        pool = self.reactor.pool
        first = self.spool.remove(self.ids[0])
        rest = [self.spool.remove(i) for i in self.ids[1:]]
        self.assertEqual(len(pool.jobs), 1)
        pool.run_next()  # writes the first id to removed.log, fdatasync
        self.successResultOf(first)
        self.assertEqual(removed_ids(self.dir), {self.ids[0]})
        self.assertNoResult(rest[0])  # they wait for the next write
        self.assertEqual(len(pool.jobs), 2)  # the next write, and the first item's sweep
        pool.run_next()
        for d in rest:
            self.successResultOf(d)
        self.assertEqual(removed_ids(self.dir), set(self.ids))
        while pool.jobs:
            pool.run_next()
        for queue_id in self.ids:
            self.assertFalse(self.spool.envelope_path(queue_id).exists())
            self.assertFalse(self.spool.message_path(queue_id).exists())

    def test_the_log_is_emptied_once_everything_in_it_is_swept(self):
        pool = self.reactor.pool
        d = self.spool.remove(self.ids[0])
        while pool.jobs:
            pool.run_next()
        self.successResultOf(d)
        self.assertEqual(removed_ids(self.dir), {self.ids[0]})
        d = self.spool.remove(self.ids[1])  # the next write starts the log afresh
        pool.run_next()
        self.successResultOf(d)
        self.assertEqual(removed_ids(self.dir), {self.ids[1]})

    def test_files_left_by_a_crash_after_the_commit_go_at_load(self):
        pool = self.reactor.pool
        d = self.spool.remove(self.ids[0])
        pool.run_next()
        self.successResultOf(d)
        self.assertTrue(self.spool.envelope_path(self.ids[0]).exists())  # not swept: "crash"
        self.assertEqual([i.id for i in read_all(self.dir)], self.ids[1:])  # the CLI skips it
        reloaded = Spool(self.dir, self.clock)
        self.assertEqual(sorted(i.id for i in reloaded.load()), self.ids[1:])
        self.assertFalse(self.spool.envelope_path(self.ids[0]).exists())
        self.assertFalse(self.spool.message_path(self.ids[0]).exists())
        self.assertEqual(removed_ids(self.dir), set())

    def test_a_torn_last_line_of_the_log_is_not_a_removal(self):
        (self.spool.directory / "removed.log").write_bytes(f"{self.ids[0]}\n{self.ids[1][:7]}".encode())
        self.assertEqual(removed_ids(self.dir), {self.ids[0]})

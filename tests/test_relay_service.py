"""The relay service built by ``make_relay``: local delivery of queued mail, the control socket,
and the queue commands of ``mailsuite.relay.admin`` acting on the running server."""

from __future__ import annotations

import os
import shutil
import stat
import sys
import tempfile
from pathlib import Path
from types import SimpleNamespace

from twisted.internet import defer, reactor, threads
from twisted.trial import unittest
from zope.interface.verify import verifyObject

sys.path.insert(0, str(Path(__file__).parent))
from dnsserver import DNSServer, TestZone, free_loopback_port

from mailsuite.accounts import MemoryAccounts
from mailsuite.interfaces import ISpool, SpoolEnvelope, SpoolRecipient
from mailsuite.relay import admin
from mailsuite.relay.service import control_path, make_relay
from mailsuite.relay.settings import RelaySettings
from mailsuite.store.memory import MemoryStore

MESSAGE = b"From: alice@a.test\r\nTo: bob@a.test\r\nSubject: queued\r\n\r\nhello\r\n"


class RecordingLog:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict]] = []

    def log(self, event: str, **fields) -> None:
        self.lines.append((event, fields))


class ServiceTests(unittest.TestCase):
    timeout = 30

    def setUp(self) -> None:
        # A short absolute path: UNIX socket names are limited to ~104 bytes.
        self.data_dir = Path(tempfile.mkdtemp(prefix="msrelay"))
        self.zone = TestZone()
        self.zone.add_mx("far.test", [(10, "mx.far.test")])
        self.zone.add_a("mx.far.test", "127.0.0.1")
        self.dns = DNSServer(self.zone)
        self.dns.start(reactor)
        closed_port = free_loopback_port(["127.0.0.1"])  # nothing listens: connection refused
        self.config = SimpleNamespace(
            data_dir=self.data_dir,
            hostname="mail.a.test",
            relay=RelaySettings(nameservers=[self.dns.nameserver], port=closed_port,
                                retry_initial=3600, retry_max=3600),
        )
        self.accounts = MemoryAccounts(domains=("a.test",))
        self.accounts.add_user("bob@a.test", "pw-bob-123456")
        self.store = MemoryStore(accounts=self.accounts)
        self.maillog = RecordingLog()
        self.ctx = SimpleNamespace(config=self.config, accounts=self.accounts, store=self.store,
                                   maillog=self.maillog, reactor=reactor, spool=None)
        self.spool, self.service = make_relay(self.ctx)
        self.service.startService()
        self.runner = self.service.runner

    def tearDown(self) -> defer.Deferred:
        d = defer.maybeDeferred(self.service.stopService) if self.service.running else defer.succeed(None)
        d.addCallback(lambda _: self.dns.stop())
        return d.addBoth(lambda result: (shutil.rmtree(self.data_dir, True), result)[1])

    async def queue_remote(self) -> str:
        env = SpoolEnvelope(sender="alice@a.test", recipients=(SpoolRecipient("x@far.test"),))
        queue_id = await self.spool.enqueue(env, MESSAGE)
        await self.runner.wait_idle()
        return queue_id

    def test_spool_provides_ispool(self):
        self.assertTrue(verifyObject(ISpool, self.spool))

    def test_spool_lives_in_the_data_directory(self):
        self.assertEqual(self.spool.directory, self.data_dir / ".mailsuite" / "spool")

    def test_control_socket_is_private(self):
        mode = os.stat(control_path(self.data_dir)).st_mode
        self.assertTrue(stat.S_ISSOCK(mode))
        self.assertEqual(stat.S_IMODE(mode), 0o600)

    @defer.inlineCallbacks
    def test_local_recipient_lands_in_the_inbox(self):
        env = SpoolEnvelope(sender="alice@a.test", recipients=(SpoolRecipient("bob@a.test"),))
        yield self.spool.enqueue(env, MESSAGE)
        yield self.runner.wait_idle()
        folder = self.store.account("bob@a.test").open_folder("INBOX")
        [info] = folder.messages()
        raw = folder.read_message(info.uid)
        self.assertIn(b"Return-Path: <alice@a.test>", raw)
        self.assertTrue(raw.endswith(MESSAGE))
        self.assertEqual(self.spool.items, {})

    @defer.inlineCallbacks
    def test_bounce_for_a_local_sender_lands_in_their_inbox(self):
        env = SpoolEnvelope(sender="bob@a.test", recipients=(SpoolRecipient("x@nowhere.test"),))
        yield self.spool.enqueue(env, MESSAGE)
        for _ in range(3):  # the message, then its bounce (bounded)
            yield self.runner.wait_idle()
        folder = self.store.account("bob@a.test").open_folder("INBOX")
        [info] = folder.messages()
        raw = folder.read_message(info.uid)
        self.assertIn(b"Return-Path: <>", raw)
        self.assertIn(b"Subject: Undelivered Mail Returned to Sender", raw)
        self.assertIn(b"Final-Recipient: rfc822; x@nowhere.test", raw)
        self.assertEqual(self.spool.items, {})

    @defer.inlineCallbacks
    def test_unreachable_destination_stays_queued_and_is_listed(self):
        queue_id = yield defer.Deferred.fromCoroutine(self.queue_remote())
        rows = yield threads.deferToThread(admin.list_queue, self.config)
        [row] = rows
        self.assertEqual(row["id"], queue_id)
        self.assertEqual(row["recipients"], ["x@far.test"])
        self.assertEqual(row["attempts"], 1)
        self.assertIn("connect to mx.far.test[127.0.0.1]", row["last_error"])
        self.assertIn(queue_id, admin.format_queue(rows))

    @defer.inlineCallbacks
    def test_show_has_recipient_states_and_headers(self):
        queue_id = yield defer.Deferred.fromCoroutine(self.queue_remote())
        shown = yield threads.deferToThread(admin.show, self.config, queue_id[:16])
        self.assertEqual(shown["recipients"][0]["state"], "pending")
        self.assertIn("Subject: queued", shown["headers"])

    @defer.inlineCallbacks
    def test_flush_retries_in_the_running_server(self):
        queue_id = yield defer.Deferred.fromCoroutine(self.queue_remote())
        count = yield threads.deferToThread(admin.flush, self.config)
        self.assertEqual(count, 1)
        yield self.runner.wait_idle()
        self.assertEqual(self.spool.items[queue_id].attempts, 2)

    @defer.inlineCallbacks
    def test_hold_and_release(self):
        queue_id = yield defer.Deferred.fromCoroutine(self.queue_remote())
        yield threads.deferToThread(admin.hold, self.config, queue_id)
        self.assertTrue(self.spool.items[queue_id].held)
        self.assertEqual((yield threads.deferToThread(admin.flush, self.config)), 0)
        yield threads.deferToThread(admin.release, self.config, queue_id)
        yield self.runner.wait_idle()
        item = self.spool.items[queue_id]
        self.assertEqual((item.held, item.attempts), (False, 2))

    @defer.inlineCallbacks
    def test_delete_removes_from_the_running_server(self):
        queue_id = yield defer.Deferred.fromCoroutine(self.queue_remote())
        yield threads.deferToThread(admin.delete, self.config, queue_id)
        self.assertNotIn(queue_id, self.spool.items)
        self.assertEqual((yield threads.deferToThread(admin.list_queue, self.config)), [])

    @defer.inlineCallbacks
    def test_unknown_id_is_an_error(self):
        yield defer.Deferred.fromCoroutine(self.queue_remote())
        d = threads.deferToThread(admin.hold, self.config, "ffffffff")
        yield self.assertFailure(d, admin.QueueError)

    @defer.inlineCallbacks
    def test_commands_act_on_files_when_no_server_runs(self):
        queue_id = yield defer.Deferred.fromCoroutine(self.queue_remote())
        yield self.service.stopService()
        self.assertFalse(control_path(self.data_dir).exists())
        yield threads.deferToThread(admin.hold, self.config, queue_id)
        [row] = admin.list_queue(self.config)
        self.assertTrue(row["held"])

    @defer.inlineCallbacks
    def test_every_attempt_is_logged(self):
        queue_id = yield defer.Deferred.fromCoroutine(self.queue_remote())
        [line] = [f for e, f in self.maillog.lines if e == "relay"]
        self.assertEqual((line["queue_id"], line["rcpt"], line["result"]),
                         (queue_id, "x@far.test", "transient"))


class SettingsCheckTests(unittest.TestCase):
    def test_bad_smarthost_is_a_config_error(self):
        from mailsuite.errors import ConfigError
        from mailsuite.relay.service import check_settings

        with self.assertRaises(ConfigError):
            check_settings(RelaySettings(smarthost="host:notaport"))

    def test_nameserver_must_be_an_address(self):
        from mailsuite.errors import ConfigError
        from mailsuite.relay.service import check_settings

        with self.assertRaises(ConfigError):
            check_settings(RelaySettings(nameservers=["ns.example:53"]))

    def test_defaults_are_valid(self):
        from mailsuite.relay.service import check_settings

        check_settings(RelaySettings())

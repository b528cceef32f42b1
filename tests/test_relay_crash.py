"""kill -9 of a relay process in the middle of a delivery burst: after a restart over the same
spool every message reaches its recipient, and only the one in flight at the kill goes twice."""

from __future__ import annotations

import email
import json
import os
import signal
import smtplib
import ssl
import subprocess
import sys
from pathlib import Path

from twisted.internet import defer, reactor, task, threads
from twisted.trial import unittest

sys.path.insert(0, str(Path(__file__).parent))
from dnsserver import DNSServer, TestZone, free_loopback_port
from harness import MailServer
from test_relay_e2e import Receiver

from mailsuite.interfaces import SpoolEnvelope, SpoolRecipient
from mailsuite.relay.spool import Spool

REPO = Path(__file__).resolve().parent.parent

# A relay process: spool + runner + remote agent, nothing else. argv: spool dir, settings JSON.
RELAY_PROCESS = """
import json, sys
from twisted.internet import reactor
from mailsuite.relay.remote import RemoteAgent
from mailsuite.relay.routing import Router, make_resolver
from mailsuite.relay.runner import QueueRunner
from mailsuite.relay.settings import RelaySettings
from mailsuite.relay.spool import Spool

settings = RelaySettings(**json.loads(sys.argv[2]))
spool = Spool(sys.argv[1], reactor, reactor)
spool.load()
router = Router(settings, make_resolver(settings, reactor), "mail.a.test")
remote = RemoteAgent(router, settings, reactor, reactor, "mail.a.test")
runner = QueueRunner(spool, local_agent=None, remote_agent=remote, is_local=lambda d: False,
                     clock=reactor, settings=settings, hostname="mail.a.test")
reactor.callWhenRunning(runner.start)
reactor.run()
"""

COUNT = 30
KILL_AT = 10


class CrashTests(unittest.TestCase):
    timeout = 60

    def setUp(self) -> None:
        self.port = free_loopback_port(["127.0.0.2"])
        zone = TestZone()
        zone.add_mx("b.test", [(10, "mx.b.test")])
        zone.add_a("mx.b.test", "127.0.0.2")
        self.dns = DNSServer(zone)
        self.dns.start(reactor)
        self.spool_dir = os.path.abspath(self.mktemp())
        self.processes: list[subprocess.Popen] = []
        self.listening = None

    async def _teardown(self) -> None:
        for p in self.processes:
            if p.poll() is None:
                p.kill()
            p.wait(10)
        if self.listening is not None:
            await self.listening.stopListening()
        await self.dns.stop()

    def tearDown(self) -> defer.Deferred:
        return defer.Deferred.fromCoroutine(self._teardown())

    def start_relay(self) -> subprocess.Popen:
        settings = {
            "port": self.port, "nameservers": [self.dns.nameserver], "dns_timeouts": [2.0],
            "retry_initial": 0.1, "retry_max": 0.2, "max_per_destination": 1,
        }
        env = dict(os.environ, PYTHONPATH=str(REPO))
        process = subprocess.Popen(
            [sys.executable, "-c", RELAY_PROCESS, self.spool_dir, json.dumps(settings)],
            env=env, stdin=subprocess.DEVNULL,
        )
        self.processes.append(process)
        return process

    @defer.inlineCallbacks
    def test_kill_9_mid_burst_then_restart_delivers_everything_once(self):
        spool = Spool(self.spool_dir, reactor)  # inline writes, before any relay runs
        for n in range(COUNT):
            env = SpoolEnvelope(sender="alice@a.test", recipients=(SpoolRecipient(f"u{n}@b.test"),))
            raw = f"Subject: {n}\r\nMessage-ID: <m{n}@a.test>\r\n\r\nbody {n}\r\n".encode()
            yield spool.enqueue(env, raw)

        victim: list[subprocess.Popen] = []

        def kill_mid_burst(count: int) -> None:
            if count == KILL_AT:  # before our 250 goes out: this message is in flight
                os.kill(victim[0].pid, signal.SIGKILL)

        receiver = Receiver(on_message=kill_mid_burst)
        self.listening = reactor.listenTCP(self.port, receiver.factory(), interface="127.0.0.2")
        victim.append(self.start_relay())
        yield receiver.wait(KILL_AT)
        for _ in range(200):  # bounded wait for the process to be gone
            if victim[0].poll() is not None:
                break
            yield task.deferLater(reactor, 0.05, lambda: None)
        self.assertEqual(victim[0].returncode, -signal.SIGKILL)

        self.start_relay()
        yield receiver.wait(COUNT + 1)
        ids = [email.message_from_bytes(body)["Message-ID"] for _, _, body in receiver.messages]
        self.assertEqual(len(set(ids)), COUNT)
        self.assertEqual(len(ids), COUNT + 1)
        self.assertEqual(ids.count(ids[KILL_AT - 1]), 2)  # the one whose 250 never went out


def _submit_burst(server: MailServer, count: int) -> None:
    ctx = ssl.create_default_context(cafile=server.cafile)
    ctx.check_hostname = False
    with smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=30) as smtp:
        smtp.starttls(context=ctx)
        smtp.login("alice@a.test", "alice-password-1")
        for n in range(count):
            raw = f"From: alice@a.test\r\nSubject: {n}\r\nMessage-ID: <s{n}@a.test>\r\n\r\nbody\r\n"
            smtp.sendmail("alice@a.test", [f"u{n}@b.test"], raw.encode())


class ServerCrashTests(unittest.TestCase):
    """The same with the real server: ``twistd -n mailsuite`` killed with SIGKILL."""

    timeout = 120

    def setUp(self) -> None:
        self.port = free_loopback_port(["127.0.0.2"])
        zone = TestZone()
        zone.add_mx("b.test", [(10, "mx.b.test")])
        zone.add_a("mx.b.test", "127.0.0.2")
        self.dns = DNSServer(zone)
        self.dns.start(reactor)
        self.directory = Path(self.mktemp()).absolute()
        self.servers: list[MailServer] = []
        self.listening = None

    async def _teardown(self) -> None:
        await threads.deferToThread(lambda: [s.stop() for s in self.servers])
        if self.listening is not None:
            await self.listening.stopListening()
        await self.dns.stop()

    def tearDown(self) -> defer.Deferred:
        return defer.Deferred.fromCoroutine(self._teardown())

    def server(self) -> MailServer:
        extra = (
            f'[relay]\nnameservers = ["{self.dns.nameserver}"]\nport = {self.port}\n'
            "retry_initial = 0.5\nretry_max = 1.0\nmax_per_destination = 1\n"
        )
        server = MailServer(self.directory, extra, hostname="mail.a.test", domains=("a.test",))
        self.servers.append(server)
        return server

    @defer.inlineCallbacks
    def test_sigkill_of_the_server_mid_burst(self):
        first = self.server()
        yield threads.deferToThread(first.start)
        yield threads.deferToThread(first.add_user, "alice@a.test", "alice-password-1")
        # Nobody listens yet: every message is accepted and deferred, then all go at once.
        yield threads.deferToThread(_submit_burst, first, COUNT)

        def kill_mid_burst(count: int) -> None:
            if count == KILL_AT:  # before our 250 goes out: this message is in flight
                first.process.kill()

        receiver = Receiver(on_message=kill_mid_burst)
        self.listening = reactor.listenTCP(self.port, receiver.factory(), interface="127.0.0.2")
        yield receiver.wait(KILL_AT)
        code = yield threads.deferToThread(first.process.wait, 30)
        self.assertEqual(code, -signal.SIGKILL)

        second = self.server()
        yield threads.deferToThread(second.start)
        yield receiver.wait(COUNT + 1)
        ids = [email.message_from_bytes(body)["Message-ID"] for _, _, body in receiver.messages]
        self.assertEqual(len(set(ids)), COUNT)
        self.assertEqual(len(ids), COUNT + 1)
        self.assertEqual(ids.count(ids[KILL_AT - 1]), 2)  # the one whose 250 never went out

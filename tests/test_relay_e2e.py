"""End to end with real sockets: the runner delivers through MX records served by a real DNS
server on loopback to scripted SMTP receivers on 127.0.0.2, 127.0.0.3, ... (one port for all,
as ``[relay] port`` sets it), and through a smarthost with STARTTLS and AUTH."""

from __future__ import annotations

import base64
import email
import email.policy
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from twisted.internet import defer, reactor
from twisted.internet.protocol import Factory
from twisted.protocols.basic import LineReceiver
from twisted.trial import unittest

sys.path.insert(0, str(Path(__file__).parent))
from dnsserver import DNSServer, TestZone, free_loopback_port

from mailsuite.interfaces import SpoolEnvelope, SpoolRecipient
from mailsuite.relay.agent import Outcome
from mailsuite.relay.remote import RemoteAgent
from mailsuite.relay.routing import Router, make_resolver
from mailsuite.relay.runner import QueueRunner
from mailsuite.relay.settings import RelaySettings
from mailsuite.relay.spool import DELIVERED, PENDING, Spool

ACCEPT_RCPT = b"250 2.1.5 ok"
REJECT_RCPT = b"550 5.1.1 no such user"
QUEUED = b"250 2.0.0 queued"
TRY_LATER = b"451 4.3.0 try again later"
REJECT_DATA = b"554 5.7.1 message refused"

ADDRESSES = {
    "mx.good.test": "127.0.0.2",
    "mx.flaky.test": "127.0.0.3",
    "mx.refuse.test": "127.0.0.4",
    "mx.silent.test": "127.0.0.5",
    "mx.picky.test": "127.0.0.6",
    "mx.cutoff.test": "127.0.0.7",
    "smarthost.test": "127.0.0.8",
}


def message(n: int = 0, sender: str = "alice@a.test") -> bytes:
    return (
        f"From: {sender}\r\nTo: someone\r\nSubject: test {n}\r\nMessage-ID: <m{n}@a.test>\r\n\r\n"
        f".a line with a leading dot\r\nmessage number {n}\r\n"
    ).encode()


class Receiver:
    """A scripted SMTP server and what it received."""

    def __init__(
        self,
        *,
        answer: bool = True,
        rcpt: Callable[[str], bytes] = lambda a: ACCEPT_RCPT,
        data: list[bytes] | None = None,
        close_mid_data: int = 0,
        tls: Any = None,
        auth: tuple[str, str] | None = None,
        on_message: Callable[[int], None] | None = None,
    ) -> None:
        self.answer = answer
        self.rcpt = rcpt
        self.data = data or [QUEUED]
        self.close_mid_data = close_mid_data  # close during DATA this many times
        self.tls = tls
        self.auth = auth
        self.on_message = on_message
        self.messages: list[tuple[str, list[str], bytes]] = []
        self.sessions = 0
        self.active = 0
        self.most_active = 0
        self.broken_tls = False  # answer STARTTLS with 220, then drop the connection
        self.greeting_name = b"receiver.test"
        self.tls_sessions = 0
        self.logins: list[tuple[str, str]] = []
        self._waiters: list[tuple[int, defer.Deferred]] = []

    def wait(self, count: int) -> defer.Deferred:
        d: defer.Deferred = defer.Deferred()
        self._waiters.append((count, d))
        self._check()
        return d

    def _check(self) -> None:
        for count, d in list(self._waiters):
            if len(self.messages) >= count:
                self._waiters.remove((count, d))
                d.callback(None)

    def received(self, sender: str, rcpts: list[str], body: bytes) -> bytes:
        self.messages.append((sender, rcpts, body))
        reply = self.data.pop(0) if len(self.data) > 1 else self.data[0]
        if self.on_message:
            self.on_message(len(self.messages))
        reactor.callLater(0, self._check)
        return reply

    def factory(self) -> Factory:
        return Factory.forProtocol(lambda: ReceiverProtocol(self))


class ReceiverProtocol(LineReceiver):
    MAX_LENGTH = 100_000

    def __init__(self, receiver: Receiver) -> None:
        self.r = receiver
        self.sender: str | None = None
        self.rcpts: list[str] = []
        self.lines: list[bytes] | None = None
        self.authed = False
        self.dead = False

    def connectionMade(self) -> None:
        self.r.sessions += 1
        self.r.active += 1
        self.r.most_active = max(self.r.most_active, self.r.active)
        if self.r.answer:
            self.sendLine(b"220 " + self.r.greeting_name + b" ESMTP")

    def connectionLost(self, reason: Any = None) -> None:
        self.r.active -= 1

    def lineReceived(self, line: bytes) -> None:
        if self.dead:
            return
        if self.lines is not None:
            return self._data_line(line)
        verb = line.split(b" ", 1)[0].upper()
        arg = line[len(verb) + 1 :]
        if verb == b"EHLO":
            caps = [b"receiver.test", b"PIPELINING", b"8BITMIME", b"SIZE 10000000"]
            if self.r.tls is not None and not self.transport.TLS:
                caps.append(b"STARTTLS")
            if self.r.auth:
                caps.append(b"AUTH PLAIN")
            self.sendLine(b"\r\n".join(b"250-" + c for c in caps[:-1]) + b"\r\n250 " + caps[-1])
        elif verb == b"STARTTLS":
            self.sendLine(b"220 2.0.0 go ahead")
            if self.r.broken_tls:
                self.dead = True
                self.transport.loseConnection()
                return
            self.transport.startTLS(self.r.tls)
            self.r.tls_sessions += 1
        elif verb == b"AUTH":
            _, _, token = arg.partition(b" ")
            _, user, password = base64.b64decode(token).split(b"\0")
            self.r.logins.append((user.decode(), password.decode()))
            self.authed = (user.decode(), password.decode()) == self.r.auth
            self.sendLine(b"235 2.7.0 ok" if self.authed else b"535 5.7.8 bad credentials")
        elif verb == b"MAIL":
            if self.r.auth and not self.authed:
                self.sendLine(b"530 5.7.0 authentication required")
                return
            self.sender = arg.split(b"<", 1)[1].split(b">", 1)[0].decode()
            self.rcpts = []
            self.sendLine(b"250 2.1.0 ok")
        elif verb == b"RCPT":
            address = arg.split(b"<", 1)[1].split(b">", 1)[0].decode()
            reply = self.r.rcpt(address)
            if reply.startswith(b"2"):
                self.rcpts.append(address)
            self.sendLine(reply)
        elif verb == b"DATA":
            if not self.rcpts:
                self.sendLine(b"554 5.5.1 no valid recipients")
                return
            self.lines = []
            self.sendLine(b"354 go ahead")
        elif verb == b"RSET":
            self.sender, self.rcpts = None, []
            self.sendLine(b"250 2.0.0 ok")
        elif verb == b"QUIT":
            self.sendLine(b"221 2.0.0 bye")
            self.transport.loseConnection()
        else:
            self.sendLine(b"502 5.5.2 unknown command")

    def _data_line(self, line: bytes) -> None:
        assert self.lines is not None
        if self.r.close_mid_data > 0:
            self.r.close_mid_data -= 1
            self.dead = True
            self.transport.abortConnection()
            return
        if line == b".":
            body = b"".join(x + b"\r\n" for x in self.lines)
            self.lines = None
            self.sendLine(self.r.received(self.sender or "", self.rcpts, body))
            return
        self.lines.append(line[1:] if line.startswith(b".") else line)


class LocalSink:
    """Stands in for local delivery: keeps what it gets (bounces to alice@a.test)."""

    def __init__(self) -> None:
        self.messages: list[tuple[str, bytes]] = []
        self._waiters: list[defer.Deferred] = []

    def wait(self) -> defer.Deferred:
        d: defer.Deferred = defer.Deferred()
        if self.messages:
            d.callback(None)
        else:
            self._waiters.append(d)
        return d

    def deliver(self, job):
        out = {}
        for r in job.recipients:
            self.messages.append((r.address, job.message))
            out[r.address] = Outcome.done("250 delivered", action="delivered")
        waiting, self._waiters = self._waiters, []
        for d in waiting:
            reactor.callLater(0, d.callback, None)
        return defer.succeed(out)

    def parsed(self, index: int = 0) -> email.message.EmailMessage:
        return email.message_from_bytes(self.messages[index][1], policy=email.policy.default)


class RecordingLog:
    def __init__(self) -> None:
        self.lines: list[tuple[str, dict]] = []

    def log(self, event: str, **fields: Any) -> None:
        self.lines.append((event, fields))


class RelayEndToEnd(unittest.TestCase):
    """Receivers for several domains, a DNS server naming them, a runner over a real spool."""

    timeout = 30

    def setUp(self) -> None:
        self.port = free_loopback_port(list(ADDRESSES.values()))
        self.zone = TestZone()
        for host, address in ADDRESSES.items():
            domain = host.split(".", 1)[1]
            if host != "smarthost.test":
                self.zone.add_mx(domain, [(10, host)])
            self.zone.add_a(host, address)
        self.dns = DNSServer(self.zone)
        self.dns.start(reactor)
        self.listening: list[Any] = []
        self.spool_dir = self.mktemp()
        self.local = LocalSink()
        self.maillog = RecordingLog()
        self.runners: list[QueueRunner] = []

    async def _teardown(self) -> None:
        for runner in self.runners:
            await runner.stop()
        for spool in {r.spool for r in self.runners}:
            await spool.flush_writes()
        for port in self.listening:
            await port.stopListening()
        await self.dns.stop()

    def tearDown(self) -> defer.Deferred:
        return defer.Deferred.fromCoroutine(self._teardown())

    def serve(self, host: str, receiver: Receiver) -> Receiver:
        port = reactor.listenTCP(self.port, receiver.factory(), interface=ADDRESSES[host])
        self.listening.append(port)
        return receiver

    def settings(self, **kw: Any) -> RelaySettings:
        values = {
            "port": self.port,
            "nameservers": [self.dns.nameserver],
            "dns_timeouts": [1.0],
            "retry_initial": 0.05,
            "retry_max": 0.2,
            "connect_timeout": 5.0,
            "greeting_timeout": 5.0,
            "command_timeout": 5.0,
        }
        values.update(kw)
        return RelaySettings(**values)

    def start_runner(self, settings: RelaySettings | None = None, start: bool = True) -> QueueRunner:
        settings = settings or self.settings()
        spool = Spool(self.spool_dir, reactor, reactor)
        spool.load()
        router = Router(settings, make_resolver(settings, reactor), "mail.a.test")
        remote = RemoteAgent(router, settings, reactor, reactor, "mail.a.test", self.maillog)
        runner = QueueRunner(
            spool, local_agent=self.local, remote_agent=remote,
            is_local=lambda d: d == "a.test", clock=reactor, settings=settings,
            hostname="mail.a.test", maillog=self.maillog,
        )
        if start:
            runner.start()
        self.runners.append(runner)
        return runner

    def enqueue(self, runner: QueueRunner, *rcpts: str, n: int = 0, sender: str = "alice@a.test"):
        env = SpoolEnvelope(sender=sender, recipients=tuple(SpoolRecipient(r) for r in rcpts))
        return runner.spool.enqueue(env, message(n, sender))

    # --- the happy path ------------------------------------------------------------

    @defer.inlineCallbacks
    def test_recipients_of_one_domain_share_one_transaction(self):
        good = self.serve("mx.good.test", Receiver())
        runner = self.start_runner()
        yield self.enqueue(runner, "bob@good.test", "carol@good.test")
        yield good.wait(1)
        yield runner.wait_idle()
        [(sender, rcpts, body)] = good.messages
        self.assertEqual((sender, rcpts), ("alice@a.test", ["bob@good.test", "carol@good.test"]))
        self.assertIn(b"\r\n.a line with a leading dot\r\n", body)
        self.assertEqual(runner.spool.items, {})

    @defer.inlineCallbacks
    def test_unreachable_primary_mx_falls_back_to_the_next(self):
        self.zone.add_mx("twomx.test", [(10, "down.twomx.test"), (20, "mx.good.test")])
        self.zone.add_a("down.twomx.test", "127.0.0.9")  # nothing listens there
        good = self.serve("mx.good.test", Receiver())
        runner = self.start_runner()
        yield self.enqueue(runner, "bob@twomx.test")
        yield good.wait(1)
        self.assertEqual(good.messages[0][1], ["bob@twomx.test"])

    @defer.inlineCallbacks
    def test_connection_is_reused_for_the_next_message(self):
        good = self.serve("mx.good.test", Receiver())
        runner = self.start_runner(self.settings(max_per_destination=1))
        for n in range(5):
            yield self.enqueue(runner, "bob@good.test", n=n)
        yield good.wait(5)
        self.assertEqual(good.sessions, 1)

    @defer.inlineCallbacks
    def test_opportunistic_tls_is_used_and_logged(self):
        from mailsuite.tls import ensure_certificate, load_options

        cert, key = ensure_certificate(Path(self.mktemp()), "mx.good.test")
        good = self.serve("mx.good.test", Receiver(tls=load_options(cert, key)))
        runner = self.start_runner()
        yield self.enqueue(runner, "bob@good.test")
        yield good.wait(1)
        yield runner.wait_idle()
        self.assertEqual(good.tls_sessions, 1)
        [line] = [f for e, f in self.maillog.lines if e == "relay"]
        self.assertTrue(line["tls"].startswith("TLSv1."), line["tls"])
        self.assertEqual((line["host"], line["address"]), ("mx.good.test", "127.0.0.2"))
        self.assertIn("250 2.0.0 queued", line["reply"])

    @defer.inlineCallbacks
    def test_per_destination_connection_limit(self):
        good = self.serve("mx.good.test", Receiver())
        runner = self.start_runner(self.settings(max_per_destination=2), start=False)
        yield defer.gatherResults([self.enqueue(runner, f"u{n}@good.test", n=n) for n in range(12)])
        runner.start()  # twelve messages due at once for one destination
        yield good.wait(12)
        self.assertEqual(good.most_active, 2)

    @defer.inlineCallbacks
    def test_idle_connection_yields_its_slot_to_another_destination(self):
        # One connection in all, kept open for a minute when idle: the second domain must
        # not wait for that minute (the test would time out).
        good = self.serve("mx.good.test", Receiver())
        flaky = self.serve("mx.flaky.test", Receiver())
        runner = self.start_runner(self.settings(max_connections=1, connection_cache_time=60.0))
        yield self.enqueue(runner, "bob@good.test")
        yield good.wait(1)
        yield self.enqueue(runner, "bob@flaky.test", n=1)
        yield flaky.wait(1)
        self.assertEqual(good.most_active + flaky.most_active, 2)

    @defer.inlineCallbacks
    def test_failed_opportunistic_tls_falls_back_to_plaintext(self):
        from mailsuite.tls import ensure_certificate, load_options

        cert, key = ensure_certificate(Path(self.mktemp()), "mx.good.test")
        receiver = Receiver(tls=load_options(cert, key))
        receiver.broken_tls = True
        good = self.serve("mx.good.test", receiver)
        runner = self.start_runner()
        yield self.enqueue(runner, "bob@good.test")
        yield good.wait(1)
        self.assertEqual(good.sessions, 2)
        yield runner.wait_idle()
        [line] = [f for e, f in self.maillog.lines if e == "relay"]
        self.assertEqual(line["tls"], "")

    # --- faults --------------------------------------------------------------------

    @defer.inlineCallbacks
    def test_temporary_failure_is_retried_until_accepted(self):
        flaky = self.serve("mx.flaky.test", Receiver(data=[TRY_LATER, QUEUED]))
        runner = self.start_runner()
        yield self.enqueue(runner, "bob@flaky.test")
        yield flaky.wait(2)
        yield runner.wait_idle()
        self.assertEqual(runner.spool.items, {})
        results = [f["result"] for e, f in self.maillog.lines if e == "relay"]
        self.assertEqual(results, ["transient", "done"])

    @defer.inlineCallbacks
    def test_permanent_failure_bounces_to_the_local_sender(self):
        self.serve("mx.refuse.test", Receiver(data=[REJECT_DATA]))
        runner = self.start_runner()
        yield self.enqueue(runner, "bob@refuse.test")
        yield self.local.wait()
        bounce = self.local.parsed()
        self.assertEqual(self.local.messages[0][0], "alice@a.test")
        status = bounce.get_payload()[1].get_payload()[1]
        self.assertEqual((status["Action"], status["Status"]), ("failed", "5.7.1"))
        self.assertIn("554 5.7.1 message refused", status["Diagnostic-Code"])
        self.assertEqual(status["Remote-MTA"], "dns; mx.refuse.test")

    @defer.inlineCallbacks
    def test_server_that_never_answers_times_out_and_stays_queued(self):
        silent = self.serve("mx.silent.test", Receiver(answer=False))
        runner = self.start_runner(self.settings(greeting_timeout=0.3, retry_initial=3600,
                                                 retry_max=3600))
        queue_id = yield self.enqueue(runner, "bob@silent.test")
        yield runner.wait_idle()
        item = runner.spool.items[queue_id]
        self.assertEqual(item.recipients[0].state, PENDING)
        self.assertIn("timed out", item.recipients[0].reply)
        self.assertEqual(silent.sessions, 1)

    @defer.inlineCallbacks
    def test_unreachable_destination_is_suspended_until_flush(self):
        silent = self.serve("mx.silent.test", Receiver(answer=False))
        runner = self.start_runner(self.settings(greeting_timeout=0.3, retry_initial=3600,
                                                 retry_max=3600))
        yield self.enqueue(runner, "bob@silent.test")
        yield runner.wait_idle()
        second = yield self.enqueue(runner, "carol@silent.test", n=1)
        yield runner.wait_idle()
        self.assertEqual(silent.sessions, 1)  # no second wait for the same timeout
        reply = runner.spool.items[second].recipients[0].reply
        self.assertIn("delivery temporarily suspended", reply)
        runner.flush()
        yield runner.wait_idle()
        self.assertEqual(silent.sessions, 2)

    @defer.inlineCallbacks
    def test_some_recipients_accepted_others_rejected(self):
        picky = self.serve("mx.picky.test", Receiver(
            rcpt=lambda a: ACCEPT_RCPT if a.startswith("bob") else REJECT_RCPT))
        runner = self.start_runner()
        yield self.enqueue(runner, "bob@picky.test", "nobody@picky.test")
        yield picky.wait(1)
        yield self.local.wait()
        self.assertEqual(picky.messages[0][1], ["bob@picky.test"])
        status = self.local.parsed().get_payload()[1].get_payload()
        self.assertEqual([g["Final-Recipient"] for g in status[1:]], ["rfc822; nobody@picky.test"])
        self.assertEqual(status[1]["Status"], "5.1.1")

    @defer.inlineCallbacks
    def test_close_mid_data_is_retried_and_delivered_once(self):
        cutoff = self.serve("mx.cutoff.test", Receiver(close_mid_data=1))
        runner = self.start_runner()
        yield self.enqueue(runner, "bob@cutoff.test")
        yield cutoff.wait(1)
        yield runner.wait_idle()
        self.assertEqual(len(cutoff.messages), 1)
        self.assertEqual(cutoff.sessions, 2)
        self.assertEqual(runner.spool.items, {})

    @defer.inlineCallbacks
    def test_mx_that_greets_with_our_own_name_is_a_loop_and_bounces(self):
        receiver = Receiver()
        receiver.greeting_name = b"mail.a.test"  # our hostname: the MX is ourselves
        self.serve("mx.good.test", receiver)
        runner = self.start_runner()
        yield self.enqueue(runner, "bob@good.test")
        yield self.local.wait()
        status = self.local.parsed().get_payload()[1].get_payload()[1]
        self.assertEqual(status["Status"], "5.4.6")
        self.assertEqual(receiver.messages, [])

    @defer.inlineCallbacks
    def test_nxdomain_bounces(self):
        runner = self.start_runner()
        yield self.enqueue(runner, "bob@nowhere.test")
        yield self.local.wait()
        status = self.local.parsed().get_payload()[1].get_payload()[1]
        self.assertEqual(status["Status"], "5.1.2")

    @defer.inlineCallbacks
    def test_dns_servfail_is_retried(self):
        self.zone.servfail("broken.test")
        runner = self.start_runner(self.settings(retry_initial=3600, retry_max=3600))
        queue_id = yield self.enqueue(runner, "bob@broken.test")
        yield runner.wait_idle()
        item = runner.spool.items[queue_id]
        self.assertEqual((item.recipients[0].state, item.recipients[0].status), (PENDING, "4.4.3"))

    # --- restart -------------------------------------------------------------------

    @defer.inlineCallbacks
    def test_restart_mid_burst_delivers_each_message_once(self):
        stop_after = 4
        first: list[QueueRunner] = []
        stopped: list[defer.Deferred] = []

        def stop_mid_burst(count: int) -> None:
            if count == stop_after:
                stopped.append(first[0].stop())

        good = self.serve("mx.good.test", Receiver(on_message=stop_mid_burst))
        first.append(self.start_runner(self.settings(max_per_destination=1)))
        for n in range(12):
            yield self.enqueue(first[0], f"user{n}@good.test", n=n)
        yield good.wait(stop_after)
        yield stopped[0]
        yield first[0].spool.flush_writes()
        second = self.start_runner(self.settings(max_per_destination=1))
        yield good.wait(12)
        yield second.wait_idle()
        ids = [email.message_from_bytes(b)["Message-ID"] for _, _, b in good.messages]
        # The transaction in flight at the stop was allowed to finish: nothing went twice.
        self.assertEqual(sorted(ids), sorted(set(ids)))
        self.assertEqual(len(ids), 12)
        self.assertEqual(second.spool.items, {})

    # --- smarthost -----------------------------------------------------------------

    def smarthost(self, cafile_host: str = "smarthost.test") -> tuple[Receiver, RelaySettings]:
        from mailsuite.tls import ensure_certificate, load_options

        cert, key = ensure_certificate(Path(self.mktemp()), "smarthost.test")
        receiver = self.serve("smarthost.test", Receiver(tls=load_options(cert, key),
                                                         auth=("relayuser", "s3cret")))
        ca = cert
        if cafile_host != "smarthost.test":
            ca, _ = ensure_certificate(Path(self.mktemp()), cafile_host)
        settings = self.settings(
            smarthost=f"smarthost.test:{self.port}", smarthost_user="relayuser",
            smarthost_password="s3cret", smarthost_cafile=str(ca),
            retry_initial=3600, retry_max=3600,
        )
        return receiver, settings

    @defer.inlineCallbacks
    def test_smarthost_gets_everything_over_verified_tls_with_auth(self):
        receiver, settings = self.smarthost()
        runner = self.start_runner(settings)
        yield self.enqueue(runner, "bob@good.test", "x@elsewhere.example")
        yield receiver.wait(2)
        self.assertEqual(receiver.logins, [("relayuser", "s3cret")])
        self.assertEqual(receiver.tls_sessions, 1)
        self.assertEqual(sorted(r for _, rs, _ in receiver.messages for r in rs),
                         ["bob@good.test", "x@elsewhere.example"])

    @defer.inlineCallbacks
    def test_smarthost_with_implicit_tls(self):
        from mailsuite.tls import ensure_certificate, load_options

        cert, key = ensure_certificate(Path(self.mktemp()), "smarthost.test")
        receiver = Receiver(auth=("relayuser", "s3cret"))
        self.listening.append(reactor.listenSSL(self.port, receiver.factory(),
                                                load_options(cert, key),
                                                interface=ADDRESSES["smarthost.test"]))
        settings = self.settings(
            smarthost=f"smarthost.test:{self.port}", smarthost_implicit_tls=True,
            smarthost_user="relayuser", smarthost_password="s3cret", smarthost_cafile=str(cert),
        )
        runner = self.start_runner(settings)
        yield self.enqueue(runner, "bob@good.test")
        yield receiver.wait(1)
        yield runner.wait_idle()
        self.assertEqual(receiver.logins, [("relayuser", "s3cret")])
        [line] = [f for e, f in self.maillog.lines if e == "relay"]
        self.assertTrue(line["tls"].startswith("TLSv1."), line["tls"])

    @defer.inlineCallbacks
    def test_smarthost_with_untrusted_certificate_is_not_used(self):
        receiver, settings = self.smarthost(cafile_host="other.test")
        runner = self.start_runner(settings)
        queue_id = yield self.enqueue(runner, "bob@good.test")
        yield runner.wait_idle()
        self.assertEqual(receiver.messages, [])
        self.assertEqual(receiver.logins, [])
        self.assertEqual(runner.spool.items[queue_id].recipients[0].state, PENDING)


del DELIVERED

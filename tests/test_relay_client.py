"""The ESMTP client over a string transport with a fake clock: dialogue, per-recipient results,
pipelining, faults (garbage, stalls, closes mid-DATA), dot-stuffing."""

from __future__ import annotations

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import defer, task
from twisted.internet.error import ConnectionLost
from twisted.internet.testing import StringTransport
from twisted.python.failure import Failure
from twisted.trial import unittest

from mailsuite.relay.agent import Result
from mailsuite.relay.client import SessionFailed, SMTPClientProtocol, SMTPSession, to_wire, xtext
from mailsuite.relay.settings import RelaySettings
from mailsuite.relay.spool import QueueItem, RecipientState

GREETING = b"220 mx.b.test ESMTP ready\r\n"
EHLO_PIPELINING = b"250-mx.b.test\r\n250-PIPELINING\r\n250-SIZE 1000\r\n250-8BITMIME\r\n250 DSN\r\n"
EHLO_PLAIN = b"250-mx.b.test\r\n250 SIZE 1000\r\n"
OK_SENDER = b"250 2.1.0 sender ok\r\n"
OK_RCPT = b"250 2.1.5 recipient ok\r\n"
NO_USER = b"550 5.1.1 no such user\r\n"
GO_AHEAD = b"354 go ahead\r\n"
QUEUED = b"250 2.0.0 queued as 42\r\n"
MESSAGE = b"Subject: x\r\n\r\n.leading dot\r\nbody\r\n"


class FillingTransport(StringTransport):
    """A string transport whose send buffer can be declared full (the peer stopped reading):
    then every write pauses the registered producer, as a TCP transport does."""

    full = False

    def write(self, data: bytes) -> None:
        super().write(data)
        if self.full and self.producer is not None:
            self.producer.pauseProducing()


def item(*rcpts: str, **kw) -> QueueItem:
    return QueueItem(id="q1", sender="alice@a.test",
                     recipients=[RecipientState(r) for r in rcpts], created=0.0, next_attempt=0.0,
                     **kw)


class ClientTests(unittest.TestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.settings = RelaySettings(greeting_timeout=30, command_timeout=30)
        self.protocol = SMTPClientProtocol(self.clock)
        self.transport = FillingTransport()
        self.protocol.makeConnection(self.transport)
        self.session = SMTPSession(self.protocol, host_name="mx.b.test", address="127.0.0.2",
                                   settings=self.settings, hostname="mail.a.test")

    def start(self, ehlo: bytes = EHLO_PIPELINING) -> None:
        d = defer.Deferred.fromCoroutine(
            self.session.start(tls_options=None, require_tls=False, auth=None, check_loop=True))
        self.protocol.dataReceived(GREETING)
        self.protocol.dataReceived(ehlo)
        self.successResultOf(d)
        self.transport.clear()

    def send(self, it: QueueItem) -> defer.Deferred:
        return defer.Deferred.fromCoroutine(
            self.session.send(it, tuple(it.recipients), MESSAGE))

    def test_ehlo_capabilities_are_parsed(self):
        self.start()
        self.assertIn("PIPELINING", self.session.capabilities)
        self.assertEqual(self.session.capabilities["SIZE"], "1000")

    def test_pipelined_transaction_is_one_write(self):
        self.start()
        self.send(item("bob@b.test", "carol@b.test"))
        self.assertEqual(
            self.transport.value(),
            b"MAIL FROM:<alice@a.test> SIZE=38\r\nRCPT TO:<bob@b.test>\r\n"
            b"RCPT TO:<carol@b.test>\r\nDATA\r\n",
        )

    def test_per_recipient_results(self):
        self.start()
        d = self.send(item("bob@b.test", "carol@b.test"))
        self.protocol.dataReceived(OK_SENDER + OK_RCPT + NO_USER + GO_AHEAD)
        self.protocol.dataReceived(QUEUED)
        outcomes = self.successResultOf(d)
        self.assertEqual(outcomes["bob@b.test"].result, Result.DONE)
        self.assertEqual(outcomes["carol@b.test"].result, Result.PERMANENT)
        self.assertEqual(outcomes["carol@b.test"].status, "5.1.1")
        self.assertIn("in reply to RCPT TO", outcomes["carol@b.test"].reply)

    def test_message_is_dot_stuffed(self):
        self.start()
        self.send(item("bob@b.test"))
        self.transport.clear()
        self.protocol.dataReceived(OK_SENDER + OK_RCPT + GO_AHEAD)
        self.assertEqual(self.transport.value(), b"Subject: x\r\n\r\n..leading dot\r\nbody\r\n.\r\n")

    def test_temporary_data_reply_is_transient(self):
        self.start()
        d = self.send(item("bob@b.test"))
        self.protocol.dataReceived(OK_SENDER + OK_RCPT + GO_AHEAD + b"451 4.3.0 try later\r\n")
        self.assertEqual(self.successResultOf(d)["bob@b.test"].result, Result.TRANSIENT)

    def test_no_accepted_recipient_sends_an_empty_data(self):
        self.start()
        d = self.send(item("bob@b.test"))
        self.transport.clear()
        self.protocol.dataReceived(OK_SENDER + NO_USER + GO_AHEAD)
        self.assertEqual(self.transport.value(), b".\r\n")
        self.protocol.dataReceived(b"554 5.5.1 no valid recipients\r\n")
        self.assertEqual(self.successResultOf(d)["bob@b.test"].result, Result.PERMANENT)

    def test_sender_rejected_fails_every_recipient(self):
        self.start()
        d = self.send(item("bob@b.test", "carol@b.test"))
        self.protocol.dataReceived(b"553 5.7.1 sender refused\r\n" + b"503 5.5.1 no\r\n" * 3)
        outcomes = self.successResultOf(d)
        self.assertEqual({o.status for o in outcomes.values()}, {"5.7.1"})

    def test_without_pipelining_commands_go_one_by_one(self):
        self.start(EHLO_PLAIN)
        d = self.send(item("bob@b.test"))
        self.assertEqual(self.transport.value(), b"MAIL FROM:<alice@a.test> SIZE=38\r\n")
        self.protocol.dataReceived(OK_SENDER)
        self.protocol.dataReceived(OK_RCPT)
        self.protocol.dataReceived(GO_AHEAD)
        self.protocol.dataReceived(QUEUED)
        self.assertEqual(self.successResultOf(d)["bob@b.test"].result, Result.DONE)

    def test_garbage_reply_is_transient(self):
        self.start()
        d = self.send(item("bob@b.test"))
        self.protocol.dataReceived(b"hello there, I am not SMTP\r\n")
        outcome = self.successResultOf(d)["bob@b.test"]
        self.assertEqual(outcome.result, Result.TRANSIENT)
        self.assertIn("garbage", outcome.reply)

    def test_stalled_server_times_out_transiently(self):
        self.start()
        d = self.send(item("bob@b.test"))
        self.clock.advance(self.settings.command_timeout)
        outcome = self.successResultOf(d)["bob@b.test"]
        self.assertEqual(outcome.result, Result.TRANSIENT)
        self.assertIn("timed out", outcome.reply)

    def test_close_mid_data_is_transient_and_keeps_rcpt_rejections(self):
        self.start()
        d = self.send(item("bob@b.test", "carol@b.test"))
        self.protocol.dataReceived(OK_SENDER + OK_RCPT + NO_USER + GO_AHEAD)
        self.protocol.connectionLost(Failure(ConnectionLost("gone")))
        outcomes = self.successResultOf(d)
        self.assertEqual(outcomes["bob@b.test"].result, Result.TRANSIENT)
        self.assertEqual(outcomes["carol@b.test"].result, Result.PERMANENT)

    def test_smtputf8_required_but_not_offered_is_permanent(self):
        self.start()
        d = self.send(item("bøb@b.test"))
        outcome = self.successResultOf(d)["bøb@b.test"]
        self.assertEqual((outcome.result, outcome.status), (Result.PERMANENT, "5.6.7"))
        self.assertEqual(self.transport.value(), b"")

    def test_message_larger_than_size_is_permanent(self):
        self.start(b"250-mx.b.test\r\n250 SIZE 10\r\n")
        outcome = self.successResultOf(self.send(item("bob@b.test")))["bob@b.test"]
        self.assertEqual((outcome.result, outcome.status), (Result.PERMANENT, "5.3.4"))

    def test_8bit_body_announced_when_offered(self):
        self.start()
        self.send(item("bob@b.test", body_8bit=True))
        self.assertIn(b"BODY=8BITMIME", self.transport.value())

    def test_dsn_parameters_passed_when_offered(self):
        self.start()
        it = item("bob@b.test", ret="HDRS", envid="x y")
        it.recipients[0].notify = ["FAILURE"]
        it.recipients[0].orcpt = "rfc822;bob@b.test"
        self.send(it)
        sent = self.transport.value()
        self.assertIn(b"RET=HDRS ENVID=x+20y", sent)
        self.assertIn(b"RCPT TO:<bob@b.test> NOTIFY=FAILURE ORCPT=rfc822;bob@b.test", sent)

    def test_helo_fallback_when_ehlo_is_refused(self):
        d = defer.Deferred.fromCoroutine(
            self.session.start(tls_options=None, require_tls=False, auth=None, check_loop=True))
        self.protocol.dataReceived(GREETING + b"502 5.5.2 what\r\n")
        self.assertIn(b"HELO mail.a.test\r\n", self.transport.value())
        self.protocol.dataReceived(b"250 mx.b.test\r\n")
        self.successResultOf(d)
        self.assertEqual(self.session.capabilities, {})

    def test_greeting_with_our_own_name_is_a_loop(self):
        d = defer.Deferred.fromCoroutine(
            self.session.start(tls_options=None, require_tls=False, auth=None, check_loop=True))
        self.protocol.dataReceived(b"220 mail.a.test ESMTP\r\n")
        self.assertEqual(type(self.failureResultOf(d).value).__name__, "LoopDetected")

    def test_tls_required_but_not_offered_fails(self):
        d = defer.Deferred.fromCoroutine(
            self.session.start(tls_options=object(), require_tls=True, auth=None, check_loop=False))
        self.protocol.dataReceived(GREETING + EHLO_PIPELINING)
        failure = self.failureResultOf(d, SessionFailed)
        self.assertIn("TLS is required", failure.value.text)

    def test_multiline_reply_is_joined(self):
        self.start()
        d = self.send(item("bob@b.test"))
        self.protocol.dataReceived(OK_SENDER + b"550-5.1.1 first\r\n550 5.1.1 second\r\n"
                                   + b"554 no\r\n")
        self.assertIn("first second", self.successResultOf(d)["bob@b.test"].reply)

    def test_reset_before_reuse_after_a_failed_transaction(self):
        self.start()
        d = self.send(item("bob@b.test"))
        self.protocol.dataReceived(OK_SENDER + OK_RCPT + GO_AHEAD + b"451 4.3.0 later\r\n")
        self.successResultOf(d)
        self.transport.clear()
        self.send(item("carol@b.test"))
        self.assertEqual(self.transport.value(), b"RSET\r\n")


    def send_then(self, first: QueueItem, second: QueueItem | None) -> defer.Deferred:
        """Send ``first``; offer ``second`` as the next message when its content goes out."""
        offered = [] if second is None else [(second, tuple(second.recipients), MESSAGE)]
        return defer.Deferred.fromCoroutine(
            self.session.send(first, tuple(first.recipients), MESSAGE,
                              lambda: offered.pop() if offered else None))

    def test_next_envelope_goes_in_the_write_of_the_content(self):
        self.start()
        d = self.send_then(item("bob@b.test"), item("carol@b.test"))
        self.transport.clear()
        self.protocol.dataReceived(OK_SENDER + OK_RCPT + GO_AHEAD)
        self.assertEqual(  # RFC 2920 3.1: content may be the first "command" of a group
            self.transport.value(),
            b"Subject: x\r\n\r\n..leading dot\r\nbody\r\n.\r\n"
            b"MAIL FROM:<alice@a.test> SIZE=38\r\nRCPT TO:<carol@b.test>\r\nDATA\r\n",
        )
        self.protocol.dataReceived(QUEUED + OK_SENDER + OK_RCPT + GO_AHEAD)
        self.assertEqual(self.successResultOf(d)["bob@b.test"].result, Result.DONE)

    def test_announced_message_content_waits_for_its_own_send(self):
        self.start()
        second = item("carol@b.test")
        d = self.send_then(item("bob@b.test"), second)
        self.protocol.dataReceived(OK_SENDER + OK_RCPT + GO_AHEAD + QUEUED)
        self.successResultOf(d)
        self.protocol.dataReceived(OK_SENDER + OK_RCPT + GO_AHEAD)  # for the announced one
        self.transport.clear()
        self.assertEqual(self.transport.value(), b"")  # nothing until the caller says so
        d = self.send(second)
        self.assertEqual(self.transport.value(), b"Subject: x\r\n\r\n..leading dot\r\nbody\r\n.\r\n")
        self.protocol.dataReceived(QUEUED)
        self.assertEqual(self.successResultOf(d)["carol@b.test"].result, Result.DONE)
        self.assertEqual(self.session.transactions, 2)

    def test_no_announcement_without_pipelining_or_beyond_the_connection_limit(self):
        self.settings = RelaySettings(greeting_timeout=30, command_timeout=30,
                                      max_messages_per_connection=1)
        self.session.settings = self.settings
        self.start()
        d = self.send_then(item("bob@b.test"), item("carol@b.test"))
        self.protocol.dataReceived(OK_SENDER + OK_RCPT + GO_AHEAD)
        self.assertNotIn(b"carol", self.transport.value())
        self.protocol.dataReceived(QUEUED)
        self.successResultOf(d)

    def test_announced_message_refused_after_a_failed_end_of_data_is_transient(self):
        self.start()
        second = item("carol@b.test")
        d = self.send_then(item("bob@b.test"), second)
        self.protocol.dataReceived(OK_SENDER + OK_RCPT + GO_AHEAD + b"451 4.3.0 later\r\n")
        self.successResultOf(d)
        self.transport.clear()
        d = self.send(second)
        self.assertEqual(self.transport.value(), b"")  # no RSET: its MAIL is on its way
        self.protocol.dataReceived(b"503 5.5.1 bad sequence\r\n" + b"503 5.5.1 no\r\n" * 2)
        self.assertEqual(self.successResultOf(d)["carol@b.test"].result, Result.TRANSIENT)

    def test_quit_with_an_announced_message_cuts_the_connection(self):
        self.start()
        d = self.send_then(item("bob@b.test"), item("carol@b.test"))
        self.protocol.dataReceived(OK_SENDER + OK_RCPT + GO_AHEAD + QUEUED)
        self.successResultOf(d)
        self.transport.clear()
        self.successResultOf(defer.Deferred.fromCoroutine(self.session.quit()))
        self.assertNotIn(b"QUIT", self.transport.value())  # it would read as message content
        self.assertTrue(self.transport.disconnecting or self.transport.disconnected)

    def test_reused_connection_dead_before_mail_reply_asks_for_a_new_one(self):
        self.start()
        d = self.send(item("bob@b.test"))
        self.protocol.dataReceived(OK_SENDER + OK_RCPT + GO_AHEAD + QUEUED)
        self.successResultOf(d)
        d = self.send(item("carol@b.test"))
        self.protocol.connectionLost(Failure(ConnectionLost("idle timeout")))
        self.failureResultOf(d, SessionFailed)

    def test_first_transaction_dead_before_mail_reply_is_transient(self):
        self.start()
        d = self.send(item("bob@b.test"))
        self.protocol.connectionLost(Failure(ConnectionLost("gone")))
        self.assertEqual(self.successResultOf(d)["bob@b.test"].result, Result.TRANSIENT)


    def test_body_stalled_longer_than_the_block_timeout_is_transient(self):
        self.start(b"250-mx.b.test\r\n250 PIPELINING\r\n")
        big = b"Subject: big\r\n\r\n" + b"x" * 100 + b"\r\n" * 2000 + b"y" * 200_000 + b"\r\n"
        it = item("bob@b.test")
        d = defer.Deferred.fromCoroutine(self.session.send(it, tuple(it.recipients), big))
        self.protocol.dataReceived(OK_SENDER + OK_RCPT)
        self.transport.full = True  # the peer stops reading
        self.protocol.dataReceived(GO_AHEAD)
        self.clock.advance(self.settings.data_block_timeout)
        outcome = self.successResultOf(d)["bob@b.test"]
        self.assertEqual(outcome.result, Result.TRANSIENT)
        self.assertIn("stalled", outcome.reply)

    def test_body_resumes_when_the_peer_reads_again(self):
        self.start(b"250-mx.b.test\r\n250 PIPELINING\r\n")
        big = b"Subject: big\r\n\r\n" + b"y" * 200_000 + b"\r\n"
        it = item("bob@b.test")
        d = defer.Deferred.fromCoroutine(self.session.send(it, tuple(it.recipients), big))
        self.protocol.dataReceived(OK_SENDER + OK_RCPT)
        self.transport.full = True
        self.protocol.dataReceived(GO_AHEAD)
        self.clock.advance(self.settings.data_block_timeout - 1)
        self.assertFalse(self.transport.value().endswith(b"\r\n.\r\n"))
        self.transport.full = False
        self.transport.producer.resumeProducing()
        self.assertTrue(self.transport.value().endswith(b"\r\n.\r\n"))
        self.protocol.dataReceived(QUEUED)
        self.assertEqual(self.successResultOf(d)["bob@b.test"].result, Result.DONE)


class WireTests(unittest.TestCase):
    def test_bare_lf_becomes_crlf(self):
        self.assertEqual(to_wire(b"a\nb\n"), b"a\r\nb\r\n.\r\n")

    def test_missing_final_newline_added(self):
        self.assertEqual(to_wire(b"a"), b"a\r\n.\r\n")

    def test_first_line_dot_is_stuffed(self):
        self.assertEqual(to_wire(b".\r\n"), b"..\r\n.\r\n")

    def test_xtext(self):
        self.assertEqual(xtext("a+b=c d"), "a+2Bb+3Dc+20d")


class WireProperties(unittest.TestCase):
    @given(st.lists(st.binary(max_size=40).map(lambda b: b.replace(b"\r", b"").replace(b"\n", b"")),
                    max_size=30))
    def test_unstuffed_wire_gives_back_the_lines(self, lines):
        message = b"".join(line + b"\r\n" for line in lines)
        wire = to_wire(message)
        self.assertTrue(wire.endswith(b".\r\n"))
        received = wire[:-3].split(b"\r\n")[:-1] if wire[:-3] else []
        self.assertTrue(all(not r.startswith(b".") or r.startswith(b"..") for r in received))
        self.assertEqual([r[1:] if r.startswith(b".") else r for r in received], lines)

    @settings(max_examples=200)
    @given(st.binary(max_size=300))
    def test_any_bytes_from_the_server_end_in_a_reply_or_a_session_failure(self, data):
        clock = task.Clock()
        protocol = SMTPClientProtocol(clock)
        protocol.makeConnection(StringTransport())
        results = []
        d = protocol.expect(10)
        d.addCallbacks(results.append, lambda f: results.append(f.trap(SessionFailed)))
        protocol.dataReceived(data)
        protocol.connectionLost(Failure(ConnectionLost("end")))
        self.assertEqual(len(results), 1)

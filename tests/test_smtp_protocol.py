"""SMTP protocol unit tests over a string transport with a fake clock: verbs and the MX role."""

from __future__ import annotations

from test_smtp_support import (
    ALICE,
    BOB,
    FakeTLSTransport,
    connect,
    has_reply,
    inbox,
    last_reply,
    make_context,
    make_factory,
)
from twisted.internet import defer, error, task
from twisted.internet.address import IPv4Address
from twisted.python.failure import Failure
from twisted.trial import unittest

from mailsuite.errors import TemporaryStoreError
from mailsuite.smtp import replies
from mailsuite.smtp.settings import SmtpSettings

GREETING = "EHLO client.test\r\n"
MESSAGE = "Subject: hello\r\nFrom: <sender@remote.test>\r\n\r\nHello Alice.\r\n"


class MXTestBase(unittest.TestCase):
    settings = SmtpSettings()

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.ctx = make_context(self.clock, self.settings)
        self.factory = make_factory(self.ctx, "mx")
        self.client = connect(self.factory)
        self.client.send(GREETING)

    def transaction(self, rcpt: str = ALICE) -> str:
        return self.client.send(f"MAIL FROM:<sender@remote.test>\r\nRCPT TO:<{rcpt}>\r\nDATA\r\n")


class GreetingTests(MXTestBase):
    def test_greeting_is_220(self) -> None:
        client = connect(self.factory)
        self.assertTrue(client.output().startswith("220 mx.example.test ESMTP"))

    def test_ehlo_advertises_extensions(self) -> None:
        out = self.client.send("EHLO client.test\r\n")
        for ext in ("PIPELINING", "SIZE 52428800", "8BITMIME", "ENHANCEDSTATUSCODES",
                    "STARTTLS", "SMTPUTF8", "CHUNKING", "DSN"):
            self.assertIn(f"250-{ext}\r\n" if ext != "DSN" else "250 DSN\r\n", out)

    def test_mx_never_offers_auth(self) -> None:
        out = self.client.send("EHLO client.test\r\n")
        self.assertNotIn("AUTH", out)

    def test_helo_without_name_is_501(self) -> None:
        self.assertTrue(has_reply(self.client.send("HELO\r\n"), replies.HELO_REQUIRED))

    def test_mail_before_helo_is_503(self) -> None:
        client = connect(self.factory)
        self.assertTrue(has_reply(client.send("MAIL FROM:<a@b.test>\r\n"), replies.NEED_HELO))

    def test_tcp_nodelay_is_set(self) -> None:
        self.assertTrue(self.client.transport.nodelay)

    def test_connect_is_logged(self) -> None:
        self.assertEqual(self.ctx.maillog.of("connect")[0]["client"], "192.0.2.10")

    def test_connect_is_logged_after_the_greeting_is_written(self) -> None:
        address = IPv4Address("TCP", "192.0.2.11", 40001)
        transport = FakeTLSTransport(peerAddress=address)
        written_when_logged: list[bytes] = []
        log = self.ctx.maillog.log
        self.ctx.maillog.log = lambda event, **fields: (  # type: ignore[method-assign]
            written_when_logged.append(transport.value()), log(event, **fields))
        self.factory.buildProtocol(address).makeConnection(transport)
        self.assertEqual(len(written_when_logged), 1)
        self.assertTrue(written_when_logged[0].startswith(b"220 mx.example.test ESMTP"))


class SimpleVerbTests(MXTestBase):
    def test_noop(self) -> None:
        self.assertTrue(has_reply(self.client.send("NOOP\r\n"), replies.NOOP_OK))

    def test_rset_clears_the_transaction(self) -> None:
        self.client.send("MAIL FROM:<a@remote.test>\r\n")
        self.assertTrue(has_reply(self.client.send("RSET\r\n"), replies.RESET_OK))
        self.assertTrue(has_reply(self.client.send(f"RCPT TO:<{ALICE}>\r\n"), replies.NEED_MAIL))

    def test_vrfy_never_reveals_users(self) -> None:
        known = self.client.send(f"VRFY {ALICE}\r\n")
        unknown = self.client.send("VRFY nobody@example.test\r\n")
        self.assertEqual(known, unknown)
        self.assertTrue(has_reply(known, replies.VRFY_CANNOT))

    def test_help(self) -> None:
        self.assertTrue(has_reply(self.client.send("HELP\r\n"), replies.HELP))

    def test_quit_closes(self) -> None:
        out = self.client.send("QUIT\r\n")
        self.assertTrue(has_reply(out, replies.BYE))
        self.assertTrue(self.client.closed)

    def test_expn_not_implemented(self) -> None:
        self.assertTrue(has_reply(self.client.send("EXPN staff\r\n"), replies.NOT_IMPLEMENTED))

    def test_nested_mail_is_503(self) -> None:
        self.client.send("MAIL FROM:<a@remote.test>\r\n")
        self.assertTrue(has_reply(self.client.send("MAIL FROM:<a@remote.test>\r\n"), replies.NESTED_MAIL))

    def test_data_without_recipients_is_554(self) -> None:
        self.client.send("MAIL FROM:<a@remote.test>\r\n")
        self.assertTrue(has_reply(self.client.send("DATA\r\n"), replies.NO_VALID_RECIPIENTS))

    def test_auth_on_mx_is_503(self) -> None:
        self.assertTrue(has_reply(self.client.send("AUTH PLAIN\r\n"), replies.AUTH_NOT_ENABLED))

    def test_unknown_mail_parameter_is_555(self) -> None:
        out = self.client.send("MAIL FROM:<a@remote.test> FOO=BAR\r\n")
        self.assertTrue(has_reply(out, replies.PARAM_NOT_SUPPORTED))


class DeliveryTests(MXTestBase):
    def test_message_is_delivered_with_trace_headers(self) -> None:
        self.assertTrue(has_reply(self.transaction(), replies.START_DATA))
        out = self.client.send(MESSAGE + ".\r\n")
        self.assertRegex(last_reply(out), r"^250 2\.0\.0 Ok: queued as \w+$")
        [raw] = inbox(self.ctx, ALICE)
        self.assertTrue(raw.startswith(b"Return-Path: <sender@remote.test>\r\nDelivered-To: alice@example.test\r\nReceived: from client.test (unknown [192.0.2.10])\r\n"))
        self.assertIn(b"with ESMTP id ", raw)
        self.assertIn(b"for <alice@example.test>;", raw)
        self.assertTrue(raw.endswith(MESSAGE.encode()))

    def test_ipv4_client_of_a_dual_stack_listener_shows_as_ipv4(self) -> None:
        """A tcp6 listener on :: reports IPv4 clients as ::ffff:a.b.c.d; Received, the mail
        log and the checks see the IPv4 address, as Postfix shows it."""
        client = connect(self.factory, ip="::ffff:192.0.2.77")
        client.send(GREETING)
        client.send("MAIL FROM:<sender@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n")
        self.assertRegex(last_reply(client.send(MESSAGE + ".\r\n")), r"^250 ")
        [raw] = inbox(self.ctx, ALICE)
        self.assertIn(b"Received: from client.test (unknown [192.0.2.77])\r\n", raw)
        self.assertEqual([e["client"] for e in self.ctx.maillog.of("connect")][-1], "192.0.2.77")

    def test_dot_stuffing_is_undone(self) -> None:
        self.transaction()
        self.client.send("Subject: dots\r\n\r\n..leading\r\n.\r\n")
        [raw] = inbox(self.ctx, ALICE)
        self.assertTrue(raw.endswith(b"\r\n.leading\r\n"))

    def test_end_of_data_split_over_reads(self) -> None:
        self.transaction()
        for piece in ("Subject: x\r\n\r\nbody\r", "\n.", "\r", "\n"):
            out = self.client.send(piece)
        self.assertTrue(has_reply(out, replies.QUEUED))
        self.assertEqual(len(inbox(self.ctx, ALICE)), 1)

    def test_alias_reaches_its_user(self) -> None:
        self.transaction("sales@example.test")
        self.client.send(MESSAGE + ".\r\n")
        self.assertEqual(len(inbox(self.ctx, ALICE)), 1)

    def test_plus_address_reaches_its_user(self) -> None:
        self.transaction("alice+lists@example.test")
        self.client.send(MESSAGE + ".\r\n")
        self.assertEqual(len(inbox(self.ctx, ALICE)), 1)

    def test_alias_forwarding_goes_to_spool(self) -> None:
        self.transaction("fwd@example.test")
        out = self.client.send(MESSAGE + ".\r\n")
        self.assertTrue(has_reply(out, replies.QUEUED))
        [(envelope, _)] = self.ctx.spool.entries
        self.assertEqual([r.address for r in envelope.recipients], ["friend@remote.test"])
        self.assertEqual(envelope.recipients[0].orcpt, "rfc822;fwd@example.test")

    def test_two_local_recipients_each_get_a_copy(self) -> None:
        self.client.send(f"MAIL FROM:<s@remote.test>\r\nRCPT TO:<{ALICE}>\r\nRCPT TO:<{BOB}>\r\nDATA\r\n")
        self.client.send(MESSAGE + ".\r\n")
        self.assertEqual((len(inbox(self.ctx, ALICE)), len(inbox(self.ctx, BOB))), (1, 1))

    def test_same_user_twice_gets_one_copy(self) -> None:
        self.client.send(f"MAIL FROM:<s@remote.test>\r\nRCPT TO:<{ALICE}>\r\nRCPT TO:<sales@example.test>\r\nDATA\r\n")
        self.client.send(MESSAGE + ".\r\n")
        self.assertEqual(len(inbox(self.ctx, ALICE)), 1)

    def test_null_sender_is_accepted(self) -> None:
        self.client.send(f"MAIL FROM:<>\r\nRCPT TO:<{ALICE}>\r\nDATA\r\n")
        self.client.send(MESSAGE + ".\r\n")
        self.assertTrue(inbox(self.ctx, ALICE)[0].startswith(b"Return-Path: <>\r\n"))

    def test_pipelined_transaction_answers_in_one_write(self) -> None:
        writes: list[bytes] = []
        original = self.client.transport.write
        self.client.transport.write = lambda data: (writes.append(data), original(data))  # type: ignore[method-assign]
        self.transaction()
        self.assertEqual(len(writes), 1)
        self.assertEqual(writes[0].count(b"\r\n"), 3)

    def test_accepted_is_logged(self) -> None:
        self.transaction()
        self.client.send(MESSAGE + ".\r\n")
        [entry] = self.ctx.maillog.of("accepted")
        self.assertEqual((entry["sender"], entry["recipients"]), ("sender@remote.test", [ALICE]))
        self.assertEqual(entry["size"], len(MESSAGE))

    def test_accepted_is_logged_once_the_250_is_written(self) -> None:
        """The client does not wait for the log line."""
        order: list[str] = []
        write, log = self.client.transport.write, self.ctx.maillog.log
        self.client.transport.write = lambda data: (order.append(data[:3].decode()), write(data))  # type: ignore[method-assign]
        self.ctx.maillog.log = lambda event, **fields: (order.append(event), log(event, **fields))  # type: ignore[method-assign]
        self.transaction()
        order.clear()
        self.client.send(MESSAGE + ".\r\n")
        self.assertEqual(order, ["250", "accepted"])

    def test_accepted_is_logged_when_the_client_leaves_before_the_250(self) -> None:
        pending: defer.Deferred[None] = defer.Deferred()
        self.ctx.store.account(ALICE).deliver = lambda *a, **k: pending  # type: ignore[method-assign]
        self.transaction()
        self.client.send(MESSAGE + ".\r\n")
        self.client.protocol.connectionLost(Failure(error.ConnectionDone()))
        self.assertEqual(self.ctx.maillog.of("accepted"), [])
        pending.callback(None)
        [entry] = self.ctx.maillog.of("accepted")
        self.assertEqual(entry["recipients"], [ALICE])

    def test_second_transaction_on_same_connection(self) -> None:
        self.transaction()
        self.client.send(MESSAGE + ".\r\n")
        self.transaction(BOB)
        self.assertTrue(has_reply(self.client.send(MESSAGE + ".\r\n"), replies.QUEUED))

    def test_dsn_parameters_reach_the_spool(self) -> None:
        self.client.send(
            "MAIL FROM:<s@remote.test> RET=HDRS ENVID=abc+2Bd\r\n"
            "RCPT TO:<fwd@example.test> NOTIFY=SUCCESS,FAILURE ORCPT=rfc822;x+2By@example.test\r\n"
            "DATA\r\n"
        )
        self.client.send(MESSAGE + ".\r\n")
        [(envelope, _)] = self.ctx.spool.entries
        self.assertEqual((envelope.ret, envelope.envid), ("HDRS", "abc+d"))
        self.assertEqual(envelope.recipients[0].notify, ("SUCCESS", "FAILURE"))
        self.assertEqual(envelope.recipients[0].orcpt, "rfc822;x+y@example.test")

    def test_bad_notify_is_501(self) -> None:
        self.client.send("MAIL FROM:<s@remote.test>\r\n")
        out = self.client.send(f"RCPT TO:<{ALICE}> NOTIFY=NEVER,SUCCESS\r\n")
        self.assertTrue(has_reply(out, replies.SYNTAX_ERROR))


class QuotaTests(unittest.TestCase):
    def test_permanently_over_quota_is_552(self) -> None:
        from mailsuite.interfaces import Quota

        clock = task.Clock()
        ctx = make_context(clock, quota=Quota(bytes_limit=10))
        client = connect(make_factory(ctx))
        client.send(GREETING + f"MAIL FROM:<s@remote.test>\r\nRCPT TO:<{ALICE}>\r\nDATA\r\n")
        out = client.send(MESSAGE + ".\r\n")
        self.assertTrue(has_reply(out, replies.QUOTA_PERMANENT))

    def test_local_failure_without_spool_is_451(self) -> None:
        clock = task.Clock()
        ctx = make_context(clock, spool=False)
        ctx.store.account(ALICE).deliver = lambda *a, **k: (_ for _ in ()).throw(TemporaryStoreError("disk"))
        client = connect(make_factory(ctx))
        client.send(GREETING + f"MAIL FROM:<s@remote.test>\r\nRCPT TO:<{ALICE}>\r\nDATA\r\n")
        out = client.send(MESSAGE + ".\r\n")
        self.assertEqual(last_reply(out)[:3], "451")

    def test_temporary_local_failure_goes_to_spool(self) -> None:
        clock = task.Clock()
        ctx = make_context(clock)
        ctx.store.account(ALICE).deliver = lambda *a, **k: (_ for _ in ()).throw(TemporaryStoreError("disk"))
        client = connect(make_factory(ctx))
        client.send(GREETING + f"MAIL FROM:<s@remote.test>\r\nRCPT TO:<{ALICE}>\r\nDATA\r\n")
        out = client.send(MESSAGE + ".\r\n")
        self.assertTrue(has_reply(out, replies.QUEUED))
        [(envelope, _)] = ctx.spool.entries
        self.assertEqual([r.address for r in envelope.recipients], [ALICE])

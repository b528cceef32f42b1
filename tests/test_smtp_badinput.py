"""One test per bad input of issue 4: each gets its reply and the session (or server) goes on."""

from __future__ import annotations

from test_smtp_support import ALICE, connect, has_reply, inbox, make_context, make_factory
from twisted.internet import task
from twisted.trial import unittest

from mailsuite.smtp import replies
from mailsuite.smtp.settings import SmtpSettings

MESSAGE = "Subject: hi\r\n\r\nbody\r\n"


class BadInputBase(unittest.TestCase):
    settings = SmtpSettings()

    def setUp(self) -> None:
        self.clock = task.Clock()
        self.ctx = make_context(self.clock, self.settings)
        self.factory = make_factory(self.ctx, "mx")
        self.client = connect(self.factory)
        self.client.send("EHLO client.test\r\n")

    def rcpt(self, address: str) -> str:
        self.client.send("MAIL FROM:<sender@remote.test>\r\n")
        return self.client.send(f"RCPT TO:{address}\r\n")

    def assert_session_goes_on(self) -> None:
        self.assertTrue(has_reply(self.client.send("NOOP\r\n"), replies.NOOP_OK))

    def assert_nothing_stored(self) -> None:
        self.assertEqual(inbox(self.ctx, ALICE), [])
        self.assertEqual(self.ctx.spool.entries, [])


class RelayDisguiseTests(BadInputBase):
    """Relaying without AUTH is 5.7.1 in every disguise, and nothing is queued."""

    def check_denied(self, address: str) -> None:
        out = self.rcpt(address)
        self.assertTrue(has_reply(out, replies.RELAY_DENIED), out)
        self.assertEqual(self.ctx.spool.entries, [])
        self.assert_session_goes_on()

    def test_foreign_domain(self) -> None:
        self.check_denied("<victim@foreign.test>")

    def test_percent_hack(self) -> None:
        self.check_denied("<user%foreign.test@example.test>")

    def test_bang_path(self) -> None:
        self.check_denied("<foreign.test!user@example.test>")

    def test_source_route_to_foreign_mailbox(self) -> None:
        self.check_denied("<@example.test:user@foreign.test>")

    def test_source_route_with_several_hops(self) -> None:
        self.check_denied("<@example.test,@mx.example.test:user@foreign.test>")

    def test_quoted_local_part_with_at(self) -> None:
        self.check_denied('<"user@foreign.test"@example.test>')

    def test_quoted_local_part_with_percent(self) -> None:
        self.check_denied('<"user%foreign.test"@example.test>')

    def test_trailing_dot_on_foreign_domain(self) -> None:
        self.check_denied("<user@foreign.test.>")

    def test_trailing_dot_on_local_domain(self) -> None:
        self.check_denied("<alice@example.test.>")

    def test_ipv4_literal(self) -> None:
        self.check_denied("<user@[192.0.2.1]>")

    def test_ipv6_literal(self) -> None:
        self.check_denied("<user@[IPv6:2001:db8::1]>")

    def test_unbracketed_foreign_address(self) -> None:
        self.check_denied("victim@foreign.test")

    def test_relay_refusal_is_logged(self) -> None:
        self.rcpt("<victim@foreign.test>")
        [entry] = self.ctx.maillog.of("rejected")
        self.assertEqual((entry["recipient"], entry["code"]), ("victim@foreign.test", "554 5.7.1"))


class RecipientTests(BadInputBase):
    settings = SmtpSettings(max_recipients=3)

    def test_unknown_local_recipient_is_550_5_1_1(self) -> None:
        self.assertTrue(has_reply(self.rcpt("<nobody@example.test>"), replies.NO_SUCH_USER))

    def test_recipient_limit_is_452_4_5_3(self) -> None:
        self.client.send("MAIL FROM:<s@remote.test>\r\n")
        out = self.client.send(f"RCPT TO:<{ALICE}>\r\n" * 4)
        self.assertEqual(out.count("250 2.1.5"), 3)
        self.assertTrue(has_reply(out, replies.TOO_MANY_RECIPIENTS))

    def test_recipient_limit_keeps_accepted_ones(self) -> None:
        self.client.send("MAIL FROM:<s@remote.test>\r\n" + f"RCPT TO:<{ALICE}>\r\n" * 5 + "DATA\r\n")
        self.assertTrue(has_reply(self.client.send(MESSAGE + ".\r\n"), replies.QUEUED))

    def test_postmaster_without_domain_is_understood(self) -> None:
        self.ctx.accounts.add_alias("postmaster@example.test", [ALICE])
        self.assertTrue(has_reply(self.rcpt("<Postmaster>"), replies.RECIPIENT_OK))


class AddressCharacterTests(BadInputBase):
    def test_cr_in_address(self) -> None:
        out = self.rcpt("<al\rice@example.test>")
        self.assertTrue(has_reply(out, replies.BARE_NEWLINE_IN_COMMAND))
        self.assert_session_goes_on()

    def test_lf_in_address_splits_nothing_useful(self) -> None:
        self.client.send("MAIL FROM:<s@remote.test>\r\n")
        out = self.client.send("RCPT TO:<al\nice@example.test>\r\n")
        self.assertTrue(has_reply(out, replies.BARE_NEWLINE_IN_COMMAND))
        self.assertNotIn("250 2.1.5", out)

    def test_nul_in_address(self) -> None:
        out = self.rcpt("<al\x00ice@example.test>")
        self.assertTrue(has_reply(out, replies.BAD_CHARACTER))

    def test_eight_bit_address_without_smtputf8(self) -> None:
        out = self.client.send("MAIL FROM:<jörg@remote.test>\r\n")
        self.assertTrue(has_reply(out, replies.UTF8_NOT_ENABLED))

    def test_eight_bit_recipient_without_smtputf8(self) -> None:
        out = self.rcpt("<jörg@example.test>")
        self.assertTrue(has_reply(out, replies.UTF8_NOT_ENABLED))

    def test_eight_bit_address_with_smtputf8_is_accepted(self) -> None:
        out = self.client.send("MAIL FROM:<jörg@bücher.test> SMTPUTF8\r\n")
        self.assertTrue(has_reply(out, replies.SENDER_OK))

    def test_invalid_utf8_in_command(self) -> None:
        out = self.client.send(b"MAIL FROM:<j\xffrg@remote.test>\r\n")
        self.assertEqual(out[:3], "501")

    def test_missing_angle_bracket(self) -> None:
        out = self.rcpt("<alice@example.test")
        self.assertTrue(has_reply(out, replies.BAD_RECIPIENT_SYNTAX))


class CommandErrorTests(BadInputBase):
    def test_unknown_command_is_500_5_5_2(self) -> None:
        self.assertTrue(has_reply(self.client.send("FROB\r\n"), replies.UNKNOWN_COMMAND))
        self.assert_session_goes_on()

    def test_ten_errors_close_the_connection(self) -> None:
        out = self.client.send("FROB\r\n" * 9)
        self.assertFalse(self.client.closed)
        out = self.client.send("FROB\r\nNOOP\r\n")
        self.assertTrue(has_reply(out, replies.TOO_MANY_ERRORS))
        self.assertNotIn("250", out)
        self.assertTrue(self.client.closed)

    def test_bare_lf_command_is_refused(self) -> None:
        out = self.client.send("NOOP\n")
        self.assertTrue(has_reply(out, replies.BARE_NEWLINE_IN_COMMAND))

    def test_long_command_line_is_500(self) -> None:
        out = self.client.send("NOOP " + "x" * 2000 + "\r\n")
        self.assertTrue(has_reply(out, replies.LINE_TOO_LONG))
        self.assert_session_goes_on()

    def test_megabyte_line_without_crlf_is_not_buffered(self) -> None:
        for _ in range(16):
            self.assertEqual(self.client.send("x" * 65536), "")
        self.assertLess(len(self.client.protocol._buffer), 65536)
        out = self.client.send("\r\n")
        self.assertTrue(has_reply(out, replies.LINE_TOO_LONG))
        self.assert_session_goes_on()


class SmugglingTests(BadInputBase):
    """SMTP smuggling (2023): only CRLF.CRLF ends DATA; bare CR/LF refuses the message."""

    def smuggle(self, fake_end: str) -> str:
        self.client.send(f"MAIL FROM:<s@remote.test>\r\nRCPT TO:<{ALICE}>\r\nDATA\r\n")
        out = self.client.send(
            "Subject: first\r\n\r\nbody" + fake_end
            + f"MAIL FROM:<evil@remote.test>\r\nRCPT TO:<{ALICE}>\r\nDATA\r\n"
            + "Subject: smuggled\r\n\r\nevil\r\n"
        )
        self.assertEqual(out, "", "the fake end must not end the message")
        return self.client.send(".\r\n")

    def check_refused(self, fake_end: str) -> None:
        out = self.smuggle(fake_end)
        self.assertTrue(has_reply(out, replies.BARE_NEWLINE_IN_DATA), out)
        self.assertEqual(out.count("\r\n"), 1)
        self.assert_nothing_stored()
        self.assert_session_goes_on()

    def test_lf_dot_lf(self) -> None:
        self.check_refused("\n.\n")

    def test_lf_dot_crlf(self) -> None:
        self.check_refused("\n.\r\n")

    def test_cr_dot_lf(self) -> None:
        self.check_refused("\r.\n")

    def test_crlf_dot_lf(self) -> None:
        self.check_refused("\r\n.\n")

    def test_cr_dot_cr(self) -> None:
        self.check_refused("\r.\r")

    def test_bare_lf_in_body(self) -> None:
        self.client.send(f"MAIL FROM:<s@remote.test>\r\nRCPT TO:<{ALICE}>\r\nDATA\r\n")
        out = self.client.send("Subject: x\r\n\r\nline one\nline two\r\n.\r\n")
        self.assertTrue(has_reply(out, replies.BARE_NEWLINE_IN_DATA))

    def test_bare_cr_split_across_reads(self) -> None:
        self.client.send(f"MAIL FROM:<s@remote.test>\r\nRCPT TO:<{ALICE}>\r\nDATA\r\n")
        self.client.send("Subject: x\r\n\r\nline one" + "y" * 2000 + "\r")
        out = self.client.send("x\r\n.\r\n")
        self.assertNotIn("250", out)


class DataLimitTests(BadInputBase):
    settings = SmtpSettings(max_message_size=10_000)

    def start(self) -> None:
        self.client.send(f"MAIL FROM:<s@remote.test>\r\nRCPT TO:<{ALICE}>\r\nDATA\r\n")

    def test_declared_size_over_limit_is_552_at_mail(self) -> None:
        out = self.client.send("MAIL FROM:<s@remote.test> SIZE=20000\r\n")
        self.assertTrue(has_reply(out, replies.MESSAGE_TOO_BIG))

    def test_over_size_is_552_5_3_4_and_not_buffered(self) -> None:
        self.start()
        line = "x" * 98 + "\r\n"
        for _ in range(50):
            self.assertEqual(self.client.send(line * 20), "")
        self.assertEqual(self.client.protocol._body.chunks, [])
        out = self.client.send(".\r\n")
        self.assertTrue(has_reply(out, replies.MESSAGE_TOO_BIG))
        self.assert_nothing_stored()
        self.assert_session_goes_on()

    def test_long_data_line_is_refused(self) -> None:
        self.start()
        out = self.client.send("Subject: x\r\n\r\n" + "y" * 1200 + "\r\n.\r\n")
        self.assertTrue(has_reply(out, replies.DATA_LINE_TOO_LONG))
        self.assert_session_goes_on()

    def test_998_octet_line_is_fine(self) -> None:
        self.start()
        out = self.client.send("Subject: x\r\n\r\n" + "y" * 998 + "\r\n.\r\n")
        self.assertTrue(has_reply(out, replies.QUEUED))

    def test_mail_loop_is_554_5_4_6(self) -> None:
        self.start()
        received = "Received: from a by b; Mon, 23 Nov 2026 10:00:00 +0000\r\n" * 51
        out = self.client.send(received + "Subject: loop\r\n\r\nx\r\n.\r\n")
        self.assertTrue(has_reply(out, replies.MAIL_LOOP))
        self.assert_nothing_stored()

    def test_fifty_received_headers_pass(self) -> None:
        self.start()
        received = "Received: from a by b; Mon, 23 Nov 2026 10:00:00 +0000\r\n" * 49
        out = self.client.send(received + "Subject: ok\r\n\r\nx\r\n.\r\n")
        self.assertTrue(has_reply(out, replies.QUEUED))


class MessageMemoryTests(BadInputBase):
    """All sessions together hold at most max_message_memory of message content."""

    settings = SmtpSettings(max_message_size=10_000, max_message_memory=12_000)
    BODY = "Subject: big\r\n\r\n" + ("x" * 98 + "\r\n") * 80  # about 8 KB

    def start(self, client) -> None:  # type: ignore[no-untyped-def]
        client.send("EHLO other.test\r\n")
        client.send(f"MAIL FROM:<s@remote.test>\r\nRCPT TO:<{ALICE}>\r\nDATA\r\n")

    def test_second_large_message_waits_for_the_first(self) -> None:
        first = connect(self.factory, ip="192.0.2.21")
        self.start(first)
        first.send(self.BODY)  # held: its final dot has not come yet
        memory = self.factory.memory
        self.assertGreater(memory.used, 8000)
        self.start(self.client)
        self.assertEqual(self.client.send(self.BODY), "")
        self.assertEqual(self.client.protocol._body.chunks, [])  # dropped, not buffered
        out = self.client.send(".\r\n")
        self.assertTrue(has_reply(out, replies.INSUFFICIENT_STORAGE))
        self.assertEqual(self.client.protocol.session.errors, 0)  # not the client's fault
        self.assertTrue(has_reply(first.send(".\r\n"), replies.QUEUED))
        self.assertEqual(memory.used, 0)  # delivered: the first message gave its memory back
        self.start_again_and_deliver()

    def start_again_and_deliver(self) -> None:
        self.client.send(f"MAIL FROM:<s@remote.test>\r\nRCPT TO:<{ALICE}>\r\nDATA\r\n")
        self.assertTrue(has_reply(self.client.send(self.BODY + ".\r\n"), replies.QUEUED))
        self.assertEqual(len(inbox(self.ctx, ALICE)), 2)

    def test_declared_size_that_does_not_fit_now_is_452_at_mail(self) -> None:
        first = connect(self.factory, ip="192.0.2.21")
        self.start(first)
        first.send(self.BODY)
        out = self.client.send("MAIL FROM:<s@remote.test> SIZE=8000\r\n")
        self.assertTrue(has_reply(out, replies.INSUFFICIENT_STORAGE))
        self.assertTrue(has_reply(self.client.send("MAIL FROM:<s@remote.test> SIZE=2000\r\n"),
                                  replies.SENDER_OK))

    def test_a_dropped_connection_gives_its_memory_back(self) -> None:
        first = connect(self.factory, ip="192.0.2.21")
        self.start(first)
        first.send(self.BODY)
        self.assertGreater(self.factory.memory.used, 8000)
        first.transport.loseConnection()
        first.protocol.connectionLost(None)
        self.assertEqual(self.factory.memory.used, 0)

    def test_bdat_chunk_over_the_budget_fails_the_transaction(self) -> None:
        first = connect(self.factory, ip="192.0.2.21")
        self.start(first)
        first.send(self.BODY)
        self.client.send(f"MAIL FROM:<s@remote.test>\r\nRCPT TO:<{ALICE}>\r\n")
        chunk = "y" * 5000
        out = self.client.send(f"BDAT {len(chunk)} LAST\r\n{chunk}")
        self.assertTrue(has_reply(out, replies.INSUFFICIENT_STORAGE))
        self.assert_session_goes_on()


class TimeoutTests(BadInputBase):
    settings = SmtpSettings(idle_timeout=30.0, session_timeout=120.0)

    def test_idle_timeout_closes_with_421(self) -> None:
        self.client.transport.clear()
        self.clock.advance(31)
        self.assertTrue(has_reply(self.client.output(), replies.IDLE_TIMEOUT))
        self.assertTrue(self.client.closed)

    def test_a_byte_a_second_command_hits_the_idle_timeout(self) -> None:
        self.client.transport.clear()
        for _ in range(31):
            self.client.protocol.dataReceived(b"N")
            self.clock.advance(1)
        self.assertTrue(self.client.closed)

    def test_a_byte_a_second_in_data_hits_the_session_timeout(self) -> None:
        self.client.send(f"MAIL FROM:<s@remote.test>\r\nRCPT TO:<{ALICE}>\r\nDATA\r\n")
        self.client.transport.clear()
        for _ in range(125):
            if self.client.closed:
                break
            self.client.protocol.dataReceived(b"y")
            self.clock.advance(1)
        self.assertTrue(has_reply(self.client.output(), replies.SESSION_TIMEOUT))
        self.assert_nothing_stored()

    def test_activity_keeps_the_session_alive(self) -> None:
        for _ in range(3):
            self.clock.advance(20)
            self.client.send("NOOP\r\n")
        self.assertFalse(self.client.closed)


class ConnectionLimitTests(unittest.TestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.ctx = make_context(self.clock, SmtpSettings(max_connections=5, max_connections_per_ip=2))
        self.factory = make_factory(self.ctx)

    def test_per_address_limit_is_421_4_7_0(self) -> None:
        connect(self.factory, ip="192.0.2.1")
        connect(self.factory, ip="192.0.2.1")
        third = connect(self.factory, ip="192.0.2.1")
        self.assertTrue(has_reply(third.output(), replies.TOO_MANY_CONNECTIONS_FROM_YOU))
        self.assertTrue(third.closed)

    def test_global_limit_is_421_4_7_0(self) -> None:
        for i in range(5):
            connect(self.factory, ip=f"192.0.2.{i}")
        sixth = connect(self.factory, ip="192.0.2.99")
        self.assertTrue(has_reply(sixth.output(), replies.TOO_MANY_CONNECTIONS))

    def test_closed_connections_free_their_slot(self) -> None:
        first = connect(self.factory, ip="192.0.2.1")
        connect(self.factory, ip="192.0.2.1")
        first.protocol.connectionLost(None)
        third = connect(self.factory, ip="192.0.2.1")
        self.assertTrue(third.output().startswith("220 "))

    def test_a_thousand_connections_at_once(self) -> None:
        clients = [connect(self.factory, ip=f"198.51.100.{i % 250}") for i in range(1000)]
        served = sum(1 for c in clients if c.output().startswith("220 "))
        self.assertEqual(served, 5)
        self.assertEqual(self.factory.limiter.total, 5)


class ShutdownTests(unittest.TestCase):
    def test_stopping_listener_says_421_to_idle_sessions(self) -> None:
        ctx = make_context(task.Clock())
        factory = make_factory(ctx)
        client = connect(factory)
        client.transport.clear()
        factory.stopFactory()
        self.assertTrue(has_reply(client.output(), replies.SHUTTING_DOWN))
        self.assertTrue(client.closed)

    def test_idle_timer_waits_for_a_pending_delivery(self) -> None:
        from twisted.internet import defer

        clock = task.Clock()
        ctx = make_context(clock, SmtpSettings(idle_timeout=30.0))
        pending: defer.Deferred[None] = defer.Deferred()
        ctx.store.account(ALICE).deliver = lambda *a, **k: pending
        client = connect(make_factory(ctx))
        client.send(f"EHLO c.test\r\nMAIL FROM:<s@remote.test>\r\nRCPT TO:<{ALICE}>\r\nDATA\r\n")
        client.send(MESSAGE + ".\r\n")
        clock.advance(31)
        self.assertFalse(client.closed)
        client.transport.clear()
        pending.callback(None)
        self.assertTrue(has_reply(client.output(), replies.QUEUED))


    def test_session_timeout_waits_for_a_pending_delivery(self) -> None:
        from twisted.internet import defer

        clock = task.Clock()
        ctx = make_context(clock, SmtpSettings(idle_timeout=30.0, session_timeout=40.0))
        pending: defer.Deferred[None] = defer.Deferred()
        ctx.store.account(ALICE).deliver = lambda *a, **k: pending
        client = connect(make_factory(ctx))
        client.send(f"EHLO c.test\r\nMAIL FROM:<s@remote.test>\r\nRCPT TO:<{ALICE}>\r\nDATA\r\n")
        client.send(MESSAGE + ".\r\n")
        clock.advance(41)
        self.assertFalse(client.closed)
        client.transport.clear()
        pending.callback(None)
        clock.advance(1)
        self.assertRegex(client.output(), r"^250 2\.0\.0 Ok: queued as \w+\r\n421 4\.4\.2 ")
        self.assertTrue(client.closed)

class LookupFailureTests(BadInputBase):
    def test_failing_accounts_lookup_is_451_and_the_session_goes_on(self) -> None:
        def broken(address: str) -> None:
            raise OSError("accounts file unreadable")

        self.ctx.accounts.resolve = broken  # type: ignore[method-assign]
        out = self.rcpt(f"<{ALICE}>")
        self.assertTrue(has_reply(out, replies.TEMPORARY_FAILURE))
        self.assertEqual(len(self.flushLoggedErrors(OSError)), 1)
        self.assert_session_goes_on()


"""POP3 protocol unit tests over a StringTransport with a task.Clock and an in-memory store."""

from __future__ import annotations

import base64

from test_pop3_helpers import (
    PASSWORD,
    USERS,
    Client,
    FakeThrottle,
    RecordingMailLog,
    deliver,
    make_ctx,
    multiline,
)
from twisted.trial import unittest

from mailsuite.interfaces import INBOX, FlagMode
from mailsuite.pop3.settings import Pop3Settings

ALICE = USERS[0]
MSG1 = b"Subject: one\r\n\r\nbody one\r\n"
MSG2 = b"Subject: two\r\n\r\n.dotted\r\nline2\r\nline3\r\n"


def plain(user: str, password: str, authz: str = "") -> str:
    return base64.b64encode(f"{authz}\0{user}\0{password}".encode()).decode()


class Base(unittest.TestCase):
    settings = Pop3Settings()

    def setUp(self) -> None:
        self.throttle = FakeThrottle(delay=2.0)
        self.ctx = make_ctx(self.settings, throttle=self.throttle)
        self.clock = self.ctx.reactor
        deliver(self.ctx, ALICE, MSG1)
        deliver(self.ctx, ALICE, MSG2)

    def inbox(self):  # type: ignore[no-untyped-def]
        return self.ctx.store.account(ALICE).open_folder(INBOX)

    def logged_in(self, **kw: object) -> Client:
        c = Client(self.ctx, **kw)  # type: ignore[arg-type]
        assert c.login().startswith(b"+OK"), "login failed"
        return c


class GreetingAndCapa(Base):
    def test_greeting_has_no_apop_timestamp(self) -> None:
        out = Client(self.ctx).take()
        self.assertTrue(out.startswith(b"+OK "))
        self.assertNotIn(b"<", out)

    def test_nodelay_is_set(self) -> None:
        self.assertTrue(Client(self.ctx).transport.nodelay)

    def test_capa_before_tls_offers_stls_not_user(self) -> None:
        c = Client(self.ctx, implicit_tls=False)
        caps = multiline(c.cmd("CAPA"))
        self.assertIn(b"STLS", caps)
        self.assertNotIn(b"USER", caps)
        self.assertNotIn(b"SASL PLAIN", caps)
        for cap in (b"TOP", b"UIDL", b"RESP-CODES", b"AUTH-RESP-CODE", b"PIPELINING"):
            self.assertIn(cap, caps)
        self.assertIn(b"IMPLEMENTATION mailsuite", caps)

    def test_capa_under_tls_offers_user_and_sasl_not_stls(self) -> None:
        caps = multiline(Client(self.ctx).cmd("CAPA"))
        self.assertIn(b"USER", caps)
        self.assertIn(b"SASL PLAIN", caps)
        self.assertNotIn(b"STLS", caps)

    def test_capa_has_no_expire_or_login_delay_by_default(self) -> None:
        caps = b" ".join(multiline(Client(self.ctx).cmd("CAPA")))
        self.assertNotIn(b"EXPIRE", caps)
        self.assertNotIn(b"LOGIN-DELAY", caps)

    def test_capa_advertises_configured_expire_and_login_delay(self) -> None:
        ctx = make_ctx(Pop3Settings(expire="NEVER", login_delay=60))
        caps = multiline(Client(ctx).cmd("CAPA"))
        self.assertIn(b"EXPIRE NEVER", caps)
        self.assertIn(b"LOGIN-DELAY 60", caps)


class Stls(Base):
    def test_stls_starts_tls_with_server_options(self) -> None:
        c = Client(self.ctx, implicit_tls=False)
        self.assertTrue(c.cmd("STLS").startswith(b"+OK"))
        self.assertEqual(c.transport.tls_started_with, "server-options")

    def test_stls_discards_pipelined_commands(self) -> None:
        c = Client(self.ctx, implicit_tls=False)
        out = c.send(b"STLS\r\nCAPA\r\nNOOP\r\n")
        self.assertEqual(out.count(b"\r\n"), 1)

    def test_after_stls_user_is_allowed_and_stls_refused(self) -> None:
        c = Client(self.ctx, implicit_tls=False)
        c.cmd("STLS")
        self.assertTrue(c.cmd(f"USER {ALICE}").startswith(b"+OK"))
        self.assertTrue(c.cmd("STLS").startswith(b"-ERR"))

    def test_stls_under_implicit_tls_is_refused(self) -> None:
        self.assertTrue(Client(self.ctx).cmd("STLS").startswith(b"-ERR"))


class Authorization(Base):
    def test_user_before_stls_is_refused_with_auth_code(self) -> None:
        c = Client(self.ctx, implicit_tls=False)
        self.assertTrue(c.cmd(f"USER {ALICE}").startswith(b"-ERR [AUTH]"))

    def test_auth_plain_before_stls_is_refused(self) -> None:
        c = Client(self.ctx, implicit_tls=False)
        self.assertTrue(c.cmd(f"AUTH PLAIN {plain(ALICE, PASSWORD)}").startswith(b"-ERR [AUTH]"))

    def test_user_before_stls_allowed_when_configured(self) -> None:
        ctx = make_ctx(Pop3Settings(allow_plaintext_auth=True))
        c = Client(ctx, implicit_tls=False)
        self.assertTrue(c.cmd(f"USER {ALICE}").startswith(b"+OK"))

    def test_user_pass_logs_in(self) -> None:
        c = Client(self.ctx)
        c.cmd(f"USER {ALICE}")
        self.assertEqual(c.cmd(f"PASS {PASSWORD}"), b"+OK Logged in.\r\n")
        self.assertEqual(self.throttle.successes, 1)

    def test_pass_without_user(self) -> None:
        self.assertTrue(Client(self.ctx).cmd("PASS x").startswith(b"-ERR"))

    def test_wrong_password_is_delayed_and_answered_with_auth_code(self) -> None:
        c = Client(self.ctx)
        c.cmd(f"USER {ALICE}")
        self.assertEqual(c.cmd("PASS wrong"), b"")
        self.clock.advance(2.0)
        self.assertEqual(c.take(), b"-ERR [AUTH] Authentication failed.\r\n")

    def test_unknown_user_gets_the_same_reply_as_wrong_password(self) -> None:
        c = Client(self.ctx)
        c.cmd("USER nobody@example.test")
        c.cmd("PASS wrong")
        self.clock.advance(2.0)
        self.assertEqual(c.take(), b"-ERR [AUTH] Authentication failed.\r\n")

    def test_commands_wait_behind_a_delayed_failure(self) -> None:
        c = Client(self.ctx)
        c.cmd(f"USER {ALICE}")
        self.assertEqual(c.send(b"PASS wrong\r\nNOOP\r\n"), b"")
        self.clock.advance(2.0)
        out = c.take()
        self.assertTrue(out.startswith(b"-ERR [AUTH]"))
        self.assertTrue(out.endswith(b"-ERR Command not valid in this state.\r\n"))

    def test_third_failure_closes_the_connection(self) -> None:
        c = Client(self.ctx)
        for _ in range(3):
            c.cmd(f"USER {ALICE}")
            c.cmd("PASS wrong")
            self.clock.advance(2.0)
        self.assertTrue(c.take().endswith(b"closing.\r\n"))
        self.assertTrue(c.transport.disconnecting)
        self.assertEqual(self.throttle.failures["192.0.2.1"], 3)

    def test_ten_wrong_passwords_over_connections_get_blocked_without_a_hint(self) -> None:
        self.throttle.block_after = 5
        replies = set()
        for attempt in range(10):
            c = Client(self.ctx)
            c.cmd(f"USER {ALICE if attempt % 2 else 'nobody@example.test'}")
            out = c.cmd("PASS wrong")
            self.clock.advance(2.0)
            replies.add(out + c.take())
        self.assertEqual(
            replies,
            {
                b"-ERR [AUTH] Authentication failed.\r\n",
                b"-ERR [SYS/TEMP] Too many failed logins, try again later.\r\n",
            },
        )

    def test_blocked_address_cannot_log_in_even_with_the_right_password(self) -> None:
        self.throttle.block_after = 1
        self.throttle.record_failure("192.0.2.1")
        self.assertTrue(Client(self.ctx).login().startswith(b"-ERR [SYS/TEMP]"))

    def test_auth_plain_with_initial_response(self) -> None:
        c = Client(self.ctx)
        self.assertEqual(c.cmd(f"AUTH PLAIN {plain(ALICE, PASSWORD)}"), b"+OK Logged in.\r\n")

    def test_auth_plain_with_continuation(self) -> None:
        c = Client(self.ctx)
        self.assertEqual(c.cmd("AUTH PLAIN"), b"+ \r\n")
        self.assertEqual(c.cmd(plain(ALICE, PASSWORD)), b"+OK Logged in.\r\n")

    def test_auth_plain_bad_base64(self) -> None:
        c = Client(self.ctx)
        self.assertEqual(c.cmd("AUTH PLAIN !!!notbase64"), b"-ERR Invalid base64 data.\r\n")
        self.assertTrue(c.cmd("NOOP").startswith(b"-ERR"))  # session goes on

    def test_auth_plain_bad_base64_in_continuation(self) -> None:
        c = Client(self.ctx)
        c.cmd("AUTH PLAIN")
        self.assertEqual(c.cmd("a=b=c"), b"-ERR Invalid base64 data.\r\n")

    def test_auth_plain_cancelled(self) -> None:
        c = Client(self.ctx)
        c.cmd("AUTH PLAIN")
        self.assertTrue(c.cmd("*").startswith(b"-ERR"))

    def test_auth_plain_other_authzid_is_refused(self) -> None:
        c = Client(self.ctx)
        c.cmd(f"AUTH PLAIN {plain(ALICE, PASSWORD, authz=USERS[1])}")
        self.clock.advance(2.0)
        self.assertTrue(c.take().startswith(b"-ERR [AUTH]"))

    def test_auth_unknown_mechanism(self) -> None:
        self.assertTrue(Client(self.ctx).cmd("AUTH CRAM-MD5").startswith(b"-ERR"))

    def test_apop_is_refused(self) -> None:
        out = Client(self.ctx).cmd("APOP alice@example.test 0123456789abcdef")
        self.assertTrue(out.startswith(b"-ERR"))

    def test_second_session_gets_in_use(self) -> None:
        self.logged_in()
        self.assertTrue(Client(self.ctx).login().startswith(b"-ERR [IN-USE]"))

    def test_in_use_is_shared_between_110_and_995(self) -> None:
        self.logged_in(implicit_tls=True)
        ctx_c = Client(self.ctx, implicit_tls=False)
        ctx_c.cmd("STLS")
        self.assertTrue(ctx_c.login().startswith(b"-ERR [IN-USE]"))

    def test_lock_is_released_when_the_connection_drops(self) -> None:
        self.logged_in().drop()
        self.assertTrue(Client(self.ctx).login().startswith(b"+OK"))

    def test_login_delay_is_enforced(self) -> None:
        ctx = make_ctx(Pop3Settings(login_delay=60))
        c = Client(ctx)
        c.login()
        c.cmd("QUIT")
        c.drop()
        self.assertTrue(Client(ctx).login().startswith(b"-ERR [LOGIN-DELAY]"))


class BadInput(Base):
    def test_unknown_command(self) -> None:
        self.assertEqual(Client(self.ctx).cmd("FOO"), b"-ERR Unknown command.\r\n")

    def test_transaction_command_in_authorization_state(self) -> None:
        self.assertEqual(Client(self.ctx).cmd("STAT"), b"-ERR Command not valid in this state.\r\n")

    def test_user_in_transaction_state(self) -> None:
        c = self.logged_in()
        self.assertEqual(c.cmd("USER x"), b"-ERR Command not valid in this state.\r\n")

    def test_over_long_line_is_refused_and_session_goes_on(self) -> None:
        c = Client(self.ctx)
        self.assertEqual(c.cmd("NOOP " + "x" * 600), b"-ERR Line too long.\r\n")
        self.assertTrue(c.cmd("CAPA").startswith(b"+OK"))

    def test_over_long_line_in_pieces_is_answered_once(self) -> None:
        c = Client(self.ctx)
        out = c.send(b"x" * 600) + c.send(b"y" * 600) + c.send(b"z\r\nQUIT\r\n")
        self.assertEqual(out, b"-ERR Line too long.\r\n+OK Logging out.\r\n")

    def test_sasl_continuation_may_exceed_the_command_limit(self) -> None:
        c = Client(self.ctx)
        c.cmd("AUTH PLAIN")
        c.cmd(plain(ALICE, "p" * 600))
        self.clock.advance(2.0)
        self.assertEqual(c.take(), b"-ERR [AUTH] Authentication failed.\r\n")

    def test_endless_line_is_not_buffered(self) -> None:
        c = Client(self.ctx)
        for _ in range(20):
            c.send(b"x" * 10000)
        self.assertLess(len(c.proto._buffer), 10000)
        self.assertEqual(c.send(b"\r\nNOOP\r\n"), b"-ERR Command not valid in this state.\r\n")

    def test_too_many_bad_commands_close(self) -> None:
        c = Client(self.ctx)
        out = c.send(b"BAD\r\n" * 25)
        self.assertTrue(out.endswith(b"-ERR Too many bad commands, closing.\r\n"))
        self.assertTrue(c.transport.disconnecting)

    def test_bad_commands_count_only_in_a_row(self) -> None:
        c = Client(self.ctx)
        for _ in range(5):
            c.send(b"BAD\r\n" * 19 + b"CAPA\r\n")
        self.assertFalse(c.transport.disconnecting)

    def test_non_numeric_message_number(self) -> None:
        self.assertEqual(self.logged_in().cmd("RETR x"), b"-ERR Invalid message number.\r\n")

    def test_negative_message_number(self) -> None:
        self.assertEqual(self.logged_in().cmd("LIST -1"), b"-ERR Invalid message number.\r\n")

    def test_out_of_range_message_number(self) -> None:
        c = self.logged_in()
        self.assertEqual(c.cmd("RETR 3"), b"-ERR No such message.\r\n")
        self.assertEqual(c.cmd("DELE 0"), b"-ERR No such message.\r\n")

    def test_huge_message_number(self) -> None:
        self.assertEqual(
            self.logged_in().cmd("LIST 99999999999999"), b"-ERR Invalid message number.\r\n"
        )

    def test_missing_argument(self) -> None:
        self.assertEqual(self.logged_in().cmd("RETR"), b"-ERR Invalid arguments.\r\n")

    def test_top_without_line_count(self) -> None:
        self.assertEqual(self.logged_in().cmd("TOP 1"), b"-ERR Invalid arguments.\r\n")

    def test_dele_of_a_deleted_message(self) -> None:
        c = self.logged_in()
        c.cmd("DELE 1")
        self.assertEqual(c.cmd("DELE 1"), b"-ERR Message 1 is already deleted.\r\n")

    def test_retr_of_a_deleted_message(self) -> None:
        c = self.logged_in()
        c.cmd("DELE 1")
        self.assertEqual(c.cmd("RETR 1"), b"-ERR Message 1 is already deleted.\r\n")

    def test_idle_timeout_closes_without_deleting(self) -> None:
        c = self.logged_in()
        c.cmd("DELE 1")
        self.clock.advance(601)
        self.assertEqual(c.take(), b"-ERR Disconnected for inactivity.\r\n")
        c.drop()
        self.assertEqual(len(self.inbox().messages()), 2)


class Transaction(Base):
    def test_stat(self) -> None:
        self.assertEqual(self.logged_in().cmd("STAT"), b"+OK 2 %d\r\n" % (len(MSG1) + len(MSG2)))

    def test_list_all(self) -> None:
        lines = multiline(self.logged_in().cmd("LIST"))
        self.assertEqual(lines, [b"1 %d" % len(MSG1), b"2 %d" % len(MSG2)])

    def test_list_one(self) -> None:
        self.assertEqual(self.logged_in().cmd("LIST 2"), b"+OK 2 %d\r\n" % len(MSG2))

    def test_list_hides_deleted(self) -> None:
        c = self.logged_in()
        c.cmd("DELE 1")
        self.assertEqual(multiline(c.cmd("LIST")), [b"2 %d" % len(MSG2)])

    def test_uidl_all_uses_store_pop_id(self) -> None:
        ids = [i.pop_id for i in self.inbox().messages()]
        lines = multiline(self.logged_in().cmd("UIDL"))
        self.assertEqual(lines, [f"1 {ids[0]}".encode(), f"2 {ids[1]}".encode()])

    def test_uidl_one(self) -> None:
        pop_id = self.inbox().messages()[1].pop_id
        self.assertEqual(self.logged_in().cmd("UIDL 2"), f"+OK 2 {pop_id}\r\n".encode())

    def test_retr_sends_message_stuffed_in_one_write(self) -> None:
        c = self.logged_in()
        c.take()
        writes_before = len(c.transport.io.getvalue())
        out = c.cmd("RETR 2")
        self.assertEqual(
            out,
            b"+OK %d octets.\r\nSubject: two\r\n\r\n..dotted\r\nline2\r\nline3\r\n.\r\n"
            % len(MSG2),
        )
        self.assertGreater(len(c.transport.io.getvalue()), writes_before)

    def test_top(self) -> None:
        out = self.logged_in().cmd("TOP 2 1")
        self.assertEqual(multiline(out), [b"Subject: two", b"", b".dotted"])

    def test_top_does_not_mark_seen(self) -> None:
        c = self.logged_in()
        c.cmd("TOP 1 0")
        c.cmd("QUIT")
        self.assertNotIn("\\Seen", self.inbox().messages()[0].flags)

    def test_noop(self) -> None:
        self.assertEqual(self.logged_in().cmd("NOOP"), b"+OK\r\n")

    def test_rset_undeletes(self) -> None:
        c = self.logged_in()
        c.cmd("DELE 1")
        self.assertTrue(c.cmd("RSET").startswith(b"+OK 2 messages"))
        c.cmd("QUIT")
        self.assertEqual(len(self.inbox().messages()), 2)

    def test_pipelined_commands_answered_in_order(self) -> None:
        c = Client(self.ctx)
        out = c.send(
            f"USER {ALICE}\r\nPASS {PASSWORD}\r\nSTAT\r\nRETR 1\r\nNOOP\r\nQUIT\r\n".encode()
        )
        replies = out.split(b"\r\n")
        self.assertEqual(replies[0], b"+OK Send your password.")
        self.assertEqual(replies[1], b"+OK Logged in.")
        self.assertTrue(replies[2].startswith(b"+OK 2 "))
        self.assertTrue(out.endswith(b"+OK\r\n+OK Logging out, 0 messages deleted.\r\n"))


class Update(Base):
    def test_dele_does_nothing_before_quit(self) -> None:
        c = self.logged_in()
        c.cmd("DELE 1")
        self.assertEqual(len(self.inbox().messages()), 2)

    def test_quit_removes_deleted_messages(self) -> None:
        c = self.logged_in()
        c.cmd("DELE 1")
        self.assertEqual(c.cmd("QUIT"), b"+OK Logging out, 1 messages deleted.\r\n")
        self.assertEqual([i.size for i in self.inbox().messages()], [len(MSG2)])
        self.assertTrue(c.transport.disconnecting)

    def test_dropped_connection_deletes_nothing(self) -> None:
        c = self.logged_in()
        c.cmd("DELE 1")
        c.cmd("DELE 2")
        c.drop()
        self.assertEqual(len(self.inbox().messages()), 2)
        self.assertFalse(any("\\Deleted" in i.flags for i in self.inbox().messages()))

    def test_retr_marks_seen_at_quit(self) -> None:
        c = self.logged_in()
        c.cmd("RETR 2")
        c.cmd("QUIT")
        flags = [i.flags for i in self.inbox().messages()]
        self.assertEqual(["\\Seen" in f for f in flags], [False, True])

    def test_retr_marks_seen_when_the_connection_drops(self) -> None:
        c = self.logged_in()
        c.cmd("RETR 1")
        c.drop()
        self.assertIn("\\Seen", self.inbox().messages()[0].flags)

    def test_quit_keeps_other_messages_flagged_deleted_by_imap(self) -> None:
        inbox = self.inbox()
        uid2 = inbox.messages()[1].uid
        inbox.store_flags([uid2], ["\\Deleted"], FlagMode.ADD)
        c = self.logged_in()
        c.cmd("DELE 1")
        c.cmd("QUIT")
        self.assertEqual([i.uid for i in self.inbox().messages()], [uid2])

    def test_message_expunged_by_imap_meanwhile(self) -> None:
        c = self.logged_in()
        inbox = self.inbox()
        uid1 = inbox.messages()[0].uid
        inbox.store_flags([uid1], ["\\Deleted"], FlagMode.ADD)
        inbox.expunge([uid1])
        self.assertEqual(c.cmd("RETR 1"), b"-ERR Message 1 was removed by another session.\r\n")
        c.cmd("DELE 1")
        self.assertEqual(c.cmd("QUIT"), b"+OK Logging out, 1 messages deleted.\r\n")

    def test_snapshot_ignores_new_deliveries(self) -> None:
        c = self.logged_in()
        deliver(self.ctx, ALICE, b"Subject: three\r\n\r\n3\r\n")
        self.assertTrue(c.cmd("STAT").startswith(b"+OK 2 "))
        c.cmd("QUIT")
        self.assertTrue(self.logged_in().cmd("STAT").startswith(b"+OK 3 "))

    def test_uidl_stable_across_imap_flag_change(self) -> None:
        c = self.logged_in()
        before = c.cmd("UIDL")
        c.cmd("QUIT")
        inbox = self.inbox()
        inbox.store_flags([i.uid for i in inbox.messages()], ["\\Seen", "\\Flagged"], FlagMode.ADD)
        self.assertEqual(self.logged_in().cmd("UIDL"), before)

    def test_quit_in_authorization_state(self) -> None:
        c = Client(self.ctx)
        self.assertEqual(c.cmd("QUIT"), b"+OK Logging out.\r\n")
        self.assertTrue(c.transport.disconnecting)


class Streaming(Base):
    settings = Pop3Settings(chunk_size=8)

    def test_large_retr_streams_with_byte_stuffing_across_chunks(self) -> None:
        raw = b"Subject: big\n\n" + b"".join(b".%d\n" % i for i in range(500))
        deliver(self.ctx, ALICE, raw)
        c = self.logged_in()
        out = c.cmd("RETR 3")
        self.assertEqual(multiline(out), raw.rstrip(b"\n").split(b"\n"))
        self.assertIn(b"\r\n..499\r\n.\r\n", out)

    def test_pipelined_commands_wait_for_the_stream(self) -> None:
        deliver(self.ctx, ALICE, b"x" * 1000 + b"\r\n")
        c = self.logged_in()
        c.take()
        c.proto.dataReceived(b"RETR 3\r\nNOOP\r\n")
        first = c.transport.io.getvalue()[c._mark :]
        self.assertNotIn(b"+OK\r\n", first)
        out = c.take()
        self.assertTrue(out.endswith(b"\r\n.\r\n+OK\r\n"))

    def test_idle_timeout_while_the_client_does_not_read_aborts(self) -> None:
        deliver(self.ctx, ALICE, b"x\r\n" * 1000)
        c = self.logged_in()
        c.take()
        c.proto.dataReceived(b"RETR 3\r\n")
        c.transport.producer.pauseProducing()  # the client's window is full
        self.clock.advance(601)
        self.assertNotIn(b"inactivity", c.transport.io.getvalue())
        self.assertTrue(c.transport.disconnecting)

    def test_large_top(self) -> None:
        raw = b"A: b\r\nC: d\r\n\r\n" + b"line\r\n" * 100
        deliver(self.ctx, ALICE, raw)
        out = self.logged_in().cmd("TOP 3 2")
        self.assertEqual(multiline(out), [b"A: b", b"C: d", b"", b"line", b"line"])

    def test_drop_during_stream_deletes_nothing_and_stops(self) -> None:
        deliver(self.ctx, ALICE, b"x\r\n" * 1000)
        c = self.logged_in()
        c.cmd("DELE 1")
        c.take()
        c.proto.dataReceived(b"RETR 3\r\n")
        sender = c.transport.producer
        self.assertIsNotNone(sender)
        c.drop()
        self.assertEqual(len(self.inbox().messages()), 3)


class Shutdown(Base):
    def test_shutdown_tells_idle_sessions_and_deletes_nothing(self) -> None:
        c = self.logged_in()
        c.cmd("DELE 1")
        c.factory.stopFactory()
        self.assertEqual(c.take(), b"-ERR [SYS/TEMP] Server shutting down.\r\n")
        self.assertTrue(c.transport.disconnecting)
        c.drop()
        self.assertEqual(len(self.inbox().messages()), 2)


class Limits(Base):
    def test_connection_limit_refuses_with_sys_temp(self) -> None:
        ctx = make_ctx(Pop3Settings(max_connections=2))
        Client(ctx, peer="192.0.2.1")
        Client(ctx, peer="192.0.2.2")
        c = Client(ctx, peer="192.0.2.3")
        self.assertEqual(c.take(), b"-ERR [SYS/TEMP] Too many connections, try again later.\r\n")
        self.assertTrue(c.transport.disconnecting)

    def test_per_address_limit(self) -> None:
        ctx = make_ctx(Pop3Settings(max_connections_per_ip=1))
        Client(ctx, peer="192.0.2.1")
        self.assertTrue(Client(ctx, peer="192.0.2.1").take().startswith(b"-ERR [SYS/TEMP]"))
        self.assertTrue(Client(ctx, peer="192.0.2.2").take().startswith(b"+OK"))

    def test_closed_connections_free_their_slot(self) -> None:
        ctx = make_ctx(Pop3Settings(max_connections=1))
        Client(ctx).drop()
        self.assertTrue(Client(ctx).take().startswith(b"+OK"))


class WithRealThrottle(Base):
    """The platform's LoginThrottle: growing delays, then a block, same reply for every user."""

    def test_ten_failures_block_the_address(self) -> None:
        from mailsuite.auth import LoginThrottle

        ctx = make_ctx(throttle=LoginThrottle(self.clock))
        ctx.reactor = self.clock
        replies = []
        for attempt in range(11):
            c = Client(ctx)
            c.cmd(f"USER {ALICE if attempt % 2 else 'nobody@example.test'}")
            out = c.cmd("PASS wrong")
            self.clock.advance(60)
            replies.append(out + c.take())
        self.assertEqual(set(replies[:10]), {b"-ERR [AUTH] Authentication failed.\r\n"})
        self.assertEqual(
            replies[10], b"-ERR [SYS/TEMP] Too many failed logins, try again later.\r\n"
        )


class MailLogLines(Base):
    def test_failed_login_is_logged_without_the_password(self) -> None:
        log = RecordingMailLog()
        ctx = make_ctx(maillog=log)
        c = Client(ctx)
        c.cmd(f"USER {ALICE}")
        c.cmd("PASS hunter2")
        ctx.reactor.advance(10)
        self.assertEqual(
            log.lines,
            [
                (
                    "auth",
                    {"service": "pop3", "client": "192.0.2.1", "user": ALICE, "result": "failed"},
                )
            ],
        )
        self.assertNotIn("hunter2", repr(log.lines))

    def test_quit_logs_deleted_and_retrieved_counts(self) -> None:
        log = RecordingMailLog()
        ctx = make_ctx(maillog=log)
        deliver(ctx, ALICE, MSG1)
        deliver(ctx, ALICE, MSG2)
        c = Client(ctx)
        c.login()
        c.cmd("RETR 1")
        c.cmd("DELE 2")
        c.cmd("QUIT")
        self.assertEqual(log.lines[-1][0], "pop3-update")
        self.assertEqual(log.lines[-1][1]["deleted"], 1)
        self.assertEqual(log.lines[-1][1]["retrieved"], 1)


class Failures(Base):
    def test_store_failure_in_a_command_answers_sys_temp_and_closes(self) -> None:
        c = self.logged_in()

        def broken() -> None:
            raise OSError("disk on fire")

        c.proto.maildrop.stat = broken  # type: ignore[union-attr,method-assign]
        self.assertEqual(c.cmd("STAT"), b"-ERR [SYS/TEMP] Internal error, closing.\r\n")
        self.assertTrue(c.transport.disconnecting)
        self.flushLoggedErrors(OSError)

    def test_auth_plain_authzid_equal_to_user_is_accepted(self) -> None:
        c = Client(self.ctx)
        self.assertEqual(
            c.cmd(f"AUTH PLAIN {plain(ALICE, PASSWORD, authz=ALICE.upper())}"),
            b"+OK Logged in.\r\n",
        )


class SettingsChecks(unittest.TestCase):
    def test_idle_timeout_below_rfc_minimum_is_refused(self) -> None:
        self.assertRaises(ValueError, Pop3Settings, idle_timeout=60)

    def test_zero_chunk_size_is_refused(self) -> None:
        self.assertRaises(ValueError, Pop3Settings, chunk_size=0)

    def test_bad_expire_is_refused(self) -> None:
        self.assertRaises(ValueError, Pop3Settings, expire="soon")

    def test_config_loader_reports_a_bad_pop3_value(self) -> None:
        from mailsuite.config import parse_table
        from mailsuite.errors import ConfigError

        with self.assertRaises(ConfigError) as caught:
            parse_table(Pop3Settings, {"idle_timeout": 5.0}, "mailsuite.toml", "pop3")
        self.assertIn("idle_timeout", str(caught.exception))


DIALOG = [
    # (client line, exact server reply) -- one complete session under TLS (port 995).
    (None, b"+OK mailsuite POP3 ready.\r\n"),
    (
        "CAPA",
        (
            b"+OK Capability list follows.\r\nTOP\r\nUIDL\r\nRESP-CODES\r\nAUTH-RESP-CODE\r\n"
            b"PIPELINING\r\nUSER\r\nSASL PLAIN\r\nIMPLEMENTATION mailsuite\r\n.\r\n"
        ),
    ),
    ("USER alice@example.test", b"+OK Send your password.\r\n"),
    (f"PASS {PASSWORD}", b"+OK Logged in.\r\n"),
    ("STAT", b"+OK 2 %d\r\n" % (len(MSG1) + len(MSG2))),
    (
        "LIST",
        b"+OK 2 messages (%d octets).\r\n1 %d\r\n2 %d\r\n.\r\n"
        % (len(MSG1) + len(MSG2), len(MSG1), len(MSG2)),
    ),
    ("TOP 2 0", b"+OK Top of message follows.\r\nSubject: two\r\n\r\n.\r\n"),
    ("RETR 1", b"+OK %d octets.\r\n" % len(MSG1) + MSG1 + b".\r\n"),
    ("DELE 1", b"+OK Message 1 deleted.\r\n"),
    ("DELE 1", b"-ERR Message 1 is already deleted.\r\n"),
    ("LIST 1", b"-ERR Message 1 is already deleted.\r\n"),
    ("STAT", b"+OK 1 %d\r\n" % len(MSG2)),
    ("RSET", b"+OK 2 messages (%d octets).\r\n" % (len(MSG1) + len(MSG2))),
    ("DELE 2", b"+OK Message 2 deleted.\r\n"),
    ("NOOP", b"+OK\r\n"),
    ("QUIT", b"+OK Logging out, 1 messages deleted.\r\n"),
]


class Dialog(Base):
    def test_whole_session_byte_exact(self) -> None:
        c = Client(self.ctx)
        for line, expected in DIALOG:
            got = c.take() if line is None else c.cmd(line)
            self.assertEqual(got, expected, f"after {line!r}")
        self.assertEqual([i.size for i in self.inbox().messages()], [len(MSG1)])


class LongPipeline(Base):
    settings = Pop3Settings(chunk_size=1024)

    def test_many_pipelined_streamed_retrs_are_all_answered(self) -> None:
        deliver(self.ctx, ALICE, b"y" * 5000 + b"\r\n")
        c = self.logged_in()
        out = c.send(b"RETR 3\r\n" * 200 + b"QUIT\r\n")
        self.assertEqual(out.count(b"+OK 5002 octets.\r\n"), 200)
        self.assertTrue(out.endswith(b"+OK Logging out, 0 messages deleted.\r\n"))


class UniqueIds(unittest.TestCase):
    def test_store_ids_outside_rfc_1939_syntax_are_replaced(self) -> None:
        from mailsuite.pop3.maildrop import _valid_pop_id

        self.assertEqual(_valid_pop_id("abc.DEF-1", 7, 1), "abc.DEF-1")
        self.assertEqual(_valid_pop_id("has space", 7, 1), "0000000100000007")
        self.assertEqual(_valid_pop_id("x" * 71, 7, 1), "0000000100000007")
        self.assertEqual(_valid_pop_id("", 7, 1), "0000000100000007")

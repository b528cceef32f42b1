"""Submission role (587 STARTTLS / 465 implicit TLS), STARTTLS and AUTH, and BDAT, over a
string transport with a fake clock."""

from __future__ import annotations

import base64

from test_smtp_support import (
    ALICE,
    BOB,
    PASSWORD,
    connect,
    has_reply,
    inbox,
    make_context,
    make_factory,
)
from twisted.internet import task
from twisted.trial import unittest

from mailsuite.smtp import replies

MESSAGE = "Subject: hi\r\nFrom: Alice <alice@example.test>\r\n\r\nhello\r\n"


def plain(user: str, password: str, authzid: str = "") -> str:
    return base64.b64encode(f"{authzid}\0{user}\0{password}".encode()).decode()


def b64(text: str) -> str:
    return base64.b64encode(text.encode()).decode()


class StartTLSTests(unittest.TestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.ctx = make_context(self.clock)
        self.factory = make_factory(self.ctx, "submission")
        self.client = connect(self.factory)
        self.client.send("EHLO laptop.test\r\n")

    def test_no_auth_offered_before_tls(self) -> None:
        out = self.client.send("EHLO laptop.test\r\n")
        self.assertIn("250-STARTTLS", out)
        self.assertNotIn("AUTH", out)

    def test_auth_before_tls_is_530_5_7_0(self) -> None:
        out = self.client.send(f"AUTH PLAIN {plain(ALICE, PASSWORD)}\r\n")
        self.assertTrue(has_reply(out, replies.ENCRYPTION_REQUIRED))

    def test_mail_before_tls_is_530_5_7_0(self) -> None:
        out = self.client.send(f"MAIL FROM:<{ALICE}>\r\n")
        self.assertTrue(has_reply(out, replies.ENCRYPTION_REQUIRED))

    def test_starttls_starts_tls(self) -> None:
        out = self.client.send("STARTTLS\r\n")
        self.assertTrue(has_reply(out, replies.READY_FOR_TLS))
        self.assertEqual(self.client.transport.tls_options, "tls-options")

    def test_commands_pipelined_after_starttls_are_discarded(self) -> None:
        out = self.client.send(f"STARTTLS\r\nMAIL FROM:<{ALICE}>\r\nRCPT TO:<{BOB}>\r\n")
        self.assertEqual(out.count("\r\n"), 1)
        self.assertTrue(has_reply(out, replies.READY_FOR_TLS))
        # The session started over: MAIL now needs a new EHLO (it was not executed earlier).
        self.assertTrue(has_reply(self.client.send(f"MAIL FROM:<{ALICE}>\r\n"), replies.NEED_HELO))

    def test_ehlo_after_tls_offers_auth_not_starttls(self) -> None:
        self.client.send("STARTTLS\r\n")
        out = self.client.send("EHLO laptop.test\r\n")
        self.assertIn("250-AUTH PLAIN LOGIN", out)
        self.assertNotIn("STARTTLS", out)

    def test_second_starttls_is_503(self) -> None:
        self.client.send("STARTTLS\r\n")
        self.assertTrue(has_reply(self.client.send("STARTTLS\r\n"), replies.ALREADY_TLS))

    def test_mx_starttls_discards_pipelined_commands_too(self) -> None:
        client = connect(make_factory(self.ctx, "mx"))
        client.send("EHLO x.test\r\n")
        out = client.send(f"STARTTLS\r\nMAIL FROM:<a@remote.test>\r\nRCPT TO:<{ALICE}>\r\nDATA\r\n")
        self.assertEqual(out.count("\r\n"), 1)


class SubmissionBase(unittest.TestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.ctx = make_context(self.clock)
        self.factory = make_factory(self.ctx, "submissions")
        self.client = connect(self.factory, tls=True)
        self.client.send("EHLO laptop.test\r\n")

    def login(self) -> None:
        out = self.client.send(f"AUTH PLAIN {plain(ALICE, PASSWORD)}\r\n")
        self.assertTrue(has_reply(out, replies.AUTH_OK), out)


class AuthTests(SubmissionBase):
    def test_implicit_tls_offers_auth(self) -> None:
        out = self.client.send("EHLO laptop.test\r\n")
        self.assertIn("250-AUTH PLAIN LOGIN", out)
        self.assertNotIn("STARTTLS", out)

    def test_mail_before_auth_is_530_5_7_0(self) -> None:
        out = self.client.send(f"MAIL FROM:<{ALICE}>\r\n")
        self.assertTrue(has_reply(out, replies.AUTH_REQUIRED))

    def test_auth_plain_with_initial_response(self) -> None:
        self.login()
        self.assertEqual(self.client.protocol.session.user, ALICE)

    def test_auth_plain_with_challenge(self) -> None:
        self.assertEqual(self.client.send("AUTH PLAIN\r\n"), "334 \r\n")
        out = self.client.send(plain(ALICE, PASSWORD) + "\r\n")
        self.assertTrue(has_reply(out, replies.AUTH_OK))

    def test_auth_login(self) -> None:
        self.assertEqual(self.client.send("AUTH LOGIN\r\n"), "334 VXNlcm5hbWU6\r\n")
        self.assertEqual(self.client.send(b64(ALICE) + "\r\n"), "334 UGFzc3dvcmQ6\r\n")
        out = self.client.send(b64(PASSWORD) + "\r\n")
        self.assertTrue(has_reply(out, replies.AUTH_OK))

    def test_auth_success_is_logged_without_password(self) -> None:
        self.login()
        [entry] = self.ctx.maillog.of("auth")
        self.assertEqual((entry["user"], entry["result"]), (ALICE, "ok"))
        self.assertNotIn(PASSWORD, repr(self.ctx.maillog.events))

    def test_wrong_password_is_535_5_7_8_after_a_delay(self) -> None:
        out = self.client.send(f"AUTH PLAIN {plain(ALICE, 'wrong')}\r\n")
        self.assertEqual(out, "")
        self.clock.advance(1.0)
        self.assertTrue(has_reply(self.client.output(), replies.AUTH_FAILED))

    def test_bad_base64_is_535_5_7_8_after_a_delay(self) -> None:
        out = self.client.send("AUTH PLAIN !!!notbase64\r\n")
        self.assertEqual(out, "")
        self.clock.advance(1.0)
        self.assertTrue(has_reply(self.client.output(), replies.AUTH_BAD_BASE64))

    def test_failures_are_throttled_per_address(self) -> None:
        for _ in range(10):
            self.client.send(f"AUTH PLAIN {plain(ALICE, 'wrong')}\r\n")
            self.clock.advance(20)
        other = connect(self.factory, tls=True)
        other.send("EHLO laptop.test\r\n")
        out = other.send(f"AUTH PLAIN {plain(ALICE, PASSWORD)}\r\n")
        self.assertTrue(has_reply(out, replies.AUTH_THROTTLED))

    def test_commands_wait_for_the_auth_answer(self) -> None:
        out = self.client.send(f"AUTH PLAIN {plain(ALICE, 'wrong')}\r\nNOOP\r\n")
        self.assertEqual(out, "")
        self.clock.advance(1.0)
        self.assertRegex(self.client.output(), r"^535 5\.7\.8 .*\r\n250 2\.0\.0 Ok\r\n$")

    def test_auth_cancel_is_501(self) -> None:
        self.client.send("AUTH LOGIN\r\n")
        self.assertTrue(has_reply(self.client.send("*\r\n"), replies.AUTH_CANCELLED))

    def test_unknown_mechanism_is_504(self) -> None:
        out = self.client.send("AUTH CRAM-MD5\r\n")
        self.assertTrue(has_reply(out, replies.UNKNOWN_AUTH_MECHANISM))

    def test_other_authzid_is_refused(self) -> None:
        self.client.send(f"AUTH PLAIN {plain(ALICE, PASSWORD, authzid=BOB)}\r\n")
        self.clock.advance(1.0)
        self.assertTrue(has_reply(self.client.output(), replies.AUTH_FAILED))

    def test_second_auth_is_503(self) -> None:
        self.login()
        out = self.client.send(f"AUTH PLAIN {plain(ALICE, PASSWORD)}\r\n")
        self.assertTrue(has_reply(out, replies.ALREADY_AUTHENTICATED))


class SenderTests(SubmissionBase):
    def setUp(self) -> None:
        super().setUp()
        self.login()

    def test_own_address(self) -> None:
        self.assertTrue(has_reply(self.client.send(f"MAIL FROM:<{ALICE}>\r\n"), replies.SENDER_OK))

    def test_own_alias(self) -> None:
        out = self.client.send("MAIL FROM:<sales@example.test>\r\n")
        self.assertTrue(has_reply(out, replies.SENDER_OK))

    def test_plus_address(self) -> None:
        out = self.client.send("MAIL FROM:<alice+lists@example.test>\r\n")
        self.assertTrue(has_reply(out, replies.SENDER_OK))

    def test_someone_elses_address_is_5_7_1(self) -> None:
        out = self.client.send(f"MAIL FROM:<{BOB}>\r\n")
        self.assertTrue(has_reply(out, replies.SENDER_NOT_OWNED))

    def test_foreign_address_is_5_7_1(self) -> None:
        out = self.client.send("MAIL FROM:<ceo@bank.test>\r\n")
        self.assertTrue(has_reply(out, replies.SENDER_NOT_OWNED))

    def test_null_sender_is_5_7_1(self) -> None:
        out = self.client.send("MAIL FROM:<>\r\n")
        self.assertTrue(has_reply(out, replies.SENDER_NOT_OWNED))


class SubmitTests(SubmissionBase):
    def setUp(self) -> None:
        super().setUp()
        self.login()

    def test_remote_recipient_goes_to_spool(self) -> None:
        self.client.send(f"MAIL FROM:<{ALICE}>\r\nRCPT TO:<friend@remote.test>\r\nDATA\r\n")
        out = self.client.send(MESSAGE + ".\r\n")
        self.assertEqual(out, "250 2.0.0 Ok: queued as Q1\r\n")
        [(envelope, _data)] = self.ctx.spool.entries
        self.assertEqual((envelope.sender, envelope.authenticated_user), (ALICE, ALICE))
        self.assertEqual(envelope.recipients[0].address, "friend@remote.test")

    def test_message_is_completed_with_date_and_message_id(self) -> None:
        self.client.send(f"MAIL FROM:<{ALICE}>\r\nRCPT TO:<{BOB}>\r\nDATA\r\n")
        self.client.send(MESSAGE + ".\r\n")
        [raw] = inbox(self.ctx, BOB)
        self.assertRegex(raw, rb"\r\nDate: .*\r\n")
        self.assertRegex(raw, rb"\r\nMessage-ID: <\w+@mx\.example\.test>\r\n")

    def test_existing_message_id_is_kept(self) -> None:
        self.client.send(f"MAIL FROM:<{ALICE}>\r\nRCPT TO:<{BOB}>\r\nDATA\r\n")
        self.client.send("Message-ID: <mine@laptop.test>\r\n" + MESSAGE + ".\r\n")
        [raw] = inbox(self.ctx, BOB)
        self.assertEqual(raw.count(b"Message-ID:"), 1)

    def test_received_names_the_authenticated_user(self) -> None:
        self.client.send(f"MAIL FROM:<{ALICE}>\r\nRCPT TO:<{BOB}>\r\nDATA\r\n")
        self.client.send(MESSAGE + ".\r\n")
        [raw] = inbox(self.ctx, BOB)
        self.assertIn(b"(Authenticated sender: alice@example.test)", raw)
        self.assertIn(b"with ESMTPSA id", raw)

    def test_authenticated_user_may_not_use_address_literals(self) -> None:
        self.client.send(f"MAIL FROM:<{ALICE}>\r\n")
        out = self.client.send("RCPT TO:<root@[127.0.0.1]>\r\n")
        self.assertTrue(has_reply(out, replies.RELAY_DENIED))

    def test_percent_hack_in_local_domain_is_refused_even_with_auth(self) -> None:
        self.client.send(f"MAIL FROM:<{ALICE}>\r\n")
        out = self.client.send("RCPT TO:<x%remote.test@example.test>\r\n")
        self.assertTrue(has_reply(out, replies.RELAY_DENIED))

    def test_spool_failure_is_451(self) -> None:
        self.ctx.spool.fail = True
        self.client.send(f"MAIL FROM:<{ALICE}>\r\nRCPT TO:<friend@remote.test>\r\nDATA\r\n")
        out = self.client.send(MESSAGE + ".\r\n")
        self.assertTrue(has_reply(out, replies.TEMPORARY_FAILURE))
        self.flushLoggedErrors(OSError)

    def test_utf8_submission(self) -> None:
        self.client.send(f"MAIL FROM:<{ALICE}> SMTPUTF8 BODY=8BITMIME\r\nRCPT TO:<jörg@bücher.test>\r\nDATA\r\n")
        out = self.client.send("Subject: grüße\r\n\r\nhallo\r\n.\r\n")
        self.assertTrue(has_reply(out, replies.QUEUED))
        [(envelope, data)] = self.ctx.spool.entries
        self.assertEqual((envelope.smtputf8, envelope.body_8bit), (True, True))
        self.assertIn(b"with UTF8SMTPSA id", data)


class BdatTests(unittest.TestCase):
    def setUp(self) -> None:
        self.clock = task.Clock()
        self.ctx = make_context(self.clock)
        self.client = connect(make_factory(self.ctx, "mx"))
        self.client.send("EHLO client.test\r\n")

    def test_chunks_are_joined(self) -> None:
        self.client.send(f"MAIL FROM:<s@remote.test>\r\nRCPT TO:<{ALICE}>\r\n")
        first = b"Subject: bdat\r\n\r\n"
        out = self.client.send(b"BDAT %d\r\n" % len(first) + first)
        self.assertEqual(out, f"250 2.0.0 Ok: {len(first)} octets received\r\n")
        second = b"line one\r\n.line two starts with a dot\r\n"
        out = self.client.send(b"BDAT %d LAST\r\n" % len(second) + second)
        self.assertTrue(has_reply(out, replies.QUEUED))
        [raw] = inbox(self.ctx, ALICE)
        self.assertTrue(raw.endswith(first + second))

    def test_bdat_without_transaction_consumes_its_data(self) -> None:
        payload = b"NOOP\r\nNOOP\r\n"
        out = self.client.send(b"BDAT %d LAST\r\n" % len(payload) + payload)
        self.assertEqual(out, "503 5.5.1 Need MAIL command\r\n")

    def test_bdat_zero_last_ends_the_message(self) -> None:
        self.client.send(f"MAIL FROM:<s@remote.test>\r\nRCPT TO:<{ALICE}>\r\n")
        body = b"Subject: x\r\n\r\ny\r\n"
        self.client.send(b"BDAT %d\r\n" % len(body) + body)
        self.assertTrue(has_reply(self.client.send("BDAT 0 LAST\r\n"), replies.QUEUED))

    def test_bdat_split_across_reads(self) -> None:
        self.client.send(f"MAIL FROM:<s@remote.test>\r\nRCPT TO:<{ALICE}>\r\n")
        body = b"Subject: x\r\n\r\n" + b"z" * 100 + b"\r\n"
        self.assertEqual(self.client.send(b"BDAT %d LAST\r\n" % len(body) + body[:50]), "")
        self.assertTrue(has_reply(self.client.send(body[50:] + b"NOOP\r\n"), replies.QUEUED))

    def test_bdat_with_bare_lf_is_refused(self) -> None:
        self.client.send(f"MAIL FROM:<s@remote.test>\r\nRCPT TO:<{ALICE}>\r\n")
        body = b"Subject: x\r\n\r\nsmuggle\n.\nMAIL FROM:<x@y>\r\n"
        out = self.client.send(b"BDAT %d LAST\r\n" % len(body) + body)
        self.assertTrue(has_reply(out, replies.BARE_NEWLINE_IN_DATA))

    def test_bdat_syntax_error(self) -> None:
        out = self.client.send("BDAT ten\r\n")
        self.assertTrue(has_reply(out, replies.SYNTAX_ERROR))

    def test_data_after_bdat_is_503(self) -> None:
        self.client.send(f"MAIL FROM:<s@remote.test>\r\nRCPT TO:<{ALICE}>\r\n")
        self.client.send(b"BDAT 3\r\nabc")
        self.assertTrue(has_reply(self.client.send("DATA\r\n"), replies.BAD_SEQUENCE))

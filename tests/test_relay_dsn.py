"""RFC 3464 reports parsed back with the email package, and the RFC 3461 NOTIFY rules."""

from __future__ import annotations

import email
import email.policy
import unittest

from mailsuite.relay import dsn
from mailsuite.relay.spool import FAILED, QueueItem, RecipientState

ORIGINAL = (
    b"From: alice@a.test\r\nTo: bob@b.test\r\nSubject: the plan\r\nMessage-ID: <1@a.test>\r\n\r\n"
    b"the body text\r\n"
)
NOW = 1_700_000_000.0


def item(ret: str | None = None, sender: str = "alice@a.test", envid: str | None = "E1") -> QueueItem:
    return QueueItem(
        id="q1",
        sender=sender,
        recipients=[
            RecipientState(
                "bob@b.test",
                orcpt="rfc822;Bob@B.test",
                state=FAILED,
                reply="550 5.1.1 <bob@b.test>: no such user (in reply to RCPT TO command)",
                status="5.1.1",
                remote_mta="mx.b.test",
                last_attempt=NOW - 10,
            )
        ],
        created=NOW - 100,
        next_attempt=NOW,
        ret=ret,
        envid=envid,
    )


def parse(raw: bytes) -> email.message.EmailMessage:
    return email.message_from_bytes(raw, policy=email.policy.default)


def build(action: str = dsn.FAILED, **kw) -> email.message.EmailMessage:
    it = item(**kw)
    raw = dsn.build_report(dsn.Report(action, it, tuple(it.recipients)), ORIGINAL,
                           hostname="mail.a.test", now=NOW)
    return parse(raw)


class ReportTests(unittest.TestCase):
    def test_is_multipart_report_of_delivery_status(self):
        msg = build()
        self.assertEqual(msg.get_content_type(), "multipart/report")
        self.assertEqual(msg.get_param("report-type"), "delivery-status")
        self.assertEqual([p.get_content_type() for p in msg.get_payload()],
                         ["text/plain", "message/delivery-status", "message/rfc822"])

    def test_addressed_from_mailer_daemon_to_the_sender(self):
        msg = build()
        self.assertEqual(msg["To"].addresses[0].addr_spec, "alice@a.test")
        self.assertIn("MAILER-DAEMON@mail.a.test", msg["From"])
        self.assertEqual(msg["Auto-Submitted"], "auto-replied")

    def test_per_message_fields(self):
        per_message = build().get_payload()[1].get_payload()[0]
        self.assertEqual(per_message["Reporting-MTA"], "dns; mail.a.test")
        self.assertEqual(per_message["Original-Envelope-Id"], "E1")
        self.assertIsNotNone(per_message["Arrival-Date"])

    def test_per_recipient_fields(self):
        rcpt = build().get_payload()[1].get_payload()[1]
        self.assertEqual(rcpt["Final-Recipient"], "rfc822; bob@b.test")
        self.assertEqual(rcpt["Original-Recipient"], "rfc822;Bob@B.test")
        self.assertEqual(rcpt["Action"], "failed")
        self.assertEqual(rcpt["Status"], "5.1.1")
        self.assertEqual(rcpt["Remote-MTA"], "dns; mx.b.test")
        self.assertIn("smtp; 550 5.1.1", rcpt["Diagnostic-Code"])
        self.assertIsNotNone(rcpt["Last-Attempt-Date"])

    def test_full_original_returned_by_default(self):
        returned = build().get_payload()[2].get_payload()[0]
        self.assertEqual(returned["Subject"], "the plan")
        self.assertIn("the body text", returned.get_content())

    def test_ret_hdrs_returns_only_the_header(self):
        part = build(ret="HDRS").get_payload()[2]
        self.assertEqual(part.get_content_type(), "text/rfc822-headers")
        self.assertIn("Subject: the plan", part.get_content())
        self.assertNotIn("the body text", part.get_content())

    def test_large_original_returned_as_headers_only(self):
        it = item()
        big = ORIGINAL + b"x" * (dsn.RETURN_SIZE_LIMIT + 10) + b"\r\n"
        raw = dsn.build_report(dsn.Report(dsn.FAILED, it, tuple(it.recipients)), big,
                               hostname="h", now=NOW)
        self.assertEqual(parse(raw).get_payload()[2].get_content_type(), "text/rfc822-headers")

    def test_delay_notice_has_will_retry_until_and_headers_only(self):
        msg = build(dsn.DELAYED)
        rcpt = msg.get_payload()[1].get_payload()[1]
        self.assertEqual(rcpt["Action"], "delayed")
        self.assertIsNotNone(rcpt["Will-Retry-Until"])
        self.assertEqual(msg.get_payload()[2].get_content_type(), "text/rfc822-headers")

    def test_human_part_names_the_recipient_and_reply(self):
        text = build().get_payload()[0].get_content()
        self.assertIn("<bob@b.test>", text)
        self.assertIn("550 5.1.1", text)


    def test_internationalized_message_gets_global_types(self):
        it = item()
        it.smtputf8 = True
        it.recipients[0].address = "bøb@b.test"
        raw = dsn.build_report(dsn.Report(dsn.FAILED, it, tuple(it.recipients)), ORIGINAL,
                               hostname="mail.a.test", now=NOW)
        msg = parse(raw)
        self.assertEqual(msg.get_param("report-type"), "global-delivery-status")
        self.assertEqual([p.get_content_type() for p in msg.get_payload()],
                         ["text/plain", "message/global-delivery-status", "message/global"])
        self.assertIn(b"Final-Recipient: utf-8; b\xc3\xb8b@b.test", raw)


class NotifyTests(unittest.TestCase):
    def rcpt(self, *notify: str) -> RecipientState:
        return RecipientState("bob@b.test", notify=list(notify))

    def test_default_is_failure_and_delay(self):
        r = self.rcpt()
        self.assertEqual(
            [dsn.wants_notice(r, a) for a in (dsn.FAILED, dsn.DELAYED, dsn.RELAYED)],
            [True, True, False],
        )

    def test_never(self):
        self.assertFalse(dsn.wants_notice(self.rcpt("NEVER"), dsn.FAILED))

    def test_success_only(self):
        r = self.rcpt("SUCCESS")
        self.assertEqual([dsn.wants_notice(r, a) for a in (dsn.FAILED, dsn.DELIVERED)], [False, True])

    def test_null_sender_gets_no_report(self):
        it = item(sender="")
        self.assertIsNone(dsn.reports_due(it, dsn.FAILED, it.recipients))

    def test_dsn_never_reports_on_a_dsn(self):
        it = item()
        it.is_dsn = True
        self.assertIsNone(dsn.reports_due(it, dsn.FAILED, it.recipients))

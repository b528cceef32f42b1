"""The full round trip between two real servers (``twistd -n mailsuite`` subprocesses):

alice@a.test submits on 587 to mailsuite A; A finds b.test's MX through a real DNS server on
loopback and delivers to mailsuite B; bob@b.test fetches the message by IMAP and replies through
B's submission port; B delivers to A's MX; alice fetches the reply by POP3.

A's MX listens on 127.0.0.2 and B's on 127.0.0.3, both on one port that ``[relay] port`` names.
"""

from __future__ import annotations

import email
import email.policy
import imaplib
import poplib
import smtplib
import ssl
import sys
import time
from pathlib import Path

from twisted.internet import defer, reactor, threads
from twisted.trial import unittest

sys.path.insert(0, str(Path(__file__).parent))
from dnsserver import DNSServer, TestZone, free_loopback_port
from harness import MailServer

ALICE, ALICE_PW = "alice@a.test", "alice-password-1"
BOB, BOB_PW = "bob@b.test", "bob-password-22"
POLL_LIMIT = 300  # x 0.1 s: bounded waits for the other process to deliver


def _context(cafile: str) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=cafile)
    ctx.check_hostname = False  # the clients connect to 127.0.0.1; the chain is still verified
    return ctx


def submit(server: MailServer, user: str, password: str, rcpt: str, raw: bytes) -> None:
    with smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=30) as smtp:
        smtp.starttls(context=_context(server.cafile))
        smtp.login(user, password)
        smtp.sendmail(user, [rcpt], raw)


def imap_fetch_first(server: MailServer, user: str, password: str) -> bytes:
    for _ in range(POLL_LIMIT):
        with imaplib.IMAP4("127.0.0.1", server.ports["imap"], timeout=30) as imap:
            imap.login(user, password)
            imap.select("INBOX")
            _, data = imap.uid("SEARCH", "ALL")
            uids = data[0].split()
            if uids:
                _, parts = imap.uid("FETCH", uids[0], "(BODY.PEEK[])")
                return parts[0][1]
        time.sleep(0.1)
    raise AssertionError(f"nothing arrived for {user}")


def pop3_fetch_first(server: MailServer, user: str, password: str) -> bytes:
    for _ in range(POLL_LIMIT):
        pop = poplib.POP3("127.0.0.1", server.ports["pop3"], timeout=30)
        try:
            pop.user(user)
            pop.pass_(password)
            count, _ = pop.stat()
            if count:
                _, lines, _ = pop.retr(1)
                return b"\r\n".join(lines) + b"\r\n"
        finally:
            pop.quit()
        time.sleep(0.1)
    raise AssertionError(f"nothing arrived for {user}")


class TwoServers(unittest.TestCase):
    """A loopback DNS server whose zone sends a.test to 127.0.0.2 and b.test to 127.0.0.3, and
    ``server()`` to make a mailsuite for either (MX on that address, relay asking that DNS)."""

    timeout = 180
    extra_toml = ""  # more configuration for every server of the test case

    def setUp(self) -> None:
        self.port = free_loopback_port(["127.0.0.2", "127.0.0.3"])
        self.zone = TestZone()
        for domain, address in (("a.test", "127.0.0.2"), ("b.test", "127.0.0.3")):
            self.zone.add_mx(domain, [(10, f"mx.{domain}")])
            self.zone.add_a(f"mx.{domain}", address)
        self.dns = DNSServer(self.zone)
        self.dns.start(reactor)
        self.servers: list[MailServer] = []

    def tearDown(self) -> defer.Deferred:
        d = threads.deferToThread(lambda: [s.stop() for s in self.servers])
        return d.addBoth(lambda _: self.dns.stop())

    def server(self, name: str, address: str, domain: str) -> MailServer:
        extra = (
            f'[listen]\nsmtp = ["tcp:port={self.port}:interface={address}"]\n'
            f'[relay]\nnameservers = ["{self.dns.nameserver}"]\nport = {self.port}\n'
            "retry_initial = 1.0\nretry_max = 2.0\n"
            "[imap]\nallow_plaintext_auth = true\n[pop3]\nallow_plaintext_auth = true\n"
            + self.extra_toml
        )
        base = Path(self.mktemp()).absolute()
        server = MailServer(base / name, extra, hostname=f"mail.{domain}", domains=(domain,))
        server.mx_address = address  # type: ignore[attr-defined]
        self.servers.append(server)
        return server

    @defer.inlineCallbacks
    def start_pair(self):  # type: ignore[no-untyped-def]
        """Servers A (alice@a.test) and B (bob@b.test), started, each with its user."""
        a = self.server("a", "127.0.0.2", "a.test")
        b = self.server("b", "127.0.0.3", "b.test")
        yield threads.deferToThread(a.start)
        yield threads.deferToThread(b.start)
        yield threads.deferToThread(a.add_user, ALICE, ALICE_PW)
        yield threads.deferToThread(b.add_user, BOB, BOB_PW)
        return a, b


class RoundTrip(TwoServers):
    @defer.inlineCallbacks
    def test_submit_relay_imap_reply_relay_pop3(self):
        a, b = yield self.start_pair()

        first = (
            f"From: Alice <{ALICE}>\r\nTo: Bob <{BOB}>\r\nSubject: lunch?\r\n"
            "Message-ID: <first@a.test>\r\n\r\nNoon at the usual place?\r\n"
        ).encode()
        yield threads.deferToThread(submit, a, ALICE, ALICE_PW, BOB, first)
        got = yield threads.deferToThread(imap_fetch_first, b, BOB, BOB_PW)
        received = email.message_from_bytes(got, policy=email.policy.default)
        self.assertEqual(received["Subject"], "lunch?")
        self.assertEqual(received["Return-Path"], f"<{ALICE}>")
        self.assertIn("Noon at the usual place?", received.get_content())

        reply = (
            f"From: Bob <{BOB}>\r\nTo: Alice <{ALICE}>\r\nSubject: Re: lunch?\r\n"
            "In-Reply-To: <first@a.test>\r\nMessage-ID: <reply@b.test>\r\n\r\nSure, see you.\r\n"
        ).encode()
        yield threads.deferToThread(submit, b, BOB, BOB_PW, ALICE, reply)
        got = yield threads.deferToThread(pop3_fetch_first, a, ALICE, ALICE_PW)
        answer = email.message_from_bytes(got, policy=email.policy.default)
        self.assertEqual(answer["Subject"], "Re: lunch?")
        self.assertEqual(answer["In-Reply-To"], "<first@a.test>")
        self.assertIn("Sure, see you.", answer.get_content())

        rows = yield threads.deferToThread(a.cli, "queue", "list")
        self.assertIn("Mail queue is empty", rows.stdout)

    @defer.inlineCallbacks
    def test_unknown_remote_user_bounces_back_to_the_sender(self):
        a, _ = yield self.start_pair()
        message = (
            f"From: {ALICE}\r\nTo: nobody@b.test\r\nSubject: anyone there?\r\n"
            "Message-ID: <lost@a.test>\r\n\r\nhello?\r\n"
        ).encode()
        yield threads.deferToThread(submit, a, ALICE, ALICE_PW, "nobody@b.test", message)
        got = yield threads.deferToThread(pop3_fetch_first, a, ALICE, ALICE_PW)
        bounce = email.message_from_bytes(got, policy=email.policy.default)
        self.assertEqual(bounce.get_content_type(), "multipart/report")
        self.assertEqual(bounce["Return-Path"], "<>")
        status = bounce.get_payload()[1].get_payload()[1]
        self.assertEqual(status["Final-Recipient"], "rfc822; nobody@b.test")
        self.assertEqual(status["Action"], "failed")
        self.assertTrue(status["Status"].startswith("5."), status["Status"])
        self.assertEqual(status["Remote-MTA"], "dns; mx.b.test")
        returned = bounce.get_payload()[2].get_payload()[0]
        self.assertEqual(returned["Message-ID"], "<lost@a.test>")

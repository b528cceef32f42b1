"""Sender authentication on the MX: SPF, DKIM and DMARC results in Authentication-Results.

Unit tests for the header handling, then two real servers and a real DNS server on loopback:
mailsuite A DKIM-signs what alice submits and relays it to mailsuite B, which checks it against
the records the zone publishes; a spoofed message straight to B's MX fails SPF and DMARC.
"""

from __future__ import annotations

import re
import smtplib
import sys
from pathlib import Path

from twisted.internet import defer, reactor, threads
from twisted.trial import unittest

sys.path.insert(0, str(Path(__file__).parent))
from harness import MailServer
from test_relay_roundtrip import TwoServers, imap_fetch_first, submit

from mailsuite.sender_auth import SenderAuthenticator, parse_networks, without_forged_results

ALICE, ALICE_PW = "alice@a.test", "alice-password-1"
BOB, BOB_PW = "bob@b.test", "bob-password-22"


class HeaderTests(unittest.SynchronousTestCase):
    def test_forged_results_claiming_to_be_ours_are_removed(self) -> None:
        message = (b"Authentication-Results: mail.b.test;\r\n\tspf=pass smtp.mailfrom=x@y\r\n"
                   b"authentication-results:mail.b.test; dkim=pass\r\n"
                   b"Authentication-Results: mx.google.com; spf=pass\r\n"
                   b"Authentication-Results: mail.b.test.evil; spf=pass\r\n"
                   b"Subject: hi\r\n\r\nAuthentication-Results: mail.b.test; in the body\r\n")
        cleaned = without_forged_results(message, "mail.b.test")
        self.assertEqual(cleaned, b"Authentication-Results: mx.google.com; spf=pass\r\n"
                                  b"Authentication-Results: mail.b.test.evil; spf=pass\r\n"
                                  b"Subject: hi\r\n\r\nAuthentication-Results: mail.b.test; "
                                  b"in the body\r\n")
        plain = b"Subject: nothing to remove\r\n\r\nbody\r\n"
        self.assertIs(without_forged_results(plain, "mail.b.test"), plain)

    def test_trusted_networks(self) -> None:
        checker = SenderAuthenticator("mail.b.test", reactor, (), ["127.0.0.0/8", "2001:db8::/32"])
        self.assertFalse(checker.applies_to("127.0.0.9"))
        self.assertFalse(checker.applies_to("2001:db8::1"))
        self.assertTrue(checker.applies_to("192.0.2.7"))
        self.assertTrue(checker.applies_to("::1"))
        self.assertFalse(checker.applies_to("not an address"))
        self.assertRaises(ValueError, parse_networks, ["10.0.0.0/33"])


class FailureTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_a_check_that_breaks_is_recorded_not_fatal(self):  # type: ignore[no-untyped-def]
        from mailsuite import sender_auth

        def broken(*args: object) -> None:
            raise RuntimeError("resolver exploded")

        self.patch(sender_auth, "_authenticate", broken)
        checker = SenderAuthenticator("mail.b.test", reactor)
        header, name = yield defer.ensureDeferred(
            checker.check(b"From: a@b.test\r\n\r\nx\r\n", "192.0.2.1", "a@b.test", "helo.test"))
        checker._threads().stop()
        self.assertEqual(header, b"Authentication-Results: mail.b.test;\r\n\tnone (checks failed)\r\n")
        self.assertIsNone(name)
        self.assertEqual(len(self.flushLoggedErrors(RuntimeError)), 1)


def deliver_to_mx(server: MailServer, sender: str, rcpt: str, raw: bytes) -> None:
    with smtplib.SMTP(server.mx_address, server.ports["smtp"], timeout=30) as smtp:
        smtp.ehlo("mx.elsewhere.test")
        smtp.sendmail(sender, [rcpt], raw)


class EndToEnd(TwoServers):
    # Every client is checked, loopback ones included (the default trusts them).
    extra_toml = "[smtp]\ntrusted_networks = []\n"

    def setUp(self) -> None:
        super().setUp()
        # a.test's mail leaves from 127.0.0.1 (the relay does not bind a source address).
        self.zone.add_txt("a.test", "v=spf1 ip4:127.0.0.1 -all")
        self.zone.add_txt("_dmarc.a.test", "v=DMARC1; p=reject")
        self.zone.add_txt("spoofed.test", "v=spf1 ip4:192.0.2.1 -all")
        self.zone.add_txt("_dmarc.spoofed.test", "v=DMARC1; p=reject")

    def publish_dkim_key(self, server: MailServer, domain: str) -> None:
        printed = server.cli("dns", domain)
        assert printed.returncode == 0, printed.stderr
        line = next(x for x in printed.stdout.splitlines() if "._domainkey." in x)
        name = line.split("\t", 1)[0]
        value = "".join(re.findall(r'"([^"]*)"', line))
        self.zone.add_txt(name, value)

    @defer.inlineCallbacks
    def test_signed_relayed_mail_passes_spf_dkim_and_dmarc(self):  # type: ignore[no-untyped-def]
        a, b = yield self.start_pair()
        yield threads.deferToThread(self.publish_dkim_key, a, "a.test")
        raw = (f"From: Alice <{ALICE}>\r\nTo: {BOB}\r\nSubject: authenticated\r\n\r\nHi Bob\r\n"
               ).encode()
        yield threads.deferToThread(submit, a, ALICE, ALICE_PW, BOB, raw)
        got = yield threads.deferToThread(imap_fetch_first, b, BOB, BOB_PW)
        header = got.split(b"\r\n\r\n", 1)[0].replace(b"\r\n\t", b" ")
        self.assertIn(b"Authentication-Results: mail.b.test; spf=pass", header)
        self.assertIn(b"smtp.mailfrom=a.test", header)
        self.assertIn(b"dkim=pass header.d=a.test", header)
        self.assertIn(b"dmarc=pass", header)
        self.assertIn(b"Received: from mail.a.test (unknown [127.0.0.1])", header)  # no PTR

    @defer.inlineCallbacks
    def test_spoofed_mail_fails_spf_and_dmarc_and_forged_results_go(self):  # type: ignore[no-untyped-def]
        # The client's reverse name resolves back to it: Received shows it.
        self.zone.add_ptr("127.0.0.1", "relay.elsewhere.test")
        self.zone.add_a("relay.elsewhere.test", "127.0.0.1")
        b = self.server("b", "127.0.0.3", "b.test")
        yield threads.deferToThread(b.start)
        yield threads.deferToThread(b.add_user, BOB, BOB_PW)
        raw = (b"Authentication-Results: mail.b.test; spf=pass; dkim=pass; dmarc=pass\r\n"
               b"From: Your Bank <security@spoofed.test>\r\nTo: bob@b.test\r\n"
               b"Subject: verify your account\r\n\r\nClick here.\r\n")
        yield threads.deferToThread(deliver_to_mx, b, "security@spoofed.test", BOB, raw)
        got = yield threads.deferToThread(imap_fetch_first, b, BOB, BOB_PW)
        header = got.split(b"\r\n\r\n", 1)[0].replace(b"\r\n\t", b" ")
        self.assertEqual(header.count(b"Authentication-Results:"), 1)  # ours only
        self.assertIn(b"spf=fail", header)
        self.assertIn(b"smtp.mailfrom=security@spoofed.test", header)
        self.assertIn(b"dkim=none", header)  # not signed at all (not a failed signature)
        self.assertIn(b"dmarc=fail", header)
        self.assertIn(b"policy.dmarc=reject", header)
        self.assertIn(b"Received: from mx.elsewhere.test (relay.elsewhere.test [127.0.0.1])", header)

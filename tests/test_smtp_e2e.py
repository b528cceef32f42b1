"""End-to-end SMTP over real sockets on 127.0.0.1 with a real certificate and the Maildir store:
smtplib (EHLO, STARTTLS, AUTH PLAIN/LOGIN, SMTPUTF8, send_message), BDAT over a raw socket,
and swaks for MX delivery and STARTTLS+AUTH submission."""

from __future__ import annotations

import shutil
import smtplib
import socket
import ssl
import subprocess
import tempfile
from email.message import EmailMessage
from pathlib import Path
from types import SimpleNamespace
from typing import Any

from twisted.internet import defer, reactor, threads
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.trial import unittest

from mailsuite.accounts import MemoryAccounts
from mailsuite.auth import LoginThrottle, make_portal
from mailsuite.connlimit import ConnectionLimiter
from mailsuite.context import ServerContext
from mailsuite.maillog import MailLog
from mailsuite.smtp.service import SMTPFactory
from mailsuite.smtp.settings import SmtpSettings
from mailsuite.smtp.testing import RecordingSpool
from mailsuite.store.maildir import MaildirStore
from mailsuite.store.settings import StoreSettings
from mailsuite.tls import TLSSettings, ensure_certificate

ALICE = "alice@example.test"
BOB = "bob@example.test"
PASSWORD = "correct horse battery"
HOST = "127.0.0.1"


def _client_tls() -> ssl.SSLContext:
    context = ssl.create_default_context()
    context.check_hostname = False
    context.verify_mode = ssl.CERT_NONE
    return context


class E2EBase(unittest.TestCase):
    """An MX, a submission (587-style) and a submissions (465-style) listener."""

    def setUp(self) -> defer.Deferred[None]:
        self.dir = Path(tempfile.mkdtemp(prefix="smtp-e2e-"))
        self.addCleanup(shutil.rmtree, self.dir, True)
        cert, key = ensure_certificate(self.dir / "tls", "mx.example.test")
        accounts = MemoryAccounts(["example.test"], reactor=reactor)
        accounts.add_user(ALICE, PASSWORD)
        accounts.add_user(BOB, PASSWORD)
        store = MaildirStore(self.dir / "mail", StoreSettings(fsync=True), accounts, reactor)
        self.addCleanup(store.close)
        settings = SmtpSettings()
        self.ctx = ServerContext(
            config=SimpleNamespace(smtp=settings, hostname="mx.example.test"),
            accounts=accounts,
            store=store,
            spool=RecordingSpool(),
            portal=make_portal(accounts, store),
            tls=TLSSettings(cert, key),
            throttle=LoginThrottle(reactor),
            maillog=MailLog(self.dir / "mail.log"),
            reactor=reactor,
        )
        limiter = ConnectionLimiter(settings.max_connections, settings.max_connections_per_ip)
        self.ports: dict[str, int] = {}
        for role in ("mx", "submission", "submissions"):
            factory: Any = SMTPFactory(self.ctx, role, limiter=limiter, auth_failure_delay=0.1)
            if role == "submissions":
                factory = TLSMemoryBIOFactory(self.ctx.tls.server_options(), False, factory)
            port = reactor.listenTCP(0, factory, interface=HOST)
            self.addCleanup(port.stopListening)
            self.ports[role] = port.getHost().port
        return defer.succeed(None)

    def inbox(self, user: str) -> list[bytes]:
        folder = self.ctx.store.account(user).open_folder("INBOX")
        folder.refresh()
        return [folder.read_message(info.uid) for info in folder.messages()]


def _message(sender: str, to: str, subject: str = "e2e") -> EmailMessage:
    msg = EmailMessage()
    msg["From"] = sender
    msg["To"] = to
    msg["Subject"] = subject
    msg.set_content("Hello over a real socket.\n")
    return msg


class SmtplibTests(E2EBase):
    def test_mx_delivery_lands_in_maildir(self) -> defer.Deferred[None]:
        def send() -> None:
            with smtplib.SMTP(HOST, self.ports["mx"]) as smtp:
                smtp.ehlo("client.test")
                smtp.send_message(_message("someone@remote.test", ALICE))

        def check(_: Any) -> None:
            [raw] = self.inbox(ALICE)
            self.assertTrue(raw.startswith(b"Return-Path: <someone@remote.test>\r\nDelivered-To: alice@example.test\r\nReceived: from client.test (unknown [127.0.0.1])"))
            self.assertIn(b"Subject: e2e", raw)

        return threads.deferToThread(send).addCallback(check)

    def test_mx_relay_is_refused(self) -> defer.Deferred[None]:
        def send() -> tuple[int, bytes]:
            with smtplib.SMTP(HOST, self.ports["mx"]) as smtp:
                smtp.ehlo("client.test")
                smtp.mail("someone@remote.test")
                return smtp.rcpt("victim@foreign.test")

        def check(reply: tuple[int, bytes]) -> None:
            self.assertEqual(reply[0], 554)
            self.assertTrue(reply[1].startswith(b"5.7.1 "))
            self.assertEqual(self.ctx.spool.entries, [])

        return threads.deferToThread(send).addCallback(check)

    def test_starttls_then_auth_plain_submission(self) -> defer.Deferred[None]:
        def send() -> str:
            with smtplib.SMTP(HOST, self.ports["submission"]) as smtp:
                smtp.ehlo("laptop.test")
                assert not smtp.has_extn("auth")
                smtp.starttls(context=_client_tls())
                smtp.ehlo("laptop.test")
                smtp.login(ALICE, PASSWORD)
                smtp.send_message(_message(ALICE, BOB))
                return smtp.sock.version()

        def check(version: str) -> None:
            [raw] = self.inbox(BOB)
            self.assertIn(f"(using {version} with cipher ".encode(), raw)
            self.assertIn(b"(Authenticated sender: alice@example.test)", raw)
            self.assertIn(b"\r\nMessage-ID: <", raw)

        return threads.deferToThread(send).addCallback(check)

    def test_implicit_tls_auth_login_to_remote_goes_to_spool(self) -> defer.Deferred[None]:
        def send() -> None:
            with smtplib.SMTP_SSL(HOST, self.ports["submissions"], context=_client_tls()) as smtp:
                smtp.ehlo("laptop.test")
                smtp.user, smtp.password = ALICE, PASSWORD
                code, _ = smtp.auth("LOGIN", smtp.auth_login, initial_response_ok=False)
                assert code == 235
                smtp.send_message(_message(ALICE, "friend@remote.test"))

        def check(_: Any) -> None:
            [(envelope, data)] = self.ctx.spool.entries
            self.assertEqual(envelope.recipients[0].address, "friend@remote.test")
            self.assertIn(b"with ESMTPSA", data)

        return threads.deferToThread(send).addCallback(check)

    def test_wrong_password_is_535(self) -> defer.Deferred[None]:
        def send() -> int:
            with smtplib.SMTP_SSL(HOST, self.ports["submissions"], context=_client_tls()) as smtp:
                smtp.ehlo("laptop.test")
                try:
                    smtp.login(ALICE, "wrong")
                except smtplib.SMTPAuthenticationError as e:
                    return e.smtp_code
                return 0

        return threads.deferToThread(send).addCallback(self.assertEqual, 535)

    def test_smtputf8(self) -> defer.Deferred[None]:
        def send() -> None:
            with smtplib.SMTP(HOST, self.ports["mx"]) as smtp:
                smtp.ehlo("client.test")
                assert smtp.has_extn("smtputf8")
                msg = _message("jörg@bücher.test", ALICE, subject="grüße")
                smtp.send_message(msg)  # adds SMTPUTF8 to MAIL by itself

        def check(_: Any) -> None:
            [raw] = self.inbox(ALICE)
            self.assertIn("Return-Path: <jörg@bücher.test>".encode(), raw)
            self.assertIn(b"with UTF8SMTP id", raw)

        return threads.deferToThread(send).addCallback(check)


class RawSocketTests(E2EBase):
    def _dialog(self, steps: list[bytes]) -> list[bytes]:
        """Send each step and read one reply block per step (until a final reply line)."""
        answers = []
        with socket.create_connection((HOST, self.ports["mx"]), timeout=10) as sock:
            reader = sock.makefile("rb")
            reader.readline()
            for step in steps:
                sock.sendall(step)
                block = b""
                while True:
                    line = reader.readline()
                    block += line
                    if not line or line[3:4] == b" ":
                        break
                answers.append(block)
        return answers

    def test_bdat_over_raw_socket(self) -> defer.Deferred[None]:
        body = b"Subject: bdat\r\n\r\nchunked\r\n"
        steps = [
            b"EHLO raw.test\r\n",
            b"MAIL FROM:<s@remote.test>\r\n",
            b"RCPT TO:<alice@example.test>\r\n",
            b"BDAT 10\r\n" + body[:10],
            b"BDAT %d LAST\r\n" % (len(body) - 10) + body[10:],
            b"QUIT\r\n",
        ]

        def check(answers: list[bytes]) -> None:
            self.assertIn(b"250-CHUNKING\r\n", answers[0])
            self.assertEqual(answers[3], b"250 2.0.0 Ok: 10 octets received\r\n")
            self.assertTrue(answers[4].startswith(b"250 2.0.0 Ok: queued as "))
            [raw] = self.inbox(ALICE)
            self.assertTrue(raw.endswith(body))

        return threads.deferToThread(self._dialog, steps).addCallback(check)

    def test_smuggling_over_raw_socket(self) -> defer.Deferred[None]:
        steps = [
            b"EHLO raw.test\r\nMAIL FROM:<s@remote.test>\r\nRCPT TO:<alice@example.test>\r\nDATA\r\n",
            (b"Subject: a\r\n\r\nx\n.\nMAIL FROM:<e@remote.test>\r\nRCPT TO:<alice@example.test>\r\n"
             b"DATA\r\nSubject: smuggled\r\n\r\n.\r\n"),
        ]

        def check(answers: list[bytes]) -> None:
            self.assertTrue(answers[1].startswith(b"554 5.6.0 "))
            self.assertEqual(self.inbox(ALICE), [])

        def run() -> list[bytes]:
            with socket.create_connection((HOST, self.ports["mx"]), timeout=10) as sock:
                reader = sock.makefile("rb")
                reader.readline()
                sock.sendall(steps[0])
                for _ in range(4):
                    while reader.readline()[3:4] != b" ":
                        pass
                sock.sendall(steps[1])
                return [b"", reader.readline()]

        return threads.deferToThread(run).addCallback(check)


class SwaksTests(E2EBase):
    if shutil.which("swaks") is None:
        skip = "swaks is not installed"

    def _swaks(self, *args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            ["swaks", "--server", HOST, "--helo", "swaks.test", *args],
            capture_output=True,
            text=True,
            timeout=60,
            check=False,  # the tests read swaks' exit code and output
        )

    def test_swaks_mx_delivery(self) -> defer.Deferred[None]:
        def check(result: subprocess.CompletedProcess[str]) -> None:
            self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
            [raw] = self.inbox(ALICE)
            self.assertIn(b"Return-Path: <sender@remote.test>", raw)
            self.assertIn(b"Received: from swaks.test", raw)

        return threads.deferToThread(
            self._swaks, "--port", str(self.ports["mx"]), "--from", "sender@remote.test",
            "--to", ALICE,
        ).addCallback(check)

    def test_swaks_starttls_auth_submission(self) -> defer.Deferred[None]:
        def check(result: subprocess.CompletedProcess[str]) -> None:
            self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
            self.assertIn("235 2.7.0", result.stdout)
            [raw] = self.inbox(BOB)
            self.assertIn(b"with ESMTPSA", raw)

        return threads.deferToThread(
            self._swaks, "--port", str(self.ports["submission"]), "--tls",
            "--auth", "PLAIN", "--auth-user", ALICE, "--auth-password", PASSWORD,
            "--from", ALICE, "--to", BOB,
        ).addCallback(check)

    def test_swaks_auth_login_over_implicit_tls(self) -> defer.Deferred[None]:
        def check(result: subprocess.CompletedProcess[str]) -> None:
            self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
            self.assertEqual(len(self.inbox(BOB)), 1)

        return threads.deferToThread(
            self._swaks, "--port", str(self.ports["submissions"]), "--tls-on-connect",
            "--auth", "LOGIN", "--auth-user", ALICE, "--auth-password", PASSWORD,
            "--from", ALICE, "--to", BOB,
        ).addCallback(check)


class ConnectionFloodTests(E2EBase):
    def test_connections_over_the_per_address_limit_get_421(self) -> defer.Deferred[None]:
        limit = self.ctx.config.smtp.max_connections_per_ip

        def flood() -> list[bytes]:
            socks = [socket.create_connection((HOST, self.ports["mx"]), timeout=10)
                     for _ in range(limit + 5)]
            try:
                return [s.makefile("rb").readline() for s in socks]
            finally:
                for s in socks:
                    s.close()

        def check(greetings: list[bytes]) -> None:
            self.assertEqual(sum(g.startswith(b"220 ") for g in greetings), limit)
            self.assertEqual(
                [g for g in greetings if not g.startswith(b"220 ")],
                [b"421 4.7.0 Too many connections from your address\r\n"] * 5,
            )

        return threads.deferToThread(flood).addCallback(check)

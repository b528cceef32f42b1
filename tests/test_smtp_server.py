"""Against a real ``twistd -n mailsuite``: a desktop client submits on 587 (STARTTLS + AUTH) and
the recipient fetches the message with IMAP and with POP3."""

from __future__ import annotations

import imaplib
import poplib
import smtplib
from collections.abc import Iterator
from email.message import EmailMessage
from pathlib import Path

import pytest
from harness import MailServer, running_server

ALICE = "alice@example.test"
BOB = "bob@example.test"
PASSWORD = "desktop client secret"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MailServer]:
    users = {ALICE: PASSWORD, BOB: PASSWORD}
    with running_server(tmp_path_factory.mktemp("smtp-server"), users) as started:
        yield started


def _submit(server: MailServer, subject: str) -> None:
    msg = EmailMessage()
    msg["From"] = f"Alice <{ALICE}>"
    msg["To"] = f"Bob <{BOB}>"
    msg["Subject"] = subject
    msg.set_content("Sent from a desktop client over submission.\n")
    with smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=30) as smtp:
        smtp.ehlo("laptop.example.test")
        smtp.starttls(context=server.ssl_context(check_hostname=False))
        smtp.ehlo("laptop.example.test")
        smtp.login(ALICE, PASSWORD)
        refused = smtp.send_message(msg)
        assert refused == {}


def test_submitted_message_is_fetched_with_imap(server: MailServer) -> None:
    _submit(server, "via imap")
    imap = imaplib.IMAP4_SSL(
        "127.0.0.1", server.ports["imaps"], ssl_context=server.ssl_context(check_hostname=False)
    )
    imap.login(BOB, PASSWORD)
    imap.select("INBOX")
    typ, data = imap.search(None, "SUBJECT", '"via imap"')
    assert typ == "OK" and data[0]
    typ, fetched = imap.fetch(data[0].split()[-1], "(RFC822)")
    imap.logout()
    raw = fetched[0][1]
    assert raw.startswith(b"Return-Path: <alice@example.test>\r\nDelivered-To: bob@example.test\r\n")
    assert b"with ESMTPSA id" in raw
    assert b"Message-ID: <" in raw


def test_submitted_message_is_fetched_with_pop3(server: MailServer) -> None:
    _submit(server, "via pop3")
    pop = poplib.POP3_SSL(
        "127.0.0.1", server.ports["pop3s"], context=server.ssl_context(check_hostname=False)
    )
    pop.user(BOB)
    pop.pass_(PASSWORD)
    count, _size = pop.stat()
    bodies = [b"\r\n".join(pop.retr(i)[1]) for i in range(1, count + 1)]
    pop.quit()
    assert any(b"Subject: via pop3" in body for body in bodies)


def _wait_for_message(server: MailServer, user: str, subject: str, timeout: float = 30.0) -> bytes:
    """The first message in ``user``'s INBOX whose subject has ``subject``, waiting in IDLE
    for new arrivals while there is none (bounded by the socket timeout)."""
    imap = imaplib.IMAP4_SSL("127.0.0.1", server.ports["imaps"], timeout=timeout,
                             ssl_context=server.ssl_context(check_hostname=False))
    imap.login(user, PASSWORD)
    imap.select("INBOX")
    while not (found := imap.search(None, "SUBJECT", f'"{subject}"')[1][0].split()):
        imap.send(b"w IDLE\r\n")
        assert imap.readline().startswith(b"+")
        line = imap.readline()
        while not line.endswith(b"EXISTS\r\n"):
            assert line, "the server closed the connection"
            line = imap.readline()
        imap.send(b"DONE\r\n")
        while not imap.readline().startswith(b"w OK"):
            pass
    _, fetched = imap.fetch(found[0], "(BODY.PEEK[])")
    imap.logout()
    return fetched[0][1]


def test_notify_success_for_a_local_recipient_sends_a_delivered_report(server: MailServer) -> None:
    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = ALICE, BOB, "please confirm"
    msg.set_content("Tell me when it is in Bob's mailbox.\n")
    with smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=30) as smtp:
        smtp.starttls(context=server.ssl_context(check_hostname=False))
        smtp.login(ALICE, PASSWORD)
        smtp.send_message(msg, rcpt_options=["NOTIFY=SUCCESS"])
    report = _wait_for_message(server, ALICE, "Successful Mail Delivery Report")
    assert b"report-type=delivery-status" in report
    assert b"Action: delivered" in report and b"Final-Recipient: rfc822; bob@example.test" in report
    imap = imaplib.IMAP4_SSL("127.0.0.1", server.ports["imaps"],
                             ssl_context=server.ssl_context(check_hostname=False))
    imap.login(BOB, PASSWORD)
    imap.select("INBOX")
    assert imap.search(None, "SUBJECT", '"please confirm"')[1][0]  # and Bob has the message
    imap.logout()


def test_mail_log_records_the_submission(server: MailServer) -> None:
    _submit(server, "logged")
    log = Path(server.data_dir, ".mailsuite", "mail.log").read_text()
    assert "auth " in log and "accepted " in log
    assert PASSWORD not in log


def test_smtp_settings_come_from_the_config_file(tmp_path: Path) -> None:
    limited = MailServer(tmp_path, extra_toml="[smtp]\nmax_recipients = 2\n")
    limited.start()
    try:
        limited.add_user(ALICE, PASSWORD)
        with smtplib.SMTP("127.0.0.1", limited.ports["smtp"], timeout=30) as smtp:
            smtp.ehlo("client.test")
            smtp.mail("sender@remote.test")
            codes = [smtp.rcpt(ALICE)[0] for _ in range(3)]
            relay = smtp.rcpt("victim@foreign.test")
        assert codes == [250, 250, 452]
        assert relay[0] == 452  # the limit is checked before anything else
        log = Path(limited.data_dir, ".mailsuite", "mail.log").read_text()
        assert "connect " in log
    finally:
        limited.stop()

"""The IMAP server inside the real daemon (``twistd -n mailsuite``): SMTP delivers a message
while an IMAP client IDLEs, and the client sees ``* n EXISTS`` pushed."""

from __future__ import annotations

import imaplib
import smtplib
import ssl
import threading

import pytest
from harness import MailServer

ALICE = "alice@example.test"
PASSWORD = "correct horse battery"


@pytest.fixture
def server(tmp_path):  # type: ignore[no-untyped-def]
    s = MailServer(tmp_path)
    try:
        s.start()
    except Exception as e:  # noqa: BLE001 - the daemon could not start here: say so plainly
        pytest.skip(f"daemon did not start: {e}")
    s.add_user(ALICE, PASSWORD)
    yield s
    s.stop()


def imap_client(server) -> imaplib.IMAP4_SSL:  # type: ignore[no-untyped-def]
    context = ssl.create_default_context(cafile=str(server.cafile))
    context.check_hostname = False
    client = imaplib.IMAP4_SSL("127.0.0.1", server.ports["imaps"], ssl_context=context,
                               timeout=30)
    client.login(ALICE, PASSWORD)
    return client


def smtp_deliver(server, subject: str) -> None:  # type: ignore[no-untyped-def]
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=30) as smtp:
        smtp.sendmail("someone@elsewhere.test", [ALICE],
                      f"From: someone@elsewhere.test\r\nTo: {ALICE}\r\nSubject: {subject}\r\n"
                      f"\r\nhello\r\n")


def test_smtp_delivery_pushes_exists_to_idling_client(server) -> None:  # type: ignore[no-untyped-def]
    smtp_deliver(server, "first")
    client = imap_client(server)
    typ, data = client.select("INBOX")
    assert (typ, data) == ("OK", [b"1"])
    tag = client._new_tag()
    client.send(tag + b" IDLE\r\n")
    assert client.readline().startswith(b"+")
    sender = threading.Thread(target=smtp_deliver, args=(server, "second"))
    sender.start()
    client.sock.settimeout(20)
    try:
        pushed = client.readline()
    except TimeoutError:
        pushed = b"(nothing within 20 s)"
    sender.join(30)
    client.send(b"DONE\r\n")
    done = client.readline()
    client.logout()
    assert pushed == b"* 2 EXISTS\r\n"
    assert done.startswith(tag + b" OK")


def test_special_use_folders_exist_for_new_user(server) -> None:  # type: ignore[no-untyped-def]
    client = imap_client(server)
    _, listing = client.list()
    client.logout()
    text = b"\n".join(listing)
    for attr in (b"\\Sent", b"\\Drafts", b"\\Trash", b"\\Junk", b"\\Archive"):
        assert attr in text

"""DKIM signing: every signature made by mailsuite.dkim is checked by dkimpy, an independent
implementation, against the TXT record ``DkimSigner.dns_record`` publishes."""

from __future__ import annotations

import re
import stat
from pathlib import Path

import dkim as dkimpy
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailsuite.dkim import DkimSettings, DkimSigner, relaxed_body, relaxed_header

DOMAIN = "example.test"
NOW = 1_700_000_000


@pytest.fixture(scope="module")
def signer(tmp_path_factory: pytest.TempPathFactory) -> DkimSigner:
    return DkimSigner(tmp_path_factory.mktemp("dkim"), DkimSettings(key_bits=1024))


def txt_value(signer: DkimSigner, domain: str = DOMAIN) -> bytes:
    """The TXT record's strings joined, as a resolver hands them to a verifier."""
    return "".join(re.findall(r'"([^"]*)"', signer.dns_record(domain))).encode()


def verifies(signer: DkimSigner, message: bytes) -> bool:
    signed = signer.sign(message, DOMAIN, NOW) + message
    record = txt_value(signer)
    names: list[bytes] = []

    def lookup(name: bytes, timeout: int = 5) -> bytes:
        names.append(name)
        return record

    ok = dkimpy.verify(signed, dnsfunc=lookup, minkey=1024)
    assert not ok or names == [f"mailsuite._domainkey.{DOMAIN}.".encode()]
    return bool(ok)


MESSAGES = {
    "plain": b"From: Alice <alice@example.test>\r\nTo: bob@remote.test\r\nSubject: hi\r\n"
             b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\nMessage-ID: <1@example.test>\r\n\r\n"
             b"Hello Bob.\r\n",
    "folded and spaced": b"From:   alice@example.test  \r\nSubject: a long\r\n\t subject   line \r\n"
                         b"To: b@r.test,\r\n  c@r.test\r\n\r\nline  with   runs \t \r\n\r\n\r\n",
    "repeated fields": b"From: alice@example.test\r\nReceived: x\r\nTo: a@r.test\r\nTo: b@r.test\r\n"
                       b"Subject: one\r\n\r\nbody\r\n",
    "empty body": b"From: alice@example.test\r\nSubject: nothing\r\n\r\n",
    "no blank line": b"From: alice@example.test\r\nSubject: header only\r\n",
    "no final CRLF": b"From: alice@example.test\r\n\r\nno newline at the end",
    "8-bit": "From: Zoë <alice@example.test>\r\nSubject: café\r\n\r\nnaïve\r\n".encode(),
    "mime": b"From: alice@example.test\r\nMIME-Version: 1.0\r\nContent-Type: multipart/mixed;"
            b" boundary=x\r\n\r\n--x\r\nContent-Type: text/plain\r\n\r\npart\r\n--x--\r\n",
}


@pytest.mark.parametrize("name", list(MESSAGES))
def test_dkimpy_verifies_our_signature(signer: DkimSigner, name: str) -> None:
    assert verifies(signer, MESSAGES[name])


def test_a_changed_body_or_signed_field_fails(signer: DkimSigner) -> None:
    message = MESSAGES["plain"]
    signed = signer.sign(message, DOMAIN, NOW) + message
    record = txt_value(signer)

    def lookup(name: bytes, timeout: int = 5) -> bytes:
        return record

    assert dkimpy.verify(signed, dnsfunc=lookup, minkey=1024)
    assert not dkimpy.verify(signed.replace(b"Hello Bob", b"Hello Eve"), dnsfunc=lookup,
                             minkey=1024)
    assert not dkimpy.verify(signed.replace(b"Subject: hi", b"Subject: ho"), dnsfunc=lookup,
                             minkey=1024)
    # From is oversigned: a second From added on top breaks the signature.
    assert not dkimpy.verify(b"From: mallory@evil.test\r\n" + signed, dnsfunc=lookup,
                             minkey=1024)
    # Unsigned fields may be added (a receiver's Received: header, say).
    assert dkimpy.verify(b"Received: from somewhere\r\n" + signed, dnsfunc=lookup, minkey=1024)


def test_signature_field_lines_stay_short(signer: DkimSigner) -> None:
    header = signer.sign(MESSAGES["plain"], DOMAIN, NOW)
    assert header.startswith(b"DKIM-Signature: v=1;") and header.endswith(b"\r\n")
    assert all(len(line) <= 78 for line in header.split(b"\r\n"))
    assert b"d=example.test;" in header and b"s=mailsuite;" in header and b"t=1700000000" in header


@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(
    subject=st.text(st.characters(min_codepoint=32, max_codepoint=0x2FF), max_size=60),
    lines=st.lists(st.text(st.sampled_from(list("ab \t.")), max_size=30), max_size=8),
)
def test_any_body_and_subject_verify(signer: DkimSigner, subject: str, lines: list[str]) -> None:
    body = "".join(line + "\r\n" for line in lines)
    message = f"From: alice@example.test\r\nSubject: {subject}\r\n\r\n{body}".encode()
    assert verifies(signer, message)


def test_canonicalization_examples_of_rfc_6376() -> None:
    # RFC 6376 3.4.5: the header and body examples, relaxed.
    assert relaxed_header(b"A: X\r\n") == b"a:X\r\n"
    assert relaxed_header(b"B : Y\t\r\n\tZ  \r\n") == b"b:Y Z\r\n"
    assert relaxed_body(b" C \r\nD \t E\r\n\r\n\r\n") == b" C\r\nD E\r\n"
    assert relaxed_body(b"") == b"" and relaxed_body(b"\r\n\r\n") == b""


def test_key_is_made_once_with_mode_0600(tmp_path: Path) -> None:
    first = DkimSigner(tmp_path / "dkim", DkimSettings(key_bits=1024))
    record = first.dns_record("Example.Test")
    path = first.key_path("example.test")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    again = DkimSigner(tmp_path / "dkim", DkimSettings(key_bits=1024))
    assert again.dns_record("example.test") == record.replace("Example.Test", "example.test")
    assert record.startswith("mailsuite._domainkey.Example.Test.\tIN TXT\t(")


def test_signing_domain_is_the_from_domain_when_it_is_ours(signer: DkimSigner) -> None:
    ours = {"example.test"}
    assert signer.signing_domain(MESSAGES["plain"], ours) == "example.test"
    assert signer.signing_domain(b"From: x@Example.TEST\r\n\r\n", ours) == "example.test"
    assert signer.signing_domain(b"From: x@other.test\r\n\r\n", ours) is None
    assert signer.signing_domain(b"Subject: no from\r\n\r\n", ours) is None
    assert signer.signing_domain(b"From: a@example.test, b@example.test\r\n\r\n", ours) is None


# --- end to end: a desktop client submits, the recipient's copy carries a valid signature ----

ALICE, BOB, PASSWORD = "alice@example.test", "bob@example.test", "dkim test secret"


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory):  # type: ignore[no-untyped-def]
    from harness import running_server

    users = {ALICE: PASSWORD, BOB: PASSWORD}
    with running_server(tmp_path_factory.mktemp("dkim-server"), users) as started:
        yield started


def submit_and_fetch(server, from_header: str, subject: str) -> bytes:  # type: ignore[no-untyped-def]
    import imaplib
    import smtplib
    from email.message import EmailMessage

    msg = EmailMessage()
    msg["From"], msg["To"], msg["Subject"] = from_header, BOB, subject
    msg.set_content("Signed on the way out.  \n\n\n")
    with smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=30) as smtp:
        smtp.starttls(context=server.ssl_context(check_hostname=False))
        smtp.login(ALICE, PASSWORD)
        smtp.send_message(msg, from_addr=ALICE)
    imap = imaplib.IMAP4_SSL("127.0.0.1", server.ports["imaps"],
                             ssl_context=server.ssl_context(check_hostname=False), timeout=30)
    imap.login(BOB, PASSWORD)
    imap.select("INBOX")
    _, found = imap.search(None, "SUBJECT", f'"{subject}"')
    _, fetched = imap.fetch(found[0].split()[-1], "(BODY.PEEK[])")
    imap.logout()
    return fetched[0][1]


def test_submitted_mail_is_signed_and_dkimpy_verifies_it(server) -> None:  # type: ignore[no-untyped-def]
    delivered = submit_and_fetch(server, f"Alice <{ALICE}>", "signed e2e")
    assert b"\r\nDKIM-Signature: v=1; a=rsa-sha256; c=relaxed/relaxed; d=example.test;" in (
        delivered.replace(b";\r\n\t", b"; "))
    dns = server.cli("dns", "example.test")
    assert dns.returncode == 0, dns.stderr
    line = next(x for x in dns.stdout.splitlines() if x.startswith("mailsuite._domainkey."))
    record = "".join(re.findall(r'"([^"]*)"', line)).encode()
    # The verifier reads the published record (as a receiving server would from DNS).
    assert dkimpy.verify(delivered, dnsfunc=lambda name, timeout=5: record)


def test_mail_from_a_foreign_domain_is_not_signed(server) -> None:  # type: ignore[no-untyped-def]
    delivered = submit_and_fetch(server, "Alice <alice@elsewhere.test>", "unsigned e2e")
    assert b"DKIM-Signature" not in delivered

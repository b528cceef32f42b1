"""POP3 in the real daemon: ``twistd -n mailsuite`` in a subprocess (tests/harness.py).

Mail goes in through SMTP and out through POP3 (STLS on the pop3 port, implicit TLS on pop3s),
and the ``[pop3]`` table of the configuration reaches the listeners.
"""

from __future__ import annotations

import poplib
import smtplib
import ssl
from typing import Any

ALICE = "alice@example.test"
PASSWORD = "daemon pass 1"
MESSAGE = (
    "From: bob@remote.test\r\nTo: alice@example.test\r\nSubject: via smtp\r\n\r\n"
    "hello\r\n.leading dot\r\n"
)


def client_context(server: Any) -> ssl.SSLContext:
    ctx = ssl.create_default_context(cafile=server.cafile)
    ctx.check_hostname = False  # poplib sends the IP address as the name; the chain is checked
    return ctx


def send_mail(server: Any) -> None:
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=30) as smtp:
        smtp.sendmail("bob@remote.test", [ALICE], MESSAGE)


def test_smtp_in_pop3s_out(mail_server_factory: Any) -> None:
    server = mail_server_factory()
    server.add_user(ALICE, PASSWORD)
    send_mail(server)
    pop = poplib.POP3_SSL(
        "127.0.0.1", server.ports["pop3s"], context=client_context(server), timeout=30
    )
    pop.user(ALICE)
    pop.pass_(PASSWORD)
    assert pop.stat()[0] == 1
    lines = pop.retr(1)[1]
    pop.dele(1)
    assert pop.quit() == b"+OK Logging out, 1 messages deleted."
    assert b"Subject: via smtp" in lines
    assert b".leading dot" in lines
    pop = poplib.POP3_SSL(
        "127.0.0.1", server.ports["pop3s"], context=client_context(server), timeout=30
    )
    pop.user(ALICE)
    pop.pass_(PASSWORD)
    assert pop.stat() == (0, 0)
    pop.quit()


def test_stls_then_user_pass_and_configured_capa(mail_server_factory: Any) -> None:
    server = mail_server_factory('[pop3]\nexpire = "NEVER"\n')
    server.add_user(ALICE, PASSWORD)
    pop = poplib.POP3("127.0.0.1", server.ports["pop3"], timeout=30)
    before = pop.capa()
    assert "STLS" in before and "USER" not in before
    pop.stls(client_context(server))
    after = pop.capa()
    assert "USER" in after and "STLS" not in after
    assert after["EXPIRE"] == ["NEVER"]
    pop.user(ALICE)
    assert pop.pass_(PASSWORD) == b"+OK Logged in."
    pop.quit()


def test_plaintext_user_refused_on_pop3_port(mail_server: Any) -> None:
    mail_server.add_user(ALICE, PASSWORD)
    pop = poplib.POP3("127.0.0.1", mail_server.ports["pop3"], timeout=30)
    try:
        pop.user(ALICE)
    except poplib.error_proto as e:
        assert e.args[0].startswith(b"-ERR [AUTH]")
    else:
        raise AssertionError("USER accepted before STLS")
    finally:
        pop.quit()

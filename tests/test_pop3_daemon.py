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


def memory_kib(pid: int, field: str) -> int:
    """``VmRSS`` (resident now) or ``VmHWM`` (peak resident) of a process, from /proc."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    raise AssertionError(f"no {field}")


def reset_peak_rss(pid: int) -> None:
    """Linux: writing 5 to clear_refs resets VmHWM to the current RSS."""
    with open(f"/proc/{pid}/clear_refs", "w") as f:
        f.write("5")


def test_20mb_retr_does_not_grow_server_memory_by_the_message(mail_server: Any) -> None:
    """The message is streamed: the server's peak RSS during RETR stays far below 20 MB more."""
    import os
    import socket

    size = 20 * 1024 * 1024
    mail_server.add_user(ALICE, PASSWORD)
    maildir = mail_server.data_dir / "example.test" / "alice"
    for sub in ("tmp", "new", "cur"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    line = b"x" * 78 + b"\r\n"
    with open(maildir / "tmp" / "1700000000.M1P1.bigtest", "wb") as f:  # Maildir delivery
        f.write(b"Subject: big\r\n\r\n")
        f.writelines(line for _ in range(size // len(line)))
    name = "1700000000.M1P1.bigtest"
    os.rename(maildir / "tmp" / name, maildir / "new" / name)

    pid = mail_server.process.pid
    ctx = client_context(mail_server)
    sock = socket.create_connection(("127.0.0.1", mail_server.ports["pop3s"]), 30)
    with ctx.wrap_socket(sock) as s:
        f = s.makefile("rb")
        f.readline()
        s.sendall(f"USER {ALICE}\r\nPASS {PASSWORD}\r\nSTAT\r\n".encode())
        f.readline()
        assert f.readline() == b"+OK Logged in.\r\n"
        assert f.readline().startswith(b"+OK 1 ")
        reset_peak_rss(pid)
        before = memory_kib(pid, "VmRSS")
        s.sendall(b"RETR 1\r\n")
        received, tail = 0, b""
        while not tail.endswith(b"\r\n.\r\n"):
            chunk = f.read1(262144)
            assert chunk, "connection closed during RETR"
            received += len(chunk)
            tail = (tail + chunk)[-5:]
        after = memory_kib(pid, "VmHWM")
        s.sendall(b"QUIT\r\n")
        f.readline()
    assert received > size
    print(f"pop3 daemon 20 MB RETR: RSS {before} KiB before, peak {after} KiB during")
    assert (after - before) * 1024 < size // 4


def test_shutdown_tells_the_client_and_deletes_nothing(mail_server_factory: Any) -> None:
    server = mail_server_factory()
    server.add_user(ALICE, PASSWORD)
    send_mail(server)
    pop = poplib.POP3_SSL(
        "127.0.0.1", server.ports["pop3s"], context=client_context(server), timeout=30
    )
    pop.user(ALICE)
    pop.pass_(PASSWORD)
    pop.dele(1)
    server.stop()
    assert pop.file.readline() == b"-ERR [SYS/TEMP] Server shutting down.\r\n"
    pop.close()
    maildir = server.data_dir / "example.test" / "alice"
    files = [p for sub in ("new", "cur") for p in (maildir / sub).iterdir()]
    assert len(files) == 1

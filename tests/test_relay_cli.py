"""``mailsuite queue ...`` against a running ``twistd -n mailsuite`` (tests/harness.py).

The relay sends through a smarthost on a closed loopback port, so a submitted message stays
queued (connection refused: a temporary failure) for the queue commands to act on.
"""

from __future__ import annotations

import json
import smtplib
import ssl
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).parent))
from dnsserver import free_loopback_port

USER, PASSWORD = "alice@example.test", "alice-password-1"
POLL_LIMIT = 200  # x 0.05 s


def _queued_server(mail_server_factory):
    closed = free_loopback_port(["127.0.0.1"])
    server = mail_server_factory(
        f'[relay]\nsmarthost = "127.0.0.1:{closed}"\nretry_initial = 3600.0\n'
    )
    server.add_user(USER, PASSWORD)
    ctx = ssl.create_default_context(cafile=server.cafile)
    ctx.check_hostname = False
    with smtplib.SMTP("127.0.0.1", server.ports["submission"], timeout=30) as smtp:
        smtp.starttls(context=ctx)
        smtp.login(USER, PASSWORD)
        smtp.sendmail(USER, ["friend@elsewhere.test"],
                      b"From: alice@example.test\r\nSubject: queued\r\n\r\nhi\r\n")
    return server


def _show(server, queue_id: str) -> dict:
    result = server.cli("queue", "show", queue_id)
    assert result.returncode == 0, result.stderr
    return json.loads(result.stdout)


def _wait_attempts(server, queue_id: str, attempts: int) -> dict:
    for _ in range(POLL_LIMIT):  # the running server writes the envelope; bounded wait
        shown = _show(server, queue_id)
        if shown["attempts"] >= attempts:
            return shown
        time.sleep(0.05)
    raise AssertionError(f"{queue_id} never reached {attempts} attempts")


def _only_id(server) -> str:
    listing = server.cli("queue", "list")
    assert listing.returncode == 0, listing.stderr
    return listing.stdout.split()[0].rstrip("!")


def test_list_shows_the_deferred_message(mail_server_factory):
    server = _queued_server(mail_server_factory)
    queue_id = _only_id(server)
    shown = _wait_attempts(server, queue_id, 1)
    listing = server.cli("queue", "list").stdout
    assert "<alice@example.test>" in listing
    assert "friend@elsewhere.test" in listing
    assert "attempts=1" in listing
    assert "connect to 127.0.0.1" in shown["recipients"][0]["reply"]


def test_flush_retries_in_the_running_server(mail_server_factory):
    server = _queued_server(mail_server_factory)
    queue_id = _only_id(server)
    _wait_attempts(server, queue_id, 1)
    result = server.cli("queue", "flush")
    assert "1 message(s)" in result.stdout
    assert _wait_attempts(server, queue_id, 2)["attempts"] == 2


def test_hold_release_delete(mail_server_factory):
    server = _queued_server(mail_server_factory)
    queue_id = _only_id(server)
    _wait_attempts(server, queue_id, 1)
    assert server.cli("queue", "hold", queue_id).returncode == 0
    assert _show(server, queue_id)["held"] is True
    assert server.cli("queue", "list").stdout.split()[0] == queue_id + "!"
    assert server.cli("queue", "release", queue_id).returncode == 0
    assert _wait_attempts(server, queue_id, 2)["held"] is False
    assert server.cli("queue", "delete", queue_id).returncode == 0
    assert "Mail queue is empty" in server.cli("queue", "list").stdout


def test_unknown_id_fails(mail_server_factory):
    server = _queued_server(mail_server_factory)
    result = server.cli("queue", "hold", "ffffffffffff")
    assert result.returncode != 0
    assert "no such queue id" in result.stderr

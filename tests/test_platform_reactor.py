"""The reactor ``twistd mailsuite`` runs on (mailsuite.reactor): installed unless twistd was
given ``-r``, and dispatching I/O events like Twisted's epoll reactor, a failing handler
included."""

from __future__ import annotations

import smtplib
import socket
import subprocess
import sys

import pytest
from twisted.logger import globalLogPublisher

from mailsuite import reactor as mailsuite_reactor

pytestmark = pytest.mark.skipif(mailsuite_reactor.EPollReactor is None, reason="no epoll here")


def _ehlo(server) -> int:
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=30) as smtp:
        return smtp.ehlo("client.example.test")[0]


def test_twistd_mailsuite_runs_on_the_mail_reactor(mail_server_factory):
    server = mail_server_factory()
    assert _ehlo(server) == 250
    assert "reactor class: mailsuite.reactor.MailReactor" in server.log_text()


def test_a_reactor_chosen_with_r_is_kept(mail_server_factory):
    server = mail_server_factory(twistd_args=("-r", "epoll"))
    assert _ehlo(server) == 250
    assert "reactor class: twisted.internet.epollreactor.EPollReactor" in server.log_text()


def test_install_only_where_no_reactor_is_installed_yet():
    code = ("from mailsuite import reactor as r; first = r.install(); second = r.install(); "
            "from twisted.internet import reactor; "
            "print(first, second, type(reactor).__name__)")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                         timeout=60, check=True).stdout.split()
    assert out == ["True", "False", "MailReactor"]


class _Reader:
    """A read descriptor on one end of a socket pair; ``broken`` fails its doRead and then its
    readConnectionLost, so that the error escapes the reactor's own handling."""

    def __init__(self, sock: socket.socket, broken: bool) -> None:
        self.sock = sock
        self.broken = broken
        self.reads = 0

    def fileno(self) -> int:
        return self.sock.fileno()

    def logPrefix(self) -> str:
        return "reader"

    def doRead(self) -> None:
        self.reads += 1
        self.sock.recv(100)
        if self.broken:
            raise RuntimeError("doRead failed")

    def readConnectionLost(self, reason) -> None:
        raise RuntimeError("readConnectionLost failed too")

    def connectionLost(self, reason) -> None:
        raise RuntimeError("connectionLost failed too")


def test_a_failing_handler_is_logged_and_the_other_events_are_served():
    reactor = mailsuite_reactor.MailReactor()
    pairs = [socket.socketpair() for _ in range(2)]
    readers = [_Reader(a, broken) for (a, _), broken in zip(pairs, (True, False))]
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    try:
        for reader, (_, b) in zip(readers, pairs):
            reactor.addReader(reader)
            b.send(b"x")
        reactor.doIteration(1.0)
    finally:
        globalLogPublisher.removeObserver(events.append)
        for reader in readers:
            reactor.removeReader(reader)
        for a, b in pairs:
            a.close()
            b.close()
        reactor._poller.close()
    assert [r.reads for r in readers] == [1, 1]
    assert any(e.get("log_format") == "I/O handler of {selectable!r} failed" for e in events)

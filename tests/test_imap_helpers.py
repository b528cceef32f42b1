"""Shared helpers for the IMAP tests (no tests here): a context with an in-memory store, a test
portal, a fake throttle, and an IMAP connection over a StringTransport with a task.Clock.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Any

from twisted.cred import error as cred_error
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.portal import IRealm, Portal
from twisted.internet import defer, task
from twisted.internet.address import IPv4Address
from twisted.internet.testing import StringTransport
from zope.interface import implementer

from mailsuite.context import ServerContext
from mailsuite.imap.service import ImapFactory
from mailsuite.imap.settings import ImapSettings
from mailsuite.interfaces import IAccountStore
from mailsuite.store.memory import MemoryStore

PASSWORD = "correct horse"
USERS = ("alice@example.test", "bob@example.test")
ALICE, BOB = USERS

SIMPLE = (b"From: Alice <alice@example.test>\r\nTo: bob@example.test\r\n"
          b"Subject: hello\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
          b"Message-ID: <1@example.test>\r\n\r\nHello Bob.\r\n")


def message(n: int, subject: str | None = None, body: str = "body") -> bytes:
    subject = subject or f"message {n}"
    return (f"From: sender{n}@example.test\r\nTo: alice@example.test\r\n"
            f"Subject: {subject}\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n"
            f"Message-ID: <{n}@example.test>\r\n\r\n{body} {n}\r\n").encode()


@implementer(ICredentialsChecker)
class _Checker:
    credentialInterfaces = (IUsernamePassword,)

    def requestAvatarId(self, credentials: Any) -> Any:
        user = credentials.username
        user = user.decode() if isinstance(user, bytes) else user
        password = credentials.password
        password = password.decode() if isinstance(password, bytes) else password
        if user.lower() in USERS and password == PASSWORD:
            return defer.succeed(user.lower())
        return defer.fail(cred_error.UnauthorizedLogin())


@implementer(IRealm)
class _Realm:
    def __init__(self, store: Any) -> None:
        self.store = store
        self.logouts = 0

    def requestAvatar(self, avatar_id: Any, mind: Any, *interfaces: Any) -> Any:
        def logout() -> None:
            self.logouts += 1

        return IAccountStore, self.store.account(avatar_id), logout


class FakeThrottle:
    """No delay; blocks after ``block_after`` failures from one address."""

    def __init__(self, delay: float = 0.0, block_after: int = 10) -> None:
        self.delay = delay
        self.block_after = block_after
        self.failures: dict[str, int] = {}

    def delay_for(self, ip: str) -> float:
        return self.delay if self.failures.get(ip) else 0.0

    def record_failure(self, ip: str) -> None:
        self.failures[ip] = self.failures.get(ip, 0) + 1

    def record_success(self, ip: str) -> None:
        self.failures.pop(ip, None)

    def is_blocked(self, ip: str) -> bool:
        return self.failures.get(ip, 0) >= self.block_after


class FakeTLS:
    def server_options(self) -> str:
        return "server-options"


class TLSStringTransport(StringTransport):
    def __init__(self, *a: Any, **kw: Any) -> None:
        super().__init__(*a, **kw)
        self.tls_started_with: Any = None
        self.nodelay = False

    def startTLS(self, options: Any) -> None:
        self.tls_started_with = options

    def setTcpNoDelay(self, enabled: bool) -> None:
        self.nodelay = enabled


@dataclass
class FakeConfig:
    imap: ImapSettings = field(default_factory=ImapSettings)


def make_ctx(settings: ImapSettings | None = None, store: Any = None,
             throttle: Any = None) -> ServerContext:
    clock = task.Clock()
    store = store if store is not None else MemoryStore(clock=clock)
    return ServerContext(
        config=FakeConfig(settings or ImapSettings()),
        accounts=None,  # type: ignore[arg-type]
        store=store,
        spool=None,
        portal=Portal(_Realm(store), [_Checker()]),
        tls=FakeTLS(),
        throttle=throttle if throttle is not None else FakeThrottle(),
        maillog=None,
        reactor=clock,
    )


def deliver(ctx: ServerContext, user: str, raw: bytes, folder: str = "INBOX",
            flags: tuple[str, ...] = ()) -> Any:
    results: list[Any] = []
    ctx.store.account(user).deliver(raw, folder, flags).addBoth(results.append)
    assert results and not isinstance(results[0], Exception), results
    return results[0]


class Client:
    """One IMAP connection over a StringTransport."""

    def __init__(self, ctx: ServerContext, tls: bool = True, peer: str = "192.0.2.1",
                 settings: ImapSettings | None = None) -> None:
        self.ctx = ctx
        self.clock = ctx.reactor
        self.factory = ImapFactory(ctx, tls, settings or ctx.config.imap)
        addr = IPv4Address("TCP", peer, 40000)
        self.proto = self.factory.buildProtocol(addr)
        self.transport = TLSStringTransport(peerAddress=addr)
        self.proto.makeConnection(self.transport)
        self._mark = 0
        self._tag = 0
        self.greeting = self.take()

    def take(self) -> bytes:
        for _ in range(10000):  # run everything due now (long commands yield to the reactor)
            self.clock.advance(0)
            if not any(c.getTime() <= self.clock.seconds() for c in self.clock.getDelayedCalls()):
                break
        value = self.transport.io.getvalue()
        out, self._mark = value[self._mark:], len(value)
        return out

    def send(self, data: bytes) -> bytes:
        self.take()
        self.proto.dataReceived(data)
        return self.take()

    def raw(self, line: str | bytes) -> bytes:
        if isinstance(line, str):
            line = line.encode()
        return self.send(line + b"\r\n")

    def cmd(self, command: str | bytes) -> bytes:
        """Send ``tN command`` and return the whole output (untagged lines and the tagged one)."""
        self._tag += 1
        if isinstance(command, str):
            command = command.encode()
        return self.send(b"t%d " % self._tag + command + b"\r\n")

    @property
    def tag(self) -> str:
        return f"t{self._tag}"

    def status(self, output: bytes) -> bytes:
        """The tagged status line of the last command (``OK ...``)."""
        for line in output.split(b"\r\n"):
            if line.startswith(self.tag.encode() + b" "):
                return line[len(self.tag) + 1:]
        raise AssertionError(f"no tagged reply in {output!r}")

    def ok(self, command: str | bytes) -> bytes:
        out = self.cmd(command)
        assert self.status(out).startswith(b"OK"), out
        return out

    def login(self, user: str = ALICE) -> bytes:
        return self.ok(f'LOGIN {user} "{PASSWORD}"')

    def select(self, folder: str = "INBOX") -> bytes:
        return self.ok(f"SELECT {folder}")

    def drop(self) -> None:
        from twisted.internet.error import ConnectionLost
        from twisted.python.failure import Failure

        self.proto.connectionLost(Failure(ConnectionLost()))


def selected(*messages: bytes) -> Client:
    """A logged-in client with INBOX selected, holding ``messages`` (delivered to alice)."""
    ctx = make_ctx()
    for raw in messages:
        deliver(ctx, ALICE, raw)
    client = Client(ctx)
    client.login()
    client.select()
    return client


def untagged(output: bytes, kind: str) -> list[bytes]:
    """Untagged lines whose first word after ``*`` (or after the number) is ``kind``."""
    out = []
    for line in output.split(b"\r\n"):
        m = re.match(rb"\* (?:\d+ )?([A-Z.\-]+)", line)
        if m and m.group(1).decode() == kind:
            out.append(line)
    return out


# --- end-to-end: a real server on 127.0.0.1 with the Maildir store and TLS -------------------


class LiveServer:
    """An IMAP listener on 127.0.0.1 (STARTTLS port and implicit-TLS port) over a MaildirStore.

    Built inside a trial test (the global reactor runs); ``stop()`` returns a Deferred.
    """

    def __init__(self, directory: str, settings: ImapSettings | None = None) -> None:
        from pathlib import Path

        from twisted.internet import reactor
        from twisted.protocols.tls import TLSMemoryBIOFactory

        from mailsuite.accounts import MemoryAccounts
        from mailsuite.auth import LoginThrottle, make_portal
        from mailsuite.imap.service import imap_factory
        from mailsuite.store.maildir import MaildirStore
        from mailsuite.store.settings import StoreSettings
        from mailsuite.tls import TLSSettings, ensure_certificate

        root = Path(directory)
        self.data_dir = root / "maildirs"
        self.accounts = MemoryAccounts(domains=("example.test",), reactor=reactor)
        for user in USERS:
            self.accounts.add_user(user, PASSWORD)
        self.store = MaildirStore(self.data_dir, StoreSettings(fsync=False), self.accounts,
                                  reactor)
        self.cert_path, key_path = ensure_certificate(root / "tls", "localhost")
        tls = TLSSettings(self.cert_path, key_path)

        @dataclass
        class _Config:
            imap: ImapSettings

        self.ctx = ServerContext(
            config=_Config(settings or ImapSettings()), accounts=self.accounts,
            store=self.store, spool=None, portal=make_portal(self.accounts, self.store),
            tls=tls, throttle=LoginThrottle(reactor), maillog=None, reactor=reactor)
        self.plain_port = reactor.listenTCP(0, imap_factory(self.ctx, False),
                                            interface="127.0.0.1")
        self.tls_port = reactor.listenTCP(
            0, TLSMemoryBIOFactory(tls.server_options(), False, imap_factory(self.ctx, True)),
            interface="127.0.0.1")
        self.port = self.plain_port.getHost().port
        self.imaps_port = self.tls_port.getHost().port

    def ssl_context(self) -> Any:
        import ssl

        context = ssl.create_default_context(cafile=str(self.cert_path))
        context.check_hostname = False
        return context

    def imap(self, user: str = ALICE) -> Any:
        """A logged-in imaplib client over STARTTLS (blocking: call from a thread)."""
        import imaplib

        client = imaplib.IMAP4("127.0.0.1", self.port, timeout=20)
        client.starttls(self.ssl_context())
        client.login(user, PASSWORD)
        return client

    def deliver(self, user: str, raw: bytes, folder: str = "INBOX") -> Any:
        return self.store.account(user).deliver(raw, folder)

    def stop(self) -> Any:
        from twisted.internet import defer

        self.store.close()
        return defer.gatherResults([defer.maybeDeferred(self.plain_port.stopListening),
                                    defer.maybeDeferred(self.tls_port.stopListening)])

"""Shared fixtures for the SMTP tests: a ServerContext over in-memory parts and a client driver.

(Named test_smtp_* so it lives with the SMTP tests; it holds no tests itself.)
"""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.error import UnauthorizedLogin
from twisted.cred.portal import IRealm, Portal
from twisted.internet import defer, task
from twisted.internet.address import IPv4Address, IPv6Address
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.testing import StringTransport
from zope.interface import alsoProvides, implementer

from mailsuite.accounts import MemoryAccounts
from mailsuite.auth import LoginThrottle
from mailsuite.connlimit import ConnectionLimiter
from mailsuite.context import ServerContext
from mailsuite.interfaces import IAccountStore, Quota
from mailsuite.smtp.service import SMTPFactory
from mailsuite.smtp.settings import SmtpSettings
from mailsuite.smtp.testing import RecordingMailLog, RecordingSpool, StaticTLS
from mailsuite.store.memory import MemoryStore

DOMAIN = "example.test"
ALICE = "alice@example.test"
BOB = "bob@example.test"
PASSWORD = "correct horse"


@implementer(ICredentialsChecker)
class _Checker:
    credentialInterfaces = (IUsernamePassword,)

    """Checks passwords synchronously (MemoryAccounts hashes with argon2 in a thread pool,
    which a fake clock cannot drive); the end-to-end tests use the real portal."""

    def __init__(self, passwords: dict[str, str]) -> None:
        self.passwords = passwords

    def requestAvatarId(self, credentials: Any) -> Any:
        username = credentials.username
        password = credentials.password
        if isinstance(username, bytes):
            username = username.decode()
        if isinstance(password, bytes):
            password = password.decode()
        user = username.lower()
        if self.passwords.get(user) != password:
            return defer.fail(UnauthorizedLogin())
        return defer.succeed(user)


@implementer(IRealm)
class _Realm:
    def __init__(self, store: Any) -> None:
        self.store = store

    def requestAvatar(self, avatar_id: Any, mind: Any, *interfaces: Any) -> Any:
        user = avatar_id.decode() if isinstance(avatar_id, bytes) else avatar_id
        return IAccountStore, self.store.account(user), lambda: None


class FakeTLSTransport(StringTransport):
    """A StringTransport that can start TLS: it records the options and declares ISSLTransport."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.tls_options: Any = None

    def startTLS(self, options: Any) -> None:
        self.tls_options = options
        alsoProvides(self, ISSLTransport)

    def setTcpNoDelay(self, enabled: bool) -> None:
        self.nodelay = enabled


class Client:
    """Drives one server protocol over a string transport."""

    def __init__(self, protocol: Any, transport: FakeTLSTransport) -> None:
        self.protocol = protocol
        self.transport = transport

    def send(self, data: bytes | str) -> str:
        """Feed ``data`` to the server; return everything it wrote in answer."""
        if isinstance(data, str):
            data = data.encode("utf-8")
        self.transport.clear()
        self.protocol.dataReceived(data)
        return self.transport.value().decode("utf-8")

    def output(self) -> str:
        """What the server wrote since the last send (e.g. after the clock advanced)."""
        return self.transport.value().decode("utf-8")

    @property
    def closed(self) -> bool:
        return self.transport.disconnecting


def make_context(
    clock: task.Clock,
    settings: SmtpSettings | None = None,
    *,
    spool: bool = True,
    quota: Quota | None = None,
) -> ServerContext:
    """A ServerContext with alice and bob in example.test, some aliases, in-memory parts."""
    accounts = MemoryAccounts([DOMAIN])
    accounts.add_user(ALICE, PASSWORD, quota=quota)
    accounts.add_user(BOB, PASSWORD)
    accounts.add_alias("sales@example.test", [ALICE])
    accounts.add_alias("fwd@example.test", ["friend@remote.test"])
    store = MemoryStore(accounts=accounts, clock=clock)
    portal = Portal(_Realm(store), [_Checker({ALICE: PASSWORD, BOB: PASSWORD})])
    config = SimpleNamespace(smtp=settings or SmtpSettings(), hostname="mx.example.test")
    return ServerContext(
        config=config,
        accounts=accounts,
        store=store,
        spool=RecordingSpool() if spool else None,
        portal=portal,
        tls=StaticTLS(),
        throttle=LoginThrottle(clock),
        maillog=RecordingMailLog(),
        reactor=clock,
    )


def make_factory(ctx: ServerContext, role: str = "mx") -> SMTPFactory:
    settings = ctx.config.smtp
    limiter = ConnectionLimiter(settings.max_connections, settings.max_connections_per_ip)
    return SMTPFactory(ctx, role, limiter=limiter, auth_failure_delay=1.0)


def connect(factory: SMTPFactory, *, ip: str = "192.0.2.10", tls: bool = False) -> Client:
    """Open a connection; ``tls`` makes it an implicit-TLS (465) transport."""
    address = (IPv6Address if ":" in ip else IPv4Address)("TCP", ip, 40000)
    protocol = factory.buildProtocol(address)
    transport = FakeTLSTransport(peerAddress=address)
    if tls:
        alsoProvides(transport, ISSLTransport)
    protocol.makeConnection(transport)
    return Client(protocol, transport)


def inbox(ctx: ServerContext, user: str) -> list[bytes]:
    """Every message in ``user``'s INBOX."""
    folder = ctx.store.account(user).open_folder("INBOX")
    return [folder.read_message(info.uid) for info in folder.messages()]


def last_reply(output: str) -> str:
    """The last reply line: ``'250 2.0.0 Ok'``."""
    lines = [line for line in output.split("\r\n") if line]
    return lines[-1] if lines else ""


def has_reply(output: str, reply: Any) -> bool:
    """True if ``reply`` (a Reply constant) was written, matching code and enhanced code."""
    prefix = f"{reply.code} {reply.enhanced} " if reply.enhanced else f"{reply.code} "
    return any(line.startswith(prefix) for line in output.split("\r\n"))

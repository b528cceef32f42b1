"""Shared helpers for the POP3 tests (no tests here): a context with an in-memory store, a
portal, a fake login throttle, and a POP3 connection over a StringTransport.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

from twisted.cred import error as cred_error
from twisted.cred.checkers import ICredentialsChecker
from twisted.cred.credentials import IUsernamePassword
from twisted.cred.portal import IRealm, Portal
from twisted.internet import defer, task
from twisted.internet.testing import StringTransport
from zope.interface import implementer

from mailsuite.context import ServerContext
from mailsuite.interfaces import IAccountStore
from mailsuite.pop3.service import pop3_factory
from mailsuite.pop3.settings import Pop3Settings
from mailsuite.store.memory import MemoryStore

PASSWORD = "correct horse"
USERS = ("alice@example.test", "bob@example.test")


@implementer(ICredentialsChecker)
class _Checker:
    """Accepts USERS with PASSWORD (case-insensitive user names, like canonical addresses)."""

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
    def __init__(self, store: MemoryStore) -> None:
        self.store = store
        self.logouts = 0

    def requestAvatar(self, avatar_id: Any, mind: Any, *interfaces: Any) -> Any:
        assert IAccountStore in interfaces

        def logout() -> None:
            self.logouts += 1

        return IAccountStore, self.store.account(avatar_id), logout


class FakeThrottle:
    """Records calls; delays each failure by ``delay`` seconds; blocks after ``block_after``."""

    def __init__(self, delay: float = 1.0, block_after: int = 1000) -> None:
        self.delay = delay
        self.block_after = block_after
        self.failures: dict[str, int] = {}
        self.successes = 0

    def delay_for(self, ip: str) -> float:
        return self.delay

    def record_failure(self, ip: str) -> None:
        self.failures[ip] = self.failures.get(ip, 0) + 1

    def record_success(self, ip: str) -> None:
        self.successes += 1
        self.failures.pop(ip, None)

    def is_blocked(self, ip: str) -> bool:
        return self.failures.get(ip, 0) >= self.block_after


class RecordingMailLog:
    """Collects (event, fields) like mailsuite.maillog.MailLog.log would write them."""

    def __init__(self) -> None:
        self.lines: list[tuple[str, dict[str, Any]]] = []

    def log(self, event: str, /, **fields: Any) -> None:
        self.lines.append((event, fields))


class FakeTLS:
    """Stands in for mailsuite.tls.TLSSettings in unit tests."""

    def server_options(self) -> str:
        return "server-options"


class TLSStringTransport(StringTransport):
    """A StringTransport that records startTLS."""

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
    pop3: Pop3Settings = field(default_factory=Pop3Settings)


def make_ctx(
    settings: Pop3Settings | None = None,
    store: Any = None,
    throttle: Any = None,
    portal: Any = None,
    maillog: Any = None,
) -> ServerContext:
    """A context with a MemoryStore, a test portal, a fake throttle and a task.Clock."""
    clock = task.Clock()
    store = store if store is not None else MemoryStore(clock=clock)
    return ServerContext(
        config=FakeConfig(settings or Pop3Settings()),
        accounts=None,  # type: ignore[arg-type]
        store=store,
        spool=None,
        portal=portal if portal is not None else Portal(_Realm(store), [_Checker()]),
        tls=FakeTLS(),
        throttle=throttle if throttle is not None else FakeThrottle(),
        maillog=maillog,
        reactor=clock,
    )


def deliver(ctx: ServerContext, user: str, raw: bytes, flags: tuple[str, ...] = ()) -> Any:
    """Deliver synchronously into a MemoryStore (its Deferreds fire at once)."""
    results: list[Any] = []
    ctx.store.account(user).deliver(raw, flags=flags).addBoth(results.append)
    assert results and not isinstance(results[0], Exception), results
    return results[0]


class Client:
    """One POP3 connection over a StringTransport, with helpers to read replies."""

    def __init__(self, ctx: ServerContext, implicit_tls: bool = True, peer: str = "192.0.2.1"):
        from twisted.internet.address import IPv4Address

        self._mark = 0
        self.ctx = ctx
        self.clock = ctx.reactor
        self.factory = pop3_factory(ctx, implicit_tls)
        self.proto = self.factory.buildProtocol(IPv4Address("TCP", peer, 40000))
        self.transport = TLSStringTransport(peerAddress=IPv4Address("TCP", peer, 40000))
        self.proto.makeConnection(self.transport)

    def take(self) -> bytes:
        """Everything written since the last call (streams any registered producer fully)."""
        for _ in range(100000):
            producer = self.transport.producer
            due = [c for c in self.clock.getDelayedCalls() if c.getTime() <= self.clock.seconds()]
            if producer is not None:
                producer.resumeProducing()
            elif not due:
                break
            self.clock.advance(0)
        value = self.transport.io.getvalue()
        out, self._mark = value[self._mark :], len(value)
        return out

    def send(self, data: bytes) -> bytes:
        """Send raw bytes, return the output they produced."""
        self.take()
        self.proto.dataReceived(data)
        return self.take()

    def cmd(self, line: str) -> bytes:
        """Send one command line, return the output."""
        return self.send(line.encode() + b"\r\n")

    def login(self, user: str = USERS[0], password: str = PASSWORD) -> bytes:
        self.cmd(f"USER {user}")
        return self.cmd(f"PASS {password}")

    def drop(self) -> None:
        """The client vanishes."""
        from twisted.internet.error import ConnectionLost
        from twisted.python.failure import Failure

        self.proto.connectionLost(Failure(ConnectionLost()))


def multiline(reply: bytes) -> list[bytes]:
    """The lines of a multi-line reply body (without status line and terminator), unstuffed."""
    assert reply.endswith(b"\r\n.\r\n"), reply[-40:]
    lines = reply.split(b"\r\n")
    assert lines[0].startswith(b"+OK"), lines[0]
    body = lines[1:-2]
    return [line[1:] if line.startswith(b".") else line for line in body]


# --- end-to-end support -------------------------------------------------------------------


def make_certificates(directory: Any) -> tuple[str, str, str]:
    """A throwaway CA and a server certificate for localhost / 127.0.0.1.

    Returns (ca_path, cert_path, key_path) as PEM files in ``directory``.
    """
    import datetime
    import ipaddress
    from pathlib import Path

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    directory = Path(directory)
    now = datetime.datetime.now(datetime.UTC)
    ca_key = ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "mailsuite test CA")])
    ca = (
        x509.CertificateBuilder()
        .subject_name(ca_name)
        .issuer_name(ca_name)
        .public_key(ca_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False),
            critical=True,
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(ca_key.public_key()), False)
        .sign(ca_key, hashes.SHA256())
    )
    key = ec.generate_private_key(ec.SECP256R1())
    cert = (
        x509.CertificateBuilder()
        .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "localhost")]))
        .issuer_name(ca_name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(
            x509.SubjectAlternativeName(
                [x509.DNSName("localhost"), x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]
            ),
            critical=False,
        )
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False
        )
        .add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca_key.public_key()), False
        )
        .sign(ca_key, hashes.SHA256())
    )
    pem = serialization.Encoding.PEM
    ca_path = directory / "ca.pem"
    cert_path = directory / "cert.pem"
    key_path = directory / "key.pem"
    ca_path.write_bytes(ca.public_bytes(pem))
    cert_path.write_bytes(cert.public_bytes(pem))
    key_path.write_bytes(
        key.private_bytes(pem, serialization.PrivateFormat.PKCS8, serialization.NoEncryption())
    )
    return str(ca_path), str(cert_path), str(key_path)


class FileTLS:
    """``server_options()`` from a certificate and key file (what mailsuite.tls provides)."""

    def __init__(self, cert_path: str, key_path: str) -> None:
        from twisted.internet import ssl

        with open(cert_path, "rb") as c, open(key_path, "rb") as k:
            pem = c.read() + k.read()
        self._options = ssl.PrivateCertificate.loadPEM(pem).options()

    def server_options(self) -> Any:
        return self._options


# --- the helpers' own checks (so this module also passes when run alone) -------------------


def test_multiline_unstuffs_and_strips_the_terminator() -> None:
    assert multiline(b"+OK\r\na\r\n..b\r\n.\r\n") == [b"a", b".b"]


def test_certificates_chain_to_the_ca(tmp_path: Any) -> None:
    import ssl

    ca, cert, key = make_certificates(tmp_path)
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.load_cert_chain(cert, key)
    client = ssl.create_default_context(cafile=ca)
    a, b = ssl.MemoryBIO(), ssl.MemoryBIO()
    c_out, s_out = ssl.MemoryBIO(), ssl.MemoryBIO()
    tls_client = client.wrap_bio(a, c_out, server_hostname="localhost")
    tls_server = server.wrap_bio(b, s_out, server_side=True)
    for _ in range(10):  # a handshake takes a few round trips
        for side in (tls_client, tls_server):
            try:
                side.do_handshake()
            except ssl.SSLWantReadError:
                pass
        b.write(c_out.read())
        a.write(s_out.read())
    assert tls_client.getpeercert()["subject"] == ((("commonName", "localhost"),),)

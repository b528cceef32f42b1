"""Listeners' factories for the SMTP roles, with per-address and global connection limits.

``smtp_factory(ctx, role)`` is what ``mailsuite.tap`` binds to ``[listen] smtp`` (role ``"mx"``),
``submission`` (``"submission"``, STARTTLS) and ``submissions`` (``"submissions"``, the transport
is already TLS). All SMTP factories of one server share one :class:`ConnectionLimiter`, so the
global limit (``[smtp] max_connections``) counts every SMTP listener; a client over a limit gets
``421 4.7.0`` and is disconnected before any command is read (Postfix's anvil does the same).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.protocol import Factory, Protocol
from twisted.logger import Logger

from mailsuite import connlimit
from mailsuite.connlimit import ConnectionLimiter
from mailsuite.delivery import LocalDelivery
from mailsuite.networks import peer_text
from mailsuite.smtp import replies
from mailsuite.smtp.auth import Authenticator
from mailsuite.smtp.budget import shared_memory
from mailsuite.smtp.intake import MessageIntake
from mailsuite.smtp.protocol import SMTPServerProtocol
from mailsuite.smtp.settings import SmtpSettings

ROLES = ("mx", "submission", "submissions")
_REFUSALS = {"total": replies.TOO_MANY_CONNECTIONS, "address": replies.TOO_MANY_CONNECTIONS_FROM_YOU}


class _Refuse(Protocol):
    """Say 421 and hang up (the connection is over a limit)."""

    transport: Any

    def __init__(self, reply: replies.Reply) -> None:
        self._reply = reply

    def connectionMade(self) -> None:
        self.transport.write(self._reply.encode())
        self.transport.loseConnection()


def shared_limiter(ctx: Any, settings: SmtpSettings) -> ConnectionLimiter:
    """The limiter all SMTP factories of this context share (created on first use)."""
    return connlimit.shared_limiter(ctx, "smtp", settings.max_connections,
                                    settings.max_connections_per_ip)


def _settings_of(ctx: Any) -> SmtpSettings:
    settings = getattr(ctx.config, "smtp", None)
    return settings if isinstance(settings, SmtpSettings) else SmtpSettings()


def _hostname_of(ctx: Any) -> str:
    return str(getattr(ctx.config, "hostname", None) or "localhost")


class SMTPFactory(Factory):
    """Builds :class:`SMTPServerProtocol` for one role; holds what its connections share."""

    log = Logger()
    noisy = False  # the mail log says what operators need; no start/stop lines

    def __init__(
        self,
        ctx: Any,
        role: str,
        *,
        settings: SmtpSettings | None = None,
        hostname: str | None = None,
        limiter: ConnectionLimiter | None = None,
        auth_failure_delay: float | None = None,
    ) -> None:
        if role not in ROLES:
            raise ValueError(f"unknown SMTP role {role!r}; expected one of {ROLES}")
        self.ctx = ctx
        self.role = role
        self.settings = settings or _settings_of(ctx)
        self.hostname = hostname or _hostname_of(ctx)
        # Made once: every connection sends the one, most clients that use HELO the other.
        self.greeting = replies.Reply(220, None, f"{self.hostname} ESMTP mailsuite")
        self.helo_reply = replies.Reply(250, None, self.hostname)
        self.limiter = limiter or shared_limiter(ctx, self.settings)
        self.memory = shared_memory(ctx, self.settings.max_message_memory)
        self.intake = MessageIntake(ctx, self.hostname, LocalDelivery(ctx.store, ctx.accounts))
        self.authenticator = Authenticator(
            ctx.portal,
            ctx.throttle,
            ctx.reactor,
            failure_delay=(
                self.settings.auth_failure_delay if auth_failure_delay is None else auth_failure_delay
            ),
        )
        self.connections: set[SMTPServerProtocol] = set()

    def buildProtocol(self, addr: Any) -> Protocol:
        ip = peer_text(getattr(addr, "host", "") or "")
        over = self.limiter.refusal(ip)
        if over is not None:
            refusal = _REFUSALS[over]
            self.ctx.maillog.log("refused", client=ip, reason=refusal.text)
            refuse = _Refuse(refusal)
            refuse.factory = self
            return refuse
        self.limiter.opened(ip)
        protocol = SMTPServerProtocol(self)
        protocol.factory = self
        protocol.limiter_ip = ip  # type: ignore[attr-defined]
        self.connections.add(protocol)
        return protocol

    def stopFactory(self) -> None:
        """The listener stops: idle sessions get 421 4.3.2 (RFC 5321 3.8)."""
        for protocol in list(self.connections):
            protocol.shut_down()

    def connection_closed(self, protocol: SMTPServerProtocol) -> None:
        """Called by the protocol from connectionLost."""
        if protocol in self.connections:
            self.connections.discard(protocol)
            self.limiter.closed(getattr(protocol, "limiter_ip", ""))


def smtp_factory(ctx: Any, role: str) -> SMTPFactory:
    """The ``IProtocolFactory`` for an SMTP listener of ``role`` ("mx", "submission",
    "submissions"); see the module docstring."""
    return SMTPFactory(ctx, role)

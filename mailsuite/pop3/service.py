"""The POP3 listener factory: ``pop3_factory(ctx, implicit_tls)`` for ports 110 and 995.

The platform's ``tap.py`` wraps the 995 factory in ``TLSMemoryBIOFactory``; the protocol sees an
``ISSLTransport`` there. Port 110 offers STLS (RFC 2595) when ``ctx.tls`` is set.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.protocol import Factory
from twisted.logger import Logger

from mailsuite.networks import peer_text
from mailsuite.pop3.protocol import Pop3Protocol
from mailsuite.pop3.sessions import SessionRegistry
from mailsuite.pop3.settings import Pop3Settings


class Pop3Factory(Factory):
    """Builds one :class:`Pop3Protocol` per connection, over a shared session registry."""

    log = Logger()
    noisy = False

    def __init__(
        self,
        ctx: Any,
        settings: Pop3Settings,
        sessions: SessionRegistry,
        implicit_tls: bool,
    ) -> None:
        self.ctx = ctx
        self.settings = settings
        self.sessions = sessions
        self.implicit_tls = implicit_tls

    def stopFactory(self) -> None:
        """The listener stops (server shutdown): close the sessions politely, deleting nothing."""
        self.sessions.shutdown()

    def buildProtocol(self, addr: Any) -> Pop3Protocol:
        host = peer_text(str(getattr(addr, "host", "unknown")))  # the key peer_host uses
        refuse = False
        if self.sessions.connections >= self.settings.max_connections:
            self.log.warn("pop3: connection limit, refusing {host}", host=host)
            refuse = True
        elif self.sessions.connections_from(host) >= self.settings.max_connections_per_ip:
            self.log.warn("pop3: per-address limit, refusing {host}", host=host)
            refuse = True
        proto = Pop3Protocol(self.ctx, self.settings, self.sessions, self.implicit_tls, refuse)
        proto.factory = self
        return proto


def _settings_of(ctx: Any) -> Pop3Settings:
    settings = getattr(getattr(ctx, "config", None), "pop3", None)
    return settings if isinstance(settings, Pop3Settings) else Pop3Settings()


def session_registry(ctx: Any) -> SessionRegistry:
    """The registry shared by every POP3 listener of ``ctx``'s process (created on first use)."""
    registry = getattr(ctx, "pop3_sessions", None)
    if registry is None:
        registry = SessionRegistry()
        ctx.pop3_sessions = registry
    return registry  # type: ignore[no-any-return]


def pop3_factory(ctx: Any, implicit_tls: bool) -> Pop3Factory:
    """An ``IProtocolFactory`` for a POP3 listener (``implicit_tls`` for port 995)."""
    return Pop3Factory(ctx, _settings_of(ctx), session_registry(ctx), implicit_tls)

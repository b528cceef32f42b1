"""The IMAP listener factory: ``imap_factory(ctx, implicit_tls)`` (wired by ``mailsuite.tap``).

Connection limits (total and per client address) are enforced before the greeting: a client
over the limit gets ``* BYE`` and is disconnected. The IMAP and IMAPS listeners share one count,
so ``[imap] max_connections`` bounds their sum.
"""

from __future__ import annotations

from typing import Any

from twisted.internet.protocol import Protocol, ServerFactory
from twisted.logger import Logger

from mailsuite import connlimit
from mailsuite.imap.protocol import ImapProtocol
from mailsuite.imap.settings import ImapSettings
from mailsuite.networks import peer_text


class _Refuse(Protocol):
    """Says BYE to a connection over the limits and hangs up."""

    transport: Any

    def __init__(self, text: bytes) -> None:
        self.text = text

    def connectionMade(self) -> None:
        self.transport.write(b"* BYE " + self.text + b"\r\n")
        self.transport.loseConnection()


class ImapFactory(ServerFactory):
    """Builds one ``ImapProtocol`` per connection and counts them."""

    log = Logger()

    def __init__(self, ctx: Any, implicit_tls: bool, settings: ImapSettings | None = None) -> None:
        self.ctx = ctx
        self.implicit_tls = implicit_tls
        if settings is None:
            settings = getattr(getattr(ctx, "config", None), "imap", None) or ImapSettings()
        self.settings = settings
        self.connections: set[ImapProtocol] = set()  # this listener's, to say BYE at shutdown
        self.limiter = connlimit.shared_limiter(ctx, "imap", settings.max_connections,
                                                settings.max_connections_per_ip)

    def buildProtocol(self, addr: Any) -> Protocol:
        host = peer_text(getattr(addr, "host", "?"))
        over = self.limiter.refusal(host)
        if over == "total":
            self.log.warn("IMAP connection limit reached; refusing {host}", host=host)
            return _Refuse(b"Too many connections, try again later.")
        if over == "address":
            self.log.warn("IMAP per-address limit reached for {host}", host=host)
            return _Refuse(b"Too many connections from your address.")
        protocol = ImapProtocol(self.ctx, self.settings, self.implicit_tls, self)
        protocol.peer_host = host
        self.connections.add(protocol)
        self.limiter.opened(host)
        return protocol

    def stopFactory(self) -> None:
        """The listener is going away (server shutdown): say BYE to every client."""
        for protocol in list(self.connections):
            if not protocol.closed:
                protocol.abort_session(b"Server shutting down.")

    def connection_closed(self, protocol: ImapProtocol) -> None:
        if protocol in self.connections:
            self.connections.discard(protocol)
            self.limiter.closed(protocol.peer_host)


def imap_factory(ctx: Any, implicit_tls: bool) -> ImapFactory:
    """The ``IProtocolFactory`` for an IMAP listener (993 when ``implicit_tls``, else 143)."""
    return ImapFactory(ctx, implicit_tls)

"""``write_now`` over real loopback TCP: sent at once when nothing waits, in order otherwise."""

from __future__ import annotations

import hashlib
from typing import Any

from twisted.internet import defer, protocol, reactor
from twisted.internet.testing import StringTransport
from twisted.trial import unittest

from mailsuite.transport_write import write_now


class _Collect(protocol.Protocol):
    """Client side: keeps every byte and fires ``done`` when the server closes."""

    def __init__(self) -> None:
        self.received = bytearray()
        self.done: defer.Deferred[bytes] = defer.Deferred()
        self.arrived: defer.Deferred[None] | None = None
        self.wanted = 0

    def dataReceived(self, data: bytes) -> None:
        self.received += data
        if self.arrived is not None and len(self.received) >= self.wanted:
            arrived, self.arrived = self.arrived, None
            arrived.callback(None)

    def wait_for(self, size: int) -> defer.Deferred[None]:
        """Fires once ``size`` bytes have arrived."""
        if len(self.received) >= size:
            return defer.succeed(None)
        self.wanted = size
        self.arrived = defer.Deferred()
        return self.arrived

    def connectionLost(self, reason: Any = None) -> None:
        self.done.callback(bytes(self.received))


class _Server(protocol.Protocol):
    def connectionMade(self) -> None:
        self.factory.connected.callback(self)  # type: ignore[attr-defined]


class WriteNowTests(unittest.TestCase):
    def setUp(self) -> defer.Deferred[None]:
        factory = protocol.Factory.forProtocol(_Server)
        factory.connected = defer.Deferred()  # type: ignore[attr-defined]
        self.port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(self.port.stopListening)
        self.client = _Collect()
        creator = protocol.ClientCreator(reactor, lambda: self.client)
        connecting = creator.connectTCP("127.0.0.1", self.port.getHost().port)

        def ready(server: _Server) -> None:
            self.server = server

        factory.connected.addCallback(ready)  # type: ignore[attr-defined]
        self.addCleanup(self._close)
        return defer.gatherResults([connecting, factory.connected]).addCallback(  # type: ignore[attr-defined]
            lambda _: None)

    def _close(self) -> defer.Deferred[bytes] | None:
        if self.client.done.called:
            return None
        self.server.transport.loseConnection()
        return self.client.done

    def queued(self) -> bool:
        transport = self.server.transport
        return bool(transport._tempDataBuffer) or transport.offset < len(transport.dataBuffer)

    async def test_short_reply_leaves_at_once(self) -> None:
        """A reply into an empty socket is sent by the call itself: nothing is queued and the
        socket is not registered for writing."""
        write_now(self.server.transport, b"250 2.0.0 Ok\r\n")
        self.assertFalse(self.queued())
        self.assertNotIn(self.server.transport, reactor.getWriters())
        await self.client.wait_for(14)
        self.assertEqual(bytes(self.client.received), b"250 2.0.0 Ok\r\n")

    async def test_what_the_kernel_refuses_is_queued_and_order_is_kept(self) -> None:
        """A write larger than the socket buffers is split: the kernel takes what it can, the
        rest waits in Twisted's buffer, and later replies queue behind it."""
        big = bytes(range(256)) * (32 * 1024)  # 8 MiB: more than loopback buffers hold
        write_now(self.server.transport, big)
        self.assertTrue(self.queued(), "8 MiB should not fit into the socket at once")
        for i in range(100):
            write_now(self.server.transport, b"reply %d\r\n" % i)
        expected = big + b"".join(b"reply %d\r\n" % i for i in range(100))
        self.server.transport.loseConnection()
        received = await self.client.done
        self.assertEqual(len(received), len(expected))
        self.assertEqual(hashlib.sha256(received).digest(), hashlib.sha256(expected).digest())

    async def test_closing_transport_uses_twisted_write(self) -> None:
        """After loseConnection nothing is sent past Twisted's own rules."""
        write_now(self.server.transport, b"first\r\n")
        self.server.transport.loseConnection()
        write_now(self.server.transport, b"after close\r\n")
        received = await self.client.done
        self.assertTrue(received.startswith(b"first\r\n"))

    def test_other_transports_fall_back_to_write(self) -> None:
        """Anything that is not plain TCP (a test transport here; TLS likewise) is written
        the ordinary way."""
        transport = StringTransport()
        write_now(transport, b"220 ready\r\n")
        self.assertEqual(transport.value(), b"220 ready\r\n")

    def test_tls_transport_falls_back_to_write(self) -> None:
        """Once TLS is started the bytes must go through the TLS layer, never raw."""
        transport = self.server.transport
        transport.TLS = True  # what startTLS sets; the TLS layer owns the socket from here on
        calls: list[bytes] = []
        transport.write = calls.append
        try:
            write_now(transport, b"250 ok\r\n")
        finally:
            transport.TLS = False
            del transport.write
        self.assertEqual(calls, [b"250 ok\r\n"])
        self.assertEqual(bytes(self.client.received), b"")

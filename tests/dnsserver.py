"""A real DNS server on 127.0.0.1 (UDP and TCP, one free port) for relay tests.

Serves records from a small in-memory zone with ``twisted.names.server.DNSServerFactory``.
Names can also be made to answer SERVFAIL or to never answer (the client then times out)::

    zone = TestZone()
    zone.add_mx("b.test", [(10, "mx.b.test")])
    zone.add_a("mx.b.test", "127.0.0.2")
    zone.add_null_mx("nomail.test")
    zone.servfail("broken.test"); zone.silent("slow.test")
    server = DNSServer(zone); server.start(reactor)  # server.nameserver == "127.0.0.1:<port>"
    ...; yield server.stop()

Unknown names answer NXDOMAIN; known names without records of the asked type answer NODATA.
"""

from __future__ import annotations

import socket
from typing import Any

from twisted.internet import defer
from twisted.internet.error import CannotListenError
from twisted.names import dns, error, server


class ServFail(Exception):
    """Raised by the zone to make the server answer SERVFAIL."""


class TestZone:
    """Zone data for the test server: (name, type) -> record payloads."""

    __test__ = False  # not a pytest test class

    def __init__(self) -> None:
        self.records: dict[tuple[str, int], list[Any]] = {}
        self.names: set[str] = set()
        self.failing: set[str] = set()
        self.silent_names: set[str] = set()
        self.queries: list[tuple[str, int]] = []

    def _add(self, name: str, rtype: int, payload: Any) -> None:
        name = name.lower().rstrip(".")
        self.names.add(name)
        self.records.setdefault((name, rtype), []).append(payload)

    def add_mx(self, domain: str, exchanges: list[tuple[int, str]]) -> None:
        """MX records: (preference, exchange host) pairs."""
        for preference, exchange in exchanges:
            self._add(domain, dns.MX, dns.Record_MX(preference, exchange.encode(), ttl=60))

    def add_null_mx(self, domain: str) -> None:
        """RFC 7505: ``MX 0 .``."""
        self._add(domain, dns.MX, dns.Record_MX(0, b"", ttl=60))

    def add_a(self, name: str, address: str) -> None:
        self._add(name, dns.A, dns.Record_A(address, ttl=60))

    def add_aaaa(self, name: str, address: str) -> None:
        self._add(name, dns.AAAA, dns.Record_AAAA(address, ttl=60))

    def add_txt(self, name: str, text: str) -> None:
        """A TXT record (split into the 255-octet strings a TXT record holds)."""
        data = text.encode()
        self._add(name, dns.TXT, dns.Record_TXT(*[data[i:i + 255] for i in range(0, len(data), 255)],
                                                ttl=60))

    def add_ptr(self, address: str, name: str) -> None:
        """A reverse record: ``address`` (IPv4) -> ``name``."""
        reverse = ".".join(reversed(address.split("."))) + ".in-addr.arpa"
        self._add(reverse, dns.PTR, dns.Record_PTR(name.encode(), ttl=60))

    def servfail(self, name: str) -> None:
        """Every query for ``name`` answers SERVFAIL."""
        self.failing.add(name.lower())

    def silent(self, name: str) -> None:
        """Queries for ``name`` are never answered."""
        self.silent_names.add(name.lower())

    def query(self, query: dns.Query, timeout: Any = None) -> defer.Deferred[Any]:
        """The ``IResolver.query`` the server factory calls."""
        name = query.name.name.decode("ascii").lower().rstrip(".")
        self.queries.append((name, query.type))
        if name in self.silent_names:
            return defer.Deferred()  # never fires: the client times out
        if name in self.failing:
            return defer.fail(ServFail(name))
        if name not in self.names:
            return defer.fail(error.DomainError(name))
        answers = [
            dns.RRHeader(name=name.encode(), type=query.type, payload=payload, ttl=60, auth=True)
            for payload in self.records.get((name, query.type), [])
        ]
        return defer.succeed((answers, [], []))


class _Factory(server.DNSServerFactory):
    def gotResolverError(self, failure: Any, protocol: Any, message: Any, address: Any) -> None:
        # Like the base class, without logging the failure as an error (trial would fail on it).
        rcode = dns.ENAME if failure.check(dns.DomainError, error.DomainError) else dns.ESERVER
        response = self._responseFromMessage(message=message, rCode=rcode)
        self.sendReply(protocol, response, address)


class DNSServer:
    """The zone served on 127.0.0.1 at one port for both UDP and TCP."""

    def __init__(self, zone: TestZone) -> None:
        self.zone = zone
        self.port = 0
        self._listening: list[Any] = []

    @property
    def nameserver(self) -> str:
        """The ``[relay] nameservers`` entry for this server."""
        return f"127.0.0.1:{self.port}"

    def start(self, reactor: Any) -> str:
        """Listen (UDP and TCP on one free port); return ``"127.0.0.1:port"``."""
        factory = _Factory(authorities=[self.zone])
        for _ in range(20):  # bounded: a free UDP port whose TCP twin is free too
            udp = reactor.listenUDP(0, dns.DNSDatagramProtocol(factory), interface="127.0.0.1")
            port = udp.getHost().port
            try:
                tcp = reactor.listenTCP(port, factory, interface="127.0.0.1")
            except CannotListenError:
                udp.stopListening()
                continue
            self._listening = [udp, tcp]
            self.port = port
            return self.nameserver
        raise RuntimeError("no free port pair for the test DNS server")

    def stop(self) -> defer.Deferred[Any]:
        return defer.gatherResults([defer.maybeDeferred(p.stopListening) for p in self._listening])


def free_loopback_port(addresses: list[str]) -> int:
    """A TCP port free on every one of ``addresses`` (all of 127.0.0.0/8 is loopback on Linux)."""
    for _ in range(50):
        probe = socket.socket()
        probe.bind((addresses[0], 0))
        port = probe.getsockname()[1]
        probe.close()
        ok = True
        for address in addresses:
            s = socket.socket()
            try:
                s.bind((address, port))
            except OSError:
                ok = False
            finally:
                s.close()
            if not ok:
                break
        if ok:
            return port
    raise RuntimeError("no common free port")

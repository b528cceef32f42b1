"""A tiny authoritative DNS server on loopback for the relay benchmark (twisted.names).

``python bench/dns_server.py --port N --domains d1.test,d2.test --ip 127.0.0.1`` answers, for each
domain D: ``D MX 10 mx.D`` and ``mx.D A <ip>``; every other name gets NXDOMAIN.  It listens on
UDP and TCP 127.0.0.1:N only and stops on SIGTERM.
"""

from __future__ import annotations

import argparse

from twisted.internet import defer
from twisted.names import dns, error, server
from twisted.names.common import ResolverBase


class StaticMX(ResolverBase):
    """Answers MX and A queries for a fixed set of domains."""

    def __init__(self, domains: list[str], ip: str, ttl: int = 3600) -> None:
        super().__init__()
        self._mx = {d.lower().encode(): f"mx.{d}".encode() for d in domains}
        self._a = {f"mx.{d}".lower().encode(): ip for d in domains}
        self._ttl = ttl

    def _lookup(self, name, cls, type, timeout):
        key = name.lower()
        answers = []
        if type in (dns.MX, dns.ALL_RECORDS) and key in self._mx:
            answers.append(dns.RRHeader(name, dns.MX, cls, self._ttl,
                                        dns.Record_MX(10, self._mx[key], ttl=self._ttl)))
        if type in (dns.A, dns.ALL_RECORDS) and key in self._a:
            answers.append(dns.RRHeader(name, dns.A, cls, self._ttl,
                                        dns.Record_A(self._a[key], ttl=self._ttl)))
        if answers:
            return defer.succeed((answers, [], []))
        if key in self._mx or key in self._a:
            return defer.succeed(([], [], []))  # the name exists, not this type
        return defer.fail(error.DomainError(name))


def main() -> None:
    from twisted.internet import reactor

    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--domains", required=True)
    parser.add_argument("--ip", default="127.0.0.1")
    args = parser.parse_args()
    resolver = StaticMX([d for d in args.domains.split(",") if d], args.ip)
    factory = server.DNSServerFactory(authorities=[resolver])
    reactor.listenUDP(args.port, dns.DNSDatagramProtocol(factory), interface="127.0.0.1")
    reactor.listenTCP(args.port, factory, interface="127.0.0.1")
    reactor.run()


if __name__ == "__main__":
    main()

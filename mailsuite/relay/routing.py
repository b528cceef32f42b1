"""Where to send mail for a domain: MX lookup (RFC 5321 5.1), null MX (RFC 7505), smarthost.

The resolver is injected (any ``twisted.internet.interfaces.IResolver``); ``make_resolver`` builds
one that asks ``[relay] nameservers`` or the system's resolver. Errors are classified once here:
NXDOMAIN and null MX are permanent, timeouts and SERVFAIL temporary.
"""

from __future__ import annotations

import ipaddress
import random
import socket
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from twisted.names import dns, error
from twisted.python.failure import Failure

from mailsuite.relay.settings import RelaySettings

SMARTHOST_KEY = "[smarthost]"


class RoutingError(Exception):
    """No route now (``permanent`` False: retry later) or ever (True)."""

    def __init__(self, text: str, status: str, permanent: bool) -> None:
        super().__init__(text)
        self.text = text
        self.status = status  # RFC 3463 enhanced status code
        self.permanent = permanent


@dataclass(frozen=True)
class Host:
    """One server to try: its name (for logs, TLS names) and its addresses in order."""

    name: str
    addresses: tuple[str, ...]


@dataclass(frozen=True)
class Route:
    """The servers for one destination, best first, and how to talk to them."""

    key: str  # the destination: a domain, or SMARTHOST_KEY
    hosts: tuple[Host, ...]
    port: int
    require_tls: bool = False  # STARTTLS must succeed (smarthost)
    verify_name: str | None = None  # verify the certificate for this name (smarthost)
    auth: tuple[str, str] | None = None  # (user, password) for AUTH PLAIN
    cafile: str = ""  # trust anchors for verification ('' = the system's)
    implicit_tls: bool = False  # TLS from the first byte (RFC 8314 3.3), no STARTTLS


def parse_host_port(text: str, default_port: int) -> tuple[str, int]:
    """``"host:port"``, ``"[v6addr]:port"`` or ``"host"`` -> (host, port)."""
    text = text.strip()
    if text.startswith("["):
        host, _, rest = text[1:].partition("]")
        return host, int(rest[1:]) if rest.startswith(":") else default_port
    if text.count(":") == 1:
        host, port = text.split(":")
        return host, int(port)
    return text, default_port


def make_resolver(settings: RelaySettings, reactor: Any, clock: Any = None) -> Any:
    """The resolver of ``[relay] nameservers`` (``"ip:port"`` strings), else the system's,
    behind a cache that keeps answers for their TTL (``clock``: the reactor unless given)."""
    from twisted.names import client

    if settings.nameservers:
        servers = [parse_host_port(s, 53) for s in settings.nameservers]
        resolver = client.Resolver(
            servers=servers, reactor=reactor, timeout=tuple(settings.dns_timeouts)
        )
    else:
        # The system's resolvers from resolv.conf (re-read when it changes), on the injected
        # reactor.
        resolver = client.Resolver(
            resolv="/etc/resolv.conf", reactor=reactor, timeout=tuple(settings.dns_timeouts)
        )
    return CachingResolver(resolver, clock if clock is not None else reactor)


class CachingResolver:
    """Keeps the MX, A and AAAA answers of another resolver for their TTL (RFC 1035 3.2.1).

    Each connection used to cost an MX and two address queries; a busy destination now asks
    once per TTL. Concurrent questions for the same name share one query. Only answers with
    records are kept (errors and empty answers are asked again next time); every other
    ``IResolver`` method goes straight to the wrapped resolver.
    """

    MAX_ENTRIES = 10_000

    def __init__(self, resolver: Any, clock: Any) -> None:
        self.resolver = resolver
        self.clock = clock
        self._answers: dict[tuple[int, str], tuple[float, Any]] = {}
        self._asking: dict[tuple[int, str], list[defer.Deferred[Any]]] = {}

    def __getattr__(self, name: str) -> Any:
        return getattr(self.resolver, name)

    def lookupMailExchange(self, name: str, timeout: Any = None) -> defer.Deferred[Any]:
        return self._lookup(dns.MX, name, self.resolver.lookupMailExchange, timeout)

    def lookupAddress(self, name: str, timeout: Any = None) -> defer.Deferred[Any]:
        return self._lookup(dns.A, name, self.resolver.lookupAddress, timeout)

    def lookupIPV6Address(self, name: str, timeout: Any = None) -> defer.Deferred[Any]:
        return self._lookup(dns.AAAA, name, self.resolver.lookupIPV6Address, timeout)

    def _lookup(self, rtype: int, name: str, ask: Any, timeout: Any) -> defer.Deferred[Any]:
        key = (rtype, name.lower().rstrip("."))
        now = self.clock.seconds()
        cached = self._answers.get(key)
        if cached is not None:
            if cached[0] > now:
                return defer.succeed(cached[1])
            del self._answers[key]
        waiter: defer.Deferred[Any] = defer.Deferred()
        waiting = self._asking.get(key)
        if waiting is not None:
            waiting.append(waiter)
            return waiter
        waiting = self._asking[key] = [waiter]

        def answered(result: Any) -> None:
            del self._asking[key]
            if not isinstance(result, Failure):
                self._keep(key, result)
            for d in waiting:
                if isinstance(result, Failure):
                    d.errback(result)
                else:
                    d.callback(result)

        args = (name,) if timeout is None else (name, timeout)
        defer.maybeDeferred(ask, *args).addBoth(answered)
        return waiter

    def _keep(self, key: tuple[int, str], result: Any) -> None:
        answers = result[0]
        if not answers:
            return
        ttl = min(rr.ttl for rr in answers)
        if ttl <= 0:
            return
        if len(self._answers) >= self.MAX_ENTRIES:
            now = self.clock.seconds()
            self._answers = {k: v for k, v in self._answers.items() if v[0] > now}
            if len(self._answers) >= self.MAX_ENTRIES:
                self._answers.clear()
        self._answers[key] = (self.clock.seconds() + ttl, result)


def _is_ip(text: str) -> bool:
    try:
        ipaddress.ip_address(text)
    except ValueError:
        return False
    return True


def _classify(failure_value: BaseException, what: str) -> RoutingError:
    if isinstance(failure_value, error.DNSNameError):
        return RoutingError(f"Host or domain name not found: {what} (NXDOMAIN)", "5.1.2", True)
    if isinstance(failure_value, (error.DNSQueryTimeoutError, defer.TimeoutError)):
        return RoutingError(f"DNS lookup timed out: {what}", "4.4.3", False)
    if isinstance(failure_value, error.DNSServerError):
        return RoutingError(f"DNS server failure (SERVFAIL): {what}", "4.4.3", False)
    return RoutingError(f"DNS lookup failed: {what}: {failure_value!r}", "4.4.3", False)


class Router:
    """Turns a destination domain into a ``Route``.

    ``hostname`` is our own name: an MX naming it (or one of ``own_addresses``) is a mail loop,
    a permanent error (RFC 5321 5.1: "the MX records ... that point to itself").
    """

    def __init__(
        self,
        settings: RelaySettings,
        resolver: Any,
        hostname: str,
        rng: random.Random | None = None,
    ) -> None:
        self.settings = settings
        self.resolver = resolver
        self.hostname = hostname.lower().rstrip(".")
        self.own_addresses = frozenset(settings.own_addresses)
        self.rng = rng or random.Random()

    async def route(self, domain: str) -> Route:
        """The route for ``domain`` (or the smarthost); raises ``RoutingError``."""
        if self.settings.smarthost:
            return await self._smarthost()
        domain = domain.lower().rstrip(".")
        if domain.startswith("[") and domain.endswith("]"):  # address literal (RFC 5321 4.1.3)
            literal = domain[1:-1]
            if literal.lower().startswith("ipv6:"):
                literal = literal[5:]
            if not _is_ip(literal):
                raise RoutingError(f"bad address literal {domain}", "5.1.2", True)
            return Route(domain, (Host(literal, (literal,)),), self.settings.port)
        hosts = await self._mx_hosts(domain)
        return Route(domain, tuple(hosts), self.settings.port)

    async def _smarthost(self) -> Route:
        name, port = parse_host_port(self.settings.smarthost, 587)
        addresses = (name,) if _is_ip(name) else tuple(await self.addresses(name))
        auth = None
        if self.settings.smarthost_user:
            auth = (self.settings.smarthost_user, self.settings.smarthost_password)
        return Route(
            SMARTHOST_KEY,
            (Host(name, addresses),),
            port,
            require_tls=True,
            verify_name=name,
            auth=auth,
            cafile=self.settings.smarthost_cafile,
            implicit_tls=self.settings.smarthost_implicit_tls,
        )

    async def _mx_hosts(self, domain: str) -> list[Host]:
        try:
            answers, _, _ = await self.resolver.lookupMailExchange(domain)
        except Exception as e:  # noqa: BLE001 - every DNS error is classified
            raise _classify(e, f"{domain} MX") from None
        mx = [a.payload for a in answers if a.type == dns.MX]
        if not mx:
            # RFC 5321 5.1: no MX, the domain itself is the host (implicit MX).
            addresses = await self.addresses(domain)
            self._check_loop(domain, addresses)
            return [Host(domain, tuple(addresses))]
        # RFC 7505 3: a single MX of preference 0 naming "." says the domain takes no mail.
        if any(str(p.name) in ("", ".") for p in mx):
            raise RoutingError(f"Domain {domain} does not accept mail (null MX)", "5.1.10", True)
        by_pref: dict[int, list[str]] = {}
        for p in mx:
            by_pref.setdefault(p.preference, []).append(str(p.name).lower().rstrip("."))
        names: list[str] = []
        for pref in sorted(by_pref):
            group = list(dict.fromkeys(by_pref[pref]))
            self.rng.shuffle(group)  # RFC 5321 5.1: random order among equal preferences
            names.extend(group)
        hosts: list[Host] = []
        temporary: RoutingError | None = None
        looped = False
        for name in names:
            if name == self.hostname:
                # RFC 5321 5.1: drop ourselves and every less preferred MX.
                looped = True
                break
            try:
                addresses = await self.addresses(name)
            except RoutingError as e:
                if not e.permanent and temporary is None:
                    temporary = e
                continue
            if self.own_addresses.intersection(addresses):
                looped = True
                break
            hosts.append(Host(name, tuple(addresses)))
        if hosts:
            return hosts
        if looped:
            raise RoutingError(f"mail for {domain} loops back to myself", "5.4.6", True)
        if temporary:
            raise temporary
        raise RoutingError(f"no usable MX host for {domain}", "5.4.4", True)

    def _check_loop(self, name: str, addresses: list[str]) -> None:
        if name == self.hostname or self.own_addresses.intersection(addresses):
            raise RoutingError(f"mail for {name} loops back to myself", "5.4.6", True)

    async def addresses(self, name: str) -> list[str]:
        """IPv4 then IPv6 addresses of ``name``; raises ``RoutingError`` if there are none."""
        results = await defer.DeferredList(
            [
                defer.maybeDeferred(self.resolver.lookupAddress, name),
                defer.maybeDeferred(self.resolver.lookupIPV6Address, name),
            ],
            consumeErrors=True,
        )
        out: list[str] = []
        errors: list[BaseException] = []
        for ok, value in results:
            if not ok:
                errors.append(value.value)
                continue
            for rr in value[0]:
                if rr.type == dns.A:
                    out.append(rr.payload.dottedQuad())
                elif rr.type == dns.AAAA:
                    out.append(socket.inet_ntop(socket.AF_INET6, rr.payload.address))
        if out:
            return list(dict.fromkeys(out))
        transient = [e for e in errors if not isinstance(e, error.DNSNameError)]
        if transient:
            raise _classify(transient[0], f"{name} A/AAAA")
        if errors:
            raise _classify(errors[0], f"{name} A/AAAA")
        raise RoutingError(f"no A or AAAA record for {name}", "5.1.2", True)


__all__ = [
    "CachingResolver",
    "Host",
    "Route",
    "Router",
    "RoutingError",
    "make_resolver",
    "parse_host_port",
]

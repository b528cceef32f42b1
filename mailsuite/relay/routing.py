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


def make_resolver(settings: RelaySettings, reactor: Any) -> Any:
    """The resolver of ``[relay] nameservers`` (``"ip:port"`` strings), else the system's."""
    from twisted.names import client

    if settings.nameservers:
        servers = [parse_host_port(s, 53) for s in settings.nameservers]
        return client.Resolver(
            servers=servers, reactor=reactor, timeout=tuple(settings.dns_timeouts)
        )
    # The system's resolvers from resolv.conf (re-read when it changes), on the injected reactor.
    return client.Resolver(
        resolv="/etc/resolv.conf", reactor=reactor, timeout=tuple(settings.dns_timeouts)
    )


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


__all__ = ["Host", "Route", "Router", "RoutingError", "make_resolver", "parse_host_port"]

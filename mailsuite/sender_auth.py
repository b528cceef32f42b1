"""Who really sent it: SPF, DKIM and DMARC for mail from the Internet (RFC 7208, 6376, 7489),
recorded in an ``Authentication-Results`` header field (RFC 8601) that mail clients and filters
read.

The checks are those of the ``authheaders`` library (by dkimpy's authors; SPF through pyspf,
DMARC organisational domains from the Public Suffix List it bundles), which does the whole job
with the same code receivers such as OpenDMARC setups use. Those libraries resolve names with
dnspython, blocking, so they run in a pool of threads of their own: a slow DNS answer never holds
up the reactor, nor the threads the store writes mail with. dnspython's resolver is pointed at
``[relay] nameservers`` when that is set, so tests and sites with their own resolver control
every lookup.

Mail from trusted networks (the loopback addresses by default) is not checked: it is local
software handing mail over, not a peer on the Internet. The result is recorded, never used to
refuse mail: a forwarded message fails SPF and DMARC honestly, and only the reader (or a filter
rule on the header) should decide what to make of that.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Iterable
from typing import Any

from twisted.internet import threads
from twisted.logger import Logger
from twisted.python.threadpool import ThreadPool

from mailsuite.networks import parse_networks

__all__ = ["SenderAuthenticator", "parse_networks", "without_forged_results"]

log = Logger()

# Seconds for one DNS question; the SPF evaluation as a whole is bounded by pyspf's limit of
# 10 lookups (RFC 7208 4.6.4), and the whole check by CHECK_TIMEOUT.
DNS_TIMEOUT = 5.0
CHECK_TIMEOUT = 60.0
THREADS = 4
_APPLIES_CACHE_SIZE = 4096  # client addresses whose trust verdict is remembered


def without_forged_results(message: bytes, authserv_id: str) -> bytes:
    """``message`` without Authentication-Results fields that claim to come from us
    (RFC 8601 5: a receiver removes those before adding its own)."""
    end = message.find(b"\r\n\r\n")
    head = message if end < 0 else message[: end + 2]
    if b"authentication-results" not in head.lower():
        return message
    pattern = re.compile(
        rb"^authentication-results[ \t]*:[ \t\r\n]*" + re.escape(authserv_id.encode()) + rb"[ \t\r\n;]",
        re.IGNORECASE,
    )
    fields: list[bytes] = []
    for line in head.split(b"\r\n")[:-1]:
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += b"\r\n" + line
        else:
            fields.append(line)
    kept = [f for f in fields if not pattern.match(f + b"\r\n")]
    rest = b"" if end < 0 else message[end + 2 :]
    return b"".join(f + b"\r\n" for f in kept) + rest


class SenderAuthenticator:
    """Runs the checks for one server; ``check`` gives the header field to add."""

    def __init__(self, authserv_id: str, reactor: Any, nameservers: Iterable[str] = (),
                 trusted: Iterable[str] = ("127.0.0.0/8", "::1/128")) -> None:
        self.authserv_id = authserv_id
        self.reactor = reactor
        self.trusted = parse_networks(trusted)
        self._applies: dict[str, bool] = {}  # client address -> applies_to, for speed
        _use_nameservers(list(nameservers))
        self._pool: ThreadPool | None = None

    def applies_to(self, client_ip: str) -> bool:
        """False for a client in a trusted network (and for an unparseable address)."""
        verdict = self._applies.get(client_ip)
        if verdict is None:
            try:
                address = ipaddress.ip_address(client_ip)
            except ValueError:
                verdict = False
            else:
                verdict = not any(address in network for network in self.trusted)
            if len(self._applies) >= _APPLIES_CACHE_SIZE:
                self._applies.clear()  # a crude bound: clients come back, scanners do not
            self._applies[client_ip] = verdict
        return verdict

    async def check(self, message: bytes, client_ip: str, mail_from: str,
                    helo: str) -> tuple[bytes, str | None]:
        """The ``Authentication-Results`` field for ``message`` (folded, ending in CRLF) and the
        client's forward-confirmed reverse DNS name (or None), found off the reactor. On any
        failure the field says that the checks could not be made."""
        d = threads.deferToThreadPool(self.reactor, self._threads(), _authenticate, message,
                                      self.authserv_id, client_ip, mail_from, helo)
        d.addTimeout(CHECK_TIMEOUT, self.reactor)
        try:
            header, name = await d
        except Exception:  # noqa: BLE001 - a check that fails must not lose the message
            log.failure("sender authentication of mail from {ip} failed", ip=client_ip)
            header, name = f"Authentication-Results: {self.authserv_id}; none (checks failed)", None
        return _folded(header), name

    def _threads(self) -> ThreadPool:
        if self._pool is None:
            self._pool = ThreadPool(minthreads=0, maxthreads=THREADS, name="sender-auth")
            self._pool.start()
            self.reactor.addSystemEventTrigger("during", "shutdown", self._pool.stop)
        return self._pool


def _authenticate(message: bytes, authserv_id: str, ip: str, mail_from: str,
                  helo: str) -> tuple[str, str | None]:
    import authheaders
    from authres import AuthenticationResultsHeader, DKIMAuthenticationResult

    spf = authheaders.check_spf(ip, mail_from, helo)
    if _has_signature(message):
        dkim = authheaders.check_dkim(message)
    else:  # RFC 8601 2.7.1: "none", where authheaders would say "fail"
        dkim = DKIMAuthenticationResult(result="none")
    dmarc = authheaders.check_dmarc(message, spf, dkim)
    header = str(AuthenticationResultsHeader(authserv_id=authserv_id, results=[spf, dkim, dmarc]))
    return header, confirmed_name(ip)


def confirmed_name(ip: str) -> str | None:
    """The client's reverse DNS name if it resolves back to ``ip`` (forward-confirmed, as
    Postfix shows it in Received), else None."""
    import dns.exception
    import dns.resolver
    import dns.reversename

    try:
        answer = dns.resolver.resolve(dns.reversename.from_address(ip), "PTR")
        names = [r.target.to_text(omit_final_dot=True) for r in answer][:5]
        for name in names:
            for rtype in ("AAAA",) if ":" in ip else ("A",):
                try:
                    if any(r.address == ip for r in dns.resolver.resolve(name, rtype)):
                        return name.lower()
                except dns.exception.DNSException:
                    continue
    except dns.exception.DNSException:
        return None
    return None


def _has_signature(message: bytes) -> bool:
    end = message.find(b"\r\n\r\n")
    head = message[: end if end >= 0 else len(message)].lower()
    return head.startswith(b"dkim-signature:") or b"\r\ndkim-signature:" in head


_RESULT_START = re.compile(r";\s*(?=(?:spf|dkim|dmarc|none)\b)")


def _folded(field: str) -> bytes:
    """One result per line (they can be long), in the header's own encoding."""
    return (_RESULT_START.sub(";\r\n\t", field.strip()) + "\r\n").encode("utf-8", "replace")


def _use_nameservers(nameservers: list[str]) -> None:
    """Point dnspython's default resolver (the one pyspf, dkimpy and authheaders use) at
    ``ip:port`` servers, or leave it on /etc/resolv.conf."""
    import dns.nameserver
    import dns.resolver

    if nameservers:
        resolver = dns.resolver.Resolver(configure=False)
        from mailsuite.relay.routing import parse_host_port

        resolver.nameservers = [dns.nameserver.Do53Nameserver(*parse_host_port(text, 53))
                                for text in nameservers]
    else:
        try:
            resolver = dns.resolver.Resolver()
        except dns.resolver.NoResolverConfiguration:
            resolver = dns.resolver.Resolver(configure=False)
            resolver.nameservers = ["127.0.0.1"]
    resolver.lifetime = DNS_TIMEOUT
    resolver.timeout = DNS_TIMEOUT
    dns.resolver.default_resolver = resolver

"""Client addresses and the IP networks settings name (``trusted_networks``, ``exempt_networks``).

- ``parse_networks(texts)``: ``["127.0.0.0/8", "::1"]`` as networks; a ValueError names a bad one.
- ``client_address(ip)``: a peer address as Twisted reports it, as an ``ipaddress`` object (scope
  id dropped, an IPv4-mapped IPv6 address as IPv4), or None when it is not an IP address.
- ``peer_text(ip)``: the same as text, the form every protocol records, logs and checks: an
  IPv4 client of a dual-stack ``tcp6:`` listener shows as ``192.0.2.1``, not
  ``::ffff:192.0.2.1``, in Received, the mail log, ``trusted_networks`` and reverse DNS.
"""

from __future__ import annotations

import functools
import ipaddress
from collections.abc import Iterable

__all__ = ["Address", "Network", "client_address", "parse_networks", "peer_text"]

Address = ipaddress.IPv4Address | ipaddress.IPv6Address
Network = ipaddress.IPv4Network | ipaddress.IPv6Network


def parse_networks(texts: Iterable[str]) -> list[Network]:
    """``["127.0.0.0/8", "::1"]`` as networks; ValueError names a bad one."""
    networks = []
    for text in texts:
        try:
            networks.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise ValueError(f"{text!r} is not an IP network (like 192.0.2.0/24)") from None
    return networks


def client_address(ip: str) -> Address | None:
    """``ip`` as an address: ``fe80::1%eth0`` without its scope, ``::ffff:192.0.2.1`` as IPv4."""
    try:
        address = ipaddress.ip_address(ip.split("%", 1)[0])
    except ValueError:
        return None
    if isinstance(address, ipaddress.IPv6Address) and address.ipv4_mapped is not None:
        return address.ipv4_mapped
    return address


@functools.lru_cache(maxsize=4096)  # every connection asks; clients come back
def peer_text(ip: str) -> str:
    """``ip`` as ``client_address`` reads it, as text; anything else unchanged."""
    address = client_address(ip)
    return str(address) if address is not None else ip

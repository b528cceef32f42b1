"""Connection limits shared by every listener of one protocol: in total and per client address.

A server has, for example, two IMAP listeners (143 and 993); ``[imap] max_connections`` bounds
their sum, so they share one ``ConnectionLimiter`` kept on the ``ServerContext``.
"""

from __future__ import annotations

from collections import Counter
from typing import Any, Literal

Refusal = Literal["total", "address"]


class ConnectionLimiter:
    """Counts open connections, in total and per client address."""

    def __init__(self, max_total: int, max_per_ip: int) -> None:
        self.max_total = max_total
        self.max_per_ip = max_per_ip
        self.total = 0
        self.per_ip: Counter[str] = Counter()

    def refusal(self, ip: str) -> Refusal | None:
        """Which limit a new connection from ``ip`` would break ("total", "address"), or None."""
        if self.total >= self.max_total:
            return "total"
        if self.per_ip[ip] >= self.max_per_ip:
            return "address"
        return None

    def opened(self, ip: str) -> None:
        self.total += 1
        self.per_ip[ip] += 1

    def closed(self, ip: str) -> None:
        self.total -= 1
        self.per_ip[ip] -= 1
        if self.per_ip[ip] <= 0:
            del self.per_ip[ip]


def shared_limiter(ctx: Any, protocol: str, max_total: int, max_per_ip: int) -> ConnectionLimiter:
    """The limiter every ``protocol`` listener of this server shares (made on first use)."""
    attribute = f"_{protocol}_connection_limiter"
    limiter = getattr(ctx, attribute, None)
    if limiter is None:
        limiter = ConnectionLimiter(max_total, max_per_ip)
        setattr(ctx, attribute, limiter)
    return limiter

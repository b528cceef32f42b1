"""Small in-memory stand-ins for SMTP protocol tests: spool, mail log, throttle, TLS settings.

Accounts, store and the cred portal come from their owners' modules (``MemoryAccounts``,
``MemoryStore``, ``mailsuite.auth.make_portal``); these fakes cover what the tests need to observe.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Sequence

from twisted.internet import defer
from zope.interface import implementer

from mailsuite.interfaces import ISpool, SpoolEnvelope


@implementer(ISpool)
class RecordingSpool:
    """An ``ISpool`` that keeps what was enqueued; ``fail`` makes enqueue fail."""

    def __init__(self) -> None:
        self.entries: list[tuple[SpoolEnvelope, bytes]] = []
        self.fail = False

    def enqueue(self, envelope: SpoolEnvelope, message: bytes | Sequence[bytes]) -> Any:
        if self.fail:
            return defer.fail(OSError("spool disk full"))
        data = message if isinstance(message, bytes) else b"".join(message)
        self.entries.append((envelope, data))
        return defer.succeed(f"Q{len(self.entries)}")


@dataclass
class RecordingMailLog:
    """A ``MailLog`` that keeps (event, fields) pairs."""

    events: list[tuple[str, dict[str, Any]]] = field(default_factory=list)

    def log(self, event: str, **fields: Any) -> None:
        self.events.append((event, fields))

    def of(self, event: str) -> list[dict[str, Any]]:
        return [f for e, f in self.events if e == event]


@dataclass
class CountingThrottle:
    """A ``LoginThrottle`` stand-in: blocks after ``block_after`` failures per address."""

    block_after: int = 1000
    delay: float = 0.0
    failures: dict[str, int] = field(default_factory=dict)
    successes: list[str] = field(default_factory=list)

    def delay_for(self, ip: str) -> float:
        return self.delay

    def record_failure(self, ip: str) -> None:
        self.failures[ip] = self.failures.get(ip, 0) + 1

    def record_success(self, ip: str) -> None:
        self.successes.append(ip)

    def is_blocked(self, ip: str) -> bool:
        return self.failures.get(ip, 0) >= self.block_after


class StaticTLS:
    """A ``TLSSettings`` stand-in returning fixed server options (or a marker object)."""

    def __init__(self, options: Any = "tls-options") -> None:
        self.options = options

    def server_options(self) -> Any:
        return self.options

"""Small in-memory stand-ins for SMTP protocol tests: spool, mail log, TLS settings.

Accounts, store and the cred portal come from their owners' modules (``MemoryAccounts``,
``MemoryStore``, ``mailsuite.auth.make_portal``); these fakes cover what the tests need to observe.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

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


class StaticTLS:
    """A ``TLSSettings`` stand-in returning fixed server options (or a marker object)."""

    def __init__(self, options: Any = "tls-options") -> None:
        self.options = options

    def server_options(self) -> Any:
        return self.options

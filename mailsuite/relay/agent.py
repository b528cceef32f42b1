"""What the queue runner sees of delivery: a job in, one outcome per recipient out.

Like chasquid's courier interface, an agent answers *done*, *transient* or *permanent* for every
recipient; the runner alone decides about retries, delay notices and bounces.
"""

from __future__ import annotations

import enum
import re
from dataclasses import dataclass
from typing import Any

from zope.interface import Interface

from mailsuite.relay.spool import QueueItem, RecipientState


class Result(enum.Enum):
    DONE = "done"
    TRANSIENT = "transient"
    PERMANENT = "permanent"


_ENHANCED = re.compile(r"^([245])\.(\d{1,3})\.(\d{1,3})\b")


@dataclass(frozen=True)
class Outcome:
    """The result for one recipient.

    ``reply`` is what an operator reads (e.g. ``"550 5.1.1 user unknown (in reply to RCPT TO)"``),
    ``status`` the RFC 3463 code, ``remote_mta`` the host that answered ('' if local or none),
    ``action`` the RFC 3464 action on success: ``"delivered"`` (final) or ``"relayed"``.
    """

    result: Result
    reply: str
    status: str
    remote_mta: str = ""
    action: str = "relayed"

    @classmethod
    def done(cls, reply: str, remote_mta: str = "", action: str = "relayed") -> Outcome:
        return cls(Result.DONE, reply, "2.0.0", remote_mta, action)

    @classmethod
    def transient(cls, reply: str, status: str = "4.0.0", remote_mta: str = "") -> Outcome:
        return cls(Result.TRANSIENT, reply, status, remote_mta)

    @classmethod
    def permanent(cls, reply: str, status: str = "5.0.0", remote_mta: str = "") -> Outcome:
        return cls(Result.PERMANENT, reply, status, remote_mta)


def enhanced_status(code: int, text: str) -> str:
    """The RFC 3463 code at the start of a reply text, or the class default (2.0.0 ...)."""
    m = _ENHANCED.match(text)
    if m and m.group(1) == str(code)[0]:
        return m.group(0)
    return f"{str(code)[0]}.0.0"


@dataclass(frozen=True)
class DeliveryJob:
    """Some pending recipients of one queued message, all for one destination domain."""

    item: QueueItem
    recipients: tuple[RecipientState, ...]
    message: bytes
    # Fired by the runner once the outcomes are durable in the spool. An agent that reuses a
    # connection waits for it before the next message, so a crash never loses the record of
    # more than the one message in flight.
    committed: Any = None


class IDeliveryAgent(Interface):
    """Delivers a job and reports per recipient."""

    def deliver(job: DeliveryJob) -> Any:
        """Deferred[dict[str, Outcome]]: an outcome for every recipient address of the job.

        Never errbacks: every failure is reported as an outcome.
        """

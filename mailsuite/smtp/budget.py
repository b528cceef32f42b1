"""A bound on the message content all SMTP sessions hold in memory together.

A message is kept in memory from its DATA (or first BDAT) until it is durable. SIZE bounds one
message (50 MB by default), ``max_connections`` the sessions (500): without a bound on the
sum, 500 clients sending 50 MB each, slowly, would ask for 25 GB. ``MessageMemory`` counts
what the message bodies hold (``[smtp] max_message_memory``, 256 MB by default). A message
that would go past it is refused with 452 4.3.1 (RFC 3463: mail system full) and its remaining
content is read and thrown away; the client tries again later, as after any 4xx. A MAIL whose
SIZE cannot fit now gets the same answer at once (RFC 1870 6.2).

Bodies give their bytes back when they are freed (``weakref.finalize``), so no path through
the protocol -- a reset, an error, a dropped connection, the end of delivery -- can leak them.
"""

from __future__ import annotations

import weakref
from typing import Any

_CONTEXT_KEY = "_smtp_message_memory"


class MessageMemory:
    """Bytes of message content held by live bodies, against ``limit``."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.used = 0
        self.refusals = 0  # messages refused during their data for want of memory

    def fits(self, size: int) -> bool:
        """Would ``size`` more bytes fit now (SIZE at MAIL)?"""
        return self.used + size <= self.limit

    def take(self, body: Any, size: int) -> bool:
        """Count ``size`` more bytes for ``body``; False (nothing counted) when over the limit."""
        if self.used + size > self.limit:
            self.refusals += 1
            return False
        self.used += size
        cell = body.memory_cell
        if cell is None:
            # Give everything back once the body is gone, whichever way it goes.
            cell = body.memory_cell = [0]
            weakref.finalize(body, self._give_back, cell)
        cell[0] += size
        return True

    def give_back(self, body: Any) -> None:
        """``body`` dropped its content early (over SIZE, over the budget)."""
        if body.memory_cell is not None:
            self._give_back(body.memory_cell)

    def _give_back(self, cell: list[int]) -> None:
        self.used -= cell[0]
        cell[0] = 0


def shared_memory(ctx: Any, limit: int) -> MessageMemory:
    """The budget every SMTP listener of ``ctx`` shares (created on first use)."""
    memory = getattr(ctx, _CONTEXT_KEY, None)
    if memory is None:
        memory = MessageMemory(limit)
        setattr(ctx, _CONTEXT_KEY, memory)
    return memory

"""Per-process POP3 session registry: maildrop locks (RFC 2449 IN-USE) and login times.

One registry is shared by the POP3 listeners of one process (110 and 995), so a user logged in
on either port holds the lock. The lock is per process: two mailsuite nodes sharing a Maildir tree
do not see each other's POP3 sessions (the store's UID list lock still keeps each expunge safe,
and a message already removed by one node is reported as removed by the other).
"""

from __future__ import annotations

from typing import Any


class SessionRegistry:
    """Which users have a POP3 session open, how many connections exist, last login times."""

    def __init__(self) -> None:
        self._locked: set[str] = set()
        self._last_login: dict[str, float] = {}
        self.connections = 0
        self._per_host: dict[str, int] = {}
        self.live: set[Any] = set()  # open connections, told when the server shuts down

    def connections_from(self, host: str) -> int:
        """Open connections from one client address."""
        return self._per_host.get(host, 0)

    def connection_opened(self, host: str) -> None:
        """Count a connection (total and per address)."""
        self.connections += 1
        self._per_host[host] = self._per_host.get(host, 0) + 1

    def connection_closed(self, host: str) -> None:
        """Forget a connection counted by :meth:`connection_opened`."""
        self.connections -= 1
        left = self._per_host.get(host, 1) - 1
        if left > 0:
            self._per_host[host] = left
        else:
            self._per_host.pop(host, None)

    def shutdown(self) -> None:
        """Tell every open connection the server is stopping (RFC 3206 [SYS/TEMP])."""
        for connection in list(self.live):
            connection.server_shutdown()

    def acquire(self, user: str) -> bool:
        """Lock ``user``'s maildrop; False if another session holds it."""
        if user in self._locked:
            return False
        self._locked.add(user)
        return True

    def release(self, user: str) -> None:
        """Unlock ``user``'s maildrop."""
        self._locked.discard(user)

    def is_locked(self, user: str) -> bool:
        """True while a session of ``user`` is open."""
        return user in self._locked

    def last_login(self, user: str) -> float | None:
        """When ``user`` last logged in (reactor seconds), or None."""
        return self._last_login.get(user)

    def record_login(self, user: str, when: float) -> None:
        """Remember a successful login (for RFC 2449 LOGIN-DELAY)."""
        self._last_login[user] = when

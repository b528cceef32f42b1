"""The reactor ``twistd mailsuite`` runs on: Twisted's epoll reactor, without a legacy log
context around every I/O event.

Twisted's ``EPollReactor`` hands each ready socket to its handler through
``twisted.python.log.callWithLogger``, which builds a legacy log context (the "system" shown
before ``log.msg`` lines) for that one event: a dict and three more Python calls, for every
read and every accepted connection. With one SMTP client, about nine events per message, that
was a tenth of the server's CPU (A/B under ``smtp-source``: 760 -> 835 msg/s, 1.14 -> 1.02 ms of
CPU per message). mailsuite logs through ``twisted.logger``, which does not read that context,
and Twisted's own asyncio reactor dispatches without it as well. What the context still gave:
the protocol's name, not "-", beside a traceback that Twisted logs for a handler that raised.

``install`` is called by ``makeService`` and does nothing when twistd has already installed a
reactor, so ``twistd -r epoll -n mailsuite`` (or any other ``-r``) keeps the one asked for.
"""

from __future__ import annotations

import errno
import sys

from twisted.logger import Logger

try:
    from twisted.internet.epollreactor import EPollReactor
except ImportError:  # no epoll (not Linux): twistd's default reactor is used
    EPollReactor = None  # type: ignore[assignment, misc]

log = Logger()


if EPollReactor is not None:

    class MailReactor(EPollReactor):  # type: ignore[valid-type, misc]
        """``EPollReactor`` whose ``doPoll`` calls each ready descriptor's handler directly."""

        def doPoll(self, timeout: float | None) -> None:
            if timeout is None:
                timeout = -1  # wait until something happens
            try:
                events = self._poller.poll(timeout, len(self._selectables))
            except OSError as err:
                if err.errno == errno.EINTR:
                    return
                raise
            selectables = self._selectables
            handle = self._doReadOrWrite  # catches and logs what doRead/doWrite raise
            for fd, event in events:
                selectable = selectables.get(fd)
                if selectable is None:
                    continue  # removed by an earlier handler of this round
                try:
                    handle(selectable, fd, event)
                except Exception:  # noqa: BLE001 - as callWithLogger: log it, serve the others
                    log.failure("I/O handler of {selectable!r} failed", selectable=selectable)

        doIteration = doPoll  # the base class binds the name to its own doPoll


def install() -> bool:
    """Install :class:`MailReactor` as the global reactor. False (nothing done) where a reactor
    is installed already or there is no epoll."""
    if EPollReactor is None or "twisted.internet.reactor" in sys.modules:
        return False
    from twisted.internet.main import installReactor

    installReactor(MailReactor())
    return True

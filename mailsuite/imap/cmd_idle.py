"""IDLE (RFC 2177): push EXISTS, EXPUNGE (or VANISHED) and FETCH FLAGS while the client waits.

Changes made in this process (SMTP delivery, other IMAP sessions) arrive as store events and
are written at once. Changes made by other processes on the same Maildir are picked up by a
periodic re-read of the folder (``idle_poll_interval``).
"""

from __future__ import annotations

from typing import Any

from twisted.internet.task import LoopingCall

from mailsuite.imap.parser import Reader
from mailsuite.imap.responses import Reply, bad, ok
from mailsuite.imap.session import Session, State

AUTHED = (State.AUTHENTICATED, State.SELECTED)


async def idle(session: Session, r: Reader) -> Reply | None:
    r.end()
    protocol = session.protocol
    session.send(b"+ idling\r\n")
    session.idling = True
    waiting = protocol.read_line()
    session.flush_updates(allow_expunge=True)
    poll = LoopingCall(_poll, session)
    poll.clock = session.ctx.reactor
    poll.start(session.settings.idle_poll_interval, now=False)
    try:
        line = await waiting
    finally:
        session.idling = False
        if poll.running:
            poll.stop()
    if line.strip().upper() != b"DONE":
        raise bad("Expected DONE.")
    return ok("Idle completed.")


def _poll(session: Session) -> None:
    if session.selected is not None and session.idling:
        session.selected.refresh_wanted = True
        session.protocol.schedule_flush()


HANDLERS: dict[str, tuple[Any, tuple[State, ...]]] = {
    "IDLE": (idle, AUTHED),
}

"""THREAD and UID THREAD (RFC 5256 sections 3 and 4).

``THREAD algorithm charset search-criteria``: the messages that match are threaded by
``threading_alg`` from their cached summaries (Subject, Date, Message-ID, References,
In-Reply-To), exactly the data SORT uses, so threading never reads message files unless the
search keys do.
"""

from __future__ import annotations

from typing import Any

from mailsuite.imap.cmd_search import Candidate, KeyParser, matching, read_charset
from mailsuite.imap.cmd_sort import sent_date
from mailsuite.imap.parser import Reader
from mailsuite.imap.responses import Reply, bad
from mailsuite.imap.session import Session, State
from mailsuite.imap.threading_alg import ALGORITHMS, ThreadMessage, render, thread

SELECTED = (State.SELECTED,)
CAPABILITIES = tuple(f"THREAD={name}" for name in ALGORITHMS)


def thread_message(candidate: Candidate, uid_mode: bool) -> ThreadMessage:
    """The threading view of one matching message, from its cached summary."""
    summary = candidate.summary
    envelope = summary.get("envelope") or {}
    return ThreadMessage(
        number=candidate.info.uid if uid_mode else candidate.index + 1,
        seq=candidate.index + 1,
        sent=sent_date(candidate),
        subject=(summary.get("decoded") or {}).get("subject"),
        message_id=envelope.get("message_id"),
        references=summary.get("references"),
        in_reply_to=envelope.get("in_reply_to"),
    )


async def thread_(session: Session, r: Reader) -> Reply | None:
    return await _thread(session, r, uid_mode=False)


async def uid_thread(session: Session, r: Reader) -> Reply | None:
    return await _thread(session, r, uid_mode=True)


async def _thread(session: Session, r: Reader, uid_mode: bool) -> Reply | None:
    view = session.require_selected()
    r.sp()
    algorithm = r.keyword()
    if algorithm not in ALGORITHMS:  # RFC 5256 section 3: an unknown algorithm is a BAD
        raise bad(f"Unknown threading algorithm {algorithm}.")
    r.sp()
    charset = read_charset(r)  # NO [BADCHARSET] for anything but US-ASCII and UTF-8
    r.sp()
    root = KeyParser(r, view, charset).keys()
    r.end()
    found = await matching(session, view, root)
    threads = thread(algorithm, [thread_message(c, uid_mode) for c in found])
    text = render(threads)
    session.send(b"* THREAD" + (b" " + text.encode("ascii") if text else b"") + b"\r\n")
    return None


HANDLERS: dict[str, tuple[Any, tuple[State, ...]]] = {
    "THREAD": (thread_, SELECTED),
    "UID THREAD": (uid_thread, SELECTED),
}

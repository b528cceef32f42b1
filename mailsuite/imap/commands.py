"""Per-state dispatch tables (RFC 3501 section 6) and the CAPABILITY list.

Each command family module exports ``HANDLERS``: command name -> (handler, states). A handler is
``async def handler(session, reader) -> Reply | None``; the reader stands after the command name.
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from typing import Any

from mailsuite.imap import (
    cmd_auth,
    cmd_fetch,
    cmd_idle,
    cmd_mailbox,
    cmd_message,
    cmd_search,
    cmd_sort,
    cmd_thread,
)
from mailsuite.imap.session import Session, State

Handler = Callable[[Session, Any], Awaitable[Any]]

_FAMILIES = (cmd_auth, cmd_mailbox, cmd_message, cmd_fetch, cmd_search, cmd_sort, cmd_thread,
             cmd_idle)

_TABLES: dict[State, dict[str, Handler]] = {s: {} for s in State}
for _family in _FAMILIES:
    for _name, (_handler, _states) in _family.HANDLERS.items():
        for _state in _states:
            _TABLES[_state][_name] = _handler
_KNOWN = frozenset(name for table in _TABLES.values() for name in table)


def lookup(state: State, name: str) -> Handler | None:
    """The handler for ``name`` in ``state``, or None (unknown or wrong state)."""
    return _TABLES[state].get(name)


def is_known(name: str) -> bool:
    return name in _KNOWN


BASE_CAPABILITIES = ("IMAP4rev1", "SASL-IR", "ID", "ENABLE", "IDLE", "LITERAL+")
AUTHENTICATED_CAPABILITIES = (
    "IMAP4rev1", "SASL-IR", "ID", "ENABLE", "IDLE", "LITERAL+",
    "NAMESPACE", "UIDPLUS", "MULTIAPPEND", "MOVE", "UNSELECT", "CHILDREN", "SPECIAL-USE",
    "CREATE-SPECIAL-USE",
    "LIST-EXTENDED", "LIST-STATUS", "CONDSTORE", "QRESYNC", "ESEARCH", "WITHIN",
    "QUOTA", "QUOTA=RES-STORAGE", "QUOTA=RES-MESSAGE", "STATUS=SIZE", "SORT", "SORT=DISPLAY",
    *cmd_thread.CAPABILITIES, "UTF8=ACCEPT",
)


def capabilities(session: Session) -> str:
    """The CAPABILITY list for the session's current state (advertise only what works)."""
    if session.state is State.NOT_AUTHENTICATED:
        caps = list(BASE_CAPABILITIES)
        if session.tls or session.settings.allow_plaintext_auth:
            caps.append("AUTH=PLAIN")
        else:
            caps.append("LOGINDISABLED")
        if not session.tls and session.ctx.tls is not None:
            caps.append("STARTTLS")
        return " ".join(caps)
    caps = list(AUTHENTICATED_CAPABILITIES)
    caps.append(f"APPENDLIMIT={session.settings.max_literal_size}")
    if not session.compressed:
        caps.append("COMPRESS=DEFLATE")
    return " ".join(caps)

"""The POP3 protocol (RFC 1939) with CAPA and response codes (RFC 2449, RFC 3206), STLS
(RFC 2595) and AUTH PLAIN (RFC 5034).

- ``connection.py``: the connection core (framing, pipelining, dispatch, limits, timeouts);
- ``authorization.py``: CAPA, STLS, USER/PASS, APOP (refused), AUTH PLAIN;
- ``transaction.py``: STAT, LIST, UIDL, RETR, TOP, DELE, RSET, NOOP, QUIT and UPDATE;
- ``states.py``: the states and the commands each accepts.
"""

from __future__ import annotations

from mailsuite.pop3.authorization import AuthorizationCommands, parse_plain
from mailsuite.pop3.states import State
from mailsuite.pop3.transaction import TransactionCommands, parse_number


class Pop3Protocol(AuthorizationCommands, TransactionCommands):
    """One POP3 connection (built by ``mailsuite.pop3.service.Pop3Factory``)."""


__all__ = ["Pop3Protocol", "State", "parse_number", "parse_plain"]

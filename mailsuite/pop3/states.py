"""POP3 session states and the commands each accepts (RFC 1939 section 3)."""

from __future__ import annotations

import enum

SASL_LINE_LIMIT = 8192  # RFC 5034 section 4: a continuation line may exceed the 255-octet rule
MAX_QUEUED_LINES = 256  # pause reading when this many pipelined commands wait


class State(enum.Enum):
    """RFC 1939 section 3 session states."""

    AUTHORIZATION = "AUTHORIZATION"
    TRANSACTION = "TRANSACTION"
    UPDATE = "UPDATE"


AUTHORIZATION_COMMANDS = frozenset({"CAPA", "USER", "PASS", "AUTH", "APOP", "STLS", "QUIT"})
TRANSACTION_COMMANDS = frozenset(
    {"CAPA", "STAT", "LIST", "RETR", "DELE", "NOOP", "RSET", "TOP", "UIDL", "QUIT"}
)
ALL_COMMANDS = AUTHORIZATION_COMMANDS | TRANSACTION_COMMANDS

"""SMTP replies as values: a code, an RFC 3463 enhanced status code and text.

Every verb handler returns a :class:`Reply`; the protocol loop writes it. The named constants
below are every reply the server sends, so tests can name the reply they expect.
"""

from __future__ import annotations

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class Reply:
    """One SMTP reply (RFC 5321 4.2) with its enhanced status code (RFC 2034, RFC 3463).

    ``text`` may contain ``\\n`` for a multi-line reply. ``enhanced`` is None for replies that
    carry no enhanced code (the greeting and 354, RFC 2034 section 3). The wire form is made
    once, when the reply is: the constants below are sent many times per message.
    """

    code: int
    enhanced: str | None
    text: str
    _wire: bytes = field(init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        prefix = f"{self.enhanced} " if self.enhanced else ""
        if "\n" not in self.text:  # nearly every reply: one line
            wire = f"{self.code} {prefix}{self.text}\r\n".encode()
        else:
            lines = self.text.split("\n")
            last = len(lines) - 1
            wire = "".join(
                f"{self.code}{' ' if i == last else '-'}{prefix}{line}\r\n"
                for i, line in enumerate(lines)
            ).encode()
        object.__setattr__(self, "_wire", wire)

    def encode(self) -> bytes:
        """The reply as it goes on the wire, every line ending in CRLF."""
        return self._wire

    def with_text(self, text: str) -> Reply:
        """The same code with other text."""
        return Reply(self.code, self.enhanced, text)

    @property
    def is_positive(self) -> bool:
        """2xx and 3xx."""
        return self.code < 400

    @property
    def is_permanent(self) -> bool:
        """5xx."""
        return self.code >= 500


class _NoReply(Reply):
    """The type of :data:`NO_REPLY`."""

    __slots__ = ()

    def encode(self) -> bytes:
        return b""


NO_REPLY: Reply = _NoReply(0, None, "")
"""Returned by a handler that writes its own reply (QUIT, STARTTLS, BDAT)."""

# --- positive ---------------------------------------------------------------------------
OK = Reply(250, "2.0.0", "Ok")
SENDER_OK = Reply(250, "2.1.0", "Ok")
RECIPIENT_OK = Reply(250, "2.1.5", "Ok")
RESET_OK = Reply(250, "2.0.0", "Ok")
NOOP_OK = Reply(250, "2.0.0", "Ok")
QUEUED = Reply(250, "2.0.0", "Ok: queued as {id}")
CHUNK_OK = Reply(250, "2.0.0", "Ok: {size} octets received")
BYE = Reply(221, "2.0.0", "Bye")
START_DATA = Reply(354, None, "End data with <CR><LF>.<CR><LF>")
READY_FOR_TLS = Reply(220, "2.0.0", "Ready to start TLS")
AUTH_OK = Reply(235, "2.7.0", "Authentication successful")
VRFY_CANNOT = Reply(252, "2.0.0", "Cannot VRFY user, but will accept message and attempt delivery")
HELP = Reply(214, "2.0.0", "See RFC 5321; commands: EHLO HELO MAIL RCPT DATA BDAT RSET NOOP QUIT VRFY HELP")

# --- transient failures ------------------------------------------------------------------
TOO_MANY_CONNECTIONS = Reply(421, "4.7.0", "Too many connections, try again later")
TOO_MANY_CONNECTIONS_FROM_YOU = Reply(421, "4.7.0", "Too many connections from your address")
TOO_MANY_ERRORS = Reply(421, "4.7.0", "Too many errors, closing connection")
IDLE_TIMEOUT = Reply(421, "4.4.2", "Timeout exceeded, closing connection")
SESSION_TIMEOUT = Reply(421, "4.4.2", "Session too long, closing connection")
SHUTTING_DOWN = Reply(421, "4.3.2", "Service shutting down")
TOO_MANY_RECIPIENTS = Reply(452, "4.5.3", "Too many recipients")
TEMPORARY_FAILURE = Reply(451, "4.3.0", "Temporary failure, try again later")
QUEUE_UNAVAILABLE = Reply(451, "4.3.0", "Outbound queue not available, try again later")
QUOTA_TEMPORARY = Reply(452, "4.2.2", "Mailbox full, try again later")
TLS_NOT_AVAILABLE = Reply(454, "4.7.0", "TLS not available")
AUTH_THROTTLED = Reply(454, "4.7.0", "Too many authentication failures, try again later")
AUTH_TEMPORARY = Reply(454, "4.7.0", "Temporary authentication failure")

# --- permanent failures: syntax and sequence ---------------------------------------------
UNKNOWN_COMMAND = Reply(500, "5.5.2", "Command not recognized")
LINE_TOO_LONG = Reply(500, "5.5.2", "Line too long")
BARE_NEWLINE_IN_COMMAND = Reply(500, "5.5.2", "Bare <CR> or <LF> in command (RFC 5321 2.3.8)")
BAD_CHARACTER = Reply(500, "5.5.2", "Invalid character in command")
SYNTAX_ERROR = Reply(501, "5.5.4", "Syntax error in parameters")
HELO_REQUIRED = Reply(501, "5.5.4", "Syntax: HELO/EHLO hostname")
BAD_SENDER_SYNTAX = Reply(501, "5.1.7", "Bad sender address syntax")
BAD_RECIPIENT_SYNTAX = Reply(501, "5.1.3", "Bad recipient address syntax")
BAD_SEQUENCE = Reply(503, "5.5.1", "Bad sequence of commands")
NEED_HELO = Reply(503, "5.5.1", "Send HELO/EHLO first")
NESTED_MAIL = Reply(503, "5.5.1", "Nested MAIL command")
NEED_MAIL = Reply(503, "5.5.1", "Need MAIL command")
NEED_RCPT = Reply(503, "5.5.1", "Need RCPT command")
ALREADY_AUTHENTICATED = Reply(503, "5.5.1", "Already authenticated")
AUTH_NOT_ENABLED = Reply(503, "5.5.1", "Authentication not enabled")
AUTH_IN_TRANSACTION = Reply(503, "5.5.1", "AUTH not allowed during a mail transaction")
ALREADY_TLS = Reply(503, "5.5.1", "TLS already active")
NOT_IMPLEMENTED = Reply(502, "5.5.1", "Command not implemented")
PARAM_NOT_SUPPORTED = Reply(555, "5.5.4", "Unsupported MAIL/RCPT parameter")
UNKNOWN_AUTH_MECHANISM = Reply(504, "5.5.4", "Unrecognized authentication mechanism")
AUTH_CANCELLED = Reply(501, "5.0.0", "Authentication cancelled")
AUTH_BAD_BASE64 = Reply(535, "5.7.8", "Authentication credentials invalid")
AUTH_FAILED = Reply(535, "5.7.8", "Authentication credentials invalid")
AUTH_LINE_TOO_LONG = Reply(500, "5.5.6", "Authentication exchange line too long")

# --- permanent failures: policy ----------------------------------------------------------
ENCRYPTION_REQUIRED = Reply(530, "5.7.0", "Must issue a STARTTLS command first")
AUTH_REQUIRED = Reply(530, "5.7.0", "Authentication required")
RELAY_DENIED = Reply(554, "5.7.1", "Relay access denied")
SENDER_NOT_OWNED = Reply(553, "5.7.1", "Sender address not owned by the authenticated user")
NO_SUCH_USER = Reply(550, "5.1.1", "Recipient address rejected: user unknown")
DOMAIN_LITERAL_DENIED = Reply(554, "5.7.1", "Address literals are not accepted")
UTF8_NOT_ENABLED = Reply(553, "5.6.7", "Non-ASCII address requires SMTPUTF8 (RFC 6531 3.4)")
MESSAGE_TOO_BIG = Reply(552, "5.3.4", "Message size exceeds fixed limit")
# RFC 5321 4.2.2 452, RFC 3463 X.3.1 "mail system full": the memory budget for messages
INSUFFICIENT_STORAGE = Reply(452, "4.3.1", "Insufficient system storage, try again later")
MAIL_LOOP = Reply(554, "5.4.6", "Too many Received headers: mail loop detected")
BARE_NEWLINE_IN_DATA = Reply(
    554, "5.6.0", "Message refused: bare <CR> or <LF> in message (RFC 5321 2.3.8)"
)
DATA_LINE_TOO_LONG = Reply(554, "5.6.0", "Message refused: line longer than 998 octets")
QUOTA_PERMANENT = Reply(552, "5.2.2", "Mailbox full")
DELIVERY_FAILED = Reply(554, "5.0.0", "Delivery failed for every recipient")
NO_VALID_RECIPIENTS = Reply(554, "5.5.1", "No valid recipients")
BINARY_NEEDS_BDAT = Reply(503, "5.5.1", "BODY=BINARYMIME requires BDAT")

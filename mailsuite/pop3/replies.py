"""Typed POP3 replies (RFC 1939 section 3) with RFC 2449 / RFC 3206 extended response codes.

Every status line the server sends is a :class:`Reply` value, named once here. The protocol never
writes raw status strings; it picks a constant or builds one with :meth:`Reply.format`.
"""

from __future__ import annotations

from dataclasses import dataclass

# RFC 2449 section 8 and RFC 3206: extended response codes, sent in brackets after "-ERR".
IN_USE = "IN-USE"  # RFC 2449 8.1.2: the maildrop is locked by another session
LOGIN_DELAY = "LOGIN-DELAY"  # RFC 2449 8.1.1: logged in too recently
SYS_TEMP = "SYS/TEMP"  # RFC 3206 4: a transient system problem, try again later
SYS_PERM = "SYS/PERM"  # RFC 3206 4: a permanent system problem
AUTH = "AUTH"  # RFC 3206 5: the credentials were wrong


@dataclass(frozen=True, slots=True)
class Reply:
    """One status line: ``+OK text`` or ``-ERR [CODE] text``."""

    ok: bool
    text: str
    code: str | None = None

    def to_bytes(self) -> bytes:
        """The status line on the wire, with CRLF (RFC 1939 section 3)."""
        parts = ["+OK" if self.ok else "-ERR"]
        if self.code:
            parts.append(f"[{self.code}]")
        if self.text:
            parts.append(self.text)
        return (" ".join(parts) + "\r\n").encode("ascii", "replace")

    def format(self, **fields: object) -> Reply:
        """A copy with ``{field}`` placeholders in the text filled in."""
        return Reply(self.ok, self.text.format(**fields), self.code)


def ok(text: str) -> Reply:
    """A positive reply."""
    return Reply(True, text)


def err(text: str, code: str | None = None) -> Reply:
    """A negative reply, with an optional RFC 2449 response code."""
    return Reply(False, text, code)


# --- greeting and session ----------------------------------------------------------------
# No APOP timestamp in the greeting (RFC 1939 section 7): passwords are stored only as
# memory-hard hashes, so the server cannot compute MD5(timestamp + secret) for anyone.
GREETING = ok("mailsuite POP3 ready.")
TOO_MANY_CONNECTIONS = err("Too many connections, try again later.", SYS_TEMP)
IDLE_TIMEOUT = err("Disconnected for inactivity.")
LINE_TOO_LONG = err("Line too long.")
UNKNOWN_COMMAND = err("Unknown command.")
WRONG_STATE = err("Command not valid in this state.")
TOO_MANY_BAD_COMMANDS = err("Too many bad commands, closing.")
BYE = ok("Logging out.")
NOOP = ok("")
SHUTTING_DOWN = err("Server shutting down.", SYS_TEMP)
INTERNAL_ERROR = err("Internal error, closing.", SYS_TEMP)

# --- capabilities / TLS (RFC 2449, RFC 2595) ---------------------------------------------
CAPA_FOLLOWS = ok("Capability list follows.")
STLS_BEGIN = ok("Begin TLS negotiation now.")
STLS_ALREADY = err("TLS is already active.")
STLS_UNAVAILABLE = err("TLS is not available.")

# --- authorization (RFC 1939 section 7, RFC 5034, RFC 3206) -------------------------------
USER_OK = ok("Send your password.")
PASS_WITHOUT_USER = err("Send USER first.")
PLAINTEXT_DISALLOWED = err("Plaintext authentication is not allowed without TLS; use STLS.", AUTH)
AUTH_FAILED = err("Authentication failed.", AUTH)
AUTH_BLOCKED = err("Too many failed logins, try again later.", SYS_TEMP)
AUTH_TOO_MANY_FAILURES = err("Too many failed logins, closing.", AUTH)
AUTH_ABORTED = err("Authentication aborted.")
AUTH_BAD_BASE64 = err("Invalid base64 data.")
AUTH_BAD_MECHANISM = err("Unsupported authentication mechanism.")
AUTH_MECHANISMS = ok("Supported mechanisms follow.")
AUTH_CONTINUE = b"+ \r\n"  # RFC 5034 section 4: empty server challenge
APOP_UNAVAILABLE = err("APOP is not available: passwords are stored as one-way hashes.")
IN_USE_REPLY = err("Mailbox is locked by another POP3 session.", IN_USE)
LOGIN_DELAY_REPLY = err("Logged in too recently, try again later.", LOGIN_DELAY)
MAILDROP_UNAVAILABLE = err("Cannot open the mailbox, try again later.", SYS_TEMP)
LOGGED_IN = ok("Logged in.")

# --- transaction (RFC 1939 section 5) ----------------------------------------------------
STAT = ok("{count} {size}")
MAILDROP_SUMMARY = ok("{count} messages ({size} octets).")
LIST_FOLLOWS = ok("{count} messages ({size} octets).")
LIST_ONE = ok("{number} {size}")
UIDL_FOLLOWS = ok("Unique-ID listing follows.")
UIDL_ONE = ok("{number} {uid}")
RETR_FOLLOWS = ok("{size} octets.")
TOP_FOLLOWS = ok("Top of message follows.")
DELETED = ok("Message {number} deleted.")
NO_SUCH_MESSAGE = err("No such message.")
MESSAGE_DELETED = err("Message {number} is already deleted.")
INVALID_NUMBER = err("Invalid message number.")
INVALID_ARGUMENTS = err("Invalid arguments.")
MESSAGE_VANISHED = err("Message {number} was removed by another session.")
READ_FAILED = err("Cannot read the message, try again later.", SYS_TEMP)
RSET = ok("{count} messages ({size} octets).")

# --- update (RFC 1939 section 6) ---------------------------------------------------------
QUIT_UPDATED = ok("Logging out, {count} messages deleted.")
QUIT_UPDATE_FAILED = err("Some deleted messages were not removed.", SYS_TEMP)

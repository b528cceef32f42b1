"""SMTP session state, kept apart from the transaction envelope.

:class:`Session` lives as long as the connection (peer, TLS, HELO name, authenticated user,
error count). :class:`Envelope` lives for one mail transaction; RSET, HELO/EHLO, STARTTLS and the
end of DATA/BDAT replace it with a fresh one (RFC 5321 4.1.1.5, RFC 3207 4.2).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from mailsuite.interfaces import Resolution
from mailsuite.smtp.paths import Mailbox


@dataclass(slots=True)
class Session:
    """What we know about the client for the whole connection."""

    role: str  # "mx", "submission" or "submissions"
    peer_ip: str
    peer_port: int = 0
    helo: str | None = None
    esmtp: bool = False
    tls: bool = False
    tls_version: str | None = None
    tls_cipher: str | None = None
    tls_bits: int | None = None
    user: str | None = None  # canonical address after AUTH
    errors: int = 0
    messages: int = 0  # messages accepted on this connection
    # Work that need not hold up the client (the mail log line of an accepted message): run
    # once the replies queued so far are written, or when the connection is lost.
    after_reply: list[Callable[[], object]] = field(default_factory=list)

    @property
    def requires_auth(self) -> bool:
        """Submission needs AUTH before MAIL (RFC 6409 4.1)."""
        return self.role != "mx"


@dataclass(frozen=True, slots=True)
class Recipient:
    """One accepted RCPT TO with what policy decided and its DSN parameters (RFC 3461)."""

    mailbox: Mailbox
    address: str
    resolution: Resolution | None  # None: a remote address for the outbound queue
    notify: tuple[str, ...] = ()
    orcpt: str | None = None


@dataclass(slots=True)
class Envelope:
    """One mail transaction: reverse-path, forward-paths and MAIL parameters."""

    sender: str | None = None  # None before MAIL; "" for the null reverse-path
    recipients: list[Recipient] = field(default_factory=list)
    body_8bit: bool = False  # BODY=8BITMIME (RFC 6152)
    smtputf8: bool = False  # SMTPUTF8 (RFC 6531)
    declared_size: int | None = None  # SIZE= (RFC 1870)
    ret: str | None = None  # RET= (RFC 3461 4.3)
    envid: str | None = None  # ENVID= (RFC 3461 4.4)

    @property
    def has_sender(self) -> bool:
        return self.sender is not None

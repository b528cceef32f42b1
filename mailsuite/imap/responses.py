"""Typed IMAP replies: status, response codes (RFC 3501 7.1, RFC 5530) and the errors commands raise.

A command handler returns a ``Reply`` (or None for a plain OK) or raises ``CommandFailed``; the
protocol writes the tagged line. Store errors are protocol-neutral (``mailsuite.errors``) and are
mapped to replies here, in one place.
"""

from __future__ import annotations

from dataclasses import dataclass

from mailsuite import errors

OK = "OK"
NO = "NO"
BAD = "BAD"


class Code:
    """Response codes (RFC 3501 7.1, RFC 5530, RFC 4315, RFC 7162, RFC 6851...)."""

    ALERT = "ALERT"
    ALREADYEXISTS = "ALREADYEXISTS"
    AUTHENTICATIONFAILED = "AUTHENTICATIONFAILED"
    CANNOT = "CANNOT"
    CLIENTBUG = "CLIENTBUG"
    CLOSED = "CLOSED"
    COMPRESSIONACTIVE = "COMPRESSIONACTIVE"
    EXPUNGEISSUED = "EXPUNGEISSUED"
    INUSE = "INUSE"
    LIMIT = "LIMIT"
    NONEXISTENT = "NONEXISTENT"
    NOPERM = "NOPERM"
    OVERQUOTA = "OVERQUOTA"
    PRIVACYREQUIRED = "PRIVACYREQUIRED"
    READ_ONLY = "READ-ONLY"
    READ_WRITE = "READ-WRITE"
    SERVERBUG = "SERVERBUG"
    TOOBIG = "TOOBIG"
    TRYCREATE = "TRYCREATE"
    UNAVAILABLE = "UNAVAILABLE"
    USEATTR = "USEATTR"  # RFC 6154 section 3
    NOMODSEQ = "NOMODSEQ"


@dataclass(frozen=True, slots=True)
class Reply:
    """A tagged completion: status (OK/NO/BAD), optional response code, human text."""

    status: str
    text: str
    code: str | None = None

    def render(self, tag: str) -> bytes:
        code = f"[{self.code}] " if self.code else ""
        return f"{tag} {self.status} {code}{self.text}\r\n".encode("utf-8", "replace")


class CommandFailed(Exception):
    """Raised by a handler to end the command with NO or BAD."""

    def __init__(self, reply: Reply) -> None:
        super().__init__(reply.text)
        self.reply = reply


def no(text: str, code: str | None = None) -> CommandFailed:
    return CommandFailed(Reply(NO, text, code))


def bad(text: str, code: str | None = None) -> CommandFailed:
    return CommandFailed(Reply(BAD, text, code))


def ok(text: str, code: str | None = None) -> Reply:
    return Reply(OK, text, code)


# Fixed replies named once.
AUTH_FAILED = Reply(NO, "Authentication failed.", Code.AUTHENTICATIONFAILED)
PLAINTEXT_DISABLED = Reply(
    NO, "Plaintext authentication disallowed on non-secure connections.", Code.PRIVACYREQUIRED
)
SERVER_BUG = Reply(NO, "Internal error occurred. Refer to server log for more information.",
                   Code.SERVERBUG)
NO_SUCH_MAILBOX = "Mailbox doesn't exist"


def from_store_error(error: errors.MailsuiteError, mailbox: str | None = None) -> Reply:
    """Map a protocol-neutral store error to an IMAP reply."""
    name = f": {mailbox}" if mailbox else ""
    if isinstance(error, errors.FolderNotFound):
        return Reply(NO, NO_SUCH_MAILBOX + name, Code.NONEXISTENT)
    if isinstance(error, errors.FolderExists):
        return Reply(NO, "Mailbox already exists" + name, Code.ALREADYEXISTS)
    if isinstance(error, errors.InvalidFolderName):
        return Reply(NO, "Invalid mailbox name" + name, Code.CANNOT)
    if isinstance(error, errors.FolderNotEmpty):
        return Reply(NO, "Mailbox has children or messages", Code.CANNOT)
    if isinstance(error, errors.QuotaExceeded):
        return Reply(NO, "Quota exceeded (mailbox for user is full)", Code.OVERQUOTA)
    if isinstance(error, errors.SpecialUseNotSupported):
        return Reply(NO, "Special use not supported" + name, Code.USEATTR)
    if isinstance(error, errors.ReadOnlyFolder):
        return Reply(NO, "Mailbox is read-only", Code.READ_ONLY)
    if isinstance(error, errors.MessageNotFound):
        return Reply(NO, "Some of the requested messages no longer exist", Code.EXPUNGEISSUED)
    if isinstance(error, errors.TemporaryStoreError):
        return Reply(NO, "Temporary failure, try again later", Code.UNAVAILABLE)
    return Reply(NO, "Operation failed", Code.CANNOT)

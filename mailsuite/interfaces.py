"""The interfaces that the parts of mailsuite meet through, and the values they exchange.

Protocol code (smtp/, pop3/, imap/) talks only to these interfaces, never to an implementation.
Every implementation passes ``zope.interface.verify.verifyObject`` and the shared contract tests.

Conventions:
- A user is named by the canonical address of the account, e.g. ``"alice@example.test"``
  (lower case; see ``mailsuite.address.canonical``).
- Folder names are Unicode text with ``/`` as the hierarchy delimiter; ``"INBOX"`` is the inbox
  (case-insensitive). The IMAP layer converts modified UTF-7; the store maps names to Maildir++
  directories itself.
- IMAP flags are text: system flags with a backslash (``\\Seen``, ``\\Answered``, ``\\Flagged``,
  ``\\Deleted``, ``\\Draft``) and keywords without one (``$Forwarded``, ``Junk``).
- Methods documented as returning a Deferred do slow work (fsync, copying files) off the reactor
  thread; every other method is a quick local operation and returns directly.
"""

from __future__ import annotations

import enum
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field
from typing import Any

from zope.interface import Attribute, Interface

HIERARCHY_DELIMITER = "/"
INBOX = "INBOX"

SYSTEM_FLAGS = frozenset({"\\Seen", "\\Answered", "\\Flagged", "\\Deleted", "\\Draft"})

SPECIAL_USE_FOLDERS = {
    "Sent": "\\Sent",
    "Drafts": "\\Drafts",
    "Trash": "\\Trash",
    "Junk": "\\Junk",
    "Archive": "\\Archive",
}

# RFC 6154 section 2: every special-use attribute the RFC defines.
SPECIAL_USE_ATTRIBUTES = frozenset(
    {"\\All", "\\Archive", "\\Drafts", "\\Flagged", "\\Junk", "\\Sent", "\\Trash"}
)
# Those a user may give a new folder (RFC 6154 section 3). \All and \Flagged name virtual
# folders (every message, every flagged message) that a Maildir store does not have.
ASSIGNABLE_SPECIAL_USES = SPECIAL_USE_ATTRIBUTES - {"\\All", "\\Flagged"}


# --- store values ------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class MessageInfo:
    """What the store knows about one message without reading its file."""

    uid: int
    flags: frozenset[str]
    size: int  # bytes of the message file, exactly as RFC822.SIZE reports it
    internal_date: float  # seconds since the epoch (IMAP INTERNALDATE)
    modseq: int  # RFC 7162 MODSEQ: bumped on every flag change
    pop_id: str  # the POP3 UIDL: stable for the life of the message


@dataclass(frozen=True, slots=True)
class FolderInfo:
    """One folder in a listing."""

    name: str
    special_use: str | None = None  # "\\Sent", "\\Trash", ... (RFC 6154)
    subscribed: bool = False
    has_children: bool = False
    selectable: bool = True


@dataclass(frozen=True, slots=True)
class FolderStatus:
    """Counters for IMAP STATUS / LIST-STATUS, cheap to compute."""

    messages: int
    recent: int
    unseen: int
    uidnext: int
    uidvalidity: int
    highest_modseq: int
    size: int


@dataclass(frozen=True, slots=True)
class QuotaUsage:
    """A user's usage against their limits (None: unlimited)."""

    bytes_used: int
    bytes_limit: int | None
    messages_used: int
    messages_limit: int | None


class FlagMode(enum.Enum):
    """How STORE combines the given flags with the existing ones."""

    ADD = "+"
    REMOVE = "-"
    REPLACE = ""


@dataclass(frozen=True, slots=True)
class FlagUpdate:
    """The result of ``IFolder.store_flags``."""

    changed: list[MessageInfo]  # messages whose flags changed, with their new state
    unchanged_since_failed: list[int] = field(default_factory=list)  # UIDs (CONDSTORE MODIFIED)


class ChangeKind(enum.Enum):
    ADDED = "added"
    EXPUNGED = "expunged"
    FLAGS = "flags"


@dataclass(frozen=True, slots=True)
class FolderChange:
    """A change published to every live view of a folder in this process.

    ``origin`` is the object passed by whoever made the change (an IMAP session passes itself),
    so a session can tell its own changes from those of others. ``None`` for deliveries and for
    changes noticed on disk (made by another process).
    """

    user: str
    folder: str
    kind: ChangeKind
    uids: tuple[int, ...]
    modseq: int
    origin: object | None = None


Unsubscribe = Callable[[], None]


class IFolder(Interface):
    """One open folder of one user: a view over the Maildir directory.

    The view keeps its message list in memory. ``refresh()`` reconciles it with the disk (changes
    made by other processes or by other views in this process) and is cheap when nothing changed.
    """

    name = Attribute("str: the folder name ('INBOX', 'Sent', 'Projects/2026')")
    uidvalidity = Attribute("int: UIDVALIDITY, constant while the folder exists")
    uidnext = Attribute("int: the UID the next message will get")
    highest_modseq = Attribute("int: RFC 7162 HIGHESTMODSEQ")
    readonly = Attribute("bool: opened read-only (EXAMINE); changes raise ReadOnlyFolder")

    def refresh() -> list[FolderChange]:
        """Re-read what changed on disk; return the changes found (already published)."""

    def messages() -> Sequence[MessageInfo]:
        """All messages in ascending UID order."""

    def get(uid: int) -> MessageInfo:
        """One message; raises MessageNotFound."""

    def open_message(uid: int) -> Any:
        """A binary file object positioned at the start of the message (caller closes it)."""

    def read_message(uid: int) -> bytes:
        """The message bytes exactly as stored."""

    def summary(uid: int) -> dict[str, Any]:
        """The cached parse of the message, as ``mailsuite.message.summarize`` returns it.

        Parsed once per message and kept in the folder's metadata cache, so FETCH ENVELOPE,
        BODYSTRUCTURE and header SEARCH never re-parse a message the store has seen.
        """

    def derived(uid: int, name: str, compute: Callable[[dict[str, Any]], Any]) -> Any:
        """``compute(summary(uid))``, which the store may remember under ``name`` for as long
        as the message is unchanged: FETCH renders a message's ENVELOPE once, not at every
        FETCH. ``compute`` must depend on the summary only."""

    def status() -> FolderStatus:
        """Counters for STATUS."""

    def store_flags(
        uids: Iterable[int],
        flags: Iterable[str],
        mode: FlagMode,
        unchanged_since: int | None = None,
        origin: object | None = None,
    ) -> FlagUpdate:
        """Change flags (renames in the Maildir) and publish a FLAGS change."""

    def expunge(uids: Iterable[int] | None = None, origin: object | None = None) -> list[int]:
        """Remove messages flagged \\Deleted (only those in ``uids`` when given); return their UIDs."""

    def append(
        source: bytes | Sequence[bytes],
        flags: Iterable[str] = (),
        internal_date: float | None = None,
    ) -> Any:
        """Deferred[MessageInfo]: add a message durably (tmp, fsync, rename, fsync dir)."""

    def copy(uids: Iterable[int], destination: str) -> Any:
        """Deferred[list[tuple[int, int]]]: copy to another folder, (source UID, new UID) pairs."""

    def move(uids: Iterable[int], destination: str, origin: object | None = None) -> Any:
        """Deferred[list[tuple[int, int]]]: move to another folder (RFC 6851)."""

    def subscribe(listener: Callable[[FolderChange], None]) -> Unsubscribe:
        """Call ``listener`` for every change to this folder made anywhere in this process."""

    def close() -> None:
        """Release the view (drops its subscriptions)."""


class IAccountStore(Interface):
    """One user's mail: all their folders. This is the avatar POP3 and IMAP get after login."""

    user = Attribute("str: canonical address of the account")

    def list_folders() -> list[FolderInfo]:
        """Every folder, INBOX first; special-use folders exist for every user."""

    def create_folder(name: str, special_use: str | None = None) -> None:
        """Create (and any missing parents); raises FolderExists, InvalidFolderName.

        ``special_use`` (RFC 6154 section 3, e.g. ``"\\Sent"``) is listed with the folder from
        then on, kept across restarts and renames; SpecialUseNotSupported if it is not one of
        ``ASSIGNABLE_SPECIAL_USES`` (nothing is created then).
        """

    def delete_folder(name: str) -> None:
        """Delete a folder; raises FolderNotFound, InvalidFolderName (INBOX)."""

    def rename_folder(old: str, new: str) -> None:
        """Rename with its children; renaming INBOX moves its messages (RFC 3501 6.3.5)."""

    def set_subscribed(name: str, subscribed: bool) -> None:
        """SUBSCRIBE / UNSUBSCRIBE (the name need not exist)."""

    def open_folder(name: str, readonly: bool = False) -> IFolder:
        """Open a view of a folder; raises FolderNotFound."""

    def folder_status(name: str) -> FolderStatus:
        """STATUS without opening a full view."""

    def deliver(
        source: bytes | Sequence[bytes],
        folder: str = INBOX,
        flags: Iterable[str] = (),
        internal_date: float | None = None,
    ) -> Any:
        """Deferred[MessageInfo]: durable delivery with quota check (QuotaExceeded)."""

    def deliver_incoming(source: bytes | Sequence[bytes], folder: str = INBOX) -> Any:
        """Deferred[None]: durable delivery of transported mail (SMTP, relay), quota checked.

        Like ``deliver`` without flags or date, and without its result: the store may leave
        UID assignment to the next reader of the folder (as a Maildir LDA does).
        """

    def quota() -> QuotaUsage:
        """Current usage and limits."""


class IMailStore(Interface):
    """The whole store: every user's Maildir under ``data_dir``."""

    def account(user: str) -> IAccountStore:
        """The store of one user, created with its special-use folders on first use."""

    def close() -> None:
        """The server stops: give back what the store holds open (spare files)."""


# --- accounts ----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class Resolution:
    """Where mail for one envelope recipient goes after aliases, plus-addresses and catch-all."""

    local_users: tuple[str, ...]  # canonical addresses of local mailboxes
    remote_addresses: tuple[str, ...]  # addresses outside our domains (alias forwarding)
    folder: str = INBOX


@dataclass(frozen=True, slots=True)
class Quota:
    bytes_limit: int | None = None
    messages_limit: int | None = None


class IAccounts(Interface):
    """Domains, users, aliases and password hashes. The embedded store needs no server."""

    def local_domains() -> frozenset[str]:
        """The local domains (lower case)."""

    def is_local_domain(domain: str) -> bool:
        """True if mail for this domain is ours."""

    def user_exists(user: str) -> bool:
        """True if ``user`` (a canonical address) is an account."""

    def resolve(address: str) -> Resolution | None:
        """Expand a recipient (aliases, plus-addresses, catch-all); None if nobody gets it."""

    def sender_addresses(user: str) -> frozenset[str]:
        """Addresses ``user`` may send from: their own and the aliases that reach them."""

    def check_password(user: str, password: str) -> Any:
        """Deferred[str | None]: the canonical user if the password is right, else None.

        The hash check runs off the reactor thread. Unknown users cost the same time.
        """

    def quota_of(user: str) -> Quota:
        """The user's limits."""

    def list_users() -> list[str]:
        """Every account."""


# --- outbound spool ----------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class SpoolRecipient:
    """One envelope recipient with its RFC 3461 parameters."""

    address: str
    notify: tuple[str, ...] = ()  # ("SUCCESS", "FAILURE", "DELAY") or ("NEVER",); () = default
    orcpt: str | None = None


@dataclass(frozen=True, slots=True)
class SpoolEnvelope:
    """The SMTP envelope of a message entering the spool."""

    sender: str  # "" for the null reverse-path
    recipients: tuple[SpoolRecipient, ...]
    ret: str | None = None  # "FULL" or "HDRS"
    envid: str | None = None
    smtputf8: bool = False
    body_8bit: bool = False
    authenticated_user: str | None = None


class ISpool(Interface):
    """The durable outbound queue."""

    def enqueue(envelope: SpoolEnvelope, message: bytes | Sequence[bytes]) -> Any:
        """Deferred[str]: store durably (tmp, fsync, rename), return the queue id.

        The message is durable when the Deferred fires; the runner is woken to deliver it.
        """

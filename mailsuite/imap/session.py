"""IMAP session state (RFC 3501 section 3) and the selected view of a folder.

The selected view maps sequence numbers to UIDs as the *client* knows them. It changes only
when the client is told: ``EXPUNGE``/``VANISHED`` for messages that went away, ``EXISTS`` for new
ones, ``FETCH (FLAGS ...)`` for flags changed elsewhere. Pending changes are flushed at the end of
each command, except that EXPUNGE is never sent while answering FETCH, STORE or SEARCH (RFC 3501
7.4.1); a message expunged elsewhere stays in the view as a *ghost* until it may be announced.

Per-session memory is small: the view holds one ``array('I')`` of UIDs (4 bytes per message)
and a set of UIDs whose flags changed; message metadata lives in the store's folder.
"""

from __future__ import annotations

import enum
from array import array
from bisect import bisect_left, bisect_right
from collections.abc import Callable, Iterable, Iterator, Sequence
from typing import TYPE_CHECKING, Any

from mailsuite.errors import MessageNotFound
from mailsuite.imap import wire
from mailsuite.imap.parser import SequenceSet, compact_set
from mailsuite.imap.responses import bad
from mailsuite.interfaces import ChangeKind, FolderChange, MessageInfo

if TYPE_CHECKING:
    from mailsuite.imap.protocol import ImapProtocol


def _uid_of(info: MessageInfo) -> int:
    return info.uid


class MailboxGone(Exception):
    """The selected folder can no longer be shown consistently: the session must end."""


class State(enum.Enum):
    """RFC 3501 section 3: connection states."""

    NOT_AUTHENTICATED = "not authenticated"
    AUTHENTICATED = "authenticated"
    SELECTED = "selected"
    LOGOUT = "logout"


class SelectedView:
    """The client's picture of one selected folder."""

    def __init__(self, folder: Any, readonly: bool, session: Session) -> None:
        self.folder = folder
        self.readonly = readonly
        self.session = session
        messages = folder.messages()
        self.uids = array("I", (m.uid for m in messages))
        self.uidvalidity = folder.uidvalidity
        self.max_uid = self.uids[-1] if self.uids else 0
        self.pending_flags: set[int] = set()
        self.dirty = False  # messages were added (or removed) since the last sync
        self.expunged_elsewhere = False  # someone else removed messages: diff the lists
        self.refresh_wanted = False  # re-read the disk before the next sync (NOOP, IDLE)
        self.ghosts = False  # expunged messages not yet announced (RFC 3501 7.4.1)
        self._refreshing = False
        # RFC 3501 \Recent, approximated per session: messages newer than this UID.
        self.recent_from_uid = self.max_uid + 1
        self._unsubscribe = folder.subscribe(self._on_change)

    # --- change events ---------------------------------------------------------------------

    def _on_change(self, change: FolderChange) -> None:
        kind = change.kind
        if kind is ChangeKind.FLAGS:
            if change.origin is self.session:
                return  # our own STORE reports its results itself
            self.pending_flags.update(change.uids)
        elif kind is ChangeKind.EXPUNGED:
            if change.origin is self.session:
                return  # our own EXPUNGE/MOVE reports its results itself
            self.expunged_elsewhere = True
            self.dirty = True
        else:
            self.dirty = True
        if not self._refreshing:
            self.session.changes_pending()

    def close(self) -> None:
        try:
            self._unsubscribe()
        finally:
            self.folder.close()

    # --- lookups ---------------------------------------------------------------------------

    @property
    def exists(self) -> int:
        return len(self.uids)

    def index_of(self, uid: int) -> int | None:
        i = bisect_left(self.uids, uid)
        if i < len(self.uids) and self.uids[i] == uid:
            return i
        return None

    def info_at(self, index: int, messages: Any = None) -> MessageInfo | None:
        """Metadata of the message at ``index`` (0-based), None if it is a ghost."""
        uid = self.uids[index]
        if messages is None:
            messages = self.folder.messages()
        if index < len(messages):
            info = messages[index]
            if info.uid == uid:
                return info
        try:
            return self.folder.get(uid)
        except MessageNotFound:
            return None

    def resolve(self, seqset: SequenceSet, uid_mode: bool) -> list[range]:
        """Index ranges (0-based, ascending) selected by a sequence set.

        Sequence numbers beyond EXISTS are a client error (BAD). UID sets may name any UIDs;
        the ones not in the view are silently skipped (RFC 3501 6.4.8). No range is ever
        expanded into a list of numbers, so ``1:4294967295`` costs nothing.
        """
        uids = self.uids
        if uid_mode:
            star = uids[-1] if uids else 0
            out: list[range] = []
            if not uids:
                return out
            for low, high in seqset.resolve(star):
                i, j = bisect_left(uids, low), bisect_right(uids, high)
                if i < j:
                    out.append(range(i, j))
            return out
        count = len(uids)
        if count == 0:
            if seqset.uses_star() and seqset.max_explicit() <= 1:
                return []
            raise bad("Invalid messageset: the mailbox is empty")
        if seqset.max_explicit() > count:
            raise bad("Invalid messageset")
        return [range(low - 1, high) for low, high in seqset.resolve(count)]

    @staticmethod
    def iter_indexes(ranges: list[range]) -> Iterator[int]:
        for r in ranges:
            yield from r

    # --- synchronisation -------------------------------------------------------------------

    def sync(self, allow_expunge: bool) -> list[bytes]:
        """Untagged responses that bring the client up to date (as far as allowed)."""
        session = self.session
        out: list[bytes] = []
        if self.refresh_wanted:
            # Changes made by other processes (in-process changes arrive as events).
            self.refresh_wanted = False
            self._refreshing = True
            try:
                self.folder.refresh()
            finally:
                self._refreshing = False
        if self.folder.uidvalidity != self.uidvalidity:
            raise MailboxGone(b"Mailbox UIDVALIDITY changed, reconnect.")
        if self.dirty or (self.ghosts and allow_expunge):
            self.dirty = False
            messages = self.folder.messages()
            if self.expunged_elsewhere or (self.ghosts and allow_expunge):
                self.expunged_elsewhere = False
                gone = self._gone(messages)
                if gone and allow_expunge:
                    out.extend(self._announce_expunged(gone))
                self.ghosts = bool(gone) and not allow_expunge
            new_start = bisect_right(messages, self.max_uid, key=_uid_of)
            if new_start < len(messages):
                self.uids.extend(m.uid for m in messages[new_start:])
                self.max_uid = self.uids[-1]
                out.append(b"* %d EXISTS\r\n" % len(self.uids))
        if self.pending_flags:
            pending = sorted(self.pending_flags)
            self.pending_flags.clear()
            messages = self.folder.messages()
            for uid in pending:
                index = self.index_of(uid)
                if index is None:
                    continue
                info = self.info_at(index, messages)
                if info is None:
                    continue
                out.append(session.flags_fetch_line(index + 1, info))
        return out

    def _gone(self, messages: Sequence[MessageInfo]) -> list[int]:
        """Indexes of known UIDs no longer among ``messages`` (both ascending by UID)."""
        gone = []
        j = 0
        n = len(messages)
        for i, uid in enumerate(self.uids):
            while j < n and messages[j].uid < uid:
                j += 1
            if j >= n or messages[j].uid != uid:
                gone.append(i)
        return gone

    def _announce_expunged(self, gone: list[int]) -> list[bytes]:
        out: list[bytes] = []
        if self.session.qresync:
            out.append(b"* VANISHED " + compact_set([self.uids[i] for i in gone]).encode() + b"\r\n")
        else:
            for k, i in enumerate(gone):
                out.append(b"* %d EXPUNGE\r\n" % (i + 1 - k))
        self.remove_indexes(gone)
        return out

    def remove_indexes(self, indexes: Iterable[int]) -> None:
        drop = set(indexes)
        self.uids = array("I", (u for i, u in enumerate(self.uids) if i not in drop))

    def expunged_now(self, uids: Iterable[int]) -> list[bytes]:
        """Responses for messages this session expunged itself (EXPUNGE, UID EXPUNGE, MOVE)."""
        gone = sorted(i for i in (self.index_of(u) for u in uids) if i is not None)
        if not gone:
            return []
        return self._announce_expunged(gone)


class Session:
    """Everything one IMAP connection knows: state, user, selected view, enabled extensions."""

    def __init__(self, protocol: ImapProtocol, ctx: Any, settings: Any, tls: bool,
                 peer_ip: str) -> None:
        self.protocol = protocol
        self.ctx = ctx
        self.settings = settings
        self.tls = tls
        self.peer_ip = peer_ip
        self.state = State.NOT_AUTHENTICATED
        self.user: str | None = None
        self.account: Any = None
        self.logout_avatar: Callable[[], None] | None = None
        self.selected: SelectedView | None = None
        self.condstore = False
        self.qresync = False
        self.utf8 = False  # RFC 6855 UTF8=ACCEPT enabled
        self.compressed = False
        self.idling = False
        self.after_reply: Callable[[], None] | None = None
        self.current_tag = "*"

    # --- output ----------------------------------------------------------------------------

    def send(self, data: bytes) -> None:
        """Write untagged response bytes (complete lines)."""
        self.protocol.write(data)

    def send_lines(self, lines: list[bytes]) -> None:
        self.protocol.write_many(lines)

    def flags_fetch_line(self, seq: int, info: MessageInfo) -> bytes:
        """``* n FETCH (UID u FLAGS (...) [MODSEQ (m)])`` for a flag change seen elsewhere."""
        extra = b" MODSEQ (%d)" % info.modseq if self.condstore else b""
        return b"* %d FETCH (UID %d FLAGS %s%s)\r\n" % (
            seq, info.uid, wire.flag_list(info.flags), extra)

    # --- state changes ---------------------------------------------------------------------

    def changes_pending(self) -> None:
        """A store change arrived for the selected folder (push it now while idling)."""
        if self.idling:
            self.protocol.schedule_flush()

    def flush_updates(self, allow_expunge: bool = True) -> None:
        if self.selected is not None:
            try:
                lines = self.selected.sync(allow_expunge)
            except MailboxGone as e:
                self.protocol.abort_session(e.args[0])
                return
            if lines:
                self.send_lines(lines)

    def unselect(self) -> None:
        view, self.selected = self.selected, None
        if view is not None:
            view.close()
        if self.state is State.SELECTED:
            self.state = State.AUTHENTICATED

    def require_selected(self) -> SelectedView:
        if self.selected is None:
            raise bad("No mailbox selected")
        return self.selected

    def close(self) -> None:
        """The connection is gone: release the view and the avatar."""
        self.unselect()
        self.idling = False
        logout, self.logout_avatar = self.logout_avatar, None
        if logout is not None:
            logout()
        self.state = State.LOGOUT

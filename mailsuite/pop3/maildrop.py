"""The POP3 maildrop: a snapshot of a user's INBOX taken at login (RFC 1939 sections 4-6).

Message numbers 1..N are fixed for the whole session. Messages delivered meanwhile appear at the
next login; messages expunged meanwhile by IMAP answer "removed by another session".

Deletion marks are kept in memory and applied only by :meth:`Maildrop.commit` in the UPDATE state
(QUIT): the messages get ``\\Deleted`` and are expunged through ``IFolder.expunge``, limited to
the UIDs this session marked, so an IMAP user's own ``\\Deleted`` flags are left alone. A dropped
connection calls :meth:`Maildrop.release` instead, which deletes nothing.

Retrieved messages are marked ``\\Seen`` for IMAP users of the same mailbox. As in Dovecot, the
marks are written in one batch when the session ends (QUIT or a dropped connection), so RETR
itself costs no Maildir rename.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import IO, Any

from twisted.logger import Logger

from mailsuite.errors import MessageNotFound, StoreError
from mailsuite.interfaces import INBOX, FlagMode

SEEN = "\\Seen"
DELETED = "\\Deleted"


class NoSuchMessage(Exception):
    """The message number is outside 1..N."""


class AlreadyDeleted(Exception):
    """The message number is marked deleted in this session."""


@dataclass(frozen=True, slots=True)
class DropEntry:
    """One message of the snapshot."""

    number: int
    uid: int
    pop_id: str
    size: int


_UNIQUE_ID = re.compile(r"[\x21-\x7e]{1,70}")  # RFC 1939 section 7


def _valid_pop_id(pop_id: str, uid: int, uidvalidity: int) -> str:
    """RFC 1939 section 7: a unique-id is 1-70 characters in 0x21..0x7E."""
    if _UNIQUE_ID.fullmatch(pop_id):
        return pop_id
    return f"{uidvalidity:08x}{uid:08x}"


class Maildrop:
    """The locked view of one user's INBOX for one POP3 session."""

    log = Logger()

    def __init__(self, account: Any, folder: Any) -> None:
        """``account`` is an IAccountStore, ``folder`` its open INBOX (an IFolder)."""
        self.account = account
        self.folder: Any = folder  # IFolder (zope interfaces do not type-check well)
        uidvalidity = int(getattr(folder, "uidvalidity", 0) or 0)
        self.entries: list[DropEntry] = [
            DropEntry(n, info.uid, _valid_pop_id(info.pop_id, info.uid, uidvalidity), info.size)
            for n, info in enumerate(folder.messages(), start=1)
        ]
        self.deleted: set[int] = set()  # message numbers marked by DELE
        self.retrieved: set[int] = set()  # message numbers sent by RETR
        self._closed = False

    @classmethod
    def open(cls, account: Any) -> Maildrop:
        """Take the snapshot of ``account``'s INBOX (raises StoreError when it cannot)."""
        folder: Any = account.open_folder(INBOX)
        try:
            folder.refresh()
            return cls(account, folder)
        except BaseException:
            folder.close()
            raise

    # --- queries -------------------------------------------------------------------------

    def __len__(self) -> int:
        return len(self.entries)

    def entry(self, number: int) -> DropEntry:
        """The entry for a message number that is not deleted (RFC 1939 section 5)."""
        if not 1 <= number <= len(self.entries):
            raise NoSuchMessage(number)
        if number in self.deleted:
            raise AlreadyDeleted(number)
        return self.entries[number - 1]

    def live(self) -> list[DropEntry]:
        """The messages not marked deleted, in number order."""
        if not self.deleted:
            return self.entries
        return [e for e in self.entries if e.number not in self.deleted]

    def stat(self) -> tuple[int, int]:
        """(count, octets) of the messages not marked deleted."""
        live = self.live()
        return len(live), sum(e.size for e in live)

    def open_message(self, number: int) -> IO[bytes]:
        """The message file; raises MessageNotFound when IMAP expunged it meanwhile."""
        return self.folder.open_message(self.entry(number).uid)  # type: ignore[no-any-return]

    # --- changes -------------------------------------------------------------------------

    def mark_deleted(self, number: int) -> None:
        """DELE: mark only; nothing changes on disk before QUIT (RFC 1939 section 5)."""
        self.entry(number)
        self.deleted.add(number)

    def mark_retrieved(self, number: int) -> None:
        """Remember a RETR so the message gets \\Seen when the session ends."""
        self.retrieved.add(number)

    def reset(self) -> None:
        """RSET: unmark every deleted message."""
        self.deleted.clear()

    def commit(self) -> int:
        """UPDATE state (RFC 1939 section 6): apply \\Seen, then delete the marked messages.

        Returns how many messages were removed. Messages another session expunged already
        count as removed. Raises StoreError when the store failed part-way; the session then
        answers ``-ERR [SYS/TEMP]`` and the remaining marks are lost, as RFC 1939 allows.
        """
        try:
            present = self._present_uids()
            self._apply_seen(exclude=self.deleted, present=present)
            marked = [self.entries[n - 1].uid for n in sorted(self.deleted)]
            uids = [u for u in marked if u in present]
            if not uids:
                return len(marked)
            self.folder.store_flags(uids, [DELETED], FlagMode.ADD, origin=self)
            self.folder.expunge(uids, origin=self)
            return len(marked)
        finally:
            self._close()

    def release(self) -> None:
        """The session ended without QUIT: keep every message, only record \\Seen."""
        try:
            self._apply_seen(exclude=set(), present=self._present_uids())
        except Exception:  # noqa: BLE001 - the session is over; log and go on
            self.log.failure("pop3: could not record \\Seen for {user}", user=self.account.user)
        finally:
            self._close()

    def _present_uids(self) -> set[int]:
        """The UIDs still in the folder (IMAP may have expunged some since the snapshot)."""
        if not self.retrieved and not self.deleted:
            return set()
        self.folder.refresh()
        return {info.uid for info in self.folder.messages()}

    def _apply_seen(self, exclude: set[int], present: set[int]) -> None:
        numbers = self.retrieved - exclude
        if not numbers:
            return
        uids = [self.entries[n - 1].uid for n in sorted(numbers)]
        uids = [u for u in uids if u in present]
        if uids:
            self.folder.store_flags(uids, [SEEN], FlagMode.ADD, origin=self)

    def _close(self) -> None:
        if not self._closed:
            self._closed = True
            self.folder.close()


__all__ = [
    "AlreadyDeleted",
    "DropEntry",
    "Maildrop",
    "MessageNotFound",
    "NoSuchMessage",
    "StoreError",
]

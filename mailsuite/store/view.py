"""``MaildirFolder``: one open view (IMAP SELECT/EXAMINE, a POP3 session) of a Maildir folder.

Views of one folder share its ``FolderState``: ``messages()`` is the folder's current index,
and every change is published to all subscribers; a session that needs a stable numbering (IMAP
sequence numbers, the POP3 snapshot) keeps its own list and updates it from the events.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from zope.interface import implementer

from mailsuite.errors import FolderNotFound, MessageNotFound, ReadOnlyFolder, StoreError
from mailsuite.interfaces import (
    FlagMode,
    FlagUpdate,
    FolderChange,
    FolderStatus,
    IFolder,
    MessageInfo,
    Unsubscribe,
)

if TYPE_CHECKING:
    from mailsuite.store.folder import FolderState


@implementer(IFolder)
class MaildirFolder:
    """A view of one folder; see ``mailsuite.interfaces.IFolder``."""

    def __init__(self, state: FolderState, readonly: bool) -> None:
        self._state = state
        self.readonly = readonly
        self._unsubscribes: list[Unsubscribe] = []
        self._closed = False
        state.views += 1

    @property
    def name(self) -> str:
        return self._state.name

    @property
    def uidvalidity(self) -> int:
        return self._state.uidvalidity

    @property
    def uidnext(self) -> int:
        return self._state.uidnext

    @property
    def highest_modseq(self) -> int:
        return self._state.highest_modseq

    def _writable(self) -> FolderState:
        if self.readonly:
            raise ReadOnlyFolder(f"folder {self.name!r} is open read-only")
        return self._live()

    def _live(self) -> FolderState:
        if self._state.deleted:
            raise FolderNotFound(f"folder {self.name!r} was deleted")
        return self._state

    def refresh(self) -> list[FolderChange]:
        return self._state.refresh()

    def messages(self) -> Sequence[MessageInfo]:
        return self._state.messages()

    def get(self, uid: int) -> MessageInfo:
        return self._state.entry(uid)[0]

    def open_message(self, uid: int) -> Any:
        state = self._state
        entry = state.entry(uid)
        try:
            return open(state.path_of(entry), "rb")
        except FileNotFoundError:
            # Renamed (flags) or removed by another process since we looked: look again.
            state.refresh()
            entry = state.entry(uid)
            try:
                return open(state.path_of(entry), "rb")
            except FileNotFoundError:
                raise MessageNotFound(f"message UID {uid} is gone") from None

    def read_message(self, uid: int) -> bytes:
        with self.open_message(uid) as f:
            return f.read()

    def summary(self, uid: int) -> dict[str, Any]:
        return self._state.summary(uid, self.read_message)

    def derived(self, uid: int, name: str, compute: Callable[[dict[str, Any]], Any]) -> Any:
        return self._state.derived(uid, name, compute, self.read_message)

    def status(self) -> FolderStatus:
        return self._state.status()

    def store_flags(
        self,
        uids: Iterable[int],
        flags: Iterable[str],
        mode: FlagMode,
        unchanged_since: int | None = None,
        origin: object | None = None,
    ) -> FlagUpdate:
        return self._writable().store_flags(uids, flags, mode, unchanged_since, origin)

    def expunge(self, uids: Iterable[int] | None = None, origin: object | None = None) -> list[int]:
        return self._writable().expunge(uids, origin)

    def append(
        self,
        source: bytes | Sequence[bytes],
        flags: Iterable[str] = (),
        internal_date: float | None = None,
    ) -> Any:
        try:
            state = self._writable()
        except StoreError:
            return defer.fail()
        return state.account.add_message(state, source, flags, internal_date)

    def copy(self, uids: Iterable[int], destination: str) -> Any:
        return self._state.account.transfer(self._state, uids, destination, move=False, origin=None)

    def move(self, uids: Iterable[int], destination: str, origin: object | None = None) -> Any:
        try:
            state = self._writable()
        except StoreError:
            return defer.fail()
        return state.account.transfer(state, uids, destination, move=True, origin=origin)

    def subscribe(self, listener: Callable[[FolderChange], None]) -> Unsubscribe:
        state = self._state
        unsubscribe = state.store.hub.subscribe(state.user, state.name, listener)
        self._unsubscribes.append(unsubscribe)
        state.store.watch()
        return unsubscribe

    def close(self) -> None:
        for unsubscribe in self._unsubscribes:
            unsubscribe()
        self._unsubscribes.clear()
        if not self._closed:
            self._closed = True
            self._state.views -= 1
            self._state.store.view_closed(self._state)

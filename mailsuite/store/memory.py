"""An in-memory ``IMailStore`` for protocol unit tests.

It keeps the same contract as the Maildir store (``tests/test_store_contract.py`` runs against
both): UIDs, UIDVALIDITY, modseq, flags, folders with special use, subscriptions, change events,
quotas and POP3 ids. Every view of a folder shares one in-memory folder, so a change made through
one view is visible through the others at once and is published to every subscriber.
"""

from __future__ import annotations

import io
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import replace
from typing import Any

from twisted.internet import defer
from zope.interface import implementer

from mailsuite.errors import (
    FolderExists,
    FolderNotEmpty,
    FolderNotFound,
    InvalidFolderName,
    MessageNotFound,
    ReadOnlyFolder,
    StoreError,
)
from mailsuite.interfaces import (
    INBOX,
    SPECIAL_USE_FOLDERS,
    ChangeKind,
    FlagMode,
    FlagUpdate,
    FolderChange,
    FolderInfo,
    FolderStatus,
    IAccounts,
    IAccountStore,
    IFolder,
    IMailStore,
    MessageInfo,
    QuotaUsage,
    Unsubscribe,
)
from mailsuite.message import summarize
from mailsuite.store.events import ChangeHub
from mailsuite.store.flags import FlagInterner, apply_mode, normalize_flags
from mailsuite.store.listing import (
    build_listing,
    check_quota,
    check_special_use,
    effective_quota,
    join_source,
    moved_names,
)
from mailsuite.store.names import canonical_name
from mailsuite.store.settings import StoreSettings


class _FolderData:
    """The state of one folder, shared by all its views."""

    __slots__ = ("bodies", "highest_modseq", "infos", "name", "recent", "uidnext", "uidvalidity")

    def __init__(self, name: str, uidvalidity: int) -> None:
        self.name = name
        self.uidvalidity = uidvalidity
        self.uidnext = 1
        self.highest_modseq = 1
        self.infos: dict[int, MessageInfo] = {}
        self.bodies: dict[int, bytes] = {}
        self.recent: set[int] = set()


@implementer(IFolder)
class MemoryFolder:
    """A view of one in-memory folder."""

    def __init__(self, account: MemoryAccount, data: _FolderData, readonly: bool) -> None:
        self._account = account
        self._data = data
        self.readonly = readonly
        self._unsubscribes: list[Unsubscribe] = []
        self._summaries: dict[int, dict[str, Any]] = account._summaries.setdefault(data.name, {})

    @property
    def name(self) -> str:
        return self._data.name

    @property
    def uidvalidity(self) -> int:
        return self._data.uidvalidity

    @property
    def uidnext(self) -> int:
        return self._data.uidnext

    @property
    def highest_modseq(self) -> int:
        return self._data.highest_modseq

    def _check_writable(self) -> None:
        if self.readonly:
            raise ReadOnlyFolder(f"folder {self.name!r} is open read-only")

    def refresh(self) -> list[FolderChange]:
        """Nothing changes behind an in-memory store's back."""
        return []

    def messages(self) -> Sequence[MessageInfo]:
        return list(self._data.infos.values())

    def get(self, uid: int) -> MessageInfo:
        try:
            return self._data.infos[uid]
        except KeyError:
            raise MessageNotFound(f"no message with UID {uid} in {self.name!r}") from None

    def open_message(self, uid: int) -> Any:
        return io.BytesIO(self.read_message(uid))

    def read_message(self, uid: int) -> bytes:
        self.get(uid)
        return self._data.bodies[uid]

    def summary(self, uid: int) -> dict[str, Any]:
        raw = self.read_message(uid)
        cached = self._summaries.get(uid)
        if cached is None:
            cached = summarize(raw)
            self._summaries[uid] = cached
        return cached

    def derived(self, uid: int, name: str, compute: Callable[[dict[str, Any]], Any]) -> Any:
        return compute(self.summary(uid))  # the in-memory store (tests) keeps no derived values

    def status(self) -> FolderStatus:
        return self._account._status_of(self._data)

    def store_flags(
        self,
        uids: Iterable[int],
        flags: Iterable[str],
        mode: FlagMode,
        unchanged_since: int | None = None,
        origin: object | None = None,
    ) -> FlagUpdate:
        self._check_writable()
        given = normalize_flags(flags)
        data = self._data
        failed: list[int] = []
        pending: list[tuple[int, frozenset[str]]] = []
        for uid in sorted(set(uids)):
            info = data.infos.get(uid)
            if info is None:
                continue
            if unchanged_since is not None and info.modseq > unchanged_since:
                failed.append(uid)
                continue
            new = apply_mode(info.flags, given, mode)
            if new != info.flags:
                pending.append((uid, new))
        changed: list[MessageInfo] = []
        if pending:
            data.highest_modseq += 1
            for uid, new in pending:
                info = replace(
                    data.infos[uid], flags=self._account._intern(new), modseq=data.highest_modseq
                )
                data.infos[uid] = info
                data.recent.discard(uid)
                changed.append(info)
            self._account._publish(data, ChangeKind.FLAGS, [i.uid for i in changed], origin)
        return FlagUpdate(changed=changed, unchanged_since_failed=failed)

    def expunge(self, uids: Iterable[int] | None = None, origin: object | None = None) -> list[int]:
        self._check_writable()
        data = self._data
        wanted = None if uids is None else set(uids)
        gone = [
            uid
            for uid, info in data.infos.items()
            if "\\Deleted" in info.flags and (wanted is None or uid in wanted)
        ]
        self._account._remove(data, gone, origin)
        return gone

    def append(
        self,
        source: bytes | Sequence[bytes],
        flags: Iterable[str] = (),
        internal_date: float | None = None,
    ) -> Any:
        try:
            self._check_writable()
        except ReadOnlyFolder:
            return defer.fail()
        return self._account._add_checked(self._data, join_source(source), flags, internal_date)

    def copy(self, uids: Iterable[int], destination: str) -> Any:
        return defer.maybeDeferred(self._copy, uids, destination)

    def _copy(self, uids: Iterable[int], destination: str) -> list[tuple[int, int]]:
        target = self._account._folder(destination)
        sources = [self._data.infos[u] for u in sorted(set(uids)) if u in self._data.infos]
        usage = self._account.quota()
        check_quota(usage, sum(i.size for i in sources), len(sources))
        pairs = []
        for info in sources:
            new = self._account._add(
                target, self._data.bodies[info.uid], info.flags, info.internal_date
            )
            pairs.append((info.uid, new.uid))
        return pairs

    def move(self, uids: Iterable[int], destination: str, origin: object | None = None) -> Any:
        try:
            self._check_writable()
        except ReadOnlyFolder:
            return defer.fail()
        return defer.maybeDeferred(self._move, uids, destination, origin)

    def _move(
        self, uids: Iterable[int], destination: str, origin: object | None
    ) -> list[tuple[int, int]]:
        target = self._account._folder(destination)
        pairs = []
        for uid in sorted(set(uids)):
            info = self._data.infos.get(uid)
            if info is None:
                continue
            new = self._account._add(target, self._data.bodies[uid], info.flags, info.internal_date)
            pairs.append((uid, new.uid))
        self._account._remove(self._data, [p[0] for p in pairs], origin)
        return pairs

    def subscribe(self, listener: Callable[[FolderChange], None]) -> Unsubscribe:
        unsubscribe = self._account._hub.subscribe(self._account.user, self._data.name, listener)
        self._unsubscribes.append(unsubscribe)
        return unsubscribe

    def close(self) -> None:
        for unsubscribe in self._unsubscribes:
            unsubscribe()
        self._unsubscribes.clear()


@implementer(IAccountStore)
class MemoryAccount:
    """One user's folders in memory."""

    def __init__(self, store: MemoryStore, user: str) -> None:
        self.user = user
        self._store = store
        self._hub = store._hub
        self._intern = FlagInterner()
        self._folders: dict[str, _FolderData] = {}
        self._subscribed: set[str] = set()
        self._special_uses: dict[str, str] = {}  # assigned by CREATE (RFC 6154 section 3)
        self._summaries: dict[str, dict[int, dict[str, Any]]] = {}
        self._new_folder(INBOX)
        for name in SPECIAL_USE_FOLDERS:
            self._new_folder(name)
            self._subscribed.add(name)
        self._subscribed.add(INBOX)

    def _new_folder(self, name: str) -> _FolderData:
        data = _FolderData(name, self._store._next_uidvalidity())
        self._folders[name] = data
        return data

    def _folder(self, name: str) -> _FolderData:
        canonical = canonical_name(name)
        data = self._folders.get(canonical)
        if data is None:
            raise FolderNotFound(f"no folder {name!r}")
        return data

    def _publish(
        self, data: _FolderData, kind: ChangeKind, uids: list[int], origin: object | None
    ) -> None:
        self._hub.publish(
            FolderChange(self.user, data.name, kind, tuple(uids), data.highest_modseq, origin)
        )

    def _status_of(self, data: _FolderData) -> FolderStatus:
        infos = data.infos.values()
        return FolderStatus(
            messages=len(data.infos),
            recent=len(data.recent),
            unseen=sum(1 for i in infos if "\\Seen" not in i.flags),
            uidnext=data.uidnext,
            uidvalidity=data.uidvalidity,
            highest_modseq=data.highest_modseq,
            size=sum(i.size for i in infos),
        )

    def _add(
        self, data: _FolderData, raw: bytes, flags: Iterable[str], internal_date: float | None
    ) -> MessageInfo:
        uid = data.uidnext
        data.uidnext += 1
        data.highest_modseq += 1
        info = MessageInfo(
            uid=uid,
            flags=self._intern(normalize_flags(flags)),
            size=len(raw),
            internal_date=float(internal_date if internal_date is not None else self._store._now()),
            modseq=data.highest_modseq,
            pop_id=f"{data.uidvalidity:08x}{uid:08x}",
        )
        data.infos[uid] = info
        data.bodies[uid] = raw
        data.recent.add(uid)
        self._publish(data, ChangeKind.ADDED, [uid], None)
        return info

    def _add_checked(
        self, data: _FolderData, raw: bytes, flags: Iterable[str], internal_date: float | None
    ) -> Any:
        def add() -> MessageInfo:
            normalize_flags(flags)
            check_quota(self.quota(), len(raw))
            return self._add(data, raw, flags, internal_date)

        return defer.maybeDeferred(add)

    def _remove(self, data: _FolderData, uids: list[int], origin: object | None) -> None:
        if not uids:
            return
        data.highest_modseq += 1
        for uid in uids:
            del data.infos[uid]
            del data.bodies[uid]
            data.recent.discard(uid)
            self._summaries.get(data.name, {}).pop(uid, None)
        self._publish(data, ChangeKind.EXPUNGED, uids, origin)

    # --- IAccountStore ---------------------------------------------------------------------

    def list_folders(self) -> list[FolderInfo]:
        return build_listing(self._folders, self._subscribed, self._special_uses)

    def create_folder(self, name: str, special_use: str | None = None) -> None:
        canonical = canonical_name(name)
        check_special_use(special_use)
        if canonical in self._folders:
            raise FolderExists(f"folder {canonical!r} exists")
        if special_use is not None:
            self._special_uses[canonical] = special_use
        parts = canonical.split("/")
        for i in range(1, len(parts)):
            parent = "/".join(parts[:i])
            if parent not in self._folders:
                self._new_folder(parent)
        self._new_folder(canonical)

    def delete_folder(self, name: str) -> None:
        canonical = canonical_name(name)
        if canonical == INBOX:
            raise InvalidFolderName("INBOX cannot be deleted")
        data = self._folder(canonical)
        if any(other.startswith(canonical + "/") for other in self._folders):
            raise FolderNotEmpty(f"folder {canonical!r} has children")
        if data.infos:
            data.highest_modseq += 1
            self._publish(data, ChangeKind.EXPUNGED, list(data.infos), None)
        del self._folders[canonical]
        self._summaries.pop(canonical, None)
        self._special_uses.pop(canonical, None)

    def rename_folder(self, old: str, new: str) -> None:
        source = canonical_name(old)
        target = canonical_name(new)
        self._folder(source)
        if target in self._folders:
            raise FolderExists(f"folder {target!r} exists")
        if target.startswith(source + "/") or (source == INBOX and target.startswith("INBOX/")):
            raise InvalidFolderName(f"cannot rename {source!r} into itself")
        parents = target.split("/")
        for i in range(1, len(parents)):
            parent = "/".join(parents[:i])
            if parent not in self._folders:
                self._new_folder(parent)
        if source == INBOX:
            # RFC 3501 6.3.5: move the messages into the new folder; INBOX stays, empty.
            inbox = self._folders[INBOX]
            moved = self._new_folder(target)
            for uid, info in list(inbox.infos.items()):
                self._add(moved, inbox.bodies[uid], info.flags, info.internal_date)
            self._remove(inbox, list(inbox.infos), None)
            return
        for name in sorted(n for n in self._folders if n == source or n.startswith(source + "/")):
            data = self._folders.pop(name)
            data.name = target + name[len(source) :]
            self._folders[data.name] = data
            if name in self._subscribed:
                self._subscribed.discard(name)
                self._subscribed.add(data.name)
            self._summaries[data.name] = self._summaries.pop(name, {})
        self._special_uses = moved_names(self._special_uses, source, target)

    def set_subscribed(self, name: str, subscribed: bool) -> None:
        canonical = canonical_name(name)
        if subscribed:
            self._subscribed.add(canonical)
        else:
            self._subscribed.discard(canonical)

    def open_folder(self, name: str, readonly: bool = False) -> MemoryFolder:
        return MemoryFolder(self, self._folder(name), readonly)

    def folder_status(self, name: str) -> FolderStatus:
        return self._status_of(self._folder(name))

    def deliver(
        self,
        source: bytes | Sequence[bytes],
        folder: str = INBOX,
        flags: Iterable[str] = (),
        internal_date: float | None = None,
    ) -> Any:
        try:
            data = self._folder(folder)
        except StoreError:
            return defer.fail()
        return self._add_checked(data, join_source(source), flags, internal_date)

    def deliver_incoming(self, source: bytes | Sequence[bytes], folder: str = INBOX) -> Any:
        return self.deliver(source, folder).addCallback(lambda _: None)

    def quota(self) -> QuotaUsage:
        limits = effective_quota(
            self._store._accounts.quota_of(self.user) if self._store._accounts else None,
            self._store._settings,
        )
        used = sum(i.size for d in self._folders.values() for i in d.infos.values())
        count = sum(len(d.infos) for d in self._folders.values())
        return QuotaUsage(used, limits.bytes_limit, count, limits.messages_limit)


@implementer(IMailStore)
class MemoryStore:
    """Every user's mail in memory. ``MemoryStore()`` is enough for protocol tests."""

    def __init__(
        self,
        settings: StoreSettings | None = None,
        accounts: IAccounts | None = None,
        clock: Any = None,
    ) -> None:
        self._settings = settings or StoreSettings()
        self._accounts: Any = accounts
        self._clock = clock
        self._hub = ChangeHub()
        self._accounts_by_user: dict[str, MemoryAccount] = {}
        self._uidvalidity = int(time.time())

    def _now(self) -> float:
        return self._clock.seconds() if self._clock is not None else time.time()

    def _next_uidvalidity(self) -> int:
        self._uidvalidity += 1
        return self._uidvalidity

    def close(self) -> None:
        """Nothing is held open in memory."""

    def account(self, user: str) -> MemoryAccount:
        account = self._accounts_by_user.get(user)
        if account is None:
            account = self._accounts_by_user[user] = MemoryAccount(self, user)
        return account

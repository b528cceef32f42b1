"""``MaildirStore``: every user's mail as Maildir++ trees under ``data_dir``.

The on-disk format is described in ``mailsuite/store/FORMAT.md`` and in the modules that own
each file: ``layout`` (directories), ``filenames`` (message file names and flags),
``uidlist`` (``dovecot-uidlist``), ``keywords`` (``dovecot-keywords``), ``modseq``
(``mailsuite-modseq``), ``cache`` (``mailsuite-cache``), ``subscriptions`` (``subscriptions``),
``special_use`` (``mailsuite-special-use``).

Several processes (mailsuite nodes, Dovecot, mutt) may share a tree: UIDs are assigned under a
lock file, every other change is a rename or unlink, and each process notices the others'
changes by comparing directory mtimes and re-listing (``FolderState.refresh``), at the latest on
the next command and every ``poll_interval`` seconds for watched folders. Change events are per
process; other processes' changes become events when noticed.
"""

from __future__ import annotations

import os
import shutil
from collections.abc import Iterable, Sequence
from pathlib import Path
from typing import Any

from twisted.internet import defer, task, threads
from twisted.logger import Logger
from zope.interface import implementer

from mailsuite.errors import (
    AccountsError,
    FolderExists,
    FolderNotEmpty,
    FolderNotFound,
    InvalidFolderName,
    StoreError,
)
from mailsuite.interfaces import (
    INBOX,
    SPECIAL_USE_FOLDERS,
    FolderInfo,
    FolderStatus,
    IAccounts,
    IAccountStore,
    IMailStore,
    MessageInfo,
    QuotaUsage,
)
from mailsuite.store import layout
from mailsuite.store.base import base_of
from mailsuite.store.committer import DeliveryCommitter
from mailsuite.store.dirsync import SharedDirectoryFsync
from mailsuite.store.events import ChangeHub
from mailsuite.store.filenames import INFO_SEPARATOR, NameMaker, size_from_base
from mailsuite.store.flags import FlagInterner, normalize_flags
from mailsuite.store.folder import FolderState
from mailsuite.store.listing import (
    build_listing,
    check_quota,
    check_special_use,
    effective_quota,
    moved_names,
)
from mailsuite.store.names import canonical_name
from mailsuite.store.settings import StoreSettings
from mailsuite.store.special_use import read_special_uses, write_special_uses
from mailsuite.store.subscriptions import read_subscriptions, write_subscriptions
from mailsuite.store.view import MaildirFolder
from mailsuite.store.writer import MessageWriter, clean_tmp, fsync_dir

IDLE_STATES = 64  # folders without views whose UID lists stay in memory (LRU)
KEEP_LOADED_BELOW = 10_000  # an idle folder this small keeps its index (cheap STATUS/SELECT)
TMP_CLEAN_INTERVAL = 3600.0  # seconds between tmp/ sweeps of a watched folder


def _chunks(source: bytes | Sequence[bytes]) -> list[bytes]:
    if isinstance(source, (bytes, bytearray, memoryview)):
        return [bytes(source)]
    return [bytes(c) for c in source]


@implementer(IAccountStore)
class MaildirAccount:
    """One user's Maildir: folders, subscriptions, delivery and quota."""

    log = Logger()

    def __init__(self, store: MaildirStore, user: str) -> None:
        self.store = store
        self.user = user
        self.dir = layout.user_dir(store.root, user)
        self.intern = FlagInterner()
        self._usage: tuple[int, int, float] | None = None  # bytes, messages, computed at
        self._create()

    def _create(self) -> None:
        os.makedirs(os.path.dirname(self.dir), 0o700, exist_ok=True)
        layout.make_maildir(self.dir, is_folder=False)
        subscribed = read_subscriptions(self.dir)
        added = False
        for name in SPECIAL_USE_FOLDERS:
            if layout.make_maildir(layout.folder_dir(self.dir, name), is_folder=True):
                subscribed.add(name)
                added = True
        if added:
            subscribed.add(INBOX)
            write_subscriptions(self.dir, subscribed)
        now = self.store.clock.seconds()
        for name in self._folder_names():
            clean_tmp(layout.folder_dir(self.dir, name), self.store.settings.tmp_max_age, now)

    # --- folders -----------------------------------------------------------------------

    def _folder_names(self) -> list[str]:
        names = [INBOX]
        try:
            entries = os.listdir(self.dir)
        except FileNotFoundError:
            return names
        for entry in entries:
            name = layout.name_of_dir(entry)
            if (
                name is not None
                and name != INBOX
                and layout.is_maildir(os.path.join(self.dir, entry))
            ):
                names.append(name)
        return names

    def _exists(self, canonical: str) -> bool:
        return layout.is_maildir(layout.folder_dir(self.dir, canonical))

    def state(self, name: str) -> FolderState:
        """The shared state of an existing folder (FolderNotFound otherwise)."""
        canonical = canonical_name(name)
        key = (self.user, canonical)
        states = self.store.states
        state = states.pop(key, None)
        if state is not None and not state.deleted:
            states[key] = state  # most recently used last
            return state
        path = layout.folder_dir(self.dir, canonical)
        if not layout.is_maildir(path):
            raise FolderNotFound(f"no folder {name!r}")
        state = FolderState(self, canonical, path)
        state.start()
        states[key] = state
        self.store.evict_idle()
        return state

    def _drop_states(self, canonical: str) -> list[FolderState]:
        dropped = []
        for key in list(self.store.states):
            if key[0] == self.user and (key[1] == canonical or key[1].startswith(canonical + "/")):
                dropped.append(self.store.states.pop(key))
        return dropped

    def list_folders(self) -> list[FolderInfo]:
        return build_listing(
            self._folder_names(), read_subscriptions(self.dir), read_special_uses(self.dir)
        )

    def _set_special_uses(self, assigned: dict[str, str]) -> None:
        write_special_uses(self.dir, assigned, fsync=self.store.settings.fsync)

    def create_folder(self, name: str, special_use: str | None = None) -> None:
        canonical = canonical_name(name)
        check_special_use(special_use)
        if canonical == INBOX or self._exists(canonical):
            raise FolderExists(f"folder {canonical!r} exists")
        assigned = read_special_uses(self.dir)
        if special_use is not None or canonical in assigned:
            # Recorded before the folder exists: a crash in between leaves a record that the
            # listing ignores and the next CREATE of this name replaces (a stale one is
            # dropped here too, e.g. after another program deleted the folder).
            if special_use is None:
                del assigned[canonical]
            else:
                assigned[canonical] = special_use
            self._set_special_uses(assigned)
        parts = canonical.split("/")
        for i in range(1, len(parts) + 1):
            layout.make_maildir(layout.folder_dir(self.dir, "/".join(parts[:i])), is_folder=True)

    def delete_folder(self, name: str) -> None:
        canonical = canonical_name(name)
        if canonical == INBOX:
            raise InvalidFolderName("INBOX cannot be deleted")
        if not self._exists(canonical):
            raise FolderNotFound(f"no folder {name!r}")
        if any(n.startswith(canonical + "/") for n in self._folder_names()):
            raise FolderNotEmpty(f"folder {canonical!r} has children; delete them first")
        path = layout.folder_dir(self.dir, canonical)
        # Rename first (atomic: no half-deleted folder is ever listed), then remove.
        doomed = os.path.join(self.dir, f"mailsuite-deleted.{os.getpid()}.{os.urandom(6).hex()}")
        os.rename(path, doomed)
        for state in self._drop_states(canonical):
            if state.loaded and state.entries:
                state.remove(list(state.entries), None, unlink=False)
            state.deleted = True
        shutil.rmtree(doomed, ignore_errors=True)
        assigned = read_special_uses(self.dir)
        if assigned.pop(canonical, None) is not None:
            self._set_special_uses(assigned)
        self.usage_changed()

    def rename_folder(self, old: str, new: str) -> None:
        source = canonical_name(old)
        target = canonical_name(new)
        if not self._exists(source):
            raise FolderNotFound(f"no folder {old!r}")
        if target == INBOX or self._exists(target):
            raise FolderExists(f"folder {target!r} exists")
        if target.startswith(source + "/") or (source == INBOX and target.startswith(INBOX + "/")):
            raise InvalidFolderName(f"cannot rename {source!r} into itself")
        parents = target.split("/")
        for i in range(1, len(parents)):
            layout.make_maildir(layout.folder_dir(self.dir, "/".join(parents[:i])), is_folder=True)
        if source == INBOX:
            self._rename_inbox(target)
            return
        names = sorted(n for n in self._folder_names() if n == source or n.startswith(source + "/"))
        for state in self._drop_states(source):
            state.deleted = True
        for name in names:
            os.rename(
                layout.folder_dir(self.dir, name),
                layout.folder_dir(self.dir, target + name[len(source) :]),
            )
        subscribed = read_subscriptions(self.dir)
        moved = {n for n in subscribed if n == source or n.startswith(source + "/")}
        if moved:
            write_subscriptions(
                self.dir, (subscribed - moved) | {target + n[len(source) :] for n in moved}
            )
        assigned = read_special_uses(self.dir)
        renamed = moved_names(assigned, source, target)
        if renamed != assigned:
            self._set_special_uses(renamed)

    def _rename_inbox(self, target: str) -> None:
        """RFC 3501 6.3.5: move INBOX's messages to a new folder; INBOX stays, empty."""
        target_dir = layout.folder_dir(self.dir, target)
        layout.make_maildir(target_dir, is_folder=True)
        for sub in ("new", "cur"):
            source_sub = os.path.join(self.dir, sub)
            for filename in os.listdir(source_sub):
                if not filename.startswith("."):
                    os.rename(
                        os.path.join(source_sub, filename), os.path.join(target_dir, sub, filename)
                    )
        state = self.store.states.get((self.user, INBOX))
        if state is not None and state.loaded:
            state.refresh()

    def set_subscribed(self, name: str, subscribed: bool) -> None:
        canonical = canonical_name(name)
        names = read_subscriptions(self.dir)
        if subscribed and canonical not in names:
            write_subscriptions(self.dir, names | {canonical})
        elif not subscribed and canonical in names:
            write_subscriptions(self.dir, names - {canonical})

    def open_folder(self, name: str, readonly: bool = False) -> MaildirFolder:
        state = self.state(name)
        state.refresh()
        return MaildirFolder(state, readonly)

    def folder_status(self, name: str) -> FolderStatus:
        state = self.state(name)
        state.refresh()
        status = state.status()
        if state.views == 0:
            self.store.view_closed(state)
        return status

    # --- adding messages -------------------------------------------------------------

    def deliver(
        self,
        source: bytes | Sequence[bytes],
        folder: str = INBOX,
        flags: Iterable[str] = (),
        internal_date: float | None = None,
    ) -> Any:
        try:
            state = self.state(folder)
        except StoreError:
            return defer.fail()
        return self.add_message(state, source, flags, internal_date)

    def deliver_incoming(self, source: bytes | Sequence[bytes], folder: str = INBOX) -> Any:
        """Deliver mail from a transport (SMTP, the relay): Deferred[None] once durable.

        As Dovecot's LDA does, the file is written durably and only then named in ``new/``,
        and ``new/`` is fsynced; deliveries arriving together are written as one batch with
        one journal commit (``mailsuite.store.committer``). No UID is assigned here: the first
        reader that looks at the folder assigns it (``FolderState.refresh``), as it does for
        mail dropped by any other program. When a session of this process is watching the
        folder, the message goes through ``deliver`` instead so that it is told at once.
        """
        try:
            state = self.state(folder)
            if self.store.hub.has_listeners(self.user, state.name):
                return self.add_message(state, source, (), None).addCallback(lambda _: None)
            store = self.store
            chunks = _chunks(source)
            size = sum(map(len, chunks))
            self.check_quota(size, 1)
            base = store.names.make(store.clock.seconds(), size)
        except Exception:  # noqa: BLE001 - every error reaches the caller as a failed Deferred
            return defer.fail()
        # A plain callback chain, not a coroutine: this runs for every message SMTP accepts.
        written = store.committer.deliver(state.dir, chunks, base)
        return written.addCallback(self._count_delivered, size)

    def _count_delivered(self, _: None, size: int) -> None:
        self.usage_adjust(size, 1)

    def _write_file(
        self,
        state: FolderState,
        chunks: list[bytes],
        filename: str,
        subdir: str,
        mtime: float | None,
    ) -> Any:
        """In the thread pool: the message file, fsynced, under its name in ``subdir``; the
        caller fsyncs ``subdir`` (shared with other deliveries)."""
        store = self.store
        return threads.deferToThreadPool(
            store.reactor,
            store.threadpool,
            store.writer.deliver,
            state.dir,
            chunks,
            filename,
            subdir,
            store.settings.fsync,
            mtime,
            False,
        )

    def add_message(
        self,
        state: FolderState,
        source: bytes | Sequence[bytes],
        flags: Iterable[str],
        internal_date: float | None,
    ) -> Any:
        """Write one message durably into ``state``'s folder; Deferred[MessageInfo]."""
        return defer.Deferred.fromCoroutine(self._add(state, source, flags, internal_date))

    async def _add(
        self,
        state: FolderState,
        source: bytes | Sequence[bytes],
        flags: Iterable[str],
        internal_date: float | None,
    ) -> MessageInfo:
        store = self.store
        chunks = _chunks(source)
        size = sum(len(c) for c in chunks)
        wanted = normalize_flags(flags)
        self.check_quota(size, 1)
        now = store.clock.seconds()
        idate = float(int(internal_date if internal_date is not None else now))
        base = store.names.make(internal_date if internal_date is not None else now, size)
        if wanted:
            filename = f"{base}{INFO_SEPARATOR}{state.letters_for(wanted)}"
            subdir = "cur"
        else:
            filename, subdir = base, "new"
        state.incoming.add(base)
        try:
            # new/ (or cur/) is fsynced once per batch by commit().
            await self._write_file(state, chunks, filename, subdir, internal_date)
            infos = await state.commit([(base, filename, subdir == "new", size, idate)])
        finally:
            state.incoming.discard(base)
        return infos[0]

    def transfer(
        self,
        source: FolderState,
        uids: Iterable[int],
        destination: str,
        move: bool,
        origin: object | None,
    ) -> Any:
        """COPY or MOVE (RFC 6851) ``uids`` to ``destination``; Deferred[list[(old, new)]]."""
        return defer.Deferred.fromCoroutine(self._transfer(source, uids, destination, move, origin))

    async def _transfer(
        self,
        source: FolderState,
        uids: Iterable[int],
        destination: str,
        move: bool,
        origin: object | None,
    ) -> list[tuple[int, int]]:
        store = self.store
        target = self.state(destination)
        picked = [(uid, source.entries[uid]) for uid in sorted(set(uids)) if uid in source.entries]
        if not picked:
            return []
        if not move:
            self.check_quota(sum(e[0].size for _, e in picked), len(picked))
        moves: list[tuple[str, str, str]] = []
        items: list[tuple[str, str, bool, int, float]] = []
        for _uid, entry in picked:
            info = entry[0]
            base = store.names.make(info.internal_date, info.size)
            if info.flags:
                filename = f"{base}{INFO_SEPARATOR}{target.letters_for(info.flags)}"
                subdir = "cur"
            else:
                filename, subdir = base, "new"
            moves.append(
                (
                    source.path_of(entry),
                    os.path.join(target.dir, "tmp", filename),
                    os.path.join(target.dir, subdir, filename),
                )
            )
            items.append((base, filename, subdir == "new", info.size, info.internal_date))
        # The target's new/ and cur/ are fsynced by commit(); a move also changed the source.
        dirs = [os.path.join(source.dir, "new"), os.path.join(source.dir, "cur")] if move else []
        new_bases = {item[0] for item in items}
        old_bases = {base_of(entry[1]) for _, entry in picked} if move else set()
        target.incoming |= new_bases
        source.outgoing |= old_bases
        try:
            await threads.deferToThreadPool(
                store.reactor,
                store.threadpool,
                store.writer.transfer,
                moves,
                not move,
                store.settings.fsync,
                dirs,
            )
            infos = await target.commit(items)
            if move:
                source.remove([uid for uid, _ in picked], origin, unlink=False)
        finally:
            target.incoming -= new_bases
            source.outgoing -= old_bases
        return [(uid, info.uid) for (uid, _), info in zip(picked, infos)]

    # --- quota -------------------------------------------------------------------------

    def _limits(self) -> Any:
        accounts = self.store.accounts
        quota = None
        if accounts is not None:
            try:
                quota = accounts.quota_of(self.user)
            except AccountsError:
                quota = None  # not an account (e.g. a removed user): store defaults apply
        return effective_quota(quota, self.store.settings)

    def _scan_usage(self) -> tuple[int, int]:
        total = count = 0
        for name in self._folder_names():
            path = layout.folder_dir(self.dir, name)
            for sub in ("new", "cur"):
                try:
                    entries = os.listdir(os.path.join(path, sub))
                except FileNotFoundError:
                    continue
                for filename in entries:
                    if filename.startswith("."):
                        continue
                    idx = filename.find(INFO_SEPARATOR)
                    size = size_from_base(filename if idx < 0 else filename[:idx])
                    if size is None:
                        try:
                            size = os.stat(os.path.join(path, sub, filename)).st_size
                        except OSError:
                            continue
                    total += size
                    count += 1
        return total, count

    def _current_usage(self) -> tuple[int, int]:
        now = self.store.clock.seconds()
        if self._usage is None or now - self._usage[2] > self.store.settings.quota_rescan_interval:
            total, count = self._scan_usage()
            self._usage = (total, count, now)
        return self._usage[0], self._usage[1]

    def usage_adjust(self, size: int, count: int) -> None:
        """Account for messages we added or removed, without a rescan."""
        if self._usage is not None:
            self._usage = (self._usage[0] + size, self._usage[1] + count, self._usage[2])

    def usage_changed(self) -> None:
        """Forget the computed usage (changes made by someone else)."""
        self._usage = None

    def quota(self) -> QuotaUsage:
        limits = self._limits()
        used, count = self._current_usage()
        return QuotaUsage(used, limits.bytes_limit, count, limits.messages_limit)

    def check_quota(self, size: int, count: int) -> None:
        """Raise QuotaExceeded if ``count`` messages of ``size`` bytes in all do not fit."""
        limits = self._limits()
        if limits.bytes_limit is None and limits.messages_limit is None:
            return
        used, messages = self._current_usage()
        check_quota(
            QuotaUsage(used, limits.bytes_limit, messages, limits.messages_limit), size, count
        )


@implementer(IMailStore)
class MaildirStore:
    """Every user's Maildir under ``root``; see the module docstring.

    ``reactor`` provides the thread pool for disk work; ``clock`` (default: the reactor) drives
    time and the periodic check of watched folders. ``writer`` can be replaced in tests.
    """

    log = Logger()

    def __init__(
        self,
        root: Path,
        settings: StoreSettings,
        accounts: IAccounts | None,
        reactor: Any,
        *,
        clock: Any = None,
        writer: MessageWriter | None = None,
    ) -> None:
        self.root = str(root)
        self.settings = settings
        self.accounts: Any = accounts
        self.reactor = reactor
        self.clock = clock if clock is not None else reactor
        self.writer = writer or MessageWriter()
        self.names = NameMaker()
        self.hub = ChangeHub()
        self.dir_fsync = SharedDirectoryFsync(fsync_dir)
        self.committer = DeliveryCommitter(self)
        self.states: dict[tuple[str, str], FolderState] = {}
        self._accounts_by_user: dict[str, MaildirAccount] = {}
        self._poller: task.LoopingCall | None = None
        os.makedirs(self.root, 0o700, exist_ok=True)

    @property
    def threadpool(self) -> Any:
        return self.reactor.getThreadPool()

    def account(self, user: str) -> MaildirAccount:
        account = self._accounts_by_user.get(user)
        if account is None:
            account = self._accounts_by_user[user] = MaildirAccount(self, user)
        return account

    # --- watching other processes' changes --------------------------------------------

    def watch(self) -> None:
        """Start the periodic check if it is not running (a view has subscribers)."""
        if self._poller is None and self.settings.poll_interval > 0:
            self._poller = task.LoopingCall(self._poll)
            self._poller.clock = self.clock
            self._poller.start(self.settings.poll_interval, now=False)

    def _poll(self) -> None:
        watched = self.hub.watched()
        if not watched:
            self.stop()
            return
        now = self.clock.seconds()
        for key in watched:
            state = self.states.get(key)
            if state is not None and state.loaded:
                try:
                    state.refresh()
                    state.clean_tmp_every(TMP_CLEAN_INTERVAL, now)
                except (OSError, StoreError):
                    self.log.failure(
                        "refresh of {user} {folder} failed", user=key[0], folder=key[1]
                    )

    def view_closed(self, state: FolderState) -> None:
        """Free a folder's index when no view is left; stop polling when nobody listens."""
        if state.views <= 0 and state.loaded and len(state.entries) > KEEP_LOADED_BELOW:
            state.unload()
        if self._poller is not None and not self.hub.watched():
            self.stop()

    def evict_idle(self) -> None:
        """Forget the least recently used folders nobody has open (bounded memory)."""
        idle = [key for key, state in self.states.items() if state.idle()]
        for key in idle[: max(0, len(idle) - IDLE_STATES)]:
            self.states.pop(key).unload()

    def stop(self) -> None:
        """Stop the periodic check (for shutdown and tests)."""
        if self._poller is not None:
            if self._poller.running:
                self._poller.stop()
            self._poller = None

    def close(self) -> None:
        """The server stops: stop the periodic check and give back the spare files. A
        delivery still being written makes its own file if its spare was given back."""
        self.stop()
        self.committer.close()

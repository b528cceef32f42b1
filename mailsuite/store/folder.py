"""The shared state of one Maildir folder in this process, behind every view of it.

One ``FolderState`` per (user, folder) holds the UID list, the modseq log, the keyword table,
the summary cache and -- while a view is open -- the message index (UID -> (MessageInfo, file
name, in new/)). Views (``mailsuite.store.view.MaildirFolder``) are thin; every change made
through any view, a delivery, or a change noticed on disk is applied here once and published
to the store's change hub, so every subscriber of the folder hears it.

All methods run on the reactor thread except the blocking helpers handed to the thread pool
(file writes, UID assignment under the lock).
"""

from __future__ import annotations

import gc
import itertools
import os
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from twisted.internet import defer, threads
from twisted.logger import Logger

from mailsuite.errors import MessageNotFound, StoreError, TemporaryStoreError
from mailsuite.interfaces import (
    ChangeKind,
    FlagMode,
    FlagUpdate,
    FolderChange,
    FolderStatus,
    MessageInfo,
)
from mailsuite.store.cache import SummaryCache
from mailsuite.store.filenames import (
    FLAG_TO_LETTER,
    INFO_SEPARATOR,
    LETTER_TO_FLAG,
    pop_id_for,
    size_from_base,
    time_from_base,
)
from mailsuite.store.flags import apply_mode, normalize_flags
from mailsuite.store.keywords import Keywords
from mailsuite.store.modseq import ModseqLog
from mailsuite.store.uidlist import LOCK_TIMEOUT, UidList
from mailsuite.store.writer import clean_tmp

if TYPE_CHECKING:
    from mailsuite.store.maildir import MaildirAccount

# An index entry: (info, file name, True if the file is in new/).
Entry = tuple[MessageInfo, str, bool]

REFRESH_LOCK_TIMEOUT = 2.0  # seconds the reactor thread may wait for the uidlist lock


def _base_of(filename: str) -> str:
    idx = filename.find(INFO_SEPARATOR)
    return filename if idx < 0 else filename[:idx]


class FolderState:
    """One folder's index and persistent files, shared by its views in this process."""

    log = Logger()

    def __init__(self, account: MaildirAccount, name: str, folder_dir: str) -> None:
        self.account = account
        self.store = account.store
        self.user = account.user
        self.name = name
        self.dir = folder_dir
        fsync = self.store.settings.fsync
        self.uidlist = UidList(folder_dir, account.dir, fsync)
        self.modseq = ModseqLog(folder_dir)
        self.keywords = Keywords(folder_dir)
        self.cache = SummaryCache(folder_dir)
        self.views: int = 0
        self.loaded = False
        self.deleted = False
        self.entries: dict[int, Entry] = {}
        self._list: list[MessageInfo] | None = None
        self._flag_sets: dict[str, frozenset[str]] = {}
        self._mtimes: tuple[int, int] = (-1, -1)
        self._dirty = True  # force a full rescan on the next refresh
        self._recent_new = True  # new/ changed within the mtime granularity: look again
        self._recent_cur = True
        self._pending: list[tuple[list[tuple[str, str, bool, int, float]], defer.Deferred]] = []
        self._flushing = False
        self._started = False
        self._loaded_uidvalidity = 0
        self._tmp_cleaned = 0.0

    # --- small helpers ---------------------------------------------------------------

    @property
    def uidvalidity(self) -> int:
        return self.uidlist.uidvalidity

    @property
    def uidnext(self) -> int:
        return self.uidlist.next_uid

    @property
    def highest_modseq(self) -> int:
        return self.modseq.highest

    def clean_tmp_every(self, interval: float, now: float) -> None:
        """Sweep tmp/ if the last sweep is older than ``interval`` seconds."""
        if now - self._tmp_cleaned >= interval:
            self._tmp_cleaned = now
            clean_tmp(self.dir, self.store.settings.tmp_max_age, now)

    def idle(self) -> bool:
        """True if nothing in this process needs the state (it may be dropped)."""
        return (
            self.views <= 0
            and not self._flushing
            and not self._pending
            and not self.store.hub.has_listeners(self.user, self.name)
        )

    def _now(self) -> float:
        return self.store.clock.seconds()

    def start(self) -> None:
        """Make sure the UID list and the modseq log exist and are read."""
        if self._started:
            return
        self.uidlist.ensure(self._now())
        self.uidlist.reload()
        self.modseq.load(self.uidlist.uidvalidity)
        self.keywords.load()
        self._started = True

    def flags_of(self, info: str) -> frozenset[str]:
        """The IMAP flags for a Maildir info string (memoised per distinct string)."""
        flags = self._flag_sets.get(info)
        if flags is None:
            out = set()
            for ch in info:
                if "A" <= ch <= "Z":
                    flag = LETTER_TO_FLAG.get(ch)
                elif "a" <= ch <= "z":
                    flag = self.keywords.keyword_of(ch)
                else:
                    flag = None
                if flag is not None:
                    out.add(flag)
            flags = self._flag_sets[info] = self.account.intern(frozenset(out))
        return flags

    def letters_for(self, flags: frozenset[str], old_info: str = "") -> str:
        """The info letters for ``flags``, keeping letters we do not understand from ``old_info``."""
        letters = {FLAG_TO_LETTER[f] for f in flags if f in FLAG_TO_LETTER}
        keywords = {f for f in flags if f not in FLAG_TO_LETTER}
        if keywords:
            found = self.keywords.letters_of(keywords)
            if found is None:
                self._add_keywords(keywords)
                found = self.keywords.letters_of(keywords) or ""
            letters.update(found)
        for ch in old_info:
            if ("A" <= ch <= "Z" and ch not in LETTER_TO_FLAG) or (
                "a" <= ch <= "z" and self.keywords.keyword_of(ch) is None
            ):
                letters.add(ch)
        return "".join(sorted(letters))

    @contextmanager
    def _folder_lock(self) -> Iterator[None]:
        """Hold the folder lock while handing out a modseq (unique across processes).

        If the lock stays busy the change goes ahead without it: a flag change must not fail
        because another process is slow; at worst two changes share a modseq number.
        """
        held = self.uidlist.locked(REFRESH_LOCK_TIMEOUT)
        try:
            held.__enter__()
        except TemporaryStoreError:
            self.log.warn(  # noqa: G010 -- twisted.logger.Logger has warn()
                "folder lock busy in {dir}; modseq assigned without it", dir=self.dir
            )
            yield
            return
        try:
            yield
        finally:
            held.__exit__(None, None, None)

    def _stamp_added(self, uids: list[int]) -> None:
        """Called under the folder lock: give newly assigned UIDs a fresh modseq."""
        fresh = [uid for uid in uids if uid not in self.modseq.of]
        if fresh:
            self.modseq.stamp(self.uidvalidity, fresh)

    def _add_keywords(self, keywords: set[str]) -> None:
        with self.uidlist.locked(REFRESH_LOCK_TIMEOUT):
            self.keywords.add(keywords)
        self._flag_sets.clear()

    def _make_info(self, uid: int, filename: str, in_new: bool) -> MessageInfo:
        """MessageInfo from a file name; ``stat`` only for names without size or time.

        Hot when a large folder is opened: string methods only, no regular expressions.
        """
        idx = filename.find(INFO_SEPARATOR)
        if idx < 0:
            base, info = filename, ""
        else:
            base, info = filename[:idx], filename[idx + 3 :]
        flags = self._flag_sets.get(info)
        if flags is None:
            flags = self.flags_of(info)
        try:
            s = base.index(",S=") + 3
            e = base.find(",", s)
            size: int | None = int(base[s:] if e < 0 else base[s:e])
            idate: float | None = float(int(base[: base.index(".")]))
        except ValueError:
            size = size_from_base(base)
            idate = time_from_base(base)
        if size is None or idate is None or size < 0:
            try:
                st = os.stat(os.path.join(self.dir, "new" if in_new else "cur", filename))
                size = st.st_size if size is None or size < 0 else size
                idate = st.st_mtime if idate is None else idate
            except OSError:
                size = size or 0
                idate = idate or 0.0
        if len(base) <= 70 and base.isascii() and base.isprintable() and " " not in base:
            pop_id = base
        else:
            pop_id = pop_id_for(base)
        return MessageInfo(uid, flags, size, float(idate), self.modseq.of.get(uid, 1), pop_id)

    def path_of(self, entry: Entry) -> str:
        return os.path.join(self.dir, "new" if entry[2] else "cur", entry[1])

    def _publish(
        self, kind: ChangeKind, uids: Sequence[int], origin: object | None
    ) -> FolderChange:
        change = FolderChange(self.user, self.name, kind, tuple(uids), self.modseq.highest, origin)
        self.store.hub.publish(change)
        return change

    # --- the index --------------------------------------------------------------------

    def _dir_mtimes(self) -> tuple[int, int]:
        try:
            new = os.stat(os.path.join(self.dir, "new")).st_mtime_ns
            cur = os.stat(os.path.join(self.dir, "cur")).st_mtime_ns
        except FileNotFoundError:
            return (-1, -1)
        return (new, cur)

    def _scan(self) -> dict[str, tuple[str, bool]]:
        """base -> (file name, in new/). new/ is listed before cur/ so a file moving from
        new/ to cur/ during the scan is seen at least once."""
        mtimes = self._dir_mtimes()
        now_ns = int(self._now() * 1e9)
        listing: dict[str, tuple[str, bool]] = {}
        for sub, in_new in (("new", True), ("cur", False)):
            try:
                names = os.listdir(os.path.join(self.dir, sub))
            except FileNotFoundError:
                continue
            for filename in names:
                if filename[:1] == ".":
                    continue
                idx = filename.find(INFO_SEPARATOR)
                listing[filename if idx < 0 else filename[:idx]] = (filename, in_new)
        self._mtimes = mtimes
        # A change in the same clock tick as our scan would not move the mtime: look again.
        self._recent_new = mtimes[0] > now_ns - 2_000_000_000
        self._recent_cur = mtimes[1] > now_ns - 2_000_000_000
        self._dirty = False
        return listing

    def load(self) -> None:
        """Build the index from the directory, the UID list and the modseq log.

        The cyclic garbage collector is paused meanwhile: building 100,000 small acyclic
        objects would otherwise trigger it hundreds of times for nothing.
        """
        was_enabled = gc.isenabled()
        gc.disable()
        try:
            self._load()
        finally:
            if was_enabled:
                gc.enable()

    def _load(self) -> None:
        self.start()
        self._tmp_cleaned = self._now()
        clean_tmp(self.dir, self.store.settings.tmp_max_age, self._tmp_cleaned)
        self.uidlist.reload()
        self.modseq.load(self.uidvalidity)
        self.keywords.load()
        listing = self._scan()
        uid_of = self.uidlist.uid_of
        known: list[tuple[int, str, bool]] = []
        unknown: list[str] = []
        for base, (filename, in_new) in listing.items():
            uid = uid_of.get(base)
            if uid is None:
                unknown.append(base)
            else:
                known.append((uid, filename, in_new))
        if unknown:
            unknown.sort()
            try:
                uids = self.uidlist.assign(
                    unknown, self._now(), REFRESH_LOCK_TIMEOUT, self._stamp_added
                )
            except TemporaryStoreError:
                uids = []
                self._dirty = True
            for base, uid in zip(unknown, uids):
                filename, in_new = listing[base]
                known.append((uid, filename, in_new))
        known.sort()
        self.entries = self._index(known)
        self._list = None
        self.loaded = True
        self._loaded_uidvalidity = self.uidvalidity

    def _index(self, known: list[tuple[int, str, bool]]) -> dict[int, Entry]:
        """Entries for (uid, file name, in new/) triples: the hot loop of opening a folder.

        Names with ``,S=`` and a leading time (ours, Dovecot's) are parsed inline with string
        methods; anything else goes through ``_make_info`` (which may ``stat``).
        """
        entries: dict[int, Entry] = {}
        flag_sets = self._flag_sets
        flags_of = self.flags_of
        modseq_of = self.modseq.of
        make_info = self._make_info
        info_cls = MessageInfo
        for uid, filename, in_new in known:
            idx = filename.find(":2,")
            if idx < 0:
                base, info = filename, ""
            else:
                base, info = filename[:idx], filename[idx + 3 :]
            s = base.find(",S=")
            dot = base.find(".")
            if (
                s < 0
                or dot <= 0
                or len(base) > 70
                or not base.isascii()
                or not base.isprintable()
                or " " in base
            ):
                entries[uid] = (make_info(uid, filename, in_new), filename, in_new)
                continue
            e = base.find(",", s + 3)
            size_text = base[s + 3 :] if e < 0 else base[s + 3 : e]
            time_text = base[:dot]
            if not size_text.isdigit() or not time_text.isdigit():
                entries[uid] = (make_info(uid, filename, in_new), filename, in_new)
                continue
            flags = flag_sets.get(info)
            if flags is None:
                flags = flags_of(info)
            entries[uid] = (
                info_cls(uid, flags, int(size_text), float(time_text), modseq_of.get(uid, 1), base),
                filename,
                in_new,
            )
        return entries

    def unload(self) -> None:
        """Drop the index (no views left); the persistent files stay."""
        self.cache.close()
        self.loaded = False
        self.entries = {}
        self._list = None
        self._dirty = True

    def messages(self) -> list[MessageInfo]:
        if self._list is None:
            infos = [entry[0] for entry in self.entries.values()]
            uids = [i.uid for i in infos]
            if any(a > b for a, b in itertools.pairwise(uids)):
                infos.sort(key=lambda i: i.uid)
                self.entries = {i.uid: self.entries[i.uid] for i in infos}
            self._list = infos
        return self._list

    def entry(self, uid: int) -> Entry:
        try:
            return self.entries[uid]
        except KeyError:
            raise MessageNotFound(f"no message with UID {uid} in {self.name!r}") from None

    # --- noticing changes on disk -------------------------------------------------------

    def refresh(self) -> list[FolderChange]:
        """Reconcile the index with the disk; publish and return what changed."""
        if self.deleted:
            return []
        if not self.loaded:
            self.load()
            return []
        if self.uidlist.reload() and self.uidvalidity != self._loaded_uidvalidity:
            return self._reset_after_uidvalidity_change()
        keywords_changed = self.keywords.load()
        if keywords_changed:
            self._flag_sets.clear()
        logged = self.modseq.load(self.uidvalidity)
        mtimes = self._dir_mtimes()
        full = keywords_changed or self._dirty or self._recent_cur or mtimes[1] != self._mtimes[1]
        if not full:
            if not self._recent_new and mtimes[0] == self._mtimes[0]:
                return []
            changes = self._refresh_new(mtimes)
            if changes is not None:
                return changes
        listing = self._scan()
        return self._apply_listing(listing, logged, keywords_changed)

    def _refresh_new(self, mtimes: tuple[int, int]) -> list[FolderChange] | None:
        """Only new/ changed (the common case: deliveries): list just new/.

        Returns None when a full rescan is needed (a file left new/).
        """
        try:
            names = os.listdir(os.path.join(self.dir, "new"))
        except FileNotFoundError:
            return None
        uid_of = self.uidlist.uid_of
        entries = self.entries
        present = 0
        unknown: list[tuple[str, str]] = []
        for filename in names:
            if filename[:1] == ".":
                continue
            idx = filename.find(INFO_SEPARATOR)
            base = filename if idx < 0 else filename[:idx]
            uid = uid_of.get(base)
            entry = entries.get(uid) if uid is not None else None
            if entry is None:
                unknown.append((base, filename))
            elif entry[1] == filename and entry[2]:
                present += 1
            else:
                return None
        if present != sum(1 for entry in entries.values() if entry[2]):
            return None
        self._mtimes = (mtimes[0], self._mtimes[1])
        self._recent_new = mtimes[0] > int(self._now() * 1e9) - 2_000_000_000
        if not unknown:
            return []
        unknown.sort()
        try:
            uids = self.uidlist.assign(
                [b for b, _ in unknown], self._now(), REFRESH_LOCK_TIMEOUT, self._stamp_added
            )
        except TemporaryStoreError:
            self._dirty = True
            return []
        added = []
        for (_base, filename), uid in zip(unknown, uids):
            if uid in entries:
                continue
            entries[uid] = (self._make_info(uid, filename, True), filename, True)
            added.append(uid)
        if not added:
            return []
        self._list = None
        self.account.usage_changed()
        return [self._publish(ChangeKind.ADDED, sorted(added), None)]

    def _reset_after_uidvalidity_change(self) -> list[FolderChange]:
        gone = list(self.entries)
        self.unload()
        self.load()
        changes = []
        if gone:
            changes.append(self._publish(ChangeKind.EXPUNGED, gone, None))
        if self.entries:
            changes.append(self._publish(ChangeKind.ADDED, list(self.entries), None))
        return changes

    def _apply_listing(
        self, listing: dict[str, tuple[str, bool]], logged: dict[int, int], keywords_changed: bool
    ) -> list[FolderChange]:
        uid_of = self.uidlist.uid_of
        entries = self.entries
        seen: set[int] = set()
        unknown: list[str] = []
        flag_changes: list[tuple[int, str, bool]] = []
        renamed: list[tuple[int, str, bool]] = []
        for base, (filename, in_new) in listing.items():
            uid = uid_of.get(base)
            entry = entries.get(uid) if uid is not None else None
            if entry is None:
                if uid is not None and uid in seen:
                    continue
                unknown.append(base)
                continue
            assert uid is not None
            seen.add(uid)
            if entry[1] != filename or entry[2] != in_new or keywords_changed:
                idx = filename.find(INFO_SEPARATOR)
                if self.flags_of(filename[idx + 3 :] if idx >= 0 else "") != entry[0].flags:
                    flag_changes.append((uid, filename, in_new))
                else:
                    renamed.append((uid, filename, in_new))
        gone = [uid for uid in entries if uid not in seen]
        if gone:
            # Confirm with a second look: a rename racing with readdir can hide a file once.
            again = self._scan()
            gone = [uid for uid in gone if _base_of(entries[uid][1]) not in again]
            self._dirty = True  # files that appeared in the second look are taken next time
        for uid, filename, in_new in renamed:
            entries[uid] = (entries[uid][0], filename, in_new)
        changes: list[FolderChange] = []
        if gone or flag_changes:
            # Not under the folder lock: forget() takes the UID list's own mutex.
            self.uidlist.forget([_base_of(entries[uid][1]) for uid in gone])
            with self._folder_lock():
                logged.update(self.modseq.load(self.uidvalidity))
                new_modseq = self.modseq.next()
                if gone:
                    for uid in gone:
                        del entries[uid]
                    self.cache.forget(gone)
                    self.modseq.forget(gone)
                    self.modseq.record([], new_modseq)
                fresh = []
                for uid, filename, in_new in flag_changes:
                    idx = filename.find(INFO_SEPARATOR)
                    flags = self.flags_of(filename[idx + 3 :] if idx >= 0 else "")
                    old = entries[uid][0]
                    # Another mailsuite process may already have logged this change.
                    modseq = logged.get(uid, 0)
                    if modseq <= old.modseq:
                        modseq = new_modseq
                        fresh.append(uid)
                    entries[uid] = (_with(old, flags=flags, modseq=modseq), filename, in_new)
                if fresh:
                    self.modseq.record(fresh, new_modseq)
            self._list = None
            if gone:
                changes.append(self._publish(ChangeKind.EXPUNGED, gone, None))
            if flag_changes:
                uids = sorted(uid for uid, _f, _n in flag_changes)
                changes.append(self._publish(ChangeKind.FLAGS, uids, None))
        if unknown:
            unknown.sort()
            try:
                uids = self.uidlist.assign(
                    unknown, self._now(), REFRESH_LOCK_TIMEOUT, self._stamp_added
                )
            except TemporaryStoreError:
                uids = []
                self._dirty = True
            added = []
            for base, uid in zip(unknown, uids):
                if uid in entries:
                    continue
                filename, in_new = listing[base]
                entries[uid] = (self._make_info(uid, filename, in_new), filename, in_new)
                added.append(uid)
            if added:
                self._list = None
                changes.append(self._publish(ChangeKind.ADDED, sorted(added), None))
        if gone or flag_changes or unknown:
            self.account.usage_changed()
        return changes

    # --- changes made here ------------------------------------------------------------

    def store_flags(
        self,
        uids: Iterable[int],
        flags: Iterable[str],
        mode: FlagMode,
        unchanged_since: int | None,
        origin: object | None,
    ) -> FlagUpdate:
        given = normalize_flags(flags)
        failed: list[int] = []
        pending: list[tuple[int, frozenset[str], str, str]] = []
        entries = self.entries
        for uid in sorted(set(uids)):
            entry = entries.get(uid)
            if entry is None:
                continue
            info = entry[0]
            if unchanged_since is not None and info.modseq > unchanged_since:
                failed.append(uid)
                continue
            new = apply_mode(info.flags, given, mode)
            if new == info.flags:
                continue
            filename = entry[1]
            idx = filename.find(INFO_SEPARATOR)
            base = filename if idx < 0 else filename[:idx]
            old_info = "" if idx < 0 else filename[idx + 3 :]
            new_name = f"{base}{INFO_SEPARATOR}{self.letters_for(new, old_info)}"
            pending.append((uid, new, new_name, self.path_of(entry)))
        changed: list[MessageInfo] = []
        lost = False
        if pending:
            with self._folder_lock():
                self.modseq.load(self.uidvalidity)
                modseq = self.modseq.next()
                cur = os.path.join(self.dir, "cur")
                for uid, _new, new_name, old_path in pending:
                    try:
                        os.rename(old_path, os.path.join(cur, new_name))
                    except FileNotFoundError:
                        lost = True  # changed or removed by another process: refresh decides
                        continue
                    info = _with(
                        entries[uid][0],
                        flags=self.flags_of(new_name[new_name.find(INFO_SEPARATOR) + 3 :]),
                        modseq=modseq,
                    )
                    entries[uid] = (info, new_name, False)
                    changed.append(info)
                if changed:
                    self.modseq.record([i.uid for i in changed], modseq)
            if changed:
                self._list = None
                self._publish(ChangeKind.FLAGS, [i.uid for i in changed], origin)
        if lost:
            self._dirty = True
            self.refresh()
        return FlagUpdate(changed=changed, unchanged_since_failed=failed)

    def remove(self, uids: Sequence[int], origin: object | None, unlink: bool) -> list[int]:
        """Drop messages from the index (unlinking their files when ``unlink``); publish."""
        gone: list[int] = []
        size = 0
        bases = []
        for uid in uids:
            entry = self.entries.get(uid)
            if entry is None:
                continue
            if unlink:
                try:
                    os.unlink(self.path_of(entry))
                except FileNotFoundError:
                    pass
            size += entry[0].size
            bases.append(_base_of(entry[1]))
            del self.entries[uid]
            gone.append(uid)
        if gone:
            self.uidlist.forget(bases)
            self.cache.forget(gone)
            self.modseq.forget(gone)
            with self._folder_lock():
                self.modseq.stamp(self.uidvalidity, [])
            self._list = None
            self._publish(ChangeKind.EXPUNGED, gone, origin)
            self.account.usage_adjust(-size, -len(gone))
            self._maybe_compact()
        return gone

    def expunge(self, uids: Iterable[int] | None, origin: object | None) -> list[int]:
        wanted = None if uids is None else set(uids)
        doomed = [
            uid
            for uid, entry in self.entries.items()
            if "\\Deleted" in entry[0].flags and (wanted is None or uid in wanted)
        ]
        return self.remove(sorted(doomed), origin, unlink=True)

    def _maybe_compact(self) -> None:
        live = len(self.entries)
        if self.uidlist.records > 2 * live + 1000:
            self.uidlist.compact(_base_of(e[1]) for e in self.entries.values())
        if self.modseq.records > 2 * live + 1000:
            self.modseq.compact(set(self.entries))
        if self.cache.needs_compaction():
            self.cache.compact(
                {uid: _base_of(e[1]) for uid, e in self.entries.items()}, self.uidvalidity
            )

    # --- adding messages (group commit of UID assignment) -------------------------------

    def commit(self, items: list[tuple[str, str, bool, int, float]]) -> defer.Deferred:
        """Assign UIDs to files already in new/ or cur/ (base, file name, in new, size, date).

        Concurrent calls are batched: one lock, one append and one fdatasync of the UID list
        for everything that arrived while the previous batch was being written.
        Fires with the list of MessageInfo.
        """
        d: defer.Deferred = defer.Deferred()
        self._pending.append((items, d))
        if not self._flushing:
            self._flush()
        return d

    def _flush(self) -> None:
        batch, self._pending = self._pending, []
        if not batch:
            self._flushing = False
            return
        self._flushing = True
        bases = [item[0] for items, _ in batch for item in items]
        work = threads.deferToThreadPool(
            self.store.reactor,
            self.store.threadpool,
            self.uidlist.assign,
            bases,
            self._now(),
            LOCK_TIMEOUT,
            self._stamp_added,
        )
        work.addCallbacks(
            self._flushed, self._flush_failed, callbackArgs=(batch,), errbackArgs=(batch,)
        )

    def _flushed(self, uids: list[int], batch: list) -> None:
        results: list[tuple[defer.Deferred, list[MessageInfo]]] = []
        added: list[int] = []
        position = 0
        total_size = 0
        for items, d in batch:
            infos = []
            for base, filename, in_new, size, idate in items:
                uid = uids[position]
                position += 1
                existing = self.entries.get(uid) if self.loaded else None
                if existing is not None:
                    infos.append(existing[0])
                    continue
                info = MessageInfo(
                    uid,
                    self.flags_of(filename[len(base) + 3 :]),
                    size,
                    idate,
                    self.modseq.of.get(uid, 1),
                    pop_id_for(base),
                )
                if self.loaded:
                    self.entries[uid] = (info, filename, in_new)
                added.append(uid)
                total_size += size
                infos.append(info)
            results.append((d, infos))
        if added:
            self._list = None
            self.account.usage_adjust(total_size, len(added))
            self._publish(ChangeKind.ADDED, added, None)
        for d, infos in results:
            d.callback(infos)
        self._flush()

    def _flush_failed(self, failure: Any, batch: list) -> None:
        self.log.failure("UID assignment failed in {dir}", failure, dir=self.dir)
        error = (
            failure.value
            if isinstance(failure.value, StoreError)
            else TemporaryStoreError(str(failure.value))
        )
        # The files are complete but have no UID: remove them so that the sender's retry of a
        # temporary failure does not leave a duplicate (unless a rescan already took them).
        for items, _ in batch:
            for base, filename, in_new, _size, _idate in items:
                if base not in self.uidlist.uid_of:
                    try:
                        os.unlink(os.path.join(self.dir, "new" if in_new else "cur", filename))
                    except OSError:
                        pass
        for _, d in batch:
            d.errback(error)
        self._dirty = True
        self._flush()

    # --- status and summaries -----------------------------------------------------------

    def status(self) -> FolderStatus:
        recent = unseen = size = 0
        for info, _filename, in_new in self.entries.values():
            if in_new:
                recent += 1
            if "\\Seen" not in info.flags:
                unseen += 1
            size += info.size
        return FolderStatus(
            messages=len(self.entries),
            recent=recent,
            unseen=unseen,
            uidnext=self.uidnext,
            uidvalidity=self.uidvalidity,
            highest_modseq=self.highest_modseq,
            size=size,
        )

    def summary(self, uid: int, raw_reader: Any) -> dict[str, Any]:
        entry = self.entry(uid)
        base = _base_of(entry[1])
        cached = self.cache.get(uid, base, self.uidvalidity)
        if cached is not None:
            return cached
        raw = raw_reader(uid)
        from mailsuite.message import summarize  # written concurrently: import lazily

        try:
            value = summarize(raw)
        except Exception:  # noqa: BLE001 -- any bad file must still list and fetch
            self.log.failure("cannot summarize UID {uid} in {dir}", uid=uid, dir=self.dir)
            try:
                value = summarize(b"\r\n")
            except Exception:  # noqa: BLE001
                value = {}
        self.cache.put(uid, base, self.uidvalidity, value)
        return value


def _with(info: MessageInfo, *, flags: frozenset[str], modseq: int) -> MessageInfo:
    return MessageInfo(info.uid, flags, info.size, info.internal_date, modseq, info.pop_id)

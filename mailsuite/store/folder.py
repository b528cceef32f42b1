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

import os
from collections.abc import Callable, Iterable, Sequence
from typing import Any

from twisted.internet import defer, threads

from mailsuite.errors import StoreError, TemporaryStoreError
from mailsuite.interfaces import (
    ChangeKind,
    FlagMode,
    FlagUpdate,
    FolderStatus,
    MessageInfo,
)
from mailsuite.message import SUMMARY_VERSION, summarize
from mailsuite.store.base import base_of, with_flags
from mailsuite.store.filenames import (
    INFO_SEPARATOR,
    pop_id_for,
)
from mailsuite.store.flags import apply_mode, normalize_flags
from mailsuite.store.rescan import FolderRescan
from mailsuite.store.uidlist import LOCK_TIMEOUT
from mailsuite.store.writer import fsync_dir

# Values kept per folder by FolderState.derived (an IMAP ENVELOPE is a few hundred bytes).
DERIVED_LIMIT = 2048


class FolderState(FolderRescan):
    """One folder's index and persistent files, shared by its views in this process.

    This module holds the changes made here: flags, expunges, the group-committed UID
    assignment of new messages, status and summaries.
    """

    def store_flags(
        self,
        uids: Iterable[int],
        flags: Iterable[str],
        mode: FlagMode,
        unchanged_since: int | None,
        origin: object | None,
    ) -> FlagUpdate:
        """STORE: rename the files and publish one FLAGS change (one new modseq).

        The index is first brought up to date, so a flag another program set meanwhile is
        neither lost by ``+FLAGS`` nor missed by UNCHANGEDSINCE (RFC 7162 3.1.3). A file renamed
        by someone else between that look and our rename is looked up again once.
        """
        given = normalize_flags(flags)
        self.refresh()
        update = self._store_flags(uids, given, mode, unchanged_since, origin)
        if update[1]:
            self.refresh()
            again = self._store_flags(update[1], given, mode, unchanged_since, origin)
            return FlagUpdate(
                update[0].changed + again[0].changed,
                update[0].unchanged_since_failed + again[0].unchanged_since_failed,
            )
        return update[0]

    def _store_flags(
        self,
        uids: Iterable[int],
        given: frozenset[str],
        mode: FlagMode,
        unchanged_since: int | None,
        origin: object | None,
    ) -> tuple[FlagUpdate, list[int]]:
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
        lost: list[int] = []
        if pending:
            with self._folder_lock():
                self.modseq.load(self.uidvalidity)
                modseq = self.modseq.next()
                cur = os.path.join(self.dir, "cur")
                for uid, _new, new_name, old_path in pending:
                    try:
                        os.rename(old_path, os.path.join(cur, new_name))
                    except FileNotFoundError:
                        lost.append(uid)  # renamed or removed by another program meanwhile
                        continue
                    info = with_flags(
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
        return FlagUpdate(changed=changed, unchanged_since_failed=failed), lost

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
            bases.append(base_of(entry[1]))
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
        """Unlink the messages flagged \\Deleted (only ``uids`` when given), after a fresh look
        at the disk so that a file renamed by another program is found under its new name."""
        self.refresh()
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
            self.uidlist.compact(base_of(e[1]) for e in self.entries.values())
        if self.modseq.records > 2 * live + 1000:
            self.modseq.compact(set(self.entries))
        if self.cache.needs_compaction():
            self.cache.compact(
                {uid: base_of(e[1]) for uid, e in self.entries.items()}, self.uidvalidity
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
        subdirs = {"new" if item[2] else "cur" for items, _ in batch for item in items}
        work = threads.deferToThreadPool(
            self.store.reactor,
            self.store.threadpool,
            self._commit_batch,
            bases,
            subdirs,
            self._now(),
        )
        work.addCallbacks(
            self._flushed, self._flush_failed, callbackArgs=(batch,), errbackArgs=(batch,)
        )

    def _commit_batch(self, bases: list[str], subdirs: set[str], now: float) -> list[int]:
        """In the thread pool: make the batch's renames durable (one fsync per directory for
        the whole batch), then assign UIDs and modseqs under the folder lock."""
        if self.store.settings.fsync:
            for sub in sorted(subdirs):
                fsync_dir(os.path.join(self.dir, sub))
        return self.uidlist.assign(bases, now, LOCK_TIMEOUT, self._stamp_added)

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

    def derived(self, uid: int, name: str, compute: Callable[[dict[str, Any]], Any],
                raw_reader: Any) -> Any:
        """``compute`` of the message's summary, kept in memory (at most ``DERIVED_LIMIT``
        values per folder) while the UID names the same file: a file's base name is unique,
        so a UID reused after a UIDVALIDITY change is never answered with an old value."""
        base = base_of(self.entry(uid)[1])
        key = (uid, name)
        known = self._derived.get(key)
        if known is not None and known[0] == base:
            return known[1]
        value = compute(self.summary(uid, raw_reader))
        if len(self._derived) >= DERIVED_LIMIT:
            self._derived.clear()
        self._derived[key] = (base, value)
        return value

    def summary(self, uid: int, raw_reader: Any) -> dict[str, Any]:
        """The message's summary from the cache, computed and cached on first use.

        A cached summary of another ``SUMMARY_VERSION`` (the parser changed) is recomputed.
        """
        entry = self.entry(uid)
        base = base_of(entry[1])
        cached = self.cache.get(uid, base, self.uidvalidity)
        if cached is not None and cached.get("version") == SUMMARY_VERSION:
            return cached
        raw = raw_reader(uid)
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

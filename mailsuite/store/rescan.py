"""Building the folder index from the directory and noticing changes made by others.

``refresh`` is cheap when nothing changed (two ``stat``s of new/ and cur/); when only new/
changed (deliveries) it lists just new/; otherwise it lists both and diffs them against the
index: new files get UIDs (under the folder lock), renamed files are flag changes, missing
files are expunges. Every change found is published like our own.
"""

from __future__ import annotations

import gc
import os

from mailsuite.errors import TemporaryStoreError
from mailsuite.interfaces import (
    ChangeKind,
    FolderChange,
    MessageInfo,
)
from mailsuite.store.base import REFRESH_LOCK_TIMEOUT, Entry, FolderBase, base_of, with_flags
from mailsuite.store.filenames import INFO_SEPARATOR, arrival_key
from mailsuite.store.writer import clean_tmp


class FolderRescan(FolderBase):
    """Index building and reconciliation with the disk."""

    def _dir_mtimes(self) -> tuple[int, int]:
        try:
            new = os.stat(os.path.join(self.dir, "new")).st_mtime_ns
            cur = os.stat(os.path.join(self.dir, "cur")).st_mtime_ns
        except FileNotFoundError:
            return (-1, -1)
        return (new, cur)

    def _list_names(self) -> tuple[set[str], set[str]]:
        """The file names in new/ and cur/ (new/ listed first, so a file moving from new/ to
        cur/ meanwhile is seen at least once); records the directories' mtimes."""
        mtimes = self._dir_mtimes()
        now_ns = int(self._now() * 1e9)
        listed: list[set[str]] = []
        for sub in ("new", "cur"):
            try:
                names = set(os.listdir(os.path.join(self.dir, sub)))
            except FileNotFoundError:
                names = set()
            hidden = [n for n in names if n[:1] == "."]
            names.difference_update(hidden)
            listed.append(names)
        self._mtimes = mtimes
        # A change in the same clock tick as our scan would not move the mtime: look again.
        self._recent_new = mtimes[0] > now_ns - 2_000_000_000
        self._recent_cur = mtimes[1] > now_ns - 2_000_000_000
        self._dirty = False
        return listed[0], listed[1]

    def _scan(self) -> dict[str, tuple[str, bool]]:
        """base -> (file name, in new/) for every message file."""
        new, cur = self._list_names()
        listing: dict[str, tuple[str, bool]] = {}
        for names, in_new in ((new, True), (cur, False)):
            for filename in names:
                idx = filename.find(INFO_SEPARATOR)
                listing[filename if idx < 0 else filename[:idx]] = (filename, in_new)
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
        incoming = self.incoming
        for base, (filename, in_new) in listing.items():
            uid = uid_of.get(base)
            if uid is None:
                if base not in incoming:
                    unknown.append(base)
            else:
                known.append((uid, filename, in_new))
        if unknown:
            unknown.sort(key=arrival_key)
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
        listed_new, listed_cur = self._list_names()
        return self._apply_listing(listed_new, listed_cur, logged, keywords_changed)

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
                if base not in self.incoming:
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
        unknown.sort(key=lambda item: arrival_key(item[0]))
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
        self,
        listed_new: set[str],
        listed_cur: set[str],
        logged: dict[int, int],
        keywords_changed: bool,
    ) -> list[FolderChange]:
        """Diff the listed names against the index with set operations (in C), then look
        only at the names that differ: renamed (flags), new (UIDs to assign) or gone."""
        uid_of = self.uidlist.uid_of
        entries = self.entries
        known_new = {e[1] for e in entries.values() if e[2]}
        known_cur = {e[1] for e in entries.values() if not e[2]}
        appeared = [(fn, True) for fn in listed_new - known_new]
        appeared += [(fn, False) for fn in listed_cur - known_cur]
        vanished = list(known_new - listed_new) + list(known_cur - listed_cur)
        listing: dict[str, tuple[str, bool]] = {}
        unknown: list[str] = []
        moved: dict[int, tuple[str, bool]] = {}
        for filename, in_new in appeared:  # cur/ after new/: the later sighting wins
            base = base_of(filename)
            uid = uid_of.get(base)
            entry = entries.get(uid) if uid is not None else None
            if entry is None:
                if base in self.incoming:
                    continue
                if base not in listing:
                    unknown.append(base)
                listing[base] = (filename, in_new)
                continue
            assert uid is not None
            moved[uid] = (filename, in_new)
        flag_changes: list[tuple[int, str, bool]] = []
        renamed: list[tuple[int, str, bool]] = []
        candidates = (
            moved.items()
            if not keywords_changed
            else ((uid, moved.get(uid, (e[1], e[2]))) for uid, e in entries.items())
        )
        for uid, (filename, in_new) in candidates:
            idx = filename.find(INFO_SEPARATOR)
            if self.flags_of(filename[idx + 3 :] if idx >= 0 else "") != entries[uid][0].flags:
                flag_changes.append((uid, filename, in_new))
            else:
                renamed.append((uid, filename, in_new))
        outgoing = self.outgoing
        gone = []
        for filename in vanished:
            base = base_of(filename)
            uid = uid_of.get(base)
            if uid is None or uid in moved or uid not in entries or base in outgoing:
                continue
            if entries[uid][1] == filename:
                gone.append(uid)
        if gone:
            # Confirm with a second look: a rename racing with readdir can hide a file once.
            again_new, again_cur = self._list_names()
            present = {base_of(fn) for fn in again_new | again_cur}
            gone = sorted(uid for uid in gone if base_of(entries[uid][1]) not in present)
            self._dirty = True  # files that appeared in the second look are taken next time
        for uid, filename, in_new in renamed:
            entries[uid] = (entries[uid][0], filename, in_new)
        changes: list[FolderChange] = []
        if gone or flag_changes:
            # Not under the folder lock: forget() takes the UID list's own mutex.
            self.uidlist.forget([base_of(entries[uid][1]) for uid in gone])
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
                    modseq = max(logged.get(uid, 0), self.modseq.of.get(uid, 0))
                    if modseq <= old.modseq:
                        modseq = new_modseq
                        fresh.append(uid)
                    entries[uid] = (with_flags(old, flags=flags, modseq=modseq), filename, in_new)
                if fresh:
                    self.modseq.record(fresh, new_modseq)
            self._list = None
            if gone:
                changes.append(self._publish(ChangeKind.EXPUNGED, gone, None))
            if flag_changes:
                uids = sorted(uid for uid, _f, _n in flag_changes)
                changes.append(self._publish(ChangeKind.FLAGS, uids, None))
        if unknown:
            unknown.sort(key=arrival_key)
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

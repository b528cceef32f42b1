"""The core of a folder's shared state: its persistent files and the in-memory index.

``FolderBase`` holds the UID list, modseq log, keyword table, summary cache and the index
(UID -> (MessageInfo, file name, in new/)), and the helpers every part of the state uses
(flag letters, making MessageInfo, the folder lock, publishing changes).
``mailsuite.store.rescan`` builds and reconciles the index from the directory;
``mailsuite.store.folder`` makes changes.
"""

from __future__ import annotations

import itertools
import os
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING, Any

from twisted.internet import defer
from twisted.logger import Logger

from mailsuite.errors import MessageNotFound, TemporaryStoreError
from mailsuite.interfaces import (
    ChangeKind,
    FolderChange,
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
from mailsuite.store.keywords import Keywords
from mailsuite.store.modseq import ModseqLog
from mailsuite.store.uidlist import UidList
from mailsuite.store.writer import clean_tmp

if TYPE_CHECKING:
    from mailsuite.store.maildir import MaildirAccount

# An index entry: (info, file name, True if the file is in new/).
Entry = tuple[MessageInfo, str, bool]

REFRESH_LOCK_TIMEOUT = 2.0  # seconds the reactor thread may wait for the uidlist lock


def base_of(filename: str) -> str:
    """The base name (before ``:2,``) of a message file name."""
    idx = filename.find(INFO_SEPARATOR)
    return filename if idx < 0 else filename[:idx]


class FolderBase:
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
        # Base names of files this process is adding (written, UID not yet assigned) or moving
        # away: a rescan in between must not take them as someone else's change.
        self.incoming: set[str] = set()
        self.outgoing: set[str] = set()
        self.loaded = False
        self.deleted = False
        self.entries: dict[int, Entry] = {}
        self._list: list[MessageInfo] | None = None
        self._flag_sets: dict[str, frozenset[str]] = {}
        # (uid, name) -> (file base name, value): see FolderState.derived
        self._derived: dict[tuple[int, str], tuple[str, Any]] = {}
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
            self.log.warn(
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

    def unload(self) -> None:
        """Drop the index (no views left); the persistent files stay."""
        self.cache.close()
        self._derived = {}
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


def with_flags(info: MessageInfo, *, flags: frozenset[str], modseq: int) -> MessageInfo:
    """A copy of ``info`` with new flags and modseq."""
    return MessageInfo(info.uid, flags, info.size, info.internal_date, modseq, info.pop_id)

"""The store contract: one mixin, run against every IMailStore implementation.

``StoreContract`` is a mixin for ``twisted.trial.unittest.TestCase``; a concrete test class
provides ``make_store()``. Tests that need to see disk effects live in the implementation's
own module; everything here holds for the in-memory store and for the Maildir store alike.
"""

from __future__ import annotations

from twisted.internet import defer
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from mailsuite.errors import (
    FolderExists,
    FolderNotEmpty,
    FolderNotFound,
    InvalidFolderName,
    MessageNotFound,
    QuotaExceeded,
    ReadOnlyFolder,
    SpecialUseNotSupported,
)
from mailsuite.interfaces import (
    INBOX,
    ChangeKind,
    FlagMode,
    IAccountStore,
    IFolder,
    IMailStore,
    Quota,
)
from mailsuite.store.memory import MemoryStore

USER = "alice@example.test"
OTHER = "bob@example.test"
MESSAGE = b"From: a@example.test\r\nSubject: hello\r\n\r\nbody\r\n"
SPECIAL = {"Sent", "Drafts", "Trash", "Junk", "Archive"}
BAD_NAMES = [
    "",
    "/",
    "/etc",
    "a//b",
    "a/",
    "..",
    "a/../b",
    ".hidden",
    "a.b",
    "x\x00y",
    "x\ny",
    "a*",
    "b%",
    "a\\b",
]


class FixedQuotas:
    """A minimal IAccounts stand-in: only quota_of is used by the store."""

    def __init__(self, quotas: dict[str, Quota]) -> None:
        self.quotas = quotas

    def quota_of(self, user: str) -> Quota:
        return self.quotas.get(user, Quota())


class StoreContract:
    """Behaviour every IMailStore must have. Subclasses define make_store(accounts=None)."""

    def make_store(self, accounts=None):
        raise NotImplementedError

    def setUp(self):
        self.store = self.make_store()
        self.account = self.store.account(USER)

    async def deliver(self, raw=MESSAGE, folder=INBOX, flags=(), internal_date=None):
        return await self.account.deliver(
            raw, folder=folder, flags=flags, internal_date=internal_date
        )

    def open(self, name=INBOX, readonly=False):
        folder = self.account.open_folder(name, readonly=readonly)
        self.addCleanup(folder.close)
        return folder

    # --- interfaces -----------------------------------------------------------------------

    def test_store_provides_interface(self):
        self.assertTrue(verifyObject(IMailStore, self.store))

    def test_account_provides_interface(self):
        self.assertTrue(verifyObject(IAccountStore, self.account))

    def test_folder_provides_interface(self):
        self.assertTrue(verifyObject(IFolder, self.open()))

    def test_account_user_is_the_given_address(self):
        self.assertEqual(self.account.user, USER)

    # --- folders --------------------------------------------------------------------------

    def test_new_account_has_inbox_first(self):
        self.assertEqual(self.account.list_folders()[0].name, INBOX)

    def test_new_account_has_special_use_folders(self):
        listed = {f.name: f.special_use for f in self.account.list_folders()}
        self.assertEqual({n: listed.get(n) for n in SPECIAL}, {n: "\\" + n for n in SPECIAL})

    def test_create_folder_is_listed(self):
        self.account.create_folder("Projects")
        self.assertIn("Projects", [f.name for f in self.account.list_folders()])

    def test_create_nested_creates_parents(self):
        self.account.create_folder("a/b/c")
        names = [f.name for f in self.account.list_folders()]
        self.assertTrue({"a", "a/b", "a/b/c"} <= set(names))

    def test_parent_has_children(self):
        self.account.create_folder("a/b")
        info = {f.name: f for f in self.account.list_folders()}
        self.assertEqual((info["a"].has_children, info["a/b"].has_children), (True, False))

    def test_create_existing_folder_fails(self):
        self.account.create_folder("X")
        self.assertRaises(FolderExists, self.account.create_folder, "X")

    def test_unicode_folder_name_round_trips(self):
        self.account.create_folder("Entw\u00fcrfe/\u65e5\u672c & co")
        self.assertIn(
            "Entw\u00fcrfe/\u65e5\u672c & co", [f.name for f in self.account.list_folders()]
        )

    def test_bad_folder_names_are_refused(self):
        refused = []
        for name in BAD_NAMES:
            try:
                self.account.create_folder(name)
            except InvalidFolderName:
                refused.append(name)
        self.assertEqual(refused, BAD_NAMES)

    def test_inbox_is_case_insensitive(self):
        self.assertEqual(self.account.open_folder("inbox").name, INBOX)

    def test_open_missing_folder_fails(self):
        self.assertRaises(FolderNotFound, self.account.open_folder, "Nope")

    def test_delete_folder(self):
        self.account.create_folder("Old")
        self.account.delete_folder("Old")
        self.assertNotIn("Old", [f.name for f in self.account.list_folders()])

    def test_delete_inbox_is_refused(self):
        self.assertRaises(InvalidFolderName, self.account.delete_folder, "INBOX")

    def test_delete_missing_folder_fails(self):
        self.assertRaises(FolderNotFound, self.account.delete_folder, "Nope")

    def test_delete_folder_with_children_fails(self):
        self.account.create_folder("p/c")
        self.assertRaises(FolderNotEmpty, self.account.delete_folder, "p")

    async def _rename_keeps_messages(self):
        self.account.create_folder("Old")
        await self.deliver(folder="Old")
        self.account.rename_folder("Old", "New")
        return len(self.open("New").messages())

    def test_rename_keeps_messages(self):
        d = defer.Deferred.fromCoroutine(self._rename_keeps_messages())
        d.addCallback(self.assertEqual, 1)
        return d

    def test_rename_moves_children(self):
        self.account.create_folder("Old/kid")
        self.account.rename_folder("Old", "New")
        names = {f.name for f in self.account.list_folders()}
        self.assertEqual((("New/kid" in names), ("Old/kid" in names)), (True, False))

    def test_rename_onto_existing_fails(self):
        self.account.create_folder("A")
        self.account.create_folder("B")
        self.assertRaises(FolderExists, self.account.rename_folder, "A", "B")

    async def _rename_inbox(self):
        await self.deliver()
        self.account.rename_folder(INBOX, "Saved")
        return len(self.open(INBOX).messages()), len(self.open("Saved").messages())

    def test_rename_inbox_moves_messages(self):
        d = defer.Deferred.fromCoroutine(self._rename_inbox())
        d.addCallback(self.assertEqual, (0, 1))
        return d

    # --- special use given at creation (RFC 6154 section 3) --------------------------------

    def special_uses(self):
        return {f.name: f.special_use for f in self.account.list_folders()}

    def test_create_with_special_use_is_listed(self):
        self.account.create_folder("Outbox/2026", "\\Sent")
        listed = self.special_uses()
        self.assertEqual((listed["Outbox/2026"], listed["Outbox"], listed["Sent"]),
                         ("\\Sent", None, "\\Sent"))

    def test_create_with_virtual_or_unknown_use_creates_nothing(self):
        for use in ("\\All", "\\Flagged", "\\Bogus"):
            self.assertRaises(SpecialUseNotSupported, self.account.create_folder, "V", use)
        self.assertNotIn("V", self.special_uses())

    def test_special_use_follows_rename_and_ends_with_delete(self):
        self.account.create_folder("Old/Bin", "\\Trash")
        self.account.rename_folder("Old", "New")
        self.assertEqual(self.special_uses().get("New/Bin"), "\\Trash")
        self.account.delete_folder("New/Bin")
        self.account.create_folder("New/Bin")  # the same name again: no leftover use
        self.assertIsNone(self.special_uses()["New/Bin"])

    def test_rename_moves_subscription(self):
        self.account.create_folder("Old")
        self.account.set_subscribed("Old", True)
        self.account.rename_folder("Old", "New")
        subscribed = {f.name for f in self.account.list_folders() if f.subscribed}
        self.assertEqual(("New" in subscribed, "Old" in subscribed), (True, False))

    def test_subscribe(self):
        self.account.create_folder("Lists")
        self.account.set_subscribed("Lists", True)
        self.assertTrue({f.name: f for f in self.account.list_folders()}["Lists"].subscribed)

    def test_unsubscribe(self):
        self.account.create_folder("Lists")
        self.account.set_subscribed("Lists", True)
        self.account.set_subscribed("Lists", False)
        self.assertFalse({f.name: f for f in self.account.list_folders()}["Lists"].subscribed)

    def test_users_are_separate(self):
        self.store.account(OTHER).create_folder("BobOnly")
        self.assertNotIn("BobOnly", [f.name for f in self.account.list_folders()])

    # --- delivery and messages ---------------------------------------------------------------

    async def _deliver_and_read(self):
        info = await self.deliver()
        return self.open().read_message(info.uid)

    def test_delivered_message_reads_back_byte_for_byte(self):
        d = defer.Deferred.fromCoroutine(self._deliver_and_read())
        d.addCallback(self.assertEqual, MESSAGE)
        return d

    async def _chunks(self):
        info = await self.account.deliver([b"Subject: a\r\n", b"\r\n", b"x"])
        return self.open().read_message(info.uid)

    def test_deliver_accepts_chunks(self):
        d = defer.Deferred.fromCoroutine(self._chunks())
        d.addCallback(self.assertEqual, b"Subject: a\r\n\r\nx")
        return d

    async def _open_message(self):
        info = await self.deliver()
        f = self.open().open_message(info.uid)
        try:
            return f.read()
        finally:
            f.close()

    def test_open_message_gives_bytes(self):
        d = defer.Deferred.fromCoroutine(self._open_message())
        d.addCallback(self.assertEqual, MESSAGE)
        return d

    async def _sizes(self):
        info = await self.deliver()
        return info.size, self.open().get(info.uid).size

    def test_size_is_byte_count(self):
        d = defer.Deferred.fromCoroutine(self._sizes())
        d.addCallback(self.assertEqual, (len(MESSAGE), len(MESSAGE)))
        return d

    async def _uids(self):
        infos = [await self.deliver() for _ in range(3)]
        return [i.uid for i in infos], [i.uid for i in self.open().messages()]

    def test_uids_ascend_in_delivery_order(self):
        d = defer.Deferred.fromCoroutine(self._uids())
        d.addCallback(
            lambda r: self.assertEqual(r[0], r[1]) or self.assertEqual(r[0], sorted(set(r[0])))
        )
        return d

    async def _incoming(self):
        for n in range(3):
            await self.account.deliver_incoming(b"Subject: %d\r\n\r\nbody\r\n" % n)
        folder = self.open()
        return [folder.read_message(i.uid)[:10] for i in folder.messages()]

    def test_incoming_deliveries_are_listed_in_arrival_order(self):
        d = defer.Deferred.fromCoroutine(self._incoming())
        d.addCallback(self.assertEqual, [b"Subject: %d" % n for n in range(3)])
        return d

    async def _uidnext(self):
        folder = self.open()
        before = folder.uidnext
        info = await self.deliver()
        return before <= info.uid < folder.uidnext

    def test_uidnext_passes_new_uid(self):
        d = defer.Deferred.fromCoroutine(self._uidnext())
        d.addCallback(self.assertTrue)
        return d

    async def _uid_not_reused(self):
        folder = self.open()
        first = await self.deliver()
        folder.store_flags([first.uid], ["\\Deleted"], FlagMode.ADD)
        folder.expunge()
        second = await self.deliver()
        return second.uid > first.uid

    def test_expunged_uid_is_not_reused(self):
        d = defer.Deferred.fromCoroutine(self._uid_not_reused())
        d.addCallback(self.assertTrue)
        return d

    async def _deliver_flags(self):
        info = await self.deliver(flags=["\\Seen", "$Label1"])
        return self.open().get(info.uid).flags

    def test_deliver_with_flags(self):
        d = defer.Deferred.fromCoroutine(self._deliver_flags())
        d.addCallback(self.assertEqual, frozenset({"\\Seen", "$Label1"}))
        return d

    async def _internal_date(self):
        info = await self.deliver(internal_date=1_600_000_000.0)
        return self.open().get(info.uid).internal_date

    def test_internal_date_is_kept(self):
        d = defer.Deferred.fromCoroutine(self._internal_date())
        d.addCallback(self.assertEqual, 1_600_000_000.0)
        return d

    def test_deliver_to_missing_folder_fails(self):
        d = self.account.deliver(MESSAGE, folder="Nope")
        return self.assertFailure(d, FolderNotFound)

    def test_get_missing_uid_fails(self):
        self.assertRaises(MessageNotFound, self.open().get, 999)

    def test_read_missing_uid_fails(self):
        self.assertRaises(MessageNotFound, self.open().read_message, 999)

    async def _empty_message(self):
        info = await self.deliver(raw=b"")
        return self.open().read_message(info.uid), info.size

    def test_empty_message_is_stored(self):
        d = defer.Deferred.fromCoroutine(self._empty_message())
        d.addCallback(self.assertEqual, (b"", 0))
        return d

    async def _binary_message(self):
        raw = b"Subject: \xff\xfe\x00\r\n\r\n\x00\x01 bare\nlf\rcr"
        info = await self.deliver(raw=raw)
        return self.open().read_message(info.uid) == raw

    def test_binary_message_is_stored_byte_for_byte(self):
        d = defer.Deferred.fromCoroutine(self._binary_message())
        d.addCallback(self.assertTrue)
        return d

    async def _pop_id_stable(self):
        folder = self.open()
        info = await self.deliver()
        folder.store_flags([info.uid], ["\\Seen", "\\Answered"], FlagMode.ADD)
        folder.refresh()
        return info.pop_id, folder.get(info.uid).pop_id

    def test_pop_id_survives_flag_changes(self):
        d = defer.Deferred.fromCoroutine(self._pop_id_stable())
        d.addCallback(lambda r: self.assertEqual(r[0], r[1]))
        return d

    async def _pop_ids_unique(self):
        infos = [await self.deliver() for _ in range(3)]
        return len({i.pop_id for i in infos})

    def test_pop_ids_are_unique(self):
        d = defer.Deferred.fromCoroutine(self._pop_ids_unique())
        d.addCallback(self.assertEqual, 3)
        return d

    # --- flags ----------------------------------------------------------------------------

    async def _flags(self, steps):
        folder = self.open()
        info = await self.deliver()
        for flags, mode in steps:
            folder.store_flags([info.uid], flags, mode)
        return folder.get(info.uid).flags

    def test_add_flags(self):
        d = defer.Deferred.fromCoroutine(
            self._flags([(["\\Seen"], FlagMode.ADD), (["\\Flagged"], FlagMode.ADD)])
        )
        d.addCallback(self.assertEqual, frozenset({"\\Seen", "\\Flagged"}))
        return d

    def test_remove_flags(self):
        d = defer.Deferred.fromCoroutine(
            self._flags([(["\\Seen", "\\Flagged"], FlagMode.ADD), (["\\Seen"], FlagMode.REMOVE)])
        )
        d.addCallback(self.assertEqual, frozenset({"\\Flagged"}))
        return d

    def test_replace_flags(self):
        d = defer.Deferred.fromCoroutine(
            self._flags(
                [(["\\Seen", "\\Flagged"], FlagMode.ADD), (["\\Draft", "Work"], FlagMode.REPLACE)]
            )
        )
        d.addCallback(self.assertEqual, frozenset({"\\Draft", "Work"}))
        return d

    def test_system_flag_case_is_canonical(self):
        d = defer.Deferred.fromCoroutine(self._flags([(["\\seen"], FlagMode.ADD)]))
        d.addCallback(self.assertEqual, frozenset({"\\Seen"}))
        return d

    async def _modseq_bump(self):
        folder = self.open()
        info = await self.deliver()
        before = folder.highest_modseq
        update = folder.store_flags([info.uid], ["\\Seen"], FlagMode.ADD)
        return before, update.changed[0].modseq, folder.highest_modseq

    def test_flag_change_bumps_modseq(self):
        d = defer.Deferred.fromCoroutine(self._modseq_bump())
        d.addCallback(lambda r: self.assertTrue(r[0] < r[1] == r[2], r))
        return d

    async def _no_change(self):
        folder = self.open()
        info = await self.deliver(flags=["\\Seen"])
        return folder.store_flags([info.uid], ["\\Seen"], FlagMode.ADD).changed

    def test_unchanged_flags_report_no_change(self):
        d = defer.Deferred.fromCoroutine(self._no_change())
        d.addCallback(self.assertEqual, [])
        return d

    async def _unchanged_since(self):
        folder = self.open()
        info = await self.deliver()
        old = folder.get(info.uid).modseq
        folder.store_flags([info.uid], ["\\Seen"], FlagMode.ADD)
        update = folder.store_flags([info.uid], ["\\Flagged"], FlagMode.ADD, unchanged_since=old)
        return update.unchanged_since_failed, folder.get(info.uid).flags

    def test_unchanged_since_refuses_modified_message(self):
        d = defer.Deferred.fromCoroutine(self._unchanged_since())
        d.addCallback(self.assertEqual, ([1], frozenset({"\\Seen"})))
        return d

    async def _modseq_persists_in_status(self):
        folder = self.open()
        info = await self.deliver()
        folder.store_flags([info.uid], ["\\Seen"], FlagMode.ADD)
        return self.account.folder_status(INBOX).highest_modseq == folder.highest_modseq

    def test_status_reports_highest_modseq(self):
        d = defer.Deferred.fromCoroutine(self._modseq_persists_in_status())
        d.addCallback(self.assertTrue)
        return d

    # --- expunge, copy, move -------------------------------------------------------------------

    async def _expunge(self):
        folder = self.open()
        keep = await self.deliver()
        drop = await self.deliver()
        folder.store_flags([drop.uid], ["\\Deleted"], FlagMode.ADD)
        gone = folder.expunge()
        return gone, [i.uid for i in folder.messages()], keep.uid, drop.uid

    def test_expunge_removes_deleted_only(self):
        d = defer.Deferred.fromCoroutine(self._expunge())
        d.addCallback(lambda r: self.assertEqual((r[0], r[1]), ([r[3]], [r[2]])))
        return d

    async def _expunge_subset(self):
        folder = self.open()
        a = await self.deliver(flags=["\\Deleted"])
        b = await self.deliver(flags=["\\Deleted"])
        return folder.expunge([b.uid]), [i.uid for i in folder.messages()], a.uid, b.uid

    def test_uid_expunge_limits_to_given_uids(self):
        d = defer.Deferred.fromCoroutine(self._expunge_subset())
        d.addCallback(lambda r: self.assertEqual((r[0], r[1]), ([r[3]], [r[2]])))
        return d

    async def _copy(self):
        folder = self.open()
        info = await self.deliver(flags=["\\Seen"])
        pairs = await folder.copy([info.uid], "Archive")
        target = self.open("Archive")
        new = target.get(pairs[0][1])
        return pairs[0][0], new.flags, target.read_message(new.uid), len(folder.messages())

    def test_copy_keeps_flags_and_bytes(self):
        d = defer.Deferred.fromCoroutine(self._copy())
        d.addCallback(self.assertEqual, (1, frozenset({"\\Seen"}), MESSAGE, 1))
        return d

    async def _move(self):
        folder = self.open()
        info = await self.deliver()
        pairs = await folder.move([info.uid], "Trash")
        return len(pairs), len(folder.messages()), len(self.open("Trash").messages())

    def test_move_removes_from_source(self):
        d = defer.Deferred.fromCoroutine(self._move())
        d.addCallback(self.assertEqual, (1, 0, 1))
        return d

    def test_copy_to_missing_folder_fails(self):
        return self.assertFailure(self.open().copy([1], "Nope"), FolderNotFound)

    # --- read-only ------------------------------------------------------------------------

    def test_readonly_refuses_store(self):
        folder = self.open(readonly=True)
        self.assertRaises(ReadOnlyFolder, folder.store_flags, [1], ["\\Seen"], FlagMode.ADD)

    def test_readonly_refuses_expunge(self):
        self.assertRaises(ReadOnlyFolder, self.open(readonly=True).expunge)

    def test_readonly_refuses_append(self):
        return self.assertFailure(self.open(readonly=True).append(MESSAGE), ReadOnlyFolder)

    def test_readonly_refuses_move(self):
        return self.assertFailure(self.open(readonly=True).move([1], "Trash"), ReadOnlyFolder)

    # --- append ---------------------------------------------------------------------------

    async def _append(self):
        folder = self.open("Drafts")
        seen = []
        folder.subscribe(seen.append)
        info = await folder.append(MESSAGE, flags=["\\Draft"], internal_date=1_700_000_000.0)
        got = folder.get(info.uid)
        return (got.flags, got.internal_date, folder.read_message(info.uid), [c.kind for c in seen])

    def test_append_stores_flags_date_bytes_and_publishes(self):
        d = defer.Deferred.fromCoroutine(self._append())
        d.addCallback(
            self.assertEqual, (frozenset({"\\Draft"}), 1_700_000_000.0, MESSAGE, [ChangeKind.ADDED])
        )
        return d

    async def _append_bad_flag(self):
        await self.open().append(MESSAGE, flags=["bad keyword"])

    def test_append_refuses_invalid_keyword(self):
        from mailsuite.errors import StoreError

        return self.assertFailure(defer.Deferred.fromCoroutine(self._append_bad_flag()), StoreError)

    # --- status ---------------------------------------------------------------------------

    async def _status(self):
        await self.deliver(flags=["\\Seen"])
        await self.deliver()
        s = self.account.folder_status(INBOX)
        return s.messages, s.unseen, s.size

    def test_status_counts(self):
        d = defer.Deferred.fromCoroutine(self._status())
        d.addCallback(self.assertEqual, (2, 1, 2 * len(MESSAGE)))
        return d

    def test_uidvalidity_differs_between_folders(self):
        values = {self.account.folder_status(n).uidvalidity for n in [INBOX, *SPECIAL]}
        self.assertEqual(len(values), 1 + len(SPECIAL))

    # --- events ---------------------------------------------------------------------------

    async def _events_delivery(self):
        seen = []
        self.open().subscribe(seen.append)
        info = await self.deliver()
        return [(c.kind, c.uids, c.user, c.folder) for c in seen], info.uid

    def test_delivery_is_published(self):
        d = defer.Deferred.fromCoroutine(self._events_delivery())
        d.addCallback(lambda r: self.assertEqual(r[0], [(ChangeKind.ADDED, (r[1],), USER, INBOX)]))
        return d

    async def _events_flags(self):
        info = await self.deliver()
        watcher, actor = self.open(), self.open()
        seen = []
        watcher.subscribe(seen.append)
        token = object()
        actor.store_flags([info.uid], ["\\Seen"], FlagMode.ADD, origin=token)
        return [(c.kind, c.uids, c.origin is token) for c in seen], info.uid

    def test_flag_change_is_published_to_other_views_with_origin(self):
        d = defer.Deferred.fromCoroutine(self._events_flags())
        d.addCallback(lambda r: self.assertEqual(r[0], [(ChangeKind.FLAGS, (r[1],), True)]))
        return d

    async def _events_expunge(self):
        info = await self.deliver(flags=["\\Deleted"])
        watcher = self.open()
        seen = []
        watcher.subscribe(seen.append)
        self.open().expunge()
        return [(c.kind, c.uids) for c in seen], info.uid

    def test_expunge_is_published(self):
        d = defer.Deferred.fromCoroutine(self._events_expunge())
        d.addCallback(lambda r: self.assertEqual(r[0], [(ChangeKind.EXPUNGED, (r[1],))]))
        return d

    async def _unsubscribed(self):
        seen = []
        unsubscribe = self.open().subscribe(seen.append)
        unsubscribe()
        await self.deliver()
        return seen

    def test_unsubscribe_stops_events(self):
        d = defer.Deferred.fromCoroutine(self._unsubscribed())
        d.addCallback(self.assertEqual, [])
        return d

    async def _closed(self):
        seen = []
        folder = self.account.open_folder(INBOX)
        folder.subscribe(seen.append)
        folder.close()
        await self.deliver()
        return seen

    def test_close_drops_subscriptions(self):
        d = defer.Deferred.fromCoroutine(self._closed())
        d.addCallback(self.assertEqual, [])
        return d

    async def _other_view_sees(self):
        first = self.open()
        await self.deliver()
        first.refresh()
        return len(first.messages())

    def test_view_sees_delivery_after_refresh(self):
        d = defer.Deferred.fromCoroutine(self._other_view_sees())
        d.addCallback(self.assertEqual, 1)
        return d

    # --- quota ----------------------------------------------------------------------------

    async def _quota_usage(self):
        await self.deliver()
        await self.deliver(folder="Sent")
        q = self.account.quota()
        return q.bytes_used, q.messages_used

    def test_quota_usage_counts_all_folders(self):
        d = defer.Deferred.fromCoroutine(self._quota_usage())
        d.addCallback(self.assertEqual, (2 * len(MESSAGE), 2))
        return d

    def _limited(self, quota):
        self.store = self.make_store(accounts=FixedQuotas({USER: quota}))
        self.account = self.store.account(USER)

    async def _over_quota(self, quota, count):
        self._limited(quota)
        for _ in range(count):
            await self.deliver()

    def test_quota_full_is_temporary(self):
        d = defer.Deferred.fromCoroutine(self._over_quota(Quota(bytes_limit=len(MESSAGE) * 2), 3))
        d = self.assertFailure(d, QuotaExceeded)
        d.addCallback(lambda e: self.assertFalse(e.permanent))
        return d

    def test_message_larger_than_quota_is_permanent(self):
        d = defer.Deferred.fromCoroutine(self._over_quota(Quota(bytes_limit=len(MESSAGE) - 1), 1))
        d = self.assertFailure(d, QuotaExceeded)
        d.addCallback(lambda e: self.assertTrue(e.permanent))
        return d

    def test_message_count_quota(self):
        d = defer.Deferred.fromCoroutine(self._over_quota(Quota(messages_limit=1), 2))
        return self.assertFailure(d, QuotaExceeded)

    # --- summaries ------------------------------------------------------------------------

    async def _summary_cached(self):
        info = await self.deliver()
        folder = self.open()
        return folder.summary(info.uid) == folder.summary(info.uid)

    def test_summary_is_a_dict_and_stable(self):
        d = defer.Deferred.fromCoroutine(self._summary_cached())
        d.addCallback(self.assertTrue)
        return d

    async def _derived_values(self):
        info = await self.deliver()
        folder = self.open()
        subject = folder.derived(info.uid, "test.subject", lambda s: s["envelope"]["subject"])
        again = folder.derived(info.uid, "test.subject", lambda s: "not asked again?")
        other = folder.derived(info.uid, "test.other", lambda s: "other")
        return subject, again, other, folder.summary(info.uid)["envelope"]["subject"]

    def test_derived_is_computed_from_the_summary(self):
        d = defer.Deferred.fromCoroutine(self._derived_values())

        def check(values):
            subject, again, other, expected = values
            self.assertEqual(subject, expected)
            self.assertIn(again, (expected, "not asked again?"))  # a store may or may not keep it
            self.assertEqual(other, "other")  # each name is its own value

        return d.addCallback(check)


class MemoryStoreContractTests(StoreContract, unittest.TestCase):
    """The contract against the in-memory store."""

    def make_store(self, accounts=None):
        return MemoryStore(accounts=accounts)


class MaildirStoreContractTests(StoreContract, unittest.TestCase):
    """The contract against the Maildir store (real files, real thread pool)."""

    def make_store(self, accounts=None):
        from pathlib import Path

        from twisted.internet import reactor

        from mailsuite.store.maildir import MaildirStore
        from mailsuite.store.settings import StoreSettings

        store = MaildirStore(Path(self.mktemp()), StoreSettings(), accounts, reactor)
        self.addCleanup(store.close)
        return store

"""Maildir-specific behaviour: the on-disk format, persistence, other programs, faults."""

from __future__ import annotations

import errno
import json
import mailbox
import os
from pathlib import Path

from twisted.internet import defer, reactor, task
from twisted.trial import unittest

from mailsuite.errors import InvalidFolderName, TemporaryStoreError
from mailsuite.interfaces import INBOX, ChangeKind, FlagMode, Quota
from mailsuite.store.maildir import MaildirStore
from mailsuite.store.settings import StoreSettings
from mailsuite.store.writer import MessageWriter

USER = "alice@example.test"
MESSAGE = b"From: a@example.test\r\nSubject: hello\r\n\r\nbody\r\n"


def run(coro_fn):
    """Decorator: a trial test written as a coroutine."""

    def test(self):
        return defer.Deferred.fromCoroutine(coro_fn(self))

    test.__name__ = coro_fn.__name__
    test.__doc__ = coro_fn.__doc__
    return test


class MaildirTestCase(unittest.TestCase):
    def setUp(self):
        self.root = Path(self.mktemp())
        self.store = self.new_store()
        self.account = self.store.account(USER)
        self.maildir = self.root / "example.test" / "alice"

    def new_store(self, **kwargs):
        settings = kwargs.pop("settings", StoreSettings())
        store = MaildirStore(self.root, settings, kwargs.pop("accounts", None), reactor, **kwargs)
        self.addCleanup(store.close)
        return store

    def open(self, account=None, name=INBOX, readonly=False):
        folder = (account or self.account).open_folder(name, readonly=readonly)
        self.addCleanup(folder.close)
        return folder

    def files(self, sub, folder_dir=None):
        return sorted(os.listdir((folder_dir or self.maildir) / sub))


class LayoutTests(MaildirTestCase):
    def test_user_maildir_is_domain_then_localpart(self):
        self.assertEqual(
            [(self.maildir / sub).is_dir() for sub in ("cur", "new", "tmp")], [True] * 3
        )

    def test_special_folders_are_maildirplusplus_directories(self):
        expected = {".Sent", ".Drafts", ".Trash", ".Junk", ".Archive"}
        self.assertTrue(expected <= set(os.listdir(self.maildir)))

    def test_folder_marker_file(self):
        self.assertTrue((self.maildir / ".Sent" / "maildirfolder").exists())

    def test_nested_folder_is_dotted(self):
        self.account.create_folder("a/b")
        self.assertTrue((self.maildir / ".a.b" / "cur").is_dir())

    def test_unicode_folder_is_stored_in_modified_utf7(self):
        self.account.create_folder("Entw\u00fcrfe")
        self.assertTrue((self.maildir / ".Entw&APw-rfe" / "cur").is_dir())

    def test_bad_names_touch_nothing_outside(self):
        before = sorted(p.relative_to(self.root) for p in self.root.rglob("*"))
        for name in ["../../evil", "/tmp/x", "a/../../b", "..", "x\x00", "a.b", "~/.ssh", "a/\x7f"]:
            try:
                self.account.create_folder(name)
            except InvalidFolderName:
                pass
        after = sorted(p.relative_to(self.root) for p in self.root.rglob("*"))
        self.assertEqual(after, before)

    def test_ampersand_name_is_stored_escaped(self):
        self.account.create_folder("&Jjo")
        self.assertTrue((self.maildir / ".&-Jjo" / "cur").is_dir())

    def test_foreign_directory_with_invalid_utf7_is_not_listed(self):
        (self.maildir / ".&Jjo" / "cur").mkdir(parents=True)
        self.assertNotIn("&Jjo", [f.name for f in self.account.list_folders()])

    def test_unsafe_user_is_refused(self):
        from mailsuite.errors import StoreError

        self.assertRaises(StoreError, self.store.account, "../x@example.test")

    def test_special_use_survives_restart(self):
        self.account.create_folder("Outgoing", "\\Sent")
        account = self.new_store().account(USER)
        listed = {f.name: f.special_use for f in account.list_folders()}
        self.assertEqual(listed["Outgoing"], "\\Sent")
        document = json.loads((self.maildir / "mailsuite-special-use").read_text())
        self.assertEqual(document, {"version": 1, "folders": {"Outgoing": "\\Sent"}})

    def test_special_use_of_folder_removed_by_another_program_is_forgotten(self):
        import shutil

        self.account.create_folder("Outgoing", "\\Sent")
        shutil.rmtree(self.maildir / ".Outgoing")  # mutt or an admin removed it
        self.account.create_folder("Outgoing")
        listed = {f.name: f.special_use for f in self.account.list_folders()}
        self.assertIsNone(listed["Outgoing"])
        self.assertFalse((self.maildir / "mailsuite-special-use").exists())

    def test_subscriptions_file_is_dovecot_v2(self):
        self.account.create_folder("a/b")
        self.account.set_subscribed("a/b", True)
        lines = (self.maildir / "subscriptions").read_text().split("\n")
        self.assertEqual((lines[0], "a\tb" in lines), ("V\t2", True))


class FileNameTests(MaildirTestCase):
    @run
    async def test_delivery_lands_in_new(self):
        info = await self.account.deliver(MESSAGE)
        self.assertEqual(self.files("new"), [info.pop_id])

    @run
    async def test_file_name_carries_size(self):
        await self.account.deliver(MESSAGE)
        self.assertTrue(self.files("new")[0].endswith(f",S={len(MESSAGE)}"))

    @run
    async def test_flags_are_sorted_letters_in_cur(self):
        await self.account.deliver(
            MESSAGE, flags=["\\Seen", "\\Answered", "\\Flagged", "\\Draft", "\\Deleted"]
        )
        self.assertTrue(self.files("cur")[0].endswith(":2,DFRST"))

    @run
    async def test_keywords_use_dovecot_keywords_file(self):
        await self.account.deliver(MESSAGE, flags=["Work", "$Label1"])
        table = (self.maildir / "dovecot-keywords").read_text().splitlines()
        self.assertEqual(
            (sorted(table), self.files("cur")[0][-5:]), (["0 $Label1", "1 Work"], ":2,ab")
        )

    @run
    async def test_keyword_letters_written_by_others_are_read(self):
        (self.maildir / "dovecot-keywords").write_text("0 Important\n")
        (self.maildir / "cur" / "1700000000.x.host:2,Sa").write_bytes(MESSAGE)
        folder = self.open()
        self.assertEqual(folder.messages()[0].flags, frozenset({"\\Seen", "Important"}))

    @run
    async def test_unknown_letters_survive_flag_changes(self):
        (self.maildir / "cur" / "1700000000.x.host:2,SZ").write_bytes(MESSAGE)
        folder = self.open()
        folder.store_flags([folder.messages()[0].uid], ["\\Flagged"], FlagMode.ADD)
        self.assertEqual(self.files("cur"), ["1700000000.x.host:2,FSZ"])


class UidPersistenceTests(MaildirTestCase):
    @run
    async def test_uidlist_is_dovecot_version_3(self):
        info = await self.account.deliver(MESSAGE)
        lines = (self.maildir / "dovecot-uidlist").read_text().splitlines()
        self.assertEqual((lines[0].split()[0], lines[-1]), ("3", f"{info.uid} :{info.pop_id}"))

    @run
    async def test_uids_survive_restart(self):
        infos = [await self.account.deliver(MESSAGE) for _ in range(3)]
        again = self.new_store().account(USER)
        folder = self.open(again)
        self.assertEqual(
            [(i.uid, i.pop_id) for i in folder.messages()], [(i.uid, i.pop_id) for i in infos]
        )

    @run
    async def test_uidvalidity_survives_restart(self):
        before = self.account.folder_status(INBOX).uidvalidity
        self.assertEqual(self.new_store().account(USER).folder_status(INBOX).uidvalidity, before)

    @run
    async def test_uid_survives_move_to_cur_by_another_program(self):
        info = await self.account.deliver(MESSAGE)
        name = self.files("new")[0]
        os.rename(self.maildir / "new" / name, self.maildir / "cur" / (name + ":2,S"))
        folder = self.open(self.new_store().account(USER))
        got = folder.messages()[0]
        self.assertEqual(
            (got.uid, got.pop_id, got.flags), (info.uid, info.pop_id, frozenset({"\\Seen"}))
        )

    @run
    async def test_next_uid_after_restart_is_higher(self):
        first = await self.account.deliver(MESSAGE)
        folder = self.open()
        folder.store_flags([first.uid], ["\\Deleted"], FlagMode.ADD)
        folder.expunge()
        second = await self.new_store().account(USER).deliver(MESSAGE)
        self.assertGreater(second.uid, first.uid)

    def test_recreated_folder_gets_new_uidvalidity(self):
        self.account.create_folder("X")
        first = self.account.folder_status("X").uidvalidity
        self.account.delete_folder("X")
        self.account.create_folder("X")
        self.assertNotEqual(self.account.folder_status("X").uidvalidity, first)

    @run
    async def test_reads_dovecot_records_with_extension_fields(self):
        (self.maildir / "cur" / "1700000000.a.host,S=5:2,S").write_bytes(b"hello")
        (self.maildir / "cur" / "1700000001.b.host,S=5:2,").write_bytes(b"world")
        (self.maildir / "dovecot-uidlist").write_text(
            "3 V1234 N20 Gabcdef\n7 W5 :1700000000.a.host,S=5\n9 W5 :1700000001.b.host,S=5\n"
        )
        store = self.new_store()
        folder = self.open(store.account(USER))
        self.assertEqual(
            ([i.uid for i in folder.messages()], folder.uidvalidity, folder.uidnext),
            ([7, 9], 1234, 20),
        )

    @run
    async def test_modseq_survives_restart(self):
        info = await self.account.deliver(MESSAGE)
        folder = self.open()
        update = folder.store_flags([info.uid], ["\\Seen"], FlagMode.ADD)
        again = self.open(self.new_store().account(USER))
        self.assertEqual(
            (again.get(info.uid).modseq, again.highest_modseq),
            (update.changed[0].modseq, folder.highest_modseq),
        )

    @run
    async def test_deleting_the_cache_keeps_modseq(self):
        info = await self.account.deliver(MESSAGE)
        folder = self.open()
        folder.store_flags([info.uid], ["\\Seen"], FlagMode.ADD)
        folder.summary(info.uid)
        highest = folder.highest_modseq
        (self.maildir / "mailsuite-cache").unlink()
        self.assertEqual(self.open(self.new_store().account(USER)).highest_modseq, highest)


class OtherProgramTests(MaildirTestCase):
    """Python's mailbox.Maildir plays the other Maildir program (mutt, Dovecot)."""

    @run
    async def test_python_mailbox_reads_our_messages_and_flags(self):
        await self.account.deliver(MESSAGE, flags=["\\Seen", "\\Flagged"])
        box = mailbox.Maildir(str(self.maildir), create=False)
        msgs = list(box)
        self.assertEqual((len(msgs), msgs[0].get_flags(), msgs[0]["Subject"]), (1, "FS", "hello"))

    def test_python_mailbox_lists_our_folders(self):
        self.account.create_folder("Projects")
        box = mailbox.Maildir(str(self.maildir), create=False)
        self.assertIn("Projects", box.list_folders())

    @run
    async def test_message_dropped_into_new_appears_with_event(self):
        folder = self.open()
        seen = []
        folder.subscribe(seen.append)
        mailbox.Maildir(str(self.maildir), create=False).add(MESSAGE)
        folder.refresh()
        self.assertEqual(
            (
                [c.kind for c in seen],
                len(folder.messages()),
                folder.read_message(folder.messages()[0].uid),
            ),
            ([ChangeKind.ADDED], 1, MESSAGE),
        )

    @run
    async def test_flag_changed_by_other_program_shows(self):
        info = await self.account.deliver(MESSAGE)
        folder = self.open()
        seen = []
        folder.subscribe(seen.append)
        box = mailbox.Maildir(str(self.maildir), create=False)
        key = next(iter(box.keys()))
        msg = box[key]
        msg.set_subdir("cur")
        msg.add_flag("R")
        box[key] = msg
        folder.refresh()
        self.assertEqual(
            ([(c.kind, c.uids) for c in seen], folder.get(info.uid).flags),
            ([(ChangeKind.FLAGS, (info.uid,))], frozenset({"\\Answered"})),
        )

    @run
    async def test_flag_change_by_other_program_bumps_modseq(self):
        info = await self.account.deliver(MESSAGE)
        folder = self.open()
        before = folder.highest_modseq
        name = self.files("new")[0]
        os.rename(self.maildir / "new" / name, self.maildir / "cur" / (name + ":2,S"))
        folder.refresh()
        self.assertGreater(folder.get(info.uid).modseq, before)

    @run
    async def test_store_does_not_lose_a_flag_set_by_another_program(self):
        info = await self.account.deliver(MESSAGE)
        folder = self.open()
        name = self.files("new")[0]
        os.rename(self.maildir / "new" / name, self.maildir / "cur" / (name + ":2,F"))
        folder.store_flags([info.uid], ["\\Seen"], FlagMode.ADD)
        self.assertEqual(self.files("cur"), [name + ":2,FS"])

    @run
    async def test_expunge_finds_a_file_renamed_by_another_program(self):
        info = await self.account.deliver(MESSAGE, flags=["\\Deleted"])
        folder = self.open()
        name = self.files("cur")[0]
        os.rename(self.maildir / "cur" / name, self.maildir / "cur" / (name + "S"))
        self.assertEqual((folder.expunge(), self.files("cur")), ([info.uid], []))

    @run
    async def test_file_removed_by_other_program_is_expunged(self):
        info = await self.account.deliver(MESSAGE)
        folder = self.open()
        seen = []
        folder.subscribe(seen.append)
        os.unlink(self.maildir / "new" / self.files("new")[0])
        folder.refresh()
        self.assertEqual([(c.kind, c.uids) for c in seen], [(ChangeKind.EXPUNGED, (info.uid,))])

    @run
    async def test_refresh_without_changes_publishes_nothing(self):
        await self.account.deliver(MESSAGE)
        folder = self.open()
        folder.refresh()
        self.assertEqual(folder.refresh(), [])

    @run
    async def test_idle_view_hears_other_process_within_poll_interval(self):
        clock = task.Clock()
        store = self.new_store(clock=clock)
        folder = self.open(store.account(USER))
        seen = []
        folder.subscribe(seen.append)
        mailbox.Maildir(str(self.maildir), create=False).add(MESSAGE)
        clock.advance(StoreSettings().poll_interval)
        self.assertEqual([c.kind for c in seen], [ChangeKind.ADDED])

    @run
    async def test_foreign_file_without_size_in_name(self):
        raw = b"X: y\r\n\r\n" + b"z" * 100
        (self.maildir / "cur" / "1700000000.12345_1.host:2,S").write_bytes(raw)
        info = self.open().messages()[0]
        self.assertEqual((info.size, info.flags), (len(raw), frozenset({"\\Seen"})))


class TwoStoresTests(MaildirTestCase):
    """Two store instances on one tree behave like two mailsuite processes."""

    @run
    async def test_flag_change_in_other_process_keeps_its_modseq(self):
        info = await self.account.deliver(MESSAGE)
        ours = self.open()
        theirs = self.open(self.new_store().account(USER))
        update = theirs.store_flags([info.uid], ["\\Seen"], FlagMode.ADD)
        seen = []
        ours.subscribe(seen.append)
        ours.refresh()
        self.assertEqual(
            ([(c.kind, c.uids) for c in seen], ours.get(info.uid).modseq),
            ([(ChangeKind.FLAGS, (info.uid,))], update.changed[0].modseq),
        )

    @run
    async def test_modseqs_from_two_processes_do_not_collide(self):
        a = await self.account.deliver(MESSAGE)
        b = await self.account.deliver(MESSAGE)
        ours = self.open()
        theirs = self.open(self.new_store().account(USER))
        first = ours.store_flags([a.uid], ["\\Seen"], FlagMode.ADD).changed[0].modseq
        second = theirs.store_flags([b.uid], ["\\Seen"], FlagMode.ADD).changed[0].modseq
        self.assertGreater(second, first)

    @run
    async def test_delivery_in_other_process_gets_next_uid(self):
        first = await self.account.deliver(MESSAGE)
        second = await self.new_store().account(USER).deliver(MESSAGE)
        third = await self.account.deliver(MESSAGE)
        self.assertEqual([first.uid, second.uid, third.uid], [1, 2, 3])

    @run
    async def test_expunge_in_other_process_is_noticed(self):
        info = await self.account.deliver(MESSAGE, flags=["\\Deleted"])
        ours = self.open()
        self.open(self.new_store().account(USER)).expunge()
        seen = []
        ours.subscribe(seen.append)
        ours.refresh()
        self.assertEqual([(c.kind, c.uids) for c in seen], [(ChangeKind.EXPUNGED, (info.uid,))])


class BadMessageTests(MaildirTestCase):
    @run
    async def test_bad_files_are_listed_and_read_byte_for_byte(self):
        bad = [
            b"",
            b"\x00\x00\x00",
            b"Subject: \xff\xfe\r\n\r\n",
            b"no header at all",
            b"Subject: trunc",
        ]
        for i, raw in enumerate(bad):
            (self.maildir / "new" / f"170000000{i}.bad{i}.host").write_bytes(raw)
        folder = self.open()
        self.assertEqual([folder.read_message(i.uid) for i in folder.messages()], bad)

    @run
    async def test_bad_files_have_summaries(self):
        (self.maildir / "new" / "1700000000.nul.host").write_bytes(b"\x00\xff\r\n\r\n\x00")
        folder = self.open()
        self.assertIsInstance(folder.summary(folder.messages()[0].uid), dict)


class CacheTests(MaildirTestCase):
    @run
    async def test_summary_is_persisted(self):
        info = await self.account.deliver(MESSAGE)
        self.open().summary(info.uid)
        lines = (self.maildir / "mailsuite-cache").read_text().splitlines()
        self.assertEqual(lines[1].split("\t")[:2], [str(info.uid), info.pop_id])

    @run
    async def test_cached_summary_is_not_recomputed(self):
        info = await self.account.deliver(MESSAGE)
        first = self.open().summary(info.uid)
        # Replace the stored summary with a marker: a fresh store must return the marker.
        path = self.maildir / "mailsuite-cache"
        lines = path.read_text().splitlines()
        uid, base, _ = lines[1].split("\t", 2)
        marker = dict(first, marker=1)
        path.write_text("\n".join([lines[0], f"{uid}\t{base}\t" + json.dumps(marker)]) + "\n")
        again = self.open(self.new_store().account(USER)).summary(info.uid)
        self.assertEqual(again, marker)

    @run
    async def test_summary_of_another_parser_version_is_recomputed(self):
        info = await self.account.deliver(MESSAGE)
        first = self.open().summary(info.uid)
        path = self.maildir / "mailsuite-cache"
        lines = path.read_text().splitlines()
        uid, base, _ = lines[1].split("\t", 2)
        old = dict(first, version=-1)
        path.write_text("\n".join([lines[0], f"{uid}\t{base}\t" + json.dumps(old)]) + "\n")
        self.assertEqual(self.open(self.new_store().account(USER)).summary(info.uid), first)

    @run
    async def test_corrupt_cache_is_rebuilt(self):
        info = await self.account.deliver(MESSAGE)
        expected = self.open().summary(info.uid)
        (self.maildir / "mailsuite-cache").write_bytes(b"\x00garbage\nmore\tgarbage\n")
        got = self.open(self.new_store().account(USER)).summary(info.uid)
        self.assertEqual(got, expected)

    @run
    async def test_cache_for_another_uidvalidity_is_ignored(self):
        info = await self.account.deliver(MESSAGE)
        folder = self.open()
        expected = folder.summary(info.uid)
        path = self.maildir / "mailsuite-cache"
        lines = path.read_text().splitlines()
        uid, base, _ = lines[1].split("\t", 2)
        path.write_text(f"mailsuite-cache 1 V1\n{uid}\t{base}\t" + json.dumps({"stale": 1}) + "\n")
        self.assertEqual(self.open(self.new_store().account(USER)).summary(info.uid), expected)

    @run
    async def test_cache_entry_for_another_file_is_ignored(self):
        info = await self.account.deliver(MESSAGE)
        folder = self.open()
        expected = folder.summary(info.uid)
        path = self.maildir / "mailsuite-cache"
        lines = path.read_text().splitlines()
        path.write_text(
            lines[0] + f"\n{info.uid}\tsome-other-file\t" + json.dumps({"stale": 1}) + "\n"
        )
        self.assertEqual(self.open(self.new_store().account(USER)).summary(info.uid), expected)

    @run
    async def test_compaction_keeps_live_summaries_only(self):
        folder = self.open()
        infos = [await self.account.deliver(MESSAGE) for _ in range(3)]
        expected = [folder.summary(i.uid) for i in infos]
        folder.store_flags([infos[0].uid, infos[1].uid], ["\\Deleted"], FlagMode.ADD)
        folder.expunge()
        state = self.store.states[(USER, INBOX)]
        state.cache.compact({infos[2].uid: infos[2].pop_id}, folder.uidvalidity)
        records = (self.maildir / "mailsuite-cache").read_text().splitlines()[1:]
        fresh = self.open(self.new_store().account(USER))
        self.assertEqual(
            ([r.split("\t")[0] for r in records], fresh.summary(infos[2].uid)),
            ([str(infos[2].uid)], expected[2]),
        )


class TmpCleanupTests(MaildirTestCase):
    def test_old_tmp_files_are_removed_on_open(self):
        old = self.maildir / "tmp" / "old"
        fresh = self.maildir / "tmp" / "fresh"
        old.write_bytes(b"partial")
        fresh.write_bytes(b"partial")
        ancient = 1_000_000_000
        os.utime(old, (ancient, ancient))
        self.new_store().account(USER)
        self.assertEqual(self.files("tmp"), ["fresh"])


class QuotaTests(MaildirTestCase):
    @run
    async def test_default_quota_from_settings(self):
        store = self.new_store(settings=StoreSettings(default_quota_messages=1))
        account = store.account("bob@example.test")
        await account.deliver(MESSAGE)
        from mailsuite.errors import QuotaExceeded

        with self.assertRaises(QuotaExceeded):
            await account.deliver(MESSAGE)

    @run
    async def test_quota_counts_files_written_by_others(self):
        (self.maildir / "new" / "1700000000.x.host").write_bytes(b"x" * 10)
        self.assertEqual(self.store.account(USER).quota().bytes_used, 10)

    @run
    async def test_account_quota_overrides_default(self):
        class Accounts:
            def quota_of(self, user):
                return Quota(bytes_limit=10**6)

        store = self.new_store(settings=StoreSettings(default_quota_bytes=1), accounts=Accounts())
        info = await store.account("carol@example.test").deliver(MESSAGE)
        self.assertEqual(info.size, len(MESSAGE))


class FullDisk(MessageWriter):
    """A writer whose disk fills up after a few bytes of the message."""

    def write_chunks(self, fd, chunks):
        os.write(fd, b"partial")
        raise OSError(errno.ENOSPC, "No space left on device")


class DiskFullTests(MaildirTestCase):
    @run
    async def test_disk_full_is_temporary_and_leaves_nothing(self):
        store = self.new_store(writer=FullDisk())
        with self.assertRaises(TemporaryStoreError):
            await store.account(USER).deliver(MESSAGE)
        self.assertEqual((self.files("tmp"), self.files("new"), self.files("cur")), ([], [], []))

    @run
    async def test_store_works_after_disk_full(self):
        store = self.new_store(writer=FullDisk())
        try:
            await store.account(USER).deliver(MESSAGE)
        except TemporaryStoreError:
            pass
        info = await self.account.deliver(MESSAGE)
        self.assertEqual(self.open().read_message(info.uid), MESSAGE)


class UidListFullTests(MaildirTestCase):
    @run
    async def test_failed_uid_assignment_leaves_no_message(self):
        state = self.account.state(INBOX)

        def full(*args, **kwargs):
            raise OSError(errno.ENOSPC, "No space left on device")

        state.uidlist.assign = full
        with self.assertRaises(TemporaryStoreError):
            await self.account.deliver(MESSAGE)
        self.flushLoggedErrors(OSError)  # the store logs the failure for the operator
        self.assertEqual((self.files("new"), self.files("tmp")), ([], []))


class FailingOnce(MessageWriter):
    """A writer whose disk is full for the one message containing ``poison``."""

    def __init__(self, poison):
        self.poison = poison

    def write_chunks(self, fd, chunks):
        if any(self.poison in c for c in chunks):
            raise OSError(errno.ENOSPC, "No space left on device")
        super().write_chunks(fd, chunks)


class HeldDirectoryFsync:
    """Stands in for the fsync of new/ (in the pool thread): blocks until the test says."""

    def __init__(self):
        import threading

        self.requested = threading.Event()
        self.release = threading.Event()
        self.paths = []

    def __call__(self, path):
        self.paths.append(path)
        self.requested.set()
        assert self.release.wait(30)


class IncomingDeliveryTests(MaildirTestCase):
    @run
    async def test_lands_in_new_and_gets_its_uid_from_the_first_reader(self):
        await self.account.deliver_incoming(MESSAGE)
        self.assertEqual((len(self.files("new")), self.files("tmp")), (1, []))
        uidlist = (self.maildir / "dovecot-uidlist").read_text()
        self.assertNotIn(self.files("new")[0], uidlist)  # no UID work at delivery
        folder = self.open()
        [info] = folder.messages()
        self.assertEqual(folder.read_message(info.uid), MESSAGE)

    @run
    async def test_nothing_is_acknowledged_before_new_is_fsynced(self):
        from twisted.internet import threads

        from mailsuite.store.dirsync import SharedDirectoryFsync

        held = HeldDirectoryFsync()
        self.store.dir_fsync = SharedDirectoryFsync(held)
        delivering = self.account.deliver_incoming(MESSAGE)
        self.assertTrue(await threads.deferToThread(held.requested.wait, 30))
        # The file is written, fsynced and named in new/; new/ is not fsynced yet.
        self.assertEqual((len(self.files("new")), delivering.called), (1, False))
        held.release.set()
        await delivering
        self.assertEqual(held.paths, [str(self.maildir / "new")])

    @run
    async def test_concurrent_deliveries_each_get_their_own_result(self):
        account = self.new_store(writer=FailingOnce(b"poison")).account(USER)
        bodies = [b"Subject: %d\r\n\r\n%s\r\n" % (n, b"poison" if n == 7 else b"ok")
                  for n in range(20)]
        results = await defer.DeferredList(
            [account.deliver_incoming(body) for body in bodies], consumeErrors=True
        )
        failed = [n for n, (ok, _) in enumerate(results) if not ok]
        self.assertEqual(failed, [7])
        self.assertIsInstance(results[7][1].value, TemporaryStoreError)
        self.assertEqual((len(self.files("new")), self.files("tmp")), (19, []))

    @run
    async def test_deliveries_arriving_during_a_commit_share_the_next_one(self):
        """While one batch waits for its fsync of new/, later deliveries gather and are then
        written together: one more batch and one more directory fsync for all of them."""
        from twisted.internet import threads

        from mailsuite.store.dirsync import SharedDirectoryFsync
        from mailsuite.store.name_durability import NameDurability

        held = HeldDirectoryFsync()
        self.store.dir_fsync = SharedDirectoryFsync(held)
        # Each batch then fsyncs new/, whatever the file system (the test holds that fsync).
        self.store.committer.name_durability = NameDurability("always")
        first = self.account.deliver_incoming(MESSAGE)
        self.assertTrue(await threads.deferToThread(held.requested.wait, 30))
        later = [self.account.deliver_incoming(b"Subject: %d\r\n\r\nx\r\n" % n)
                 for n in range(10)]
        self.assertEqual([d.called for d in later], [False] * 10)
        held.release.set()
        await defer.gatherResults([first, *later])
        self.assertEqual(self.store.committer.batches, 2)
        self.assertEqual(held.paths, [str(self.maildir / "new")] * 2)
        self.assertEqual((len(self.files("new")), self.files("tmp")), (11, []))

    @run
    async def test_failed_directory_fsync_fails_the_deliveries_of_that_folder(self):
        from mailsuite.store.dirsync import SharedDirectoryFsync

        def broken(path):
            raise OSError(errno.EIO, "Input/output error")

        self.store.dir_fsync = SharedDirectoryFsync(broken)
        with self.assertRaises(TemporaryStoreError):
            await self.account.deliver_incoming(MESSAGE)

    @run
    async def test_watched_folder_hears_the_delivery_at_once(self):
        folder = self.open()
        seen = []
        folder.subscribe(seen.append)
        await self.account.deliver_incoming(MESSAGE)
        self.assertEqual([c.kind for c in seen], [ChangeKind.ADDED])

    @run
    async def test_quota_is_checked(self):
        from mailsuite.errors import QuotaExceeded

        store = self.new_store(settings=StoreSettings(default_quota_bytes=10))
        with self.assertRaises(QuotaExceeded):
            await store.account(USER).deliver_incoming(MESSAGE)
        self.assertEqual(self.files("new"), [])


class PausingWriter(MessageWriter):
    """Stops after the files of a copy/move are in place, until the test lets it go on."""

    def __init__(self):
        import threading

        self.placed = threading.Event()
        self.resume = threading.Event()

    def transfer(self, *args, **kwargs):
        super().transfer(*args, **kwargs)
        self.placed.set()
        self.resume.wait(30)


class InFlightTests(MaildirTestCase):
    @run
    async def test_rescan_during_move_leaves_the_expunge_to_the_mover(self):
        writer = PausingWriter()
        account = self.new_store(writer=writer).account(USER)
        info = await account.deliver(MESSAGE)
        folder = self.open(account)
        seen = []
        folder.subscribe(seen.append)
        token = object()
        moving = folder.move([info.uid], "Trash", origin=token)
        self.assertTrue(writer.placed.wait(30))
        folder.refresh()  # the file is gone from INBOX already
        writer.resume.set()
        await moving
        self.assertEqual([(c.kind, c.origin is token) for c in seen], [(ChangeKind.EXPUNGED, True)])

    @run
    async def test_rescan_during_copy_does_not_add_twice(self):
        writer = PausingWriter()
        account = self.new_store(writer=writer).account(USER)
        info = await account.deliver(MESSAGE)
        trash = self.open(account, "Trash")
        seen = []
        trash.subscribe(seen.append)
        copying = self.open(account).copy([info.uid], "Trash")
        self.assertTrue(writer.placed.wait(30))
        trash.refresh()  # the copy is in Trash/new already, without a UID
        writer.resume.set()
        pairs = await copying
        self.assertEqual([(c.kind, c.uids) for c in seen], [(ChangeKind.ADDED, (pairs[0][1],))])


class ConcurrencyTests(MaildirTestCase):
    @run
    async def test_parallel_deliveries_get_unique_ascending_uids(self):
        infos = await defer.gatherResults([self.account.deliver(MESSAGE) for _ in range(50)])
        uids = [i.uid for i in infos]
        self.assertEqual(sorted(uids), list(range(1, 51)))

    @run
    async def test_parallel_deliveries_are_all_listed(self):
        folder = self.open()
        await defer.gatherResults([self.account.deliver(MESSAGE) for _ in range(20)])
        self.assertEqual(len(folder.messages()), 20)

    def test_stale_lock_of_dead_process_is_broken(self):
        import socket
        import subprocess
        import sys

        dead = subprocess.run(
            [sys.executable, "-c", "import os; print(os.getpid())"],
            capture_output=True,
            text=True,
            check=True,
        )
        (self.maildir / "dovecot-uidlist.lock").write_text(
            f"{dead.stdout.strip()}:{socket.gethostname()}\n"
        )
        d = self.account.deliver(MESSAGE)
        d.addCallback(lambda info: self.assertEqual(info.uid, 1))
        return d


class LimitsTests(MaildirTestCase):
    @run
    async def test_27th_keyword_is_refused(self):
        from mailsuite.errors import StoreError

        info = await self.account.deliver(MESSAGE)
        folder = self.open()
        folder.store_flags([info.uid], [f"k{i}" for i in range(26)], FlagMode.ADD)
        with self.assertRaises(StoreError):
            folder.store_flags([info.uid], ["one-too-many"], FlagMode.ADD)

    @run
    async def test_idle_folder_states_are_bounded(self):
        from mailsuite.store.maildir import IDLE_STATES

        for i in range(IDLE_STATES + 10):
            self.account.create_folder(f"f{i}")
            await self.account.deliver(MESSAGE, folder=f"f{i}")
        self.assertLessEqual(len(self.store.states), IDLE_STATES + 1)

    @run
    async def test_expunged_records_are_compacted_from_uidlist(self):
        folder = self.open()
        infos = [await self.account.deliver(MESSAGE) for _ in range(3)]
        folder.store_flags([i.uid for i in infos[:2]], ["\\Deleted"], FlagMode.ADD)
        folder.expunge()
        state = self.store.states[(USER, INBOX)]
        state.uidlist.compact([infos[2].pop_id])
        lines = (self.maildir / "dovecot-uidlist").read_text().splitlines()
        self.assertEqual(
            (lines[0].split()[2], lines[1:]), ("N4", [f"{infos[2].uid} :{infos[2].pop_id}"])
        )


class PeriodicTmpCleanupTests(MaildirTestCase):
    def test_watched_folder_tmp_is_swept_periodically(self):
        from mailsuite.store.maildir import TMP_CLEAN_INTERVAL

        clock = task.Clock()
        clock.advance(2_000_000_000)
        store = self.new_store(clock=clock)
        folder = self.open(store.account(USER))
        folder.subscribe(lambda change: None)
        (self.maildir / "tmp" / "left-behind").write_bytes(b"partial")
        clock.advance(TMP_CLEAN_INTERVAL + StoreSettings().poll_interval)
        self.assertEqual(self.files("tmp"), [])


class DerivedValueTests(MaildirTestCase):
    """FolderState.derived: computed once per message and name, never served for another file."""

    @run
    async def test_computed_once_then_remembered(self):
        info = await self.account.deliver(MESSAGE)
        folder = self.open()
        calls = []

        def subject(summary):
            calls.append(summary["envelope"]["subject"])
            return summary["envelope"]["subject"]

        self.assertEqual([folder.derived(info.uid, "subject", subject) for _ in range(3)],
                         ["hello"] * 3)
        self.assertEqual(calls, ["hello"])
        # Shared by every view of the folder.
        self.assertEqual(self.open().derived(info.uid, "subject", subject), "hello")
        self.assertEqual(calls, ["hello"])

    @run
    async def test_a_value_for_another_file_is_computed_again(self):
        info = await self.account.deliver(MESSAGE)
        folder = self.open()
        folder.derived(info.uid, "subject", lambda s: s["envelope"]["subject"])
        state = self.account.state(INBOX)
        # As after a UIDVALIDITY change: the same UID, a value remembered for another file.
        state._derived[(info.uid, "subject")] = ("1.M1P1.elsewhere", "stale")
        self.assertEqual(folder.derived(info.uid, "subject", lambda s: s["envelope"]["subject"]),
                         "hello")

    @run
    async def test_bounded(self):
        from mailsuite.store import folder as folder_module

        self.patch(folder_module, "DERIVED_LIMIT", 3)
        infos = [await self.account.deliver(MESSAGE) for _ in range(5)]
        folder = self.open()
        for info in infos:
            folder.derived(info.uid, "subject", lambda s: s["envelope"]["subject"])
        self.assertLessEqual(len(self.account.state(INBOX)._derived), 3)


class CloseTests(MaildirTestCase):
    @run
    async def test_close_gives_back_the_spare_files(self):
        await self.account.deliver_incoming(MESSAGE)
        spares = self.store.committer.spares
        spares.prepare([str(self.maildir)])
        if not self.store.writer.uses_unnamed_files:
            raise unittest.SkipTest("this file system has no O_TMPFILE")
        self.assertEqual(len(spares), 1)
        self.store.close()
        self.assertEqual(len(spares), 0)
        await self.account.deliver_incoming(MESSAGE)  # a later delivery makes its own file
        self.assertEqual(len(self.files("new")), 2)


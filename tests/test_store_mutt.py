"""Interop with mutt on the same Maildir (mutt driven in batch mode under ``script``)."""

from __future__ import annotations

import os
import shutil
import subprocess
from pathlib import Path

from twisted.internet import defer, reactor
from twisted.trial import unittest

from mailsuite.interfaces import INBOX, ChangeKind
from mailsuite.store.maildir import MaildirStore
from mailsuite.store.settings import StoreSettings

USER = "alice@example.test"
MESSAGE = b"From: a@example.test\r\nSubject: hello\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\nbody\r\n"
MUTT = shutil.which("mutt")
SCRIPT = shutil.which("script")


def run_mutt(maildir: Path, keys: str) -> None:
    """Open ``maildir`` in mutt, type ``keys`` (mutt push syntax), then sync and quit."""
    maildir = maildir.resolve()
    command = (
        f"mutt -n -F /dev/null -f {maildir} -e 'set folder={maildir}' -e 'set mbox_type=Maildir' "
        f"-e 'set mark_old=no' "
        f"-e 'set move=no' -e 'set delete=yes' -e 'set quit=yes' -e 'push \"{keys}<sync-mailbox><quit>\"'"
    )
    env = dict(os.environ, TERM="xterm", HOME=str(maildir.parent))
    subprocess.run(
        [SCRIPT, "-qec", command, "/dev/null"],
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        timeout=30,
        check=True,
    )


class MuttTests(unittest.TestCase):
    if MUTT is None or SCRIPT is None:
        skip = "mutt or script(1) is not installed"

    def setUp(self):
        self.root = Path(self.mktemp())
        self.store = MaildirStore(self.root, StoreSettings(), None, reactor)
        self.addCleanup(self.store.close)
        self.account = self.store.account(USER)
        self.maildir = self.root / "example.test" / "alice"

    def test_flag_set_by_mutt_shows_with_event(self):
        async def scenario():
            info = await self.account.deliver(MESSAGE)
            folder = self.account.open_folder(INBOX)
            self.addCleanup(folder.close)
            seen = []
            folder.subscribe(seen.append)
            run_mutt(self.maildir, "<flag-message>")
            folder.refresh()
            self.assertEqual(
                ([(c.kind, c.uids) for c in seen], "\\Flagged" in folder.get(info.uid).flags),
                ([(ChangeKind.FLAGS, (info.uid,))], True),
            )

        return defer.Deferred.fromCoroutine(scenario())

    def test_delete_by_mutt_is_an_expunge(self):
        async def scenario():
            info = await self.account.deliver(MESSAGE)
            folder = self.account.open_folder(INBOX)
            self.addCleanup(folder.close)
            seen = []
            folder.subscribe(seen.append)
            run_mutt(self.maildir, "<delete-message>")
            folder.refresh()
            self.assertEqual([(c.kind, c.uids) for c in seen], [(ChangeKind.EXPUNGED, (info.uid,))])

        return defer.Deferred.fromCoroutine(scenario())

    def test_mutt_sees_our_flags(self):
        """mutt toggles \\Seen off on a message we stored as seen: its rename drops our S."""

        async def scenario():
            info = await self.account.deliver(MESSAGE, flags=["\\Seen", "\\Answered"])
            folder = self.account.open_folder(INBOX)
            self.addCleanup(folder.close)
            run_mutt(self.maildir, "<toggle-new>")
            folder.refresh()
            self.assertEqual(folder.get(info.uid).flags, frozenset({"\\Answered"}))

        return defer.Deferred.fromCoroutine(scenario())

    def test_uid_and_pop_id_survive_mutt(self):
        async def scenario():
            info = await self.account.deliver(MESSAGE)
            run_mutt(self.maildir, "<flag-message>")
            folder = (
                MaildirStore(self.root, StoreSettings(), None, reactor)
                .account(USER)
                .open_folder(INBOX)
            )
            self.addCleanup(folder.close)
            got = folder.messages()[0]
            self.assertEqual((got.uid, got.pop_id), (info.uid, info.pop_id))

        return defer.Deferred.fromCoroutine(scenario())

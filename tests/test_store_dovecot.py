"""Interop with Dovecot (2.3) on the same tree: Dovecot's imap binary in PREAUTH mode.

Dovecot reads our UIDs, UIDVALIDITY, flags, keywords, folders and subscriptions; what Dovecot
writes (an APPEND, a keyword, its rewritten dovecot-uidlist) reads back in our store. Skipped
unless Dovecot is installed and we are root (Dovecot refuses to run mail access as root, so
the tree is handed to ``nobody`` for the test).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
import tempfile
from pathlib import Path

from twisted.internet import defer, reactor
from twisted.trial import unittest

from mailsuite.interfaces import INBOX, FlagMode
from mailsuite.store.maildir import MaildirStore
from mailsuite.store.settings import StoreSettings

IMAP_BINARY = "/usr/lib/dovecot/imap"
USER = "alice@example.test"
CONFIG = """\
mail_location = maildir:{root}/mail/example.test/%n:LAYOUT=maildir++
first_valid_uid = 0
first_valid_gid = 0
mail_uid = nobody
mail_gid = {group}
userdb {{
  driver = static
  args = uid=nobody gid={group} home={root}/home/%n
}}
passdb {{
  driver = static
  args = password=x
}}
ssl = no
log_path = /dev/null
base_dir = {root}/run
state_dir = {root}/state
namespace inbox {{
  inbox = yes
  separator = /
}}
"""


def _usable() -> str | None:
    if not os.path.exists(IMAP_BINARY):
        return "Dovecot is not installed"
    if os.geteuid() != 0:
        return "needs root to hand the tree to nobody"
    try:
        pwd.getpwnam("nobody")
    except KeyError:
        return "no user nobody"
    return None


class DovecotInteropTests(unittest.TestCase):
    skip = _usable()

    def setUp(self):
        self.root = Path(tempfile.mkdtemp(prefix="store-dovecot-"))
        self.addCleanup(shutil.rmtree, self.root, True)
        os.chmod(self.root, 0o755)
        group = "nogroup"
        try:
            import grp

            grp.getgrnam(group)
        except KeyError:
            group = "nobody"
        (self.root / "dovecot.conf").write_text(CONFIG.format(root=self.root, group=group))
        for sub in ("run", "state", "home/alice"):
            (self.root / sub).mkdir(parents=True)
        self.store = self.new_store()
        self.account = self.store.account(USER)

    def new_store(self):
        store = MaildirStore(self.root / "mail", StoreSettings(fsync=False), None, reactor)
        self.addCleanup(store.close)
        return store

    def dovecot(self, *commands: str) -> str:
        """Run Dovecot's imap on the tree with these tagged commands; return its output."""
        subprocess.run(
            ["chown", "-R", "nobody:", str(self.root / "mail"), str(self.root / "home")], check=True
        )
        script = "".join(f"t{i} {c}\r\n" for i, c in enumerate(commands)) + "z LOGOUT\r\n"
        env = {
            "USER": "alice",
            "HOME": str(self.root / "home" / "alice"),
            "PATH": os.environ.get("PATH", ""),
        }
        out = subprocess.run(
            [IMAP_BINARY, "-c", str(self.root / "dovecot.conf")],
            input=script.encode(),
            capture_output=True,
            env=env,
            timeout=30,
            check=True,
        )
        return out.stdout.decode("utf-8", "replace")

    async def _seed(self):
        first = await self.account.deliver(b"Subject: one\r\n\r\nbody\r\n")
        second = await self.account.deliver(
            b"Subject: two\r\n\r\nbody\r\n", flags=["\\Seen", "Work"]
        )
        folder = self.account.open_folder(INBOX)
        folder.store_flags([first.uid], ["\\Flagged"], FlagMode.ADD)
        folder.close()
        return first, second

    def test_dovecot_sees_our_uids_flags_and_keywords(self):
        async def scenario():
            first, second = await self._seed()
            out = self.dovecot("SELECT INBOX", "FETCH 1:* (UID FLAGS)")
            self.assertIn(f"* 1 FETCH (UID {first.uid} FLAGS (\\Flagged))", out)
            self.assertIn(f"* 2 FETCH (UID {second.uid} FLAGS (\\Seen Work))", out)

        return defer.Deferred.fromCoroutine(scenario())

    def test_dovecot_sees_our_uidvalidity(self):
        async def scenario():
            await self._seed()
            uidvalidity = self.account.folder_status(INBOX).uidvalidity
            self.assertIn(f"[UIDVALIDITY {uidvalidity}]", self.dovecot("SELECT INBOX"))

        return defer.Deferred.fromCoroutine(scenario())

    def test_dovecot_lists_our_unicode_folder_and_subscriptions(self):
        self.account.create_folder("Entw\u00fcrfe/sub")
        self.account.set_subscribed("Entw\u00fcrfe/sub", True)
        out = self.dovecot('LIST "" "*"', 'LSUB "" "*"')
        self.assertEqual(
            ('"/" Entw&APw-rfe/sub\r\n' in out, '* LSUB () "/" Entw&APw-rfe/sub\r\n' in out),
            (True, True),
        )

    def test_what_dovecot_writes_reads_back(self):
        async def scenario():
            first, second = await self._seed()
            self.dovecot(
                "SELECT INBOX",
                "STORE 1 +FLAGS (Dove)",
                "APPEND INBOX (\\Seen) {12+}\r\nSubject: d\r\n",
            )
            folder = self.new_store().account(USER).open_folder(INBOX)
            self.addCleanup(folder.close)
            got = [(m.uid, m.flags) for m in folder.messages()]
            self.assertEqual(
                got,
                [
                    (first.uid, frozenset({"\\Flagged", "Dove"})),
                    (second.uid, frozenset({"\\Seen", "Work"})),
                    (second.uid + 1, frozenset({"\\Seen"})),
                ],
            )

        return defer.Deferred.fromCoroutine(scenario())

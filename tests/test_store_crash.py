"""Crash safety and multi-process UID assignment, with real processes.

- A child process delivers in a loop through ``MaildirStore`` (four deliveries in flight, with
  and without flags) and is SIGKILLed at random points; afterwards every file in new/ and cur/ is a complete message, the UID list is
  sane, and opening the folder gives every message a UID.
- Two processes assign UIDs in the same folder at once: every UID is unique and ascending.
"""

from __future__ import annotations

import os
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from twisted.internet import reactor
from twisted.trial import unittest

from mailsuite.interfaces import INBOX
from mailsuite.store.filenames import size_from_base, split_name
from mailsuite.store.maildir import MaildirStore
from mailsuite.store.settings import StoreSettings

REPO = str(Path(__file__).resolve().parent.parent)
USER = "crash@example.test"
TRAILER = b"\r\nEND-OF-MESSAGE\r\n"
KILL_ROUNDS = 6

DELIVER_LOOP = r"""
import sys
from twisted.internet import defer, reactor
from mailsuite.store.maildir import MaildirStore
from mailsuite.store.settings import StoreSettings
root, limit = sys.argv[1], int(sys.argv[2])
account = MaildirStore(root, StoreSettings(fsync=False), None, reactor).account("crash@example.test")

async def loop(start):
    for n in range(start, limit, 4):
        body = b"Subject: %d\r\n\r\n" % n + b"x" * (n * 997 % 200000) + b"\r\nEND-OF-MESSAGE\r\n"
        chunks = [body[i:i + 4096] for i in range(0, len(body), 4096)]
        await account.deliver(chunks, flags=["\\Seen"] if n % 3 == 0 else [])
        if n == 0:
            print("ready", flush=True)

def main():
    runs = [defer.Deferred.fromCoroutine(loop(k)) for k in range(4)]
    defer.gatherResults(runs).addBoth(lambda _: reactor.stop())

reactor.callWhenRunning(main)
reactor.run()
"""

ASSIGN_LOOP = r"""
import sys
from mailsuite.store.uidlist import UidList
folder, user_dir, tag, count = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
uidlist = UidList(folder, user_dir, fsync=False)
for n in range(count):
    uidlist.assign([f"{tag}-{n}"], 1700000000.0)
"""


def _child(script: str, *args: str) -> subprocess.Popen:
    env = dict(os.environ, PYTHONPATH=REPO + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen(
        [sys.executable, "-c", script, *args], stdout=subprocess.PIPE, env=env, cwd=REPO
    )


def _uidlist_records(path: Path) -> list[tuple[int, str]]:
    lines = path.read_text().splitlines()
    out = []
    for line in lines[1:]:
        uid, _, base = line.partition(" :")
        out.append((int(uid), base))
    return out


class CrashTests(unittest.TestCase):
    """One crashed tree (built once for the class), several checks on it."""

    @classmethod
    def setUpClass(cls):
        cls.root = Path(tempfile.mkdtemp(prefix="store-crash-"))
        MaildirStore(cls.root, StoreSettings(), None, reactor).account(USER)
        cls.maildir = cls.root / "example.test" / "crash"
        rng = random.Random(1234)
        for _ in range(KILL_ROUNDS):
            child = _child(DELIVER_LOOP, str(cls.root), "100000")
            assert child.stdout is not None
            child.stdout.readline()  # "ready": the loop is running
            time.sleep(rng.uniform(0.0, 0.15))  # the random kill point is the purpose here
            child.send_signal(signal.SIGKILL)
            child.wait()
            child.stdout.close()

    @classmethod
    def tearDownClass(cls):
        shutil.rmtree(cls.root, ignore_errors=True)

    def setUp(self):
        self.store = MaildirStore(self.root, StoreSettings(), None, reactor)
        self.addCleanup(self.store.close)

    def _files(self) -> list[Path]:
        return [p for sub in ("new", "cur") for p in (self.maildir / sub).iterdir()]

    def test_only_complete_messages_are_visible(self):
        broken = []
        for path in self._files():
            data = path.read_bytes()
            if not data.endswith(TRAILER) or size_from_base(split_name(path.name)[0]) != len(data):
                broken.append(path.name)
        self.assertEqual(broken, [])

    def test_uidlist_is_strictly_ascending(self):
        uids = [uid for uid, _ in _uidlist_records(self.maildir / "dovecot-uidlist")]
        self.assertEqual(uids, sorted(set(uids)))

    def test_every_message_gets_a_uid_after_the_crash(self):
        folder = self.store.account(USER).open_folder(INBOX)
        self.addCleanup(folder.close)
        self.assertEqual(len(folder.messages()), len(self._files()))

    def test_something_was_delivered(self):
        self.assertGreater(len(self._files()), 0)


class TwoProcessUidTests(unittest.TestCase):
    def test_concurrent_processes_get_unique_ascending_uids(self):
        root = Path(self.mktemp())
        store = MaildirStore(root, StoreSettings(), None, reactor)
        self.addCleanup(store.close)
        store.account(USER)
        maildir = root / "example.test" / "crash"
        count = 150
        children = [
            _child(ASSIGN_LOOP, str(maildir), str(maildir), tag, str(count)) for tag in ("p1", "p2")
        ]
        for child in children:
            child.wait(timeout=120)
            child.stdout.close()
        records = _uidlist_records(maildir / "dovecot-uidlist")
        uids = [uid for uid, _ in records]
        bases = {base for _, base in records}
        self.assertEqual((uids, len(bases)), (list(range(1, 2 * count + 1)), 2 * count))

"""CREATE-SPECIAL-USE (RFC 6154 section 3) end to end: imaplib against a live listener over
the Maildir store, across a server restart."""

from __future__ import annotations

import imaplib
import shutil
import tempfile

from test_imap_helpers import LiveServer
from twisted.internet import defer, threads
from twisted.trial import unittest


class CreateSpecialUseEndToEnd(unittest.TestCase):
    timeout = 60

    def setUp(self) -> None:
        self.directory = tempfile.mkdtemp(prefix="imap-special-use-")
        self.addCleanup(shutil.rmtree, self.directory, True)
        self.server = LiveServer(self.directory)

    def tearDown(self) -> defer.Deferred:
        return self.server.stop()

    @defer.inlineCallbacks
    def test_create_with_use_then_restart(self):  # type: ignore[no-untyped-def]
        def create() -> dict:
            imap = self.server.imap()
            results = {"caps": imap.capability()[1][0].decode().split()}
            results["create"] = imap._simple_command("CREATE", "Outgoing", "(USE (\\Sent))")
            results["unknown"] = imap._simple_command("CREATE", "X", "(USE (\\Bogus))")
            results["virtual"] = imap._simple_command("CREATE", "Y", "(USE (\\All))")
            try:
                imap._simple_command("CREATE", "Z", "(COLOR red)")
                results["param"] = "accepted"
            except imaplib.IMAP4.error as e:  # imaplib raises on BAD
                results["param"] = str(e)
            imap.logout()
            return results

        results = yield threads.deferToThread(create)
        self.assertIn("CREATE-SPECIAL-USE", results["caps"])
        self.assertEqual(results["create"][0], "OK")
        self.assertEqual(results["unknown"][0], "NO")
        self.assertTrue(results["unknown"][1][0].startswith(b"[USEATTR]"), results["unknown"])
        self.assertEqual(results["virtual"][0], "NO")
        self.assertTrue(results["virtual"][1][0].startswith(b"[USEATTR]"), results["virtual"])
        self.assertIn("Unknown CREATE parameter", results["param"])

        yield self.server.stop()  # a new server process over the same Maildir tree
        self.server = LiveServer(self.directory)

        def listing() -> tuple:
            imap = self.server.imap()
            everything = imap.list('""', "*")
            special = imap._simple_command("LIST", "(SPECIAL-USE)", '""', "*")
            special = imap._untagged_response(*special, "LIST")
            imap.logout()
            return everything, special

        everything, special = yield threads.deferToThread(listing)
        self.assertIn(b'(\\HasNoChildren \\Sent) "/" "Outgoing"', everything[1])
        names = sorted(line.rsplit(b" ", 1)[1] for line in special[1])
        self.assertEqual(names, [b'"Archive"', b'"Drafts"', b'"Junk"', b'"Outgoing"',
                                 b'"Sent"', b'"Trash"'])
        self.assertFalse(any(b'"X"' in line or b'"Y"' in line or b'"Z"' in line
                             for line in everything[1]))

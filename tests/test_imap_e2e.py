"""End-to-end over real sockets on 127.0.0.1 with TLS and the Maildir store, driven by imaplib
(in a thread, with timeouts)."""

from __future__ import annotations

import imaplib
import shutil
import tempfile
import threading

from test_imap_helpers import ALICE, BOB, PASSWORD, SIMPLE, LiveServer, message
from twisted.internet import defer, threads
from twisted.trial import unittest


class EndToEnd(unittest.TestCase):
    timeout = 60

    def setUp(self) -> None:
        directory = tempfile.mkdtemp(prefix="imap-e2e-")
        self.addCleanup(shutil.rmtree, directory, True)
        self.server = LiveServer(directory)

    def tearDown(self) -> defer.Deferred:
        return self.server.stop()

    @defer.inlineCallbacks
    def test_login_select_fetch_over_starttls(self):  # type: ignore[no-untyped-def]
        yield self.server.deliver(ALICE, SIMPLE)

        def client() -> tuple:
            imap = self.server.imap()
            typ, data = imap.select("INBOX")
            fetched = imap.fetch("1", "(FLAGS BODY[])")
            imap.logout()
            return typ, data, fetched

        typ, data, fetched = yield threads.deferToThread(client)
        self.assertEqual((typ, data), ("OK", [b"1"]))
        self.assertEqual(fetched[1][0][1], SIMPLE)

    @defer.inlineCallbacks
    def test_implicit_tls_login(self):  # type: ignore[no-untyped-def]
        def client() -> str:
            imap = imaplib.IMAP4_SSL("127.0.0.1", self.server.imaps_port,
                                     ssl_context=self.server.ssl_context(), timeout=20)
            typ, _ = imap.login(ALICE, PASSWORD)
            imap.logout()
            return typ

        self.assertEqual((yield threads.deferToThread(client)), "OK")

    @defer.inlineCallbacks
    def test_plaintext_login_refused(self):  # type: ignore[no-untyped-def]
        def client() -> bytes:
            imap = imaplib.IMAP4("127.0.0.1", self.server.port, timeout=20)
            try:
                imap.login(ALICE, PASSWORD)
            except imaplib.IMAP4.error as e:
                return str(e).encode()
            finally:
                imap.shutdown()
            return b"logged in"

        self.assertIn(b"PRIVACYREQUIRED", (yield threads.deferToThread(client)))

    @defer.inlineCallbacks
    def test_store_search_copy_move_expunge_append(self):  # type: ignore[no-untyped-def]
        for n in range(1, 4):
            yield self.server.deliver(ALICE, message(n, subject=f"topic {n}"))

        def client() -> dict:
            imap = self.server.imap()
            imap.select("INBOX")
            results = {}
            results["store"] = imap.store("1", "+FLAGS", "(\\Flagged)")
            results["search"] = imap.search(None, "FLAGGED")
            results["copy"] = imap.copy("2", "Archive")
            results["move"] = imap._simple_command("MOVE", "3", "Trash")
            imap.store("1", "+FLAGS", "(\\Deleted)")
            results["expunge"] = imap.expunge()
            results["append"] = imap.append("Sent", "(\\Seen)", None, message(9))
            results["status"] = imap.status("Sent", "(MESSAGES)")
            results["left"] = imap.search(None, "ALL")
            imap.logout()
            return results

        r = yield threads.deferToThread(client)
        self.assertEqual(r["search"], ("OK", [b"1"]))
        self.assertIn(b"COPYUID", r["copy"][1][0])
        self.assertEqual(r["move"][0], "OK")
        self.assertEqual(r["expunge"], ("OK", [b"3", b"1"]))  # MOVE's EXPUNGE, then ours
        self.assertIn(b"APPENDUID", r["append"][1][0])
        self.assertEqual(r["status"][1], [b'"Sent" (MESSAGES 1)'])
        self.assertEqual(r["left"], ("OK", [b"1"]))
        names = sorted((self.server.data_dir / "example.test" / "alice").glob(".Trash/cur/*")) + \
            sorted((self.server.data_dir / "example.test" / "alice").glob(".Trash/new/*"))
        self.assertEqual(len(names), 1)

    @defer.inlineCallbacks
    def test_two_sessions_see_each_others_changes(self):  # type: ignore[no-untyped-def]
        for n in range(1, 3):
            yield self.server.deliver(ALICE, message(n))

        def client() -> list:
            a, b = self.server.imap(), self.server.imap()
            a.select("INBOX")
            b.select("INBOX")
            a.store("1", "+FLAGS", "(\\Deleted)")
            a.expunge()
            b.noop()
            untagged = list(b.untagged_responses.get("EXPUNGE", []))
            _, data = b.fetch("1", "(UID)")
            a.logout()
            b.logout()
            return [untagged, data]

        untagged, data = yield threads.deferToThread(client)
        self.assertEqual(untagged, [b"1"])
        self.assertEqual(data, [b"1 (UID 2)"])

    @defer.inlineCallbacks
    def test_delivery_during_idle_shows_exists(self):  # type: ignore[no-untyped-def]
        yield self.server.deliver(ALICE, message(1))
        idling = threading.Event()
        from twisted.internet import reactor

        def client() -> bytes:
            imap = self.server.imap()
            imap.select("INBOX")
            tag = imap._new_tag()
            imap.send(tag + b" IDLE\r\n")
            continuation = imap.readline()
            idling.set()
            pushed = imap.readline()
            imap.send(b"DONE\r\n")
            done = imap.readline()
            imap.logout()
            return continuation + pushed + done

        d = threads.deferToThread(client)
        yield threads.deferToThread(idling.wait, 20)
        yield self.server.deliver(ALICE, message(2))
        out = yield d
        self.assertIn(b"+ idling", out)
        self.assertIn(b"* 2 EXISTS", out)
        self.assertIn(b"OK Idle completed", out)
        del reactor

    @defer.inlineCallbacks
    def test_other_user_mail_invisible(self):  # type: ignore[no-untyped-def]
        yield self.server.deliver(BOB, message(1, subject="bob secret"))

        def client() -> tuple:
            imap = self.server.imap(ALICE)
            listing = imap.list()
            bad = imap.select('"../bob/INBOX"')
            imap.logout()
            return listing, bad

        listing, bad = yield threads.deferToThread(client)
        self.assertNotIn(b"bob", b"".join(listing[1]))
        self.assertEqual(bad[0], "NO")

    @defer.inlineCallbacks
    def test_examine_changes_nothing_on_disk(self):  # type: ignore[no-untyped-def]
        yield self.server.deliver(ALICE, message(1))
        inbox = self.server.data_dir / "example.test" / "alice"

        def names() -> list[str]:
            return sorted(p.name for sub in ("new", "cur") for p in (inbox / sub).iterdir())

        before = names()

        def client() -> tuple:
            imap = self.server.imap()
            examined = imap.select("INBOX", readonly=True)
            fetched = imap.fetch("1", "(BODY[])")
            stored = imap.store("1", "+FLAGS", "(\\Deleted)")
            imap.logout()
            return examined, fetched, stored

        with_errors = yield threads.deferToThread(self._catching, client)
        self.assertEqual(names(), before)
        self.assertIn("read-only", str(with_errors).lower())

    @staticmethod
    def _catching(func):  # type: ignore[no-untyped-def]
        try:
            return func()
        except imaplib.IMAP4.error as e:
            return e

    @defer.inlineCallbacks
    def test_large_fetch_over_tls(self):  # type: ignore[no-untyped-def]
        body = "y" * 300_000
        for n in range(1, 11):
            yield self.server.deliver(ALICE, message(n, body=body))

        def client() -> list:
            imap = self.server.imap()
            imap.select("INBOX")
            _, data = imap.fetch("1:10", "(BODY.PEEK[])")
            imap.logout()
            return [item[1] for item in data if isinstance(item, tuple)]

        bodies = yield threads.deferToThread(client)
        self.assertEqual(len(bodies), 10)
        self.assertTrue(all(body.encode() in b for b in bodies))

    @defer.inlineCallbacks
    def test_changes_by_another_process_seen_on_noop(self):  # type: ignore[no-untyped-def]
        for n in range(1, 3):
            yield self.server.deliver(ALICE, message(n))
        inbox = self.server.data_dir / "example.test" / "alice"

        def client() -> tuple:
            imap = self.server.imap()
            imap.select("INBOX")
            files = sorted(p for sub in ("new", "cur") for p in (inbox / sub).iterdir())
            first, second = files
            # Another program (mutt on the same Maildir) flags one and deletes the other.
            base = first.name.split(":2,")[0]
            first.rename(inbox / "cur" / (base + ":2,F"))
            second.unlink()
            imap.noop()
            expunged = list(imap.untagged_responses.pop("EXPUNGE", []))
            fetched = list(imap.untagged_responses.pop("FETCH", []))
            imap.logout()
            return expunged, fetched

        expunged, fetched = yield threads.deferToThread(client)
        self.assertEqual(expunged, [b"2"])
        self.assertEqual(len(fetched), 1)
        self.assertIn(b"\\Flagged", fetched[0])

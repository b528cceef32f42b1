"""THREAD and UID THREAD (RFC 5256): over a StringTransport, and end to end with imaplib."""

from __future__ import annotations

import imaplib
import shutil
import tempfile

import pytest
from test_imap_helpers import ALICE, Client, LiveServer, make_ctx, selected, untagged
from twisted.internet import defer, threads
from twisted.trial import unittest


def raw(n: int, subject: str, day: int, refs: str = "", irt: str = "", mid: str = "") -> bytes:
    headers = [f"From: sender{n}@example.test", "To: alice@example.test",
               f"Subject: {subject}", f"Date: {day:02d} Jan 2026 10:00:00 +0000",
               f"Message-ID: {mid or f'<{n}@example.test>'}"]
    if refs:
        headers.append(f"References: {refs}")
    if irt:
        headers.append(f"In-Reply-To: {irt}")
    return ("\r\n".join(headers) + f"\r\n\r\nbody {n}\r\n").encode()


# A small mailbox: a conversation (1, 3, 4, 6), a reply by In-Reply-To only (5 -> 2), a reply
# whose parent is missing (7) and a message whose subject alone ties it to 2 (8).
MAILBOX = [
    raw(1, "Plans for Friday", 1),
    raw(2, "Invoice", 2),
    raw(3, "Re: Plans for Friday", 3, refs="<1@example.test>"),
    raw(4, "Re: Plans for Friday", 4, refs="<1@example.test> <3@example.test>"),
    raw(5, "Re: Invoice", 5, irt="<2@example.test>"),
    raw(6, "Re: Plans for Friday", 6, refs="<1@example.test>"),
    raw(7, "Re: Lost thread", 7, refs="<missing@example.test>"),
    raw(8, "Fwd: Invoice", 8),
]


@pytest.fixture
def c() -> Client:
    return selected(*MAILBOX)


def thread_line(c: Client, command: str) -> bytes:
    out = c.ok(command)
    lines = untagged(out, "THREAD")
    assert len(lines) == 1, out
    return lines[0]


def test_capability_advertises_thread(c: Client) -> None:
    caps = untagged(c.ok("CAPABILITY"), "CAPABILITY")[0].split()
    assert b"THREAD=ORDEREDSUBJECT" in caps and b"THREAD=REFERENCES" in caps


def test_thread_references(c: Client) -> None:
    # 3 and 6 reply to 1, 4 to 3; 5 and 8 join 2 (In-Reply-To, then subject); 7's missing
    # parent is pruned away.
    assert thread_line(c, "THREAD REFERENCES UTF-8 ALL") == (
        b"* THREAD (1 (3 4)(6))(2 (5)(8))(7)")


def test_thread_ordered_subject(c: Client) -> None:
    assert thread_line(c, "THREAD ORDEREDSUBJECT UTF-8 ALL") == (
        b"* THREAD (1 (3)(4)(6))(2 (5)(8))(7)")


def test_thread_with_search_criteria(c: Client) -> None:
    # Without 3, message 4 still hangs under 1 through its References. Without 2, its
    # replies 5 and 8 (both Re:/Fwd:) share a base subject: a dummy groups them.
    assert thread_line(c, "THREAD REFERENCES US-ASCII NOT 3 NOT 2") == (
        b"* THREAD (1 (4)(6))((5)(8))(7)")
    assert thread_line(c, "THREAD REFERENCES UTF-8 SUBJECT friday") == (
        b"* THREAD (1 (3 4)(6))")


def test_uid_thread_answers_uids(c: Client) -> None:
    c.ok("STORE 1:2 +FLAGS (\\Deleted)")
    c.ok("EXPUNGE")  # sequence numbers now differ from UIDs by two
    # 3 and 6 lost their parent 1: a dummy keeps them together at the top level.
    assert thread_line(c, "UID THREAD REFERENCES UTF-8 ALL") == (
        b"* THREAD ((3 4)(6))((5)(8))(7)")
    assert thread_line(c, "THREAD REFERENCES UTF-8 ALL") == (
        b"* THREAD ((1 2)(4))((3)(6))(5)")
    assert thread_line(c, "UID THREAD ORDEREDSUBJECT UTF-8 UID 5:8") == (
        b"* THREAD (5 8)(6)(7)")


def test_thread_nothing_matches(c: Client) -> None:
    assert thread_line(c, "THREAD REFERENCES UTF-8 SUBJECT nowhere") == b"* THREAD"


def test_thread_errors(c: Client) -> None:
    assert c.status(c.cmd("THREAD BOGUS UTF-8 ALL")).startswith(b"BAD")
    assert c.status(c.cmd("THREAD REFERENCES KOI8-R ALL")).startswith(b"NO [BADCHARSET")
    assert c.status(c.cmd("THREAD REFERENCES UTF-8")).startswith(b"BAD")
    assert c.status(c.cmd("THREAD REFERENCES UTF-8 BOGUSKEY")).startswith(b"BAD")
    assert c.status(c.cmd("THREAD")).startswith(b"BAD")


def test_thread_needs_a_selected_mailbox() -> None:
    client = Client(make_ctx())
    client.login()
    assert client.status(client.cmd("THREAD REFERENCES UTF-8 ALL")).startswith(b"BAD")


class ThreadEndToEnd(unittest.TestCase):
    """imaplib against a real listener over the Maildir store."""

    timeout = 60

    def setUp(self) -> None:
        directory = tempfile.mkdtemp(prefix="imap-thread-")
        self.addCleanup(shutil.rmtree, directory, True)
        self.server = LiveServer(directory)

    def tearDown(self) -> defer.Deferred:
        return self.server.stop()

    @defer.inlineCallbacks
    def test_thread_and_uid_thread_over_imaplib(self):  # type: ignore[no-untyped-def]
        for message in MAILBOX:
            yield self.server.deliver(ALICE, message)

        def client() -> dict:
            imap = self.server.imap()
            results = {"caps": imap.capability()[1][0].decode()}
            imap.select("INBOX")
            results["references"] = imap.thread("REFERENCES", "UTF-8", "ALL")
            results["subject"] = imap.thread("ORDEREDSUBJECT", "US-ASCII", "ALL")
            imap.store("1", "+FLAGS", "(\\Deleted)")
            imap.expunge()
            results["uid"] = imap.uid("THREAD", "REFERENCES", "UTF-8", "SINCE", "3-Jan-2000",
                                      "NOT", "SUBJECT", "lost")
            results["seq"] = imap.thread("REFERENCES", "UTF-8", "UNDELETED")
            results["charset"] = imap.thread("REFERENCES", "ISO-8859-1", "ALL")  # a NO
            try:
                imap.thread("JWZ", "UTF-8", "ALL")
                results["algorithm"] = "accepted"
            except imaplib.IMAP4.error as e:  # imaplib raises on BAD
                results["algorithm"] = str(e)
            imap.logout()
            return results

        results = yield threads.deferToThread(client)
        self.assertIn("THREAD=REFERENCES", results["caps"])
        self.assertIn("THREAD=ORDEREDSUBJECT", results["caps"])
        self.assertEqual(results["references"],
                         ("OK", [b"(1 (3 4)(6))(2 (5)(8))(7)"]))
        self.assertEqual(results["subject"], ("OK", [b"(1 (3)(4)(6))(2 (5)(8))(7)"]))
        # Message 1 is gone: its replies 3 and 6 are grouped under a dummy (a missing parent
        # with two children at the top level) that sorts by 3's date, after 2. By UID:
        self.assertEqual(results["uid"], ("OK", [b"(2 (5)(8))((3 4)(6))"]))
        # ... and by sequence number (UID 2 is now message 1, and so on):
        self.assertEqual(results["seq"], ("OK", [b"(1 (4)(7))((2 3)(5))(6)"]))
        typ, data = results["charset"]
        self.assertEqual(typ, "NO")
        self.assertTrue(data[0].startswith(b"[BADCHARSET ("), data)
        self.assertIn("Unknown threading algorithm", results["algorithm"])

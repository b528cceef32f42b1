"""End-to-end POP3 over real sockets on 127.0.0.1 with real clients (poplib, fetchmail, curl),
a real TLS certificate (a throwaway CA), the real accounts/auth and the Maildir store.

Listeners run in-process on the trial reactor; blocking clients run in threads or subprocesses.
"""

from __future__ import annotations

import base64
import imaplib
import os
import poplib
import shutil
import socket
import ssl
import subprocess
import sys
import tempfile
import tracemalloc
from collections.abc import Callable
from pathlib import Path
from typing import Any

from test_pop3_helpers import FakeConfig, make_certificates, make_ctx
from twisted.internet import defer, reactor, task, threads
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.trial import unittest

from mailsuite.accounts import MemoryAccounts
from mailsuite.auth import LoginThrottle, make_portal
from mailsuite.interfaces import INBOX, FlagMode
from mailsuite.pop3.service import pop3_factory
from mailsuite.pop3.settings import Pop3Settings
from mailsuite.tls import TLSSettings

try:
    from mailsuite.store.maildir import MaildirStore
except ImportError:  # the Maildir store is being written concurrently
    MaildirStore = None  # type: ignore[assignment,misc]

ALICE = "alice@example.test"
PASSWORD = "s3cret pass"
MSG = b"From: bob@example.test\r\nSubject: hello\r\n\r\nfirst line\r\n.dot line\r\nlast\r\n"


def make_store(root: Path, accounts: Any) -> Any:
    if MaildirStore is not None:
        from mailsuite.store.settings import StoreSettings

        return MaildirStore(root, StoreSettings(), accounts, reactor)
    from mailsuite.store.memory import MemoryStore

    return MemoryStore()


class Pop3Server:
    """POP3 on 110-style (STLS) and 995-style (implicit TLS) ports, on 127.0.0.1:0."""

    def __init__(self, tmp: Path, settings: Pop3Settings | None = None) -> None:
        self.tmp = tmp
        self.ca, cert, key = make_certificates(tmp)
        self.accounts = MemoryAccounts(domains=("example.test",))
        self.accounts.add_user(ALICE, PASSWORD)
        self.store = make_store(tmp / "maildirs", self.accounts)
        self.ctx = make_ctx(
            settings or Pop3Settings(),
            store=self.store,
            throttle=LoginThrottle(reactor),
            portal=make_portal(self.accounts, self.store),
        )
        self.ctx.config = FakeConfig(settings or Pop3Settings())
        self.ctx.accounts = self.accounts
        self.ctx.reactor = reactor
        self.ctx.tls = TLSSettings(cert, key)
        self.plain_port = reactor.listenTCP(0, pop3_factory(self.ctx, False), interface="127.0.0.1")
        tls_factory = TLSMemoryBIOFactory(
            self.ctx.tls.server_options(), False, pop3_factory(self.ctx, True)
        )
        self.tls_port = reactor.listenTCP(0, tls_factory, interface="127.0.0.1")
        self._stopped = False

    @property
    def port(self) -> int:
        return int(self.plain_port.getHost().port)

    @property
    def tls_port_number(self) -> int:
        return int(self.tls_port.getHost().port)

    def inbox(self) -> Any:
        folder = self.store.account(ALICE).open_folder(INBOX)
        folder.refresh()
        return folder

    async def deliver(self, raw: bytes) -> Any:
        return await defer.maybeDeferred(self.store.account(ALICE).deliver, raw)

    async def stop(self) -> None:
        if self._stopped:
            return
        self._stopped = True
        await defer.maybeDeferred(self.plain_port.stopListening)
        await defer.maybeDeferred(self.tls_port.stopListening)
        # Let the server side of closed client connections finish (bounded: 30 s).
        for _ in range(3000):
            if self.ctx.pop3_sessions.connections == 0:
                break
            await task.deferLater(reactor, 0.01, lambda: None)
        self.store.close()

    def client_context(self) -> ssl.SSLContext:
        return ssl.create_default_context(cafile=self.ca)


def in_thread(f: Callable[..., Any], *args: Any) -> defer.Deferred[Any]:
    return threads.deferToThread(f, *args)


class E2ETestCase(unittest.TestCase):
    settings: Pop3Settings | None = None

    def setUp(self) -> None:
        # Outside the checkout (trial's mktemp() would write under the working directory).
        tmp = Path(tempfile.mkdtemp(prefix="mailsuite-pop3-"))
        self.addCleanup(shutil.rmtree, tmp, True)
        self.server = Pop3Server(tmp, self.settings)
        self.addCleanup(lambda: defer.Deferred.fromCoroutine(self.server.stop()))

    def run_async(self, coro: Any) -> defer.Deferred[Any]:
        return defer.Deferred.fromCoroutine(coro)

    def stls_client(self) -> poplib.POP3:
        pop = poplib.POP3("127.0.0.1", self.server.port, timeout=30)
        pop.stls(self.server.client_context())
        return pop

    def tls_client(self) -> poplib.POP3_SSL:
        return poplib.POP3_SSL(
            "127.0.0.1",
            self.server.tls_port_number,
            context=self.server.client_context(),
            timeout=30,
        )


class PoplibTests(E2ETestCase):
    def test_user_pass_after_stls_retr_top_uidl_dele_quit(self) -> defer.Deferred[Any]:
        async def go() -> None:
            await self.server.deliver(MSG)
            await self.server.deliver(b"Subject: two\r\n\r\nsecond\r\n")
            expected_ids = [i.pop_id for i in self.server.inbox().messages()]

            def session() -> dict[str, Any]:
                pop = self.stls_client()
                pop.user(ALICE)
                pop.pass_(PASSWORD)
                out = {
                    "stat": pop.stat(),
                    "uidl": pop.uidl()[1],
                    "retr": pop.retr(1)[1],
                    "top": pop.top(1, 1)[1],
                }
                pop.dele(1)
                out["quit"] = pop.quit()
                return out

            out = await in_thread(session)
            self.assertEqual(out["stat"][0], 2)
            self.assertEqual(
                out["uidl"], [f"{n} {i}".encode() for n, i in enumerate(expected_ids, 1)]
            )
            self.assertEqual(out["retr"], MSG.rstrip(b"\r\n").split(b"\r\n"))
            self.assertEqual(
                out["top"], [b"From: bob@example.test", b"Subject: hello", b"", b"first line"]
            )
            self.assertEqual(out["quit"], b"+OK Logging out, 1 messages deleted.")
            remaining = self.server.inbox().messages()
            self.assertEqual([i.pop_id for i in remaining], expected_ids[1:])

        return self.run_async(go())

    def test_streamed_retr_after_stls(self) -> defer.Deferred[Any]:
        big = b"Subject: big\r\n\r\n" + b"".join(b".%06d\r\n" % i for i in range(150000))

        async def go() -> None:
            await self.server.deliver(big)

            def session() -> list[bytes]:
                pop = self.stls_client()
                pop.user(ALICE)
                pop.pass_(PASSWORD)
                lines = pop.retr(1)[1]
                pop.quit()
                return lines

            lines = await in_thread(session)
            self.assertEqual(lines, big.rstrip(b"\r\n").split(b"\r\n"))

        return self.run_async(go())

    def test_user_before_stls_is_refused(self) -> defer.Deferred[Any]:
        def session() -> str:
            pop = poplib.POP3("127.0.0.1", self.server.port, timeout=30)
            try:
                pop.user(ALICE)
            except poplib.error_proto as e:
                return str(e.args[0], "ascii")
            finally:
                pop.quit()
            return "accepted"

        d = in_thread(session)
        d.addCallback(lambda r: self.assertTrue(r.startswith("-ERR [AUTH]"), r))
        return d

    def test_auth_plain_on_implicit_tls(self) -> defer.Deferred[Any]:
        async def go() -> None:
            await self.server.deliver(MSG)

            def session() -> tuple[bytes, Any]:
                pop = self.tls_client()
                token = base64.b64encode(f"\0{ALICE}\0{PASSWORD}".encode()).decode()
                reply = pop._shortcmd(f"AUTH PLAIN {token}")
                stat = pop.stat()
                pop.quit()
                return reply, stat

            reply, stat = await in_thread(session)
            self.assertEqual(reply, b"+OK Logged in.")
            self.assertEqual(stat, (1, len(MSG)))

        return self.run_async(go())

    def test_wrong_password_gets_auth_code(self) -> defer.Deferred[Any]:
        def session() -> str:
            pop = self.tls_client()
            pop.user(ALICE)
            try:
                pop.pass_("wrong")
            except poplib.error_proto as e:
                return str(e.args[0], "ascii")
            finally:
                pop.close()
            return "accepted"

        d = in_thread(session)
        d.addCallback(lambda r: self.assertEqual(r, "-ERR [AUTH] Authentication failed."))
        return d

    def test_dropped_connection_deletes_nothing(self) -> defer.Deferred[Any]:
        async def go() -> None:
            await self.server.deliver(MSG)

            def session() -> None:
                pop = self.tls_client()
                pop.user(ALICE)
                pop.pass_(PASSWORD)
                pop.dele(1)
                pop.close()  # no QUIT

            await in_thread(session)
            await self.server.stop()
            self.assertEqual(len(self.server.inbox().messages()), 1)

        return self.run_async(go())

    def test_second_session_is_in_use(self) -> defer.Deferred[Any]:
        def session() -> str:
            first = self.tls_client()
            first.user(ALICE)
            first.pass_(PASSWORD)
            second = self.stls_client()
            second.user(ALICE)
            try:
                second.pass_(PASSWORD)
            except poplib.error_proto as e:
                return str(e.args[0], "ascii")
            finally:
                second.close()
                first.quit()
            return "accepted"

        d = in_thread(session)
        d.addCallback(lambda r: self.assertTrue(r.startswith("-ERR [IN-USE]"), r))
        return d


def read_until(f: Any, end: bytes, limit: int = 50_000_000) -> bytes:
    """Read from a socket file until the data ends with ``end`` (bounded)."""
    data = b""
    while not data.endswith(end) and len(data) < limit:
        chunk = f.read1(65536)
        if not chunk:
            break
        data += chunk
    return data


class RawSocketTests(E2ETestCase):
    def test_pipelined_retrs_of_small_and_streamed_messages_stay_in_order(
        self,
    ) -> defer.Deferred[Any]:
        big = b"Subject: big\r\n\r\n" + b"".join(b".line %d\r\n" % i for i in range(40000))

        async def go() -> None:
            await self.server.deliver(MSG)
            await self.server.deliver(big)
            await self.server.deliver(MSG)

            def session() -> bytes:
                ctx = self.server.client_context()
                sock = socket.create_connection(("127.0.0.1", self.server.tls_port_number), 30)
                with ctx.wrap_socket(sock, server_hostname="localhost") as s:
                    f = s.makefile("rb")
                    f.readline()
                    s.sendall(
                        f"USER {ALICE}\r\nPASS {PASSWORD}\r\n"
                        "RETR 1\r\nRETR 2\r\nRETR 3\r\nQUIT\r\n".encode()
                    )
                    return read_until(f, b"deleted.\r\n")

            out = await in_thread(session)
            stuffed_msg = MSG.replace(b"\r\n.", b"\r\n..") + b".\r\n"
            stuffed_big = big.replace(b"\r\n.", b"\r\n..") + b".\r\n"
            expected = (
                b"+OK Send your password.\r\n+OK Logged in.\r\n"
                + b"+OK %d octets.\r\n" % len(MSG)
                + stuffed_msg
                + b"+OK %d octets.\r\n" % len(big)
                + stuffed_big
                + b"+OK %d octets.\r\n" % len(MSG)
                + stuffed_msg
                + b"+OK Logging out, 0 messages deleted.\r\n"
            )
            self.assertEqual(out, expected)

        return self.run_async(go())

    def test_commands_pipelined_after_stls_are_discarded(self) -> defer.Deferred[Any]:
        def session() -> tuple[bytes, bytes]:
            sock = socket.create_connection(("127.0.0.1", self.server.port), 30)
            f = sock.makefile("rb")
            f.readline()
            sock.sendall(b"STLS\r\nCAPA\r\n")  # CAPA is injected before the handshake
            reply = f.readline()
            ctx = self.server.client_context()
            with ctx.wrap_socket(sock, server_hostname="localhost") as s:
                tf = s.makefile("rb")
                s.sendall(b"NOOP\r\n")
                first = tf.readline()  # NOOP's reply, not a CAPA listing
                s.sendall(b"QUIT\r\n")
                tf.readline()
                return reply, first

        d = in_thread(session)
        d.addCallback(
            lambda r: self.assertEqual(
                r,
                (
                    b"+OK Begin TLS negotiation now.\r\n",
                    b"-ERR Command not valid in this state.\r\n",
                ),
            )
        )
        return d


class MixedWithImapTests(E2ETestCase):
    """POP3 and IMAP on one mailbox. The IMAP side acts through the store interface (what the
    IMAP server does for STORE and for reading a message)."""

    def test_uidl_stable_across_imap_flag_change_and_new_to_cur(self) -> defer.Deferred[Any]:
        async def go() -> None:
            await self.server.deliver(MSG)
            await self.server.deliver(b"Subject: two\r\n\r\nsecond\r\n")

            def uidl() -> list[bytes]:
                pop = self.tls_client()
                pop.user(ALICE)
                pop.pass_(PASSWORD)
                ids = pop.uidl()[1]
                pop.quit()
                return ids

            before = await in_thread(uidl)
            imap_view = self.server.inbox()
            uids = [i.uid for i in imap_view.messages()]
            imap_view.store_flags(uids, ["\\Seen", "\\Flagged"], FlagMode.ADD)  # new/ -> cur/
            imap_view.store_flags(uids[:1], ["\\Flagged"], FlagMode.REMOVE)
            imap_view.close()
            after = await in_thread(uidl)
            self.assertEqual(after, before)

        return self.run_async(go())

    def test_uidl_stable_when_another_mua_moves_new_to_cur(self) -> defer.Deferred[Any]:
        """mutt or Dovecot on the same tree renames new/X to cur/X:2,S."""
        if MaildirStore is None:
            raise unittest.SkipTest("mailsuite.store.maildir is not in yet")

        async def go() -> None:
            await self.server.deliver(MSG)
            await self.server.deliver(b"Subject: two\r\n\r\nsecond\r\n")

            def uidl() -> list[bytes]:
                pop = self.tls_client()
                pop.user(ALICE)
                pop.pass_(PASSWORD)
                ids = pop.uidl()[1]
                pop.quit()
                return ids

            before = await in_thread(uidl)
            maildir = self.server.tmp / "maildirs" / "example.test" / "alice"
            moved = 0
            for path in sorted((maildir / "new").iterdir()):
                os.rename(path, maildir / "cur" / (path.name + ":2,S"))
                moved += 1
            self.assertEqual(moved, 2)
            self.assertEqual(await in_thread(uidl), before)
            self.assertTrue(all("\\Seen" in i.flags for i in self.server.inbox().messages()))

        return self.run_async(go())

    def test_retr_marks_seen_for_imap(self) -> defer.Deferred[Any]:
        async def go() -> None:
            await self.server.deliver(MSG)
            await self.server.deliver(b"Subject: two\r\n\r\nsecond\r\n")

            def session() -> None:
                pop = self.tls_client()
                pop.user(ALICE)
                pop.pass_(PASSWORD)
                pop.retr(2)
                pop.quit()

            await in_thread(session)
            flags = [i.flags for i in self.server.inbox().messages()]
            self.assertEqual(["\\Seen" in f for f in flags], [False, True])

        return self.run_async(go())

    def test_imap_expunge_during_pop3_session(self) -> defer.Deferred[Any]:
        async def go() -> None:
            await self.server.deliver(MSG)
            view = self.server.inbox()
            uid = view.messages()[0].uid
            pop = await in_thread(self.tls_client)
            await in_thread(pop.user, ALICE)
            await in_thread(pop.pass_, PASSWORD)
            view.store_flags([uid], ["\\Deleted"], FlagMode.ADD)
            view.expunge([uid])
            view.close()

            def retr() -> str:
                try:
                    pop.retr(1)
                except poplib.error_proto as e:
                    return str(e.args[0], "ascii")
                finally:
                    pop.quit()
                return "sent"

            self.assertEqual(
                await in_thread(retr), "-ERR Message 1 was removed by another session."
            )

        return self.run_async(go())


try:
    from mailsuite.imap.service import imap_factory
except ImportError:  # the IMAP server is written concurrently
    imap_factory = None  # type: ignore[assignment]


class MixedWithImaplibTests(E2ETestCase):
    """POP3 and the real IMAP server (imaplib over implicit TLS) on one mailbox."""

    skip = None if imap_factory is not None else "mailsuite.imap.service is not in yet"

    def setUp(self) -> None:
        super().setUp()
        self.imap = imap_factory(self.server.ctx, True)
        factory = TLSMemoryBIOFactory(self.server.ctx.tls.server_options(), False, self.imap)
        self.imap_port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(lambda: defer.Deferred.fromCoroutine(self.stop_imap()))

    async def stop_imap(self) -> None:
        await defer.maybeDeferred(self.imap_port.stopListening)
        for _ in range(3000):  # the server side of logged-out connections (bounded: 30 s)
            if not getattr(self.imap, "connections", ()):
                break
            await task.deferLater(reactor, 0.01, lambda: None)

    def imap_client(self) -> imaplib.IMAP4_SSL:
        client = imaplib.IMAP4_SSL(
            "127.0.0.1",
            self.imap_port.getHost().port,
            ssl_context=self.server.client_context(),
            timeout=30,
        )
        client.login(ALICE, PASSWORD)
        return client

    def pop3_uidl(self) -> list[bytes]:
        pop = self.tls_client()
        pop.user(ALICE)
        pop.pass_(PASSWORD)
        ids = pop.uidl()[1]
        pop.quit()
        return ids

    def test_uidl_stable_across_imap_store(self) -> defer.Deferred[Any]:
        async def go() -> None:
            await self.server.deliver(MSG)
            await self.server.deliver(b"Subject: two\r\n\r\nsecond\r\n")
            before = await in_thread(self.pop3_uidl)

            def imap_store() -> Any:
                client = self.imap_client()
                client.select("INBOX")
                typ, _ = client.store("1:*", "+FLAGS", "(\\Seen \\Flagged)")
                client.logout()
                return typ

            self.assertEqual(await in_thread(imap_store), "OK")
            self.assertEqual(await in_thread(self.pop3_uidl), before)

        return self.run_async(go())

    def test_pop3_retr_and_dele_seen_by_imap(self) -> defer.Deferred[Any]:
        async def go() -> None:
            await self.server.deliver(MSG)
            await self.server.deliver(b"Subject: two\r\n\r\nsecond\r\n")

            def pop3() -> None:
                pop = self.tls_client()
                pop.user(ALICE)
                pop.pass_(PASSWORD)
                pop.retr(2)
                pop.dele(1)
                pop.quit()

            await in_thread(pop3)

            def imap_fetch() -> Any:
                client = self.imap_client()
                client.select("INBOX")
                _typ, data = client.fetch("1:*", "(FLAGS BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
                client.logout()
                return data

            data = await in_thread(imap_fetch)
            parts = [d for d in data if isinstance(d, tuple)]
            self.assertEqual(len(parts), 1)
            self.assertIn(b"\\Seen", parts[0][0])
            self.assertIn(b"Subject: two", parts[0][1])

        return self.run_async(go())

    def test_imap_idle_sees_pop3_deletion_at_quit(self) -> defer.Deferred[Any]:
        async def go() -> None:
            await self.server.deliver(MSG)
            await self.server.deliver(b"Subject: two\r\n\r\nsecond\r\n")
            conn: dict[str, Any] = {}

            def imap_until(tag: bytes) -> bytes:
                out = b""
                for _ in range(100):
                    line = conn["f"].readline()
                    out += line
                    if not line or line.startswith(tag):
                        break
                return out

            def idle() -> bytes:
                port = self.imap_port.getHost().port
                raw = socket.create_connection(("127.0.0.1", port), 30)
                ctx = self.server.client_context()
                imap = conn["s"] = ctx.wrap_socket(raw, server_hostname="localhost")
                f = conn["f"] = imap.makefile("rb")
                f.readline()  # greeting
                imap.sendall(f'a LOGIN "{ALICE}" "{PASSWORD}"\r\n'.encode())
                imap_until(b"a ")
                imap.sendall(b"b SELECT INBOX\r\n")
                imap_until(b"b ")
                imap.sendall(b"c IDLE\r\n")
                return f.readline()

            self.assertTrue((await in_thread(idle)).startswith(b"+"))

            def pop3() -> bytes:
                pop = self.tls_client()
                pop.user(ALICE)
                pop.pass_(PASSWORD)
                pop.dele(1)
                return pop.quit()

            self.assertEqual(await in_thread(pop3), b"+OK Logging out, 1 messages deleted.")

            def idle_updates() -> bytes:
                imap, f = conn["s"], conn["f"]
                out = f.readline()
                imap.sendall(b"DONE\r\n")
                out += imap_until(b"c ")
                imap.sendall(b"d LOGOUT\r\n")
                imap_until(b"d ")
                imap.close()
                return out

            self.assertIn(b"* 1 EXPUNGE\r\n", await in_thread(idle_updates))

        return self.run_async(go())


FETCHMAIL = shutil.which("fetchmail")
CURL = shutil.which("curl")


class FetchmailTests(E2ETestCase):
    skip = None if FETCHMAIL else "fetchmail is not installed"

    def fetch(self, implicit: bool) -> defer.Deferred[Any]:
        async def go() -> None:
            await self.server.deliver(MSG)
            await self.server.deliver(b"Subject: two\r\n\r\n.second\r\n")
            tmp = self.server.tmp
            out = tmp / "fetched.mbox"
            rc = tmp / "fetchmailrc"
            port = self.server.tls_port_number if implicit else self.server.port
            rc.write_text(
                f"set no syslog\n"
                f"poll localhost protocol pop3 port {port}\n"
                f'  user "{ALICE}" there with password "{PASSWORD}" is "root" here\n'
                f"  {'ssl ' if implicit else ''}sslproto 'tls1.2+' sslcertck "
                f"sslcertfile '{self.server.ca}'\n"
                f"  nokeep\n"
                f"  mda \"cat >> '{out}'\"\n"
            )
            rc.chmod(0o600)
            env = dict(os.environ, HOME=str(tmp), FETCHMAILUSER="root")
            cmd = [FETCHMAIL, "-f", str(rc), "-N", "--nosyslog", "--pidfile", str(tmp / "pid")]
            result = await in_thread(
                lambda: subprocess.run(cmd, env=env, capture_output=True, timeout=60, check=False)
            )
            self.assertEqual(result.returncode, 0, result.stdout + result.stderr)
            data = out.read_bytes()
            self.assertIn(b"Subject: hello", data)
            self.assertIn(b"\n.dot line\n", data)
            self.assertIn(b"\n.second\n", data)
            self.assertEqual(self.server.inbox().messages(), [])

        return self.run_async(go())

    def test_fetchmail_stls_with_certificate_check(self) -> defer.Deferred[Any]:
        return self.fetch(implicit=False)

    def test_fetchmail_implicit_tls_with_certificate_check(self) -> defer.Deferred[Any]:
        return self.fetch(implicit=True)


class CurlTests(E2ETestCase):
    skip = None if CURL else "curl is not installed"

    def curl(self, url: str, *extra: str) -> defer.Deferred[Any]:
        cmd = [CURL, "-sS", "--cacert", self.server.ca, "-u", f"{ALICE}:{PASSWORD}", *extra, url]
        return in_thread(lambda: subprocess.run(cmd, capture_output=True, timeout=60, check=False))

    def test_curl_pop3_stls_list_and_retrieve(self) -> defer.Deferred[Any]:
        async def go() -> None:
            await self.server.deliver(MSG)
            base = f"pop3://localhost:{self.server.port}/"
            listing = await self.curl(base, "--ssl-reqd")
            self.assertEqual(listing.returncode, 0, listing.stderr)
            self.assertEqual(listing.stdout, b"1 %d\r\n" % len(MSG))
            message = await self.curl(base + "1", "--ssl-reqd")
            self.assertEqual(message.returncode, 0, message.stderr)
            self.assertEqual(message.stdout, MSG)

        return self.run_async(go())

    def test_curl_pop3s_retrieve(self) -> defer.Deferred[Any]:
        async def go() -> None:
            await self.server.deliver(MSG)
            url = f"pop3s://localhost:{self.server.tls_port_number}/1"
            message = await self.curl(url)
            self.assertEqual(message.returncode, 0, message.stderr)
            self.assertEqual(message.stdout, MSG)

        return self.run_async(go())

    def test_curl_pop3_without_tls_cannot_log_in(self) -> defer.Deferred[Any]:
        async def go() -> None:
            await self.server.deliver(MSG)
            result = await self.curl(f"pop3://localhost:{self.server.port}/")
            self.assertNotEqual(result.returncode, 0)

        return self.run_async(go())


class LargeMessageTests(E2ETestCase):
    skip = None if MaildirStore is not None else "mailsuite.store.maildir is not in yet"
    SIZE = 20 * 1024 * 1024

    def test_20mb_retr_streams_without_holding_the_message(self) -> defer.Deferred[Any]:
        async def go() -> None:
            line = b".x" + b"y" * 98 + b"\n"  # every line needs stuffing and a CR
            raw = b"Subject: big\n\n" + line * (self.SIZE // len(line))
            await self.server.deliver(raw)
            expected = len(raw) + raw.count(b"\n") + raw.count(b"\n.") + 3
            del raw

            def session() -> tuple[int, bytes]:
                ctx = self.server.client_context()
                sock = socket.create_connection(("127.0.0.1", self.server.tls_port_number), 30)
                with ctx.wrap_socket(sock, server_hostname="localhost") as s:
                    f = s.makefile("rb")
                    f.readline()
                    s.sendall(f"USER {ALICE}\r\nPASS {PASSWORD}\r\n".encode())
                    f.readline(), f.readline()
                    s.sendall(b"RETR 1\r\n")
                    status = f.readline()
                    total, tail = 0, b""
                    while not tail.endswith(b"\r\n.\r\n"):
                        chunk = f.read1(65536)
                        if not chunk:
                            break
                        total += len(chunk)
                        tail = (tail + chunk)[-5:]
                    s.sendall(b"QUIT\r\n")
                    f.readline()
                    return total, status

            tracemalloc.start()
            try:
                tracemalloc.reset_peak()
                base, _ = tracemalloc.get_traced_memory()
                total, status = await in_thread(session)
                _, peak = tracemalloc.get_traced_memory()
            finally:
                tracemalloc.stop()
            self.assertTrue(status.startswith(b"+OK"))
            self.assertEqual(total, expected)
            print(f"pop3 20 MB RETR: traced peak grew by {peak - base} bytes", file=sys.stderr)
            self.assertLess(peak - base, self.SIZE // 5)

        return self.run_async(go())

"""Real Debian IMAP clients against a live server (Maildir store, STARTTLS): mbsync (isync)
syncing both ways, mutt reading and moving mail, curl listing and fetching.

Each client runs in a subprocess with a bounded timeout; a missing client skips its test.
"""

from __future__ import annotations

import os
import pty
import select
import shutil
import subprocess
import tempfile
import time
from pathlib import Path

from test_imap_helpers import ALICE, PASSWORD, LiveServer, message
from twisted.internet import defer, threads
from twisted.trial import unittest

TIMEOUT = 60


def run(args: list[str], **kw) -> subprocess.CompletedProcess:  # type: ignore[no-untyped-def]
    # Callers look at the return code themselves.
    return subprocess.run(args, capture_output=True, timeout=TIMEOUT, check=False, **kw)


def run_in_pty(args: list[str], env: dict[str, str]) -> bytes:
    """Run a full-screen program (mutt) in a pseudo-terminal until it exits (bounded)."""
    pid, fd = pty.fork()
    if pid == 0:  # child
        os.execvpe(args[0], args, env)
    output = b""
    deadline = time.monotonic() + TIMEOUT
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([fd], [], [], 1.0)
            if ready:
                try:
                    chunk = os.read(fd, 65536)
                except OSError:
                    break
                if not chunk:
                    break
                output += chunk
            done, _status = os.waitpid(pid, os.WNOHANG)
            if done:
                break
        else:
            os.kill(pid, 9)
    finally:
        try:
            os.waitpid(pid, 0)
        except ChildProcessError:
            pass
        os.close(fd)
    return output


def subject_of(raw: bytes) -> bytes:
    return raw.split(b"Subject: ", 1)[1].split(b"\n", 1)[0].rstrip(b"\r")


def maildir_files(folder: Path) -> list[Path]:
    return sorted(list((folder / "cur").glob("*")) + list((folder / "new").glob("*")))


class Clients(unittest.TestCase):
    timeout = 120

    def setUp(self) -> None:
        self.tmp = Path(tempfile.mkdtemp(prefix="imap-clients-"))
        self.addCleanup(shutil.rmtree, self.tmp, True)
        self.server = LiveServer(str(self.tmp))

    def tearDown(self) -> defer.Deferred:
        return self.server.stop()

    def server_folder(self, name: str = "INBOX") -> Path:
        base = self.server.data_dir / "example.test" / "alice"
        return base if name == "INBOX" else base / ("." + name)

    # --- mbsync ------------------------------------------------------------------------------

    def mbsync_config(self) -> Path:
        local = self.tmp / "local"
        local.mkdir(exist_ok=True)
        conf = self.tmp / "mbsyncrc"
        conf.write_text(f"""
IMAPAccount test
Host 127.0.0.1
Port {self.server.port}
User {ALICE}
Pass "{PASSWORD}"
SSLType STARTTLS
CertificateFile {self.server.cert_path}
SystemCertificates no

IMAPStore remote
Account test

MaildirStore local
Path {local}/
Inbox {local}/INBOX
SubFolders Verbatim

Channel sync
Far :remote:
Near :local:
Patterns INBOX Archive
Create Both
Expunge Both
SyncState *
""")
        return conf

    def mbsync(self, conf: Path) -> subprocess.CompletedProcess:
        return run(["mbsync", "-c", str(conf), "-a"])

    @defer.inlineCallbacks
    def test_mbsync_syncs_both_ways(self):  # type: ignore[no-untyped-def]
        if not shutil.which("mbsync"):
            raise unittest.SkipTest("mbsync not installed")
        for n in range(1, 4):
            yield self.server.deliver(ALICE, message(n))
        conf = self.mbsync_config()
        first = yield threads.deferToThread(self.mbsync, conf)
        self.assertEqual(first.returncode, 0, first.stderr)
        local_inbox = self.tmp / "local" / "INBOX"
        files = maildir_files(local_inbox)
        self.assertEqual(len(files), 3)

        # Local changes: flag one seen, delete one, add a new message.
        by_subject = {subject_of(f.read_bytes()): f for f in files}
        seen = by_subject[b"message 1"]
        seen.rename(seen.parent.parent / "cur" / (seen.name.split(":2,")[0] + ":2,S"))
        gone = by_subject[b"message 2"]
        gone.rename(gone.parent.parent / "cur" / (gone.name.split(":2,")[0] + ":2,T"))
        (local_inbox / "new" / "1700000000.local.host").write_bytes(message(7, "from local"))
        # Remote change: new mail arrives on the server.
        yield self.server.deliver(ALICE, message(8, "from server"))

        second = yield threads.deferToThread(self.mbsync, conf)
        self.assertEqual(second.returncode, 0, second.stderr)

        remote = {subject_of(f.read_bytes()): f.name
                  for f in maildir_files(self.server_folder())}
        self.assertEqual(sorted(remote), [b"from local", b"from server", b"message 1",
                                          b"message 3"])
        self.assertTrue(remote[b"message 1"].endswith("S"), remote)
        local = [f.read_bytes() for f in maildir_files(local_inbox)]
        self.assertTrue(any(b"from server" in raw for raw in local))
        self.assertEqual(len(local), 4)

    # --- mutt --------------------------------------------------------------------------------

    def mutt(self, commands: str) -> bytes:
        rc = self.tmp / "muttrc"
        rc.write_text(f"""
set imap_user = "{ALICE}"
set imap_pass = "{PASSWORD}"
set ssl_starttls = yes
set ssl_force_tls = yes
set ssl_verify_host = no
set certificate_file = "{self.tmp / 'mutt_certs'}"
set folder = "imap://127.0.0.1:{self.server.port}/"
set spoolfile = "+INBOX"
set header_cache = ""
set message_cachedir = ""
set confirmappend = no
set confirmcreate = no
set move = no
set mark_old = no
set quit = yes
set wait_key = no
set delete = yes
set timeout = 1
set imap_keepalive = 300
""")
        shutil.copy(self.server.cert_path, self.tmp / "mutt_certs")
        env = dict(os.environ, TERM="vt100", HOME=str(self.tmp), LANG="C.UTF-8")
        return run_in_pty(["mutt", "-n", "-F", str(rc), "-f", f"imap://127.0.0.1:{self.server.port}/INBOX",
                           "-e", f"push '{commands}'"], env)

    @defer.inlineCallbacks
    def test_mutt_reads_and_moves_mail(self):  # type: ignore[no-untyped-def]
        if not shutil.which("mutt"):
            raise unittest.SkipTest("mutt not installed")
        yield self.server.deliver(ALICE, message(1, "first for mutt", body="mutt-body-marker"))
        yield self.server.deliver(ALICE, message(2, "second for mutt"))
        out_file = self.tmp / "piped.txt"
        commands = (f"<pipe-message>cat > {out_file}<enter>"
                    "<save-message><kill-line>=Archive<enter><sync-mailbox><quit>")
        yield threads.deferToThread(self.mutt, commands)
        self.assertIn(b"mutt-body-marker", out_file.read_bytes())
        archived = maildir_files(self.server_folder("Archive"))
        self.assertEqual(len(archived), 1)
        self.assertIn(b"first for mutt", archived[0].read_bytes())
        inbox = maildir_files(self.server_folder())
        self.assertEqual(len(inbox), 1)
        self.assertIn(b"second for mutt", inbox[0].read_bytes())

    # --- curl --------------------------------------------------------------------------------

    def curl(self, path: str, *extra: str) -> subprocess.CompletedProcess:
        port = self.server.port
        return run(["curl", "-sS", "--ssl-reqd", "--cacert", str(self.server.cert_path),
                    "--resolve", f"localhost:{port}:127.0.0.1", "--max-time", "30",
                    "-u", f"{ALICE}:{PASSWORD}", f"imap://localhost:{port}/{path}", *extra])

    @defer.inlineCallbacks
    def test_curl_lists_folders(self):  # type: ignore[no-untyped-def]
        if not shutil.which("curl"):
            raise unittest.SkipTest("curl not installed")
        result = yield threads.deferToThread(self.curl, "")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn(b'"INBOX"', result.stdout)
        self.assertIn(b"\\Sent", result.stdout)

    @defer.inlineCallbacks
    def test_curl_fetches_a_message(self):  # type: ignore[no-untyped-def]
        if not shutil.which("curl"):
            raise unittest.SkipTest("curl not installed")
        raw = message(1, "curl me")
        yield self.server.deliver(ALICE, raw)
        result = yield threads.deferToThread(self.curl, "INBOX;UID=1")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertEqual(result.stdout, raw)

    @defer.inlineCallbacks
    def test_curl_search(self):  # type: ignore[no-untyped-def]
        if not shutil.which("curl"):
            raise unittest.SkipTest("curl not installed")
        yield self.server.deliver(ALICE, message(1, "alpha"))
        yield self.server.deliver(ALICE, message(2, "beta"))
        result = yield threads.deferToThread(self.curl, "INBOX?SUBJECT%20beta")
        self.assertEqual(result.returncode, 0, result.stderr)
        self.assertIn(b"* SEARCH 2", result.stdout)

"""POP3: one client logs in and RETRs every message of a 1,000-message maildrop, in order.

The same Maildir (built once, hard-linked into each server's data) is served by mailsuite,
Dovecot and ``twistd mail``.  The client is a small blocking socket loop (no poplib line
splitting, so the client's own CPU stays low): USER/PASS, STAT, RETR 1..n one after the other
(no pipelining), QUIT.  The clock runs from the connection to the QUIT reply; each reply is
checked to end with CRLF.CRLF and the total size must match the maildrop.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from benchlib import dovecot, fixtures, peers, procs
from benchlib.results import Case, Outcome, Run, Workload, brief

USER = "alice"
SERVERS = ("mailsuite", "Dovecot", "twistd mail")


class Pop3Client:
    """A minimal POP3 client for the benchmark (RFC 1939), bounded by a deadline."""

    def __init__(self, port: int, deadline: float) -> None:
        self.deadline = deadline
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=30)
        self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
        self.buf = bytearray()
        self.line()

    def _fill(self) -> None:
        if time.monotonic() > self.deadline:
            raise TimeoutError("POP3 run exceeded its time bound")
        data = self.sock.recv(1 << 20)
        if not data:
            raise ConnectionError("server closed the connection")
        self.buf += data

    def line(self) -> bytes:
        while True:
            i = self.buf.find(b"\r\n")
            if i >= 0:
                out = bytes(self.buf[:i])
                del self.buf[:i + 2]
                if not out.startswith(b"+OK"):
                    raise RuntimeError(f"POP3 error: {out[:200]!r}")
                return out
            self._fill()

    def command(self, cmd: str) -> bytes:
        self.sock.sendall(cmd.encode() + b"\r\n")
        return self.line()

    def multiline(self, cmd: str) -> int:
        """Send ``cmd`` and read a multi-line reply; return its size in bytes."""
        self.command(cmd)
        start = 0
        while True:
            i = self.buf.find(b"\r\n.\r\n", start)
            if i >= 0:
                size = i + 2
                del self.buf[:i + 5]
                return size
            if self.buf.startswith(b".\r\n"):
                del self.buf[:3]
                return 0
            start = max(0, len(self.buf) - 4)
            self._fill()

    def close(self) -> None:
        self.sock.close()


def retr_all(port: int, user: str, deadline: float) -> tuple[int, int]:
    client = Pop3Client(port, deadline)
    try:
        client.command(f"USER {user}")
        client.command(f"PASS {peers.PASSWORD}")
        count = int(client.command("STAT").split()[1])
        total = 0
        for i in range(1, count + 1):
            total += client.multiline(f"RETR {i}")
        client.command("QUIT")
        return count, total
    finally:
        client.close()


def measure(root_pids, port: int, expected: int, expected_bytes: int, timeout: float) -> Run:
    monitor = procs.TreeMonitor(root_pids)
    monitor.start()
    start = time.monotonic()
    try:
        count, total = retr_all(port, f"{USER}@{peers.DOMAIN}", start + timeout)
        elapsed = time.monotonic() - start
    finally:
        monitor.stop()
    if count != expected:
        raise RuntimeError(f"STAT said {count} messages, expected {expected}")
    if total < expected_bytes:
        raise RuntimeError(f"RETR returned {total} bytes, the maildrop holds {expected_bytes}")
    return Run(rate=count / elapsed, cpu_seconds=monitor.cpu_used, units=count,
               peak_memory=monitor.peak_memory, elapsed=elapsed,
               extra={"mb_per_s": total / elapsed / 1e6})


def run_once(server: str, workdir: Path, source: Path, count: int, nbytes: int,
             timeout: float) -> Run:
    if server == "mailsuite":
        srv = peers.Mailsuite(workdir)
        try:
            srv.start(listen=("pop3",), users=[USER], prefill=source)
            return measure(srv.root_pids, srv.ports["pop3"], count, nbytes, timeout)
        finally:
            srv.stop()
    if server == "Dovecot":
        fixtures.link_copy(source, workdir / "mail" / peers.DOMAIN / USER)
        dv = dovecot.DovecotInstance(workdir / "dovecot", workdir / "mail",
                                     {f"{USER}@{peers.DOMAIN}": peers.PASSWORD})
        try:
            dv.start()
            return measure(dv.root_pids, dv.port_pop3, count, nbytes, timeout)
        finally:
            dv.stop()
    if server == "twistd mail":
        tm = peers.TwistdMail(workdir, [USER])
        fixtures.link_copy(source, tm.maildir(USER))
        try:
            tm.start(smtp=False, pop3=True)
            return measure(tm.root_pids, tm.pop3_port, count, nbytes, timeout)
        finally:
            tm.stop()
    raise ValueError(server)


def run(ctx) -> Workload:
    sets = [(2048, 300), (1024 * 1024, 50)] if ctx.quick else [(2048, 1000), (1024 * 1024, 1000)]
    wl = Workload("pop3", "POP3 RETR of a whole maildrop (one client)", __doc__.strip())
    wl.notes.append("msg/s = messages retrieved / time from connect to the QUIT reply.")
    wl.notes.append("Login: USER/PASS in plain text on all three (mailsuite `[pop3] "
                    "allow_plaintext_auth = true`, Dovecot `disable_plaintext_auth = no`). "
                    "`twistd mail` writes each reply in small pieces and waits on Nagle's "
                    "algorithm and the client's delayed ACK (see ARCHITECTURE.md), which is why "
                    "its small-message rate is so low.")
    for size, count in sets:
        source = ctx.workdir(f"pop3-source-{size}") / "Maildir"
        nbytes = fixtures.build_maildir(source, count, size)
        label = f"{count} x {size // 1024} KB" if size < 1 << 20 else f"{count} x 1 MB"
        case = Case(label, "msg/s")
        for server in SERVERS:
            outcome = Outcome(server)
            why = ctx.missing(server, ("pop3",))
            if why:
                outcome.skipped = why
            else:
                for i in range(ctx.runs):
                    workdir = ctx.workdir(f"pop3-{server}-{size}-{i}")
                    try:
                        outcome.runs.append(run_once(server, workdir, source, count, nbytes,
                                                     ctx.timeout(count, per_unit=0.5)))
                    except Exception as exc:  # noqa: BLE001 - reported in the table
                        outcome.errors.append(brief(exc))
                        ctx.say(f"    {server}: {brief(exc, 2000)}")
                    ctx.cleanup(workdir)
            ctx.progress(wl.key, case.label, outcome)
            case.outcomes.append(outcome)
        wl.cases.append(case)
        ctx.cleanup(source.parent)
    return wl

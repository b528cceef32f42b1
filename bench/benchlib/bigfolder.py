"""A 100,000-message folder: SELECT it cold and warm, and ``UID FETCH 1:* (FLAGS)``.

One user whose INBOX holds 100,000 small messages written straight into ``cur/`` (as a
migrated or long-lived mailbox would be).  A first session times the cold ``SELECT`` (the
server has never seen the folder: it assigns every UID and builds its index); a second session
times the warm ``SELECT`` and ``UID FETCH 1:* (FLAGS)``.  Run only in the full mode, once.
"""

from __future__ import annotations

import socket
import time
from pathlib import Path

from benchlib import dovecot, fixtures, peers, procs
from benchlib.results import Case, Outcome, Run, Workload, brief

SERVERS = ("mailsuite", "Dovecot")
USER = "big"


class Client:
    """Just enough blocking IMAP to time a few commands (no literals expected back)."""

    def __init__(self, port: int, timeout: float) -> None:
        self.sock = socket.create_connection(("127.0.0.1", port), timeout=timeout)
        self.buf = bytearray()
        self.seq = 0
        self.exists = -1
        self.fetched = 0
        self._until(b"\r\n")

    def _until(self, marker: bytes) -> bytes:
        start = 0
        while True:
            i = self.buf.find(marker, start)
            if i >= 0:
                out = bytes(self.buf[: i + len(marker)])
                del self.buf[: i + len(marker)]
                return out
            start = max(0, len(self.buf) - len(marker))
            data = self.sock.recv(1 << 20)
            if not data:
                raise ConnectionError("server closed the connection")
            self.buf += data

    def command(self, text: str) -> tuple[float, int]:
        """Run one command; return (seconds until the tagged OK, response bytes).

        ``self.exists`` keeps the last ``* N EXISTS`` seen, ``self.fetched`` the number of
        ``* N FETCH`` lines of the last command.
        """
        self.fetched = 0
        self.seq += 1
        tag = f"g{self.seq} ".encode()
        t0 = time.monotonic()
        self.sock.sendall(tag + text.encode() + b"\r\n")
        size = 0
        while True:
            line = self._until(b"\r\n")
            size += len(line)
            if line.startswith(tag):
                break
            if line.startswith(b"* "):
                if line.endswith(b" EXISTS\r\n"):
                    self.exists = int(line.split()[1])
                elif b" FETCH " in line:
                    self.fetched += 1
        elapsed = time.monotonic() - t0
        if not line[len(tag):].startswith(b"OK"):
            raise RuntimeError(f"{text}: {line[:200]!r}")
        return elapsed, size

    def close(self) -> None:
        self.sock.close()


def measure(root_pids, port: int, count: int) -> Run:
    login = f'LOGIN "{USER}@{peers.DOMAIN}" "{peers.PASSWORD}"'
    monitor = procs.TreeMonitor(root_pids)
    monitor.start()
    try:
        first = Client(port, 600)
        first.command(login)
        cold, _ = first.command("SELECT INBOX")
        first.close()
        second = Client(port, 600)
        second.command(login)
        warm, _ = second.command("SELECT INBOX")
        fetch, _size = second.command("UID FETCH 1:* (FLAGS)")
        second.close()
        if second.exists != count or second.fetched != count:
            raise RuntimeError(f"SELECT said {second.exists} EXISTS and UID FETCH returned "
                               f"{second.fetched} messages; the folder holds {count}")
    finally:
        monitor.stop()
    return Run(rate=fetch, cpu_seconds=monitor.cpu_used, units=count,
               peak_memory=monitor.peak_memory, elapsed=cold + warm + fetch,
               extra={"cold_select": cold, "warm_select": warm})


def run_once(server: str, workdir: Path, source: Path, count: int) -> Run:
    if server == "mailsuite":
        srv = peers.Mailsuite(workdir)
        try:
            srv.start(listen=("imap",), users=[USER], prefill=source)
            return measure(srv.root_pids, srv.ports["imap"], count)
        finally:
            srv.stop()
    if server == "Dovecot":
        fixtures.link_copy(source, workdir / "mail" / peers.DOMAIN / USER)
        dv = dovecot.DovecotInstance(workdir / "dovecot", workdir / "mail",
                                     {f"{USER}@{peers.DOMAIN}": peers.PASSWORD})
        try:
            dv.start()
            return measure(dv.root_pids, dv.port_imap, count)
        finally:
            dv.stop()
    raise ValueError(server)


def run(ctx) -> Workload:
    count = 100_000
    wl = Workload("imap-big", "IMAP: a 100,000-message folder", __doc__.strip(),
                  lower_is_better=True)
    if ctx.quick:
        wl.skipped = "only in the full run (building the folder takes a while)"
        return wl
    wl.notes.append("The first column is the time of UID FETCH 1:* (FLAGS) in the warm "
                    "session, in seconds (lower is better; the ratio is mailsuite's time / the "
                    "peer's). CPU per unit is the server's CPU over both sessions per message.")
    source = ctx.workdir("big-source") / "Maildir"
    fixtures.build_maildir(source, count, 300)
    case = Case(f"{count:,} messages", "s")
    for server in SERVERS:
        outcome = Outcome(server)
        why = ctx.missing(server, ("imap",))
        if why:
            outcome.skipped = why
        else:
            workdir = ctx.workdir(f"big-{server}")
            try:
                outcome.runs.append(run_once(server, workdir, source, count))
            except Exception as exc:  # noqa: BLE001 - reported in the table
                outcome.errors.append(brief(exc))
                ctx.say(f"    {server}: {brief(exc, 2000)}")
            ctx.cleanup(workdir)
        ctx.progress(wl.key, case.label, outcome)
        case.outcomes.append(outcome)
    wl.cases.append(case)
    ctx.cleanup(source.parent)
    return wl

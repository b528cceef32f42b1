"""Memory: resident memory per idle IMAP connection (LOGIN, SELECT INBOX, IDLE).

The server is started with 10 users of 500 messages (as in the IMAP workload), warmed with one
session per user, and its memory (PSS summed over its process tree) is read; then
``bench/imap_load.py --idle N`` opens N sessions (50 logging in at a time) that all sit in IDLE,
the memory is read again once every session is idling, and
(after - before) / N is the cost of one idle connection.  Dovecot, whose default is one ``imap``
process per connection, is measured the same way for reference.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from benchlib import dovecot, fixtures, imap, peers, procs
from benchlib.results import Case, Outcome, Run, Workload, brief

SERVERS = ("mailsuite", "Dovecot")


def measure(root_pids, port: int, connections: int, timeout: float, workdir: Path) -> Run:
    logins = [f"{u}@{peers.DOMAIN}" for u in imap.USERS]
    argv = imap.load_argv(port, logins)
    imap.run_json(argv + ["--warmup", "--timeout", "120"], timeout=300)
    time.sleep(1.0)  # let the warm-up sessions' buffers be released before the baseline
    before_pids = [p for r in root_pids() for p in procs.tree_pids(r)]
    before = procs.memory_bytes(before_pids)
    rss_before = procs.rss_bytes(before_pids)
    cpu_before = procs.cpu_seconds(p for r in root_pids() for p in procs.tree_pids(r))
    start = time.monotonic()
    proc = procs.start_group(argv + ["--idle", str(connections), "--hold", str(timeout),
                                     "--timeout", "120"],
                             cwd=workdir, log=workdir / "idle-load.log", stdin=subprocess.PIPE)
    try:
        ready = None
        deadline = start + timeout
        log = workdir / "idle-load.log"
        while time.monotonic() < deadline and proc.poll() is None:
            text = log.read_text(errors="replace")
            if "READY" in text:
                ready = text[text.index("READY"):].split("\n", 1)[0].split()
                break
            time.sleep(0.2)
        if ready is None:
            raise RuntimeError("the idle sessions were not all set up in time: "
                               + log.read_text(errors="replace")[-500:])
        idling, errors = int(ready[1]), int(ready[2])
        if idling < connections:
            raise RuntimeError(f"only {idling} of {connections} sessions reached IDLE "
                               f"({errors} errors): {log.read_text(errors='replace')[-500:]}")
        setup = time.monotonic() - start
        time.sleep(1.0)
        pids = [p for r in root_pids() for p in procs.tree_pids(r)]
        after = procs.memory_bytes(pids)
        cpu_used = procs.cpu_seconds(pids) - cpu_before
        rss_after = procs.rss_bytes(pids)
    finally:
        if proc.stdin:
            proc.stdin.close()
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            pass
        procs.kill_group(proc)
    per_conn = (after - before) / connections
    return Run(rate=connections / setup, cpu_seconds=cpu_used, units=connections,
               peak_memory=after, elapsed=setup,
               extra={"bytes_per_conn": per_conn,
                      "rss_per_conn": (rss_after - rss_before) / connections,
                      "rss_total": rss_after, "base_memory": before})


def run_once(server: str, workdir: Path, source: Path, connections: int, timeout: float) -> Run:
    if server == "mailsuite":
        srv = peers.Mailsuite(workdir)
        try:
            srv.start(listen=("imap",), users=imap.USERS, prefill=source,
                      settings={"imap": {"max_connections": connections + 100,
                                         "max_connections_per_ip": connections + 100}})
            return measure(srv.root_pids, srv.ports["imap"], connections, timeout, workdir)
        finally:
            srv.stop()
    if server == "Dovecot":
        for user in imap.USERS:
            fixtures.link_copy(source, workdir / "mail" / peers.DOMAIN / user)
        dv = dovecot.DovecotInstance(workdir / "dovecot", workdir / "mail",
                                     {f"{u}@{peers.DOMAIN}": peers.PASSWORD for u in imap.USERS})
        try:
            dv.start()
            return measure(dv.root_pids, dv.port_imap, connections, timeout, workdir)
        finally:
            dv.stop()
    raise ValueError(server)


def run(ctx) -> Workload:
    connections = 100 if ctx.quick else 1000
    wl = Workload("memory", "Memory per idle IMAP connection", __doc__.strip(),
                  ratio_of="bytes_per_conn")
    wl.notes.append("conn/s is how fast the sessions were opened (LOGIN+SELECT+IDLE, 50 at a "
                    "time); 'peak memory' is the server's total with all sessions idling; "
                    "'memory per connection' = (total with N idle sessions - total before) / N, "
                    "on PSS; 'RSS per connection' is the same on resident set sizes (for a "
                    "multi-process server RSS counts shared pages once per process).")
    source = ctx.workdir("memory-source") / "Maildir"
    fixtures.build_maildir(source, imap.MESSAGES, 4096)
    case = Case(f"{connections} idle connections", "conn/s")
    for server in SERVERS:
        outcome = Outcome(server)
        why = ctx.missing(server, ("imap",))
        if why:
            outcome.skipped = why
        else:
            for i in range(1):  # one run: memory per connection hardly varies, setup is slow
                workdir = ctx.workdir(f"memory-{server}-{i}")
                try:
                    outcome.runs.append(run_once(server, workdir, source, connections,
                                                 ctx.timeout(connections, 0.6, 120)))
                except Exception as exc:  # noqa: BLE001 - reported in the table
                    outcome.errors.append(brief(exc))
                    ctx.say(f"    {server}: {brief(exc, 2000)}")
                ctx.cleanup(workdir)
        ctx.progress(wl.key, case.label, outcome)
        case.outcomes.append(outcome)
    wl.cases.append(case)
    ctx.cleanup(source.parent)
    return wl

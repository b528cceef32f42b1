"""IMAP: N concurrent clients run a fixed command mix (``bench/imap_load.py``) for a set time.

mailsuite and Dovecot serve copies (hard links) of the same Maildirs: 10 users with 500 messages
each (about 4 KB, every fourth multipart).  Before the timed part, one session per user selects
INBOX and fetches envelope and body structure of every message, so both servers start with
their indexes/caches built.  The load generator is a separate process (its CPU is not counted
for the server); on this machine it shares the 2 cores with the server.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

from benchlib import dovecot, fixtures, peers, procs
from benchlib.results import Case, Outcome, Run, Workload, brief

SERVERS = ("mailsuite", "Dovecot")
USERS = [f"user{i}" for i in range(10)]
MESSAGES = 500  # per user
LOAD = peers.BENCH_DIR / "imap_load.py"


def load_argv(port: int, logins: list[str]) -> list[str]:
    return [sys.executable, str(LOAD), "--port", str(port), "--users", ",".join(logins),
            "--password", peers.PASSWORD]


def run_json(argv: list[str], timeout: float) -> dict:
    res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if res.returncode != 0:
        last = [line for line in res.stderr.strip().splitlines() if line.strip()][-1:]
        raise RuntimeError(f"load generator failed: {' '.join(last)[-400:]}")
    return json.loads(res.stdout.strip().splitlines()[-1])


def measure(root_pids, port: int, clients: int, duration: float) -> Run:
    logins = [f"{u}@{peers.DOMAIN}" for u in USERS]
    argv = load_argv(port, logins)
    warm = run_json(argv + ["--warmup", "--timeout", "120"], timeout=300)
    if warm.get("min_exists", 0) < MESSAGES:
        raise RuntimeError(f"a mailbox shows {warm.get('min_exists')} messages after SELECT, "
                           f"expected {MESSAGES}")
    monitor = procs.TreeMonitor(root_pids)
    monitor.start()
    start = time.monotonic()
    try:
        pids = ",".join(str(p) for p in root_pids())
        result = run_json(argv + ["--clients", str(clients), "--duration", str(duration),
                                  "--server-pids", pids], timeout=duration + 300)
        elapsed = time.monotonic() - start
    finally:
        monitor.stop()
    if result["crashed_clients"]:
        raise RuntimeError(f"{result['crashed_clients']} clients failed: "
                           f"{result['crash_examples']}")
    if result["failures"] > result["commands"] * 0.01:
        raise RuntimeError(f"{result['failures']} commands failed: {result['failure_examples']}")
    commands = result["commands"]
    # CPU of the timed part only (the logins before it are not commands of the mix).
    cpu = result["server_cpu"] if result.get("server_cpu") is not None else monitor.cpu_used
    return Run(rate=commands / result["elapsed"], cpu_seconds=cpu, units=commands,
               peak_memory=monitor.peak_memory, elapsed=elapsed,
               extra={"p50_ms": result["p50_ms"] or 0.0,
                      "login_rate": clients / max(result["login_seconds"], 1e-6)})


def run_once(server: str, workdir: Path, source: Path, clients: int, duration: float) -> Run:
    if server == "mailsuite":
        srv = peers.Mailsuite(workdir)
        try:
            srv.start(listen=("imap",), users=USERS, prefill=source,
                      settings={"imap": {"max_connections": 5000,
                                         "max_connections_per_ip": 5000}})
            return measure(srv.root_pids, srv.ports["imap"], clients, duration)
        finally:
            srv.stop()
    if server == "Dovecot":
        for user in USERS:
            fixtures.link_copy(source, workdir / "mail" / peers.DOMAIN / user)
        dv = dovecot.DovecotInstance(workdir / "dovecot", workdir / "mail",
                                     {f"{u}@{peers.DOMAIN}": peers.PASSWORD for u in USERS})
        try:
            dv.start()
            return measure(dv.root_pids, dv.port_imap, clients, duration)
        finally:
            dv.stop()
    raise ValueError(server)


def run(ctx) -> Workload:
    cases = [(20, 6.0)] if ctx.quick else [(10, 10.0), (50, 10.0)]
    wl = Workload("imap", "IMAP command mix (N concurrent clients)", __doc__.strip())
    wl.notes.append("Each round of a client: UID FETCH 1:* (FLAGS); FETCH of a 50-message page "
                    "(UID RFC822.SIZE FLAGS ENVELOPE); FETCH BODYSTRUCTURE; 2 x FETCH BODY.PEEK[]; "
                    "STORE +FLAGS and -FLAGS; UID SEARCH UNSEEN; SEARCH SUBJECT; APPEND; NOOP; "
                    "IDLE+DONE. cmd/s counts every command of the timed part, which starts when "
                    "all clients have logged in and selected; 'median latency' is over all "
                    "commands; 'logins/s' is how fast the clients got in (LOGIN+SELECT, 50 at a "
                    "time, argon2id password hashes on both servers). CPU per command is "
                    "the server's CPU during the timed part; peak memory covers the whole run.")
    source = ctx.workdir("imap-source") / "Maildir"
    fixtures.build_maildir(source, MESSAGES, 4096)
    for clients, duration in cases:
        case = Case(f"{clients} clients, {duration:.0f} s", "cmd/s")
        for server in SERVERS:
            outcome = Outcome(server)
            why = ctx.missing(server, ("imap",))
            if why:
                outcome.skipped = why
            else:
                for i in range(ctx.runs):
                    workdir = ctx.workdir(f"imap-{server}-{clients}-{i}")
                    try:
                        outcome.runs.append(run_once(server, workdir, source, clients, duration))
                    except Exception as exc:  # noqa: BLE001 - reported in the table
                        outcome.errors.append(brief(exc))
                        ctx.say(f"    {server}: {brief(exc, 2000)}")
                    ctx.cleanup(workdir)
            ctx.progress(wl.key, case.label, outcome)
            case.outcomes.append(outcome)
        wl.cases.append(case)
    ctx.cleanup(source.parent)
    return wl

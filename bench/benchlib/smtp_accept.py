"""SMTP accept: ``smtp-source`` delivers N messages to one local user; count files on disk.

Each server is started fresh (empty Maildir) for each run.  The clock starts just before
``smtp-source`` connects and stops when the last message file is in the user's Maildir
(``new/`` plus ``cur/``), so a server that answers 250 before writing (or, like Postfix, writes
into its queue first and delivers later) is timed until the mail is really in the mailbox.
The rate when ``smtp-source`` exits (all 250s received) is reported too.

``mailsuite, fsync off`` is mailsuite with ``[store] fsync = false``: not durable, never to be
run so, and not a peer. It is there to show, in the same run, what the disk's part of each
figure is: how fast the same server would be if a durable write cost nothing.
"""

from __future__ import annotations

import subprocess
import time
from pathlib import Path

from benchlib import fixtures, peers, postfix, procs
from benchlib.results import Case, Outcome, Run, Workload, brief

USER = "alice"
NO_FSYNC = "mailsuite, fsync off"
SERVERS = ("mailsuite", "twistd mail", "aiosmtpd", "Postfix", NO_FSYNC)


def smtp_source(port: int, size: int, clients: int, count: int, timeout: float) -> None:
    """Run smtp-source (one connection per message, ``clients`` at a time)."""
    argv = ["smtp-source", "-s", str(clients), "-m", str(count), "-l", str(size),
            "-M", "client.bench.test", "-f", "sender@example.test", "-t",
            f"{USER}@{peers.DOMAIN}", f"127.0.0.1:{port}"]
    res = subprocess.run(argv, capture_output=True, text=True, timeout=timeout, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"smtp-source failed ({res.returncode}): {res.stderr.strip()[-500:]}")


def wait_files(maildir: Path, count: int, deadline: float) -> int:
    """Wait until ``count`` messages are in ``maildir`` (new + cur) or the deadline passes."""
    n = 0
    while time.monotonic() < deadline:
        n = fixtures.count_files(maildir / "new") + fixtures.count_files(maildir / "cur")
        if n >= count:
            return n
        time.sleep(0.01)
    return n


def measure(root_pids, port: int, maildir: Path, size: int, clients: int, count: int,
            timeout: float) -> Run:
    monitor = procs.TreeMonitor(root_pids)
    monitor.start()
    start = time.monotonic()
    try:
        smtp_source(port, size, clients, count, timeout)
        accepted = time.monotonic() - start
        n = wait_files(maildir, count, start + timeout)
        elapsed = time.monotonic() - start
    finally:
        monitor.stop()
    if n < count:
        raise RuntimeError(f"only {n} of {count} messages reached the Maildir in {timeout:.0f} s")
    return Run(rate=count / elapsed, cpu_seconds=monitor.cpu_used, units=count,
               peak_memory=monitor.peak_memory, elapsed=elapsed,
               extra={"accept_rate": count / accepted})


def run_once(server: str, workdir: Path, size: int, clients: int, count: int,
             timeout: float) -> Run:
    """Start ``server`` in ``workdir``, load it once, stop it."""
    if server == "Postfix":
        pf = postfix.PostfixInstance(workdir)
        try:
            pf.configure_accept(peers.DOMAIN, [USER])
            pf.start()
            return measure(pf.root_pids, pf.port, pf.maildir(peers.DOMAIN, USER), size, clients,
                           count, timeout)
        finally:
            pf.stop()
    if server in ("mailsuite", NO_FSYNC):
        srv = peers.Mailsuite(workdir)
        settings: dict[str, dict[str, object]] = {
            "smtp": {"max_connections_per_ip": 1000, "max_connections": 2000}}
        if server == NO_FSYNC:
            settings["store"] = {"fsync": False}
        try:
            srv.start(listen=("smtp",), users=[USER], settings=settings)
            return measure(srv.root_pids, srv.ports["smtp"], srv.maildir(USER), size, clients,
                           count, timeout)
        finally:
            srv.stop()
    if server == "twistd mail":
        tm = peers.TwistdMail(workdir, [USER])
        try:
            tm.start(smtp=True, pop3=False)
            return measure(tm.root_pids, tm.smtp_port, tm.maildir(USER), size, clients, count,
                           timeout)
        finally:
            tm.stop()
    if server == "aiosmtpd":
        ai = peers.Aiosmtpd(workdir)
        try:
            ai.start()
            return measure(ai.root_pids, ai.smtp_port, ai.maildir(USER), size, clients, count,
                           timeout)
        finally:
            ai.stop()
    raise ValueError(server)


def run(ctx) -> Workload:
    """The SMTP accept workload for the runner context ``ctx``."""
    counts = {2048: 300, 100 * 1024: 100} if ctx.quick else {2048: 1000, 100 * 1024: 300}
    wl = Workload("smtp", "SMTP accept (inbound, local delivery to one Maildir)", __doc__.strip())
    wl.notes.append("msg/s = messages / time from the first connection until the last file is "
                    "in the Maildir; 'accept msg/s' = messages / time until smtp-source got its "
                    "last 250.")
    wl.notes.append("The runs of a case alternate between the servers (each once, then again), "
                    "so that the machine's drift over minutes falls on all of them alike.")
    wl.notes.append("Load: `smtp-source -s CLIENTS -m N -l SIZE` (one connection per message, "
                    "SIZE bytes of body) to one recipient of the server's domain.")
    wl.notes.append("Durability differs: mailsuite, aiosmtpd (bench/aiosmtpd_maildir.py) and "
                    "Postfix fsync before they answer 250 (Postfix into its queue, then its "
                    "virtual agent delivers into the Maildir with fsync); `twistd mail` never "
                    "fsyncs. `twistd mail` runs through bench/twistd_mail_py3.py, which only "
                    "repairs the str/bytes errors that stop it from delivering on Python 3.")
    wl.notes.append(f"'{NO_FSYNC}' is mailsuite with `[store] fsync = false`: not durable and "
                    "not a peer, but the same server with the disk's waits taken out. Its ratio "
                    "is the share of mailsuite's speed that durable writes leave.")
    for size, count in counts.items():
        for clients in (1, 20):
            case = Case(f"{size // 1024} KB x {count}, {clients} client{'s' if clients > 1 else ''}",
                        "msg/s")
            outcomes = [Outcome(server) for server in SERVERS]
            for outcome in outcomes:
                outcome.skipped = ctx.missing(outcome.server, ("smtp",))
            # Round robin (every server once, then again): the machine's speed drifts over
            # minutes, and running one server's repetitions back to back let that drift into
            # the ratios.
            for i in range(ctx.runs):
                for outcome in outcomes:
                    if outcome.skipped:
                        continue
                    server = outcome.server
                    workdir = ctx.workdir(f"smtp-{server}-{size}-{clients}-{i}")
                    try:
                        outcome.runs.append(run_once(server, workdir, size, clients, count,
                                                     ctx.timeout(count)))
                    except Exception as exc:  # noqa: BLE001 - reported in the table
                        outcome.errors.append(brief(exc))
                        ctx.say(f"    {server}: {brief(exc, 2000)}")
                    ctx.cleanup(workdir)
            for outcome in outcomes:
                ctx.progress(wl.key, case.label, outcome)
                case.outcomes.append(outcome)
            wl.cases.append(case)
    return wl

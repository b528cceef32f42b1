"""Outbound relay: drain a queue of N messages to 20 destination domains into ``smtp-sink``.

Both servers first get the whole load queued while they cannot deliver, then the queue is
released and the clock runs until ``smtp-sink`` has counted every message:

- mailsuite: the messages are written into its spool (``bench/spool_fill.py``, with mailsuite's
  own spool code) while the server is stopped; the clock starts when the server process is
  started (its start-up time is included).  It finds each domain's MX through a DNS server on
  loopback (``bench/dns_server.py``: ``dN.relay.test MX mx.dN.relay.test``, ``A 127.0.0.1``)
  and connects to the sink's port (``[relay] port``).  Its settings are the defaults
  (``max_connections = 50``, ``max_per_destination = 4``).
- Postfix: ``smtp-source`` injects the messages over SMTP (20 sessions) and every recipient is
  put on hold (``check_recipient_access static:HOLD``); the clock starts with
  ``postsuper -H ALL``.  Postfix asks the system resolver, which cannot be pointed at a private
  DNS port, so ``transport_maps`` routes every domain to ``[127.0.0.1]:SINKPORT`` (no MX
  lookup) and ``smtp_destination_concurrency_limit = 50`` matches mailsuite's connection limit.
"""

from __future__ import annotations

import subprocess
import sys
import time
from pathlib import Path

from benchlib import peers, postfix, procs
from benchlib.results import Case, Outcome, Run, Workload, brief

DOMAINS = [f"d{i:02d}.relay.test" for i in range(1, 21)]
SERVERS = ("mailsuite", "Postfix")
SIZE = 2048


def wait_sink(sink: peers.SmtpSink, count: int, deadline: float) -> int:
    n = 0
    while time.monotonic() < deadline:
        n = sink.messages()
        if n >= count:
            return n
        time.sleep(0.05)
    return n


def run_mailsuite(ctx, workdir: Path, count: int, timeout: float) -> Run:
    sink = peers.SmtpSink(workdir / "sink")
    dns = peers.DnsServer(workdir / "dns", DOMAINS)
    srv = peers.Mailsuite(workdir / "mailsuite")
    try:
        sink.start()
        dns.start()
        # Write the configuration (and users) without starting, then fill the spool.
        srv.data_dir.mkdir(parents=True, exist_ok=True)
        srv.start(listen=("smtp",), users=[], relay_port=sink.port,
                  nameservers=[f"127.0.0.1:{dns.port}"], settings={}, start=False)
        fill = subprocess.run(
            [sys.executable, str(peers.BENCH_DIR / "spool_fill.py"), "--data-dir",
             str(srv.data_dir), "--count", str(count), "--domains", ",".join(DOMAINS),
             "--size", str(SIZE)],
            capture_output=True, text=True, timeout=max(300, count * 0.05),
            env=peers.python_env(), cwd=str(peers.REPO), check=False)
        if fill.returncode != 0:
            raise RuntimeError(f"spool_fill failed: {fill.stderr.strip()[-600:]}")
        start = time.monotonic()
        srv.launch()
        monitor = procs.TreeMonitor(srv.root_pids)
        monitor.start()
        try:
            n = wait_sink(sink, count, start + timeout)
            elapsed = time.monotonic() - start
        finally:
            monitor.stop()
        if n < count:
            raise RuntimeError(f"the sink got {n} of {count} messages in {timeout:.0f} s; "
                               f"server log: {srv.log_tail(600)}")
        return Run(rate=count / elapsed, cpu_seconds=monitor.cpu_used, units=count,
                   peak_memory=monitor.peak_memory, elapsed=elapsed)
    finally:
        srv.stop()
        dns.stop()
        sink.stop()


def run_postfix(ctx, workdir: Path, count: int, timeout: float) -> Run:
    sink = peers.SmtpSink(workdir / "sink")
    pf = postfix.PostfixInstance(workdir / "postfix")
    try:
        sink.start()
        pf.configure_relay(DOMAINS, sink.port, hold=True)
        pf.start()
        per = count // len(DOMAINS)
        injectors = [subprocess.Popen(
            ["smtp-source", "-s", "1", "-m", str(per + (1 if i < count % len(DOMAINS) else 0)),
             "-l", str(SIZE), "-M", "client.bench.test", "-f", "bench@bench.test",
             "-t", f"rcpt@{domain}", f"127.0.0.1:{pf.port}"],
            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            for i, domain in enumerate(DOMAINS)]
        for inj in injectors:
            _, err = inj.communicate(timeout=max(300, count * 0.05))
            if inj.returncode != 0:
                raise RuntimeError(f"smtp-source failed: {err.decode(errors='replace')[-300:]}")
        deadline = time.monotonic() + 120
        while pf.held_count() < count and time.monotonic() < deadline:
            time.sleep(0.1)
        if pf.held_count() < count:
            raise RuntimeError(f"only {pf.held_count()} of {count} messages are on hold")
        monitor = procs.TreeMonitor(pf.root_pids)
        monitor.start()
        start = time.monotonic()
        try:
            pf.release_all()
            n = wait_sink(sink, count, start + timeout)
            elapsed = time.monotonic() - start
        finally:
            monitor.stop()
        if n < count:
            raise RuntimeError(f"the sink got {n} of {count} messages in {timeout:.0f} s")
        return Run(rate=count / elapsed, cpu_seconds=monitor.cpu_used, units=count,
                   peak_memory=monitor.peak_memory, elapsed=elapsed)
    finally:
        pf.stop()
        sink.stop()


def run(ctx) -> Workload:
    count = 1000 if ctx.quick else 10_000
    wl = Workload("relay", "Outbound relay to smtp-sink (20 destination domains)",
                  __doc__.strip())
    wl.notes.append("msg/s = messages / time from releasing the queue until smtp-sink counted "
                    "the last one. CPU is the relaying server's only (not the sink's or the "
                    "DNS server's).")
    case = Case(f"{count} x {SIZE // 1024} KB to {len(DOMAINS)} domains", "msg/s")
    for server in SERVERS:
        outcome = Outcome(server)
        why = ctx.missing("smtp-source") or ctx.missing(server, ("relay",))
        if why:
            outcome.skipped = why
        else:
            for i in range(ctx.runs):
                workdir = ctx.workdir(f"relay-{server}-{i}")
                try:
                    runner = run_mailsuite if server == "mailsuite" else run_postfix
                    outcome.runs.append(runner(ctx, workdir, count, ctx.timeout(count, 0.1)))
                except Exception as exc:  # noqa: BLE001 - reported in the table
                    outcome.errors.append(brief(exc))
                    ctx.say(f"    {server}: {brief(exc, 2000)}")
                ctx.cleanup(workdir)
        ctx.progress(wl.key, case.label, outcome)
        case.outcomes.append(outcome)
    wl.cases.append(case)
    return wl

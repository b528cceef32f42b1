"""Benchmark mailsuite against its peers on this machine, in one run.

    python bench/run.py [--quick] [--only smtp,relay,imap,pop3,store,memory] [--runs N]
                        [--write BENCHMARKS.md]

Every server (mailsuite from this checkout, ``twistd mail``, aiosmtpd, a private Postfix, a private
Dovecot, smtp-sink, a loopback DNS server) is started on 127.0.0.1 with its own temporary data,
loaded, measured and stopped; nothing stays running.  A peer that is not installed is skipped with
the command that installs it; nothing is installed by this script.  Each table shows the median
over ``--runs`` runs (default 3, ``--quick`` 1), the ratio mailsuite/peer, the CPU seconds the
server's process tree used per unit of work, and its peak memory (PSS).
"""

from __future__ import annotations

import argparse
import datetime
import os
import platform
import resource
import shlex
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from benchlib import dovecot, peers, postfix, procs, report
from benchlib.results import Outcome, Workload

WORKLOADS = ("smtp", "relay", "imap", "imap-big", "pop3", "store", "memory")


class Context:
    """What every workload needs: options, scratch space, peer checks, progress output."""

    def __init__(self, args: argparse.Namespace, root: Path) -> None:
        self.quick: bool = args.quick
        self.runs: int = args.runs if args.runs else (1 if args.quick else 3)
        self.root = root
        self.keep = args.keep
        self._missing_cache: dict[tuple[str, tuple[str, ...]], str | None] = {}
        self.started = time.monotonic()

    def workdir(self, name: str) -> Path:
        path = self.root / name.replace(" ", "_").replace("/", "_")
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(0o755)
        return path

    def cleanup(self, path: Path) -> None:
        """Nothing until the end of the run, on purpose: ext4 without a journal (as on our
        benchmark machines) skips every inode freed in the last minute, one by one, when it
        makes a file, so deleting a run's files here made the next server pay for them (perf
        showed ``recently_deleted`` under file creation at a sixth of all CPU samples). The
        whole scratch directory is removed when the run ends."""

    def timeout(self, units: int, per_unit: float = 0.05, floor: float = 120.0) -> float:
        """A generous upper bound for one run of ``units`` units (every wait is bounded)."""
        return max(floor, units * per_unit)

    def missing(self, server: str, parts: tuple[str, ...] = ()) -> str | None:
        key = (server, parts)
        if key not in self._missing_cache:
            self._missing_cache[key] = check_missing(server, parts)
        return self._missing_cache[key]

    def say(self, line: str) -> None:
        print(f"[{time.monotonic() - self.started:6.1f}s] {line}", flush=True)

    def progress(self, workload: str, case: str, outcome: Outcome) -> None:
        self.say(f"{workload}: {case}: {outcome.server}: {report.outcome_line(outcome)}")


def check_missing(server: str, parts: tuple[str, ...]) -> str | None:
    """Why ``server`` cannot run here (with the install command), or None."""
    if server.startswith("mailsuite"):  # "mailsuite, fsync off" too
        return peers.mailsuite_missing(parts)
    if server == "Postfix":
        return postfix.missing()
    if server == "Dovecot":
        return dovecot.missing(parts[0] if parts else "imap")
    if server == "aiosmtpd":
        return peers.aiosmtpd_missing()
    if server == "twistd mail":
        return None  # Twisted is a dependency of mailsuite itself
    if server == "smtp-source":
        return None if peers.have("smtp-source") else "smtp-source not found: apt-get install postfix"
    return None


def peer_versions() -> dict[str, str]:
    versions = {"mailsuite": peers.mailsuite_version(), "twistd mail": peers.twisted_version()}
    for name, check, get in (("Postfix", postfix.missing, postfix.version),
                             ("Dovecot", lambda: dovecot.missing("imap"), dovecot.version),
                             ("aiosmtpd", peers.aiosmtpd_missing, peers.aiosmtpd_version)):
        why = check()
        try:
            versions[name] = get() if why is None else f"not available ({why})"
        except Exception as exc:  # noqa: BLE001
            versions[name] = f"unknown ({exc})"
    return versions


def ext4_journal(device: str) -> str:
    """', no journal' when the ext4 on ``device`` has none (then every fsync flushes the disk
    cache on its own, and new files skip the inodes freed in the last minutes): it changes
    the SMTP figures of every server. Empty when it has one or when we cannot tell."""
    name = Path(device).name
    jbd2 = Path("/proc/fs/jbd2")
    if not name or not Path("/proc/fs/ext4", name).is_dir() or not jbd2.is_dir():
        return ""
    return "" if any(p.name.startswith(f"{name}-") for p in jbd2.iterdir()) else ", no journal"


def machine() -> dict[str, str]:
    model = "?"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    mem = "?"
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal"):
                mem = f"{int(line.split()[1]) / 1024 / 1024:.1f} GiB"
    except OSError:
        pass
    fs = subprocess.run(["df", "-T", tempfile.gettempdir()], capture_output=True, text=True, check=False)
    fstype = fs.stdout.splitlines()[-1].split()[1] if fs.returncode == 0 else "?"
    if fstype == "ext4":
        fstype += ext4_journal(fs.stdout.splitlines()[-1].split()[0])
    return {
        "CPUs": str(os.cpu_count()),
        "CPU model": model,
        "memory": mem,
        "kernel": platform.release(),
        "OS": platform.freedesktop_os_release().get("PRETTY_NAME", "?")
        if hasattr(platform, "freedesktop_os_release") else "?",
        "temporary data on": f"{tempfile.gettempdir()} ({fstype})",
        "load average at the start": " ".join(f"{x:.2f}" for x in os.getloadavg()),
    }


def load_workload(key: str):
    if key == "smtp":
        from benchlib import smtp_accept as mod
    elif key == "relay":
        from benchlib import relay as mod
    elif key == "imap":
        from benchlib import imap as mod
    elif key == "imap-big":
        from benchlib import bigfolder as mod
    elif key == "pop3":
        from benchlib import pop3 as mod
    elif key == "store":
        from benchlib import store as mod
    elif key == "memory":
        from benchlib import memory as mod
    else:
        raise ValueError(key)
    return mod


def write_markdown(path: Path, command: str, started: datetime.datetime, duration: float,
                   info: dict[str, str], versions: dict[str, str], results: list[Workload],
                   runs: int) -> None:
    lines = [
        "# mailsuite benchmarks",
        "",
        "Generated by `bench/run.py`; do not edit by hand. Regenerate with:",
        "",
        "```",
        command,
        "```",
        "",
        f"- Date: {started:%Y-%m-%d %H:%M} UTC; the run took {duration / 60:.1f} minutes.",
        f"- Runs per figure: {runs} (each figure is the median).",
    ]
    lines += [f"- {k}: {v}" for k, v in info.items()]
    lines += ["", "Versions:", ""]
    lines += [f"- {k}: {v}" for k, v in versions.items()]
    lines += ["",
              ("Every server runs on this same machine as the load generator, on 127.0.0.1, with "
              "its own temporary data. *CPU s per unit* is the user+system CPU time of the "
              "server's whole process tree (from /proc) divided by the messages or commands done; "
              "*peak memory* is the largest sum of PSS over the server's processes, sampled every "
              "0.2 s. A ratio above 1 means mailsuite did more per second than that peer, except "
              "where a table says that it compares times or memory (there, below 1 is better "
              "for mailsuite). The machine is shared: the load averages at the start and end are "
              "shown above (the runner's own load generators count too), and figures from a "
              "busy machine are lower for every server."),
              ""]
    for wl in results:
        lines.append(report.markdown(wl))
    path.write_text("\n".join(lines).rstrip() + "\n")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true",
                        help="smaller loads, one run each (under 5 minutes in total)")
    parser.add_argument("--only", default=",".join(WORKLOADS),
                        help=f"comma-separated workloads among {','.join(WORKLOADS)}")
    parser.add_argument("--runs", type=int, default=0,
                        help="runs per server and case (median reported; default 3, quick 1)")
    parser.add_argument("--write", metavar="FILE", help="also write the Markdown report to FILE")
    parser.add_argument("--keep", action="store_true",
                        help="keep the temporary directories (for debugging)")
    args = parser.parse_args(argv)
    selected = [w.strip() for w in args.only.split(",") if w.strip()]
    unknown = [w for w in selected if w not in WORKLOADS]
    if unknown:
        parser.error(f"unknown workload(s): {', '.join(unknown)}")
    if args.runs < 0 or args.runs > 20:
        parser.error("--runs must be between 1 and 20")

    # Many idle connections (memory workload) and many Dovecot/Postfix processes need fds.
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = min(hard, 16384) if hard != resource.RLIM_INFINITY else 16384
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (want, hard))

    started = datetime.datetime.now(datetime.UTC)
    listening_before = procs.listening_ports()
    root = Path(tempfile.mkdtemp(prefix="mailsuite-bench-"))
    root.chmod(0o755)
    ctx = Context(args, root)
    info = machine()
    versions = peer_versions()
    ctx.say(f"bench: {', '.join(selected)}; {'quick' if ctx.quick else 'full'}; "
            f"{ctx.runs} run(s) each; {info['CPUs']} CPUs; scratch {root}")
    for name, ver in versions.items():
        ctx.say(f"  {name}: {ver}")
    for server in ("Postfix", "Dovecot", "aiosmtpd"):
        why = check_missing(server, ())
        if why:
            ctx.say(f"  missing peer {server}: {why} -- it is skipped")
    results: list[Workload] = []
    try:
        for key in selected:
            mod = load_workload(key)
            ctx.say(f"workload {key} ...")
            try:
                wl = mod.run(ctx)
            except Exception as exc:  # noqa: BLE001 - one broken workload must not stop the rest
                wl = Workload(key, key, "", skipped=f"the workload failed: "
                                                     f"{type(exc).__name__}: {exc}")
            results.append(wl)
            print(report.text(wl), flush=True)
    finally:
        if not args.keep:
            shutil.rmtree(root, ignore_errors=True)
    duration = time.monotonic() - ctx.started
    info["load average at the end"] = " ".join(f"{x:.2f}" for x in os.getloadavg())
    leftover = (procs.listening_ports() - listening_before) & procs.HANDED_OUT
    if leftover:
        ctx.say(f"WARNING: ports of this run still listening: {sorted(leftover)}")
    else:
        ctx.say(f"checked: none of the {len(procs.HANDED_OUT)} ports used is still listening")
    ctx.say(f"done in {duration:.0f} s")
    if args.write:
        command = "python bench/run.py " + " ".join(shlex.quote(a) for a in (argv or sys.argv[1:]))
        write_markdown(Path(args.write), command.strip(), started, duration, info, versions,
                       results, ctx.runs)
        ctx.say(f"wrote {args.write}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

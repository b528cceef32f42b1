"""Store: ``bench/store_bench.py`` (written by the store's owner) run as one workload.

It measures deliveries per second into one mailbox with fsync on against the disk's raw
fsync+rename rate in the same run, and the open of a large folder.  Its output is reproduced
verbatim; ``--quick`` is passed on when the script accepts it, and ``--dir`` points it at
the runner's scratch directory.
"""

from __future__ import annotations

import subprocess
import sys

from benchlib import peers
from benchlib.results import Workload

SCRIPT = peers.BENCH_DIR / "store_bench.py"
QUICK_SIZES = (("--deliveries", "2000"), ("--messages", "20000"), ("--raw", "1000"))


def run(ctx) -> Workload:
    wl = Workload("store", "Store (Maildir deliveries and folder open)", __doc__.strip())
    if not SCRIPT.exists():
        wl.skipped = "bench/store_bench.py does not exist in this checkout yet"
        return wl
    helptext = subprocess.run([sys.executable, str(SCRIPT), "--help"], capture_output=True,
                              text=True, timeout=60, env=peers.python_env(), cwd=str(peers.REPO), check=False)
    argv = [sys.executable, str(SCRIPT)]
    if ctx.quick and "--quick" in helptext.stdout:
        argv.append("--quick")
    elif ctx.quick:
        # Smaller sizes for the quick run, where the script offers them.
        for option, value in QUICK_SIZES:
            if option in helptext.stdout:
                argv += [option, value]
    workdir = ctx.workdir("store")
    if "--dir" in helptext.stdout:
        argv += ["--dir", str(workdir)]
    limit = 240 if ctx.quick else 1200
    try:
        res = subprocess.run(argv, capture_output=True, text=True, timeout=limit,
                             env=peers.python_env(), cwd=str(peers.REPO), check=False)
    except subprocess.TimeoutExpired:
        wl.skipped = f"bench/store_bench.py did not finish within {limit} s"
        return wl
    ctx.cleanup(workdir)
    shown = [a if a != str(workdir) else "<scratch directory on the same disk as /tmp>"
             for a in argv[2:]]
    command = " ".join(["python bench/store_bench.py", *shown])
    wl.notes.append(f"Command: `{command}` (exit status {res.returncode}).")
    if res.returncode != 0:
        wl.skipped = f"bench/store_bench.py failed: {' '.join(res.stderr.split())[-400:]}"
    wl.raw_text = res.stdout.strip() or None
    ctx.say(f"store: store_bench.py exit {res.returncode}")
    return wl

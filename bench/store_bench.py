"""Store benchmark: delivery rate with fsync, against the disk's raw fsync+rename rate, and
the time and peak memory to open (select) a 100,000-message folder.

    python bench/store_bench.py [--dir DIR] [--deliveries 10000] [--messages 100000]
                                [--concurrency 32] [--raw 3000]

- deliveries/s: ``MaildirStore.account(u).deliver()`` of small messages into one INBOX with
  fsync on, ``--concurrency`` deliveries in flight (as an SMTP server with many clients has).
  That is IMAP APPEND's path (a UID for each message at once). Mail from SMTP and the queue
  takes ``deliver_incoming()`` (batched: deliveries waiting together share their fsyncs, and
  the first reader assigns UIDs), measured the same way.
- raw rate: write a file in tmp/, fsync it, rename it into new/, fsync new/, in a tight loop,
  on one thread and on as many threads as the store's pool uses: the physical limit.
- open: a folder of ``--messages`` files written directly (Dovecot-style names with ,S=),
  opened in a fresh subprocess: *cold* (no dovecot-uidlist yet: every UID is assigned and
  written) and *warm* (the usual case), listing every UID, flag set and size. Peak memory is
  the subprocess's ``ru_maxrss`` (including the Python interpreter and imports; the baseline
  of an interpreter with the same imports is shown too).

Everything is written to a temporary directory under ``--dir`` (default: the current
directory, i.e. the disk where ``./maildirs`` lives) and removed at the end.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

REPO = str(Path(__file__).resolve().parent.parent)
if REPO not in sys.path:
    sys.path.insert(0, REPO)

USER = "bench@example.test"
SMALL = (
    b"From: sender@example.test\r\nTo: bench@example.test\r\nSubject: benchmark\r\n"
    b"Message-ID: <x@example.test>\r\nDate: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\n"
    + b"Hello, this is a small message body.\r\n"
    * 10
)

OPEN_SCRIPT = r"""
import json, resource, sys, time
sys.path.insert(0, sys.argv[2])
from mailsuite.store.maildir import MaildirStore
from mailsuite.store.settings import StoreSettings
class Clock:
    def seconds(self):
        return time.time()
baseline = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
start = time.perf_counter()
store = MaildirStore(sys.argv[1], StoreSettings(), None, None, clock=Clock())
folder = store.account("bench@example.test").open_folder("INBOX")
rows = [(m.uid, m.flags, m.size) for m in folder.messages()]
elapsed = time.perf_counter() - start
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({"seconds": elapsed, "count": len(rows), "peak_kb": peak, "baseline_kb": baseline}))
"""


def raw_rate(directory: Path, count: int, threads: int) -> float:
    """Messages/s for write tmp + fsync + rename into new + fsync new, ``threads`` at once."""
    for sub in ("tmp", "new"):
        (directory / sub).mkdir(parents=True, exist_ok=True)
    per_thread = count // threads

    def loop(tag: int) -> None:
        for n in range(per_thread):
            name = f"raw.{tag}.{n}"
            tmp = directory / "tmp" / name
            fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
            os.write(fd, SMALL)
            os.fsync(fd)
            os.close(fd)
            os.rename(tmp, directory / "new" / name)
            dfd = os.open(directory / "new", os.O_RDONLY | os.O_DIRECTORY)
            os.fsync(dfd)
            os.close(dfd)

    workers = [threading.Thread(target=loop, args=(t,)) for t in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return per_thread * threads / (time.perf_counter() - start)


def delivery_rates(root: Path, count: int, concurrency: int, methods: list[str]
                   ) -> tuple[list[float], int]:
    """Deliveries/s through each of the store's ``methods`` (``deliver``, ``deliver_incoming``),
    one after the other, each into a fresh store under ``root`` with ``concurrency`` in flight
    (all in one reactor run: a reactor cannot be started twice); also returns the pool size."""
    from twisted.internet import defer, reactor

    from mailsuite.store.maildir import MaildirStore
    from mailsuite.store.settings import StoreSettings

    seconds: list[float] = []
    failed: list[object] = []

    async def measure(method: str) -> None:
        store = MaildirStore(root / method, StoreSettings(fsync=True), None, reactor)
        deliver = getattr(store.account(USER), method)
        remaining = iter(range(count))

        async def worker() -> None:
            for _ in remaining:
                await deliver(SMALL)

        start = time.perf_counter()
        await defer.gatherResults(
            [defer.Deferred.fromCoroutine(worker()) for _ in range(concurrency)], consumeErrors=True
        )
        seconds.append(time.perf_counter() - start)

    async def run() -> None:
        for method in methods:
            await measure(method)

    def main() -> None:
        d = defer.Deferred.fromCoroutine(run())
        d.addErrback(lambda f: (f.printTraceback(), failed.append(f)))
        d.addBoth(lambda _: reactor.stop())

    reactor.callWhenRunning(main)
    reactor.run()
    pool = reactor.getThreadPool().max
    if failed or len(seconds) != len(methods):
        raise SystemExit("delivery benchmark failed")
    return [count / s for s in seconds], pool


def make_big_folder(maildir: Path, count: int) -> None:
    """Write ``count`` messages straight into cur/ with Dovecot-style names."""
    for sub in ("cur", "new", "tmp"):
        (maildir / sub).mkdir(parents=True, exist_ok=True)
    cur = maildir / "cur"
    size = len(SMALL)
    flags = ["", "S", "RS", "FS"]
    for n in range(count):
        name = f"{1700000000 + n}.M{n}P1Q{n}.bench,S={size}:2,{flags[n % 4]}"
        fd = os.open(cur / name, os.O_WRONLY | os.O_CREAT, 0o600)
        os.write(fd, SMALL)
        os.close(fd)


def open_folder(root: Path) -> dict:
    out = subprocess.run(
        [sys.executable, "-c", OPEN_SCRIPT, str(root), REPO],
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(out.stdout)


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--dir", default=".", help="where to make the temporary directory")
    parser.add_argument("--deliveries", type=int, default=10_000)
    parser.add_argument("--messages", type=int, default=100_000)
    parser.add_argument("--concurrency", type=int, default=32)
    parser.add_argument("--raw", type=int, default=3_000, help="iterations of the raw loop")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="store-bench-", dir=args.dir))
    rows: list[tuple[str, str]] = []
    try:
        raw1 = raw_rate(work / "raw1", args.raw, 1)
        rows.append(("raw tmp+fsync+rename+fsync dir, 1 thread", f"{raw1:,.0f} msg/s"))
        (rate, incoming), pool = delivery_rates(
            work / "deliver", args.deliveries, args.concurrency, ["deliver", "deliver_incoming"]
        )
        rawn = raw_rate(work / "rawn", args.raw, pool)
        rows.append((f"raw tmp+fsync+rename+fsync dir, {pool} threads", f"{rawn:,.0f} msg/s"))
        rows.append(
            (
                f"store deliver() x{args.deliveries:,}, fsync on, {args.concurrency} in flight",
                f"{rate:,.0f} msg/s",
            )
        )
        rows.append((f"  store / raw ({pool} threads)", f"{rate / rawn:.0%}"))
        rows.append(
            (
                (f"store deliver_incoming() x{args.deliveries:,} (SMTP's batched path), "
                 f"{args.concurrency} in flight"),
                f"{incoming:,.0f} msg/s",
            )
        )
        rows.append((f"  incoming / raw ({pool} threads)", f"{incoming / rawn:.0%}"))
        shutil.rmtree(work / "deliver", ignore_errors=True)

        big_root = work / "big"
        started = time.perf_counter()
        make_big_folder(big_root / "example.test" / "bench", args.messages)
        rows.append(
            (
                f"write {args.messages:,} files directly (setup)",
                f"{time.perf_counter() - started:.1f} s",
            )
        )
        for label in ("cold (no dovecot-uidlist yet)", "warm"):
            result = open_folder(big_root)
            assert result["count"] == args.messages, result
            rows.append(
                (
                    f"open {args.messages:,}-message folder {label}, list UIDs/flags/sizes",
                    (
                        f"{result['seconds']:.2f} s, peak RSS {result['peak_kb'] / 1024:.0f} MB "
                        f"(interpreter+imports {result['baseline_kb'] / 1024:.0f} MB)"
                    ),
                )
            )
    finally:
        shutil.rmtree(work, ignore_errors=True)

    width = max(len(r[0]) for r in rows)
    print(f"{'measure'.ljust(width)}  result")
    print(f"{'-' * width}  {'-' * 40}")
    for label, value in rows:
        print(f"{label.ljust(width)}  {value}")


if __name__ == "__main__":
    main()

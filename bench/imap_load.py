"""IMAP load generator for the benchmarks (asyncio, no third-party code).

    python bench/imap_load.py --port N --users a@d,b@d --password P --clients 50 --duration 20
    python bench/imap_load.py ... --warmup          # one session per user: SELECT + FETCH all
    python bench/imap_load.py ... --idle 1000 --hold 30   # memory: N sessions parked in IDLE

Load mode: every client logs in (client i uses user i mod len(users)) and SELECTs INBOX, 50
at a time; once all are in, the timed part starts and each client repeats a fixed mix of commands until ``--duration`` seconds have passed or ``--max-rounds``
rounds are done: ``UID FETCH 1:* (FLAGS)``, a page of 50 ``(UID RFC822.SIZE FLAGS ENVELOPE)``,
``BODYSTRUCTURE`` and ``BODY.PEEK[]`` of single messages, ``UID STORE +FLAGS/-FLAGS``,
``UID SEARCH UNSEEN``, ``SEARCH SUBJECT``, ``APPEND`` of a small message, ``NOOP`` and an
``IDLE``/``DONE`` cycle.  It prints one JSON object: commands done, failures, elapsed seconds,
median latency per command kind, and (with ``--server-pids``) the server's CPU seconds during
the timed part.

Idle mode: opens ``--idle`` sessions (at most 50 logging in at a time), each LOGIN, SELECT, IDLE;
when all are idling it prints ``READY <n>`` and waits until stdin is closed or ``--hold`` seconds
pass, then closes every connection.  Every wait is bounded by ``--timeout``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import random
import resource
import statistics
import sys
import time

RESULT_OK = b"OK"


class Session:
    """One IMAP connection: tagged commands, responses read with literals, bounded waits."""

    def __init__(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter,
                 timeout: float) -> None:
        self.reader = reader
        self.writer = writer
        self.timeout = timeout
        self.seq = 0
        self.exists = 0

    @classmethod
    async def open(cls, port: int, timeout: float) -> Session:
        reader, writer = await asyncio.wait_for(
            asyncio.open_connection("127.0.0.1", port, limit=1 << 22), timeout)
        session = cls(reader, writer, timeout)
        await session._line()  # greeting
        return session

    async def _line(self) -> bytes:
        line = await asyncio.wait_for(self.reader.readline(), self.timeout)
        if not line:
            raise ConnectionError("server closed the connection")
        # A line ending in {n} announces a literal of n octets, then the line goes on.
        while line.endswith(b"}\r\n"):
            start = line.rfind(b"{")
            n = int(line[start + 1:-3].rstrip(b"+"))
            literal = await asyncio.wait_for(self.reader.readexactly(n), self.timeout)
            rest = await asyncio.wait_for(self.reader.readline(), self.timeout)
            line = line + literal + rest
        return line

    async def command(self, text: bytes, literal: bytes | None = None) -> bytes:
        """Send one command and read up to its tagged reply; return the status word."""
        self.seq += 1
        tag = b"b%d" % self.seq
        if literal is None:
            self.writer.write(tag + b" " + text + b"\r\n")
        else:
            self.writer.write(tag + b" " + text + b" {%d}\r\n" % len(literal))
            await self.writer.drain()
            line = await self._line()
            if not line.startswith(b"+"):
                return line.split(b" ", 2)[1] if line.startswith(tag) else b"BAD"
            self.writer.write(literal + b"\r\n")
        await self.writer.drain()
        while True:
            line = await self._line()
            if line.startswith(b"* ") and line.endswith(b" EXISTS\r\n"):
                try:
                    self.exists = int(line.split()[1])
                except ValueError:
                    pass
            if line.startswith(tag + b" "):
                return line[len(tag) + 1:].split(b" ", 1)[0]

    async def idle_start(self) -> bytes:
        self.seq += 1
        self._idle_tag = b"b%d" % self.seq
        self.writer.write(self._idle_tag + b" IDLE\r\n")
        await self.writer.drain()
        while True:
            line = await self._line()
            if line.startswith(b"+"):
                return RESULT_OK
            if line.startswith(self._idle_tag + b" "):
                return line[len(self._idle_tag) + 1:].split(b" ", 1)[0]

    async def idle_done(self) -> bytes:
        self.writer.write(b"DONE\r\n")
        await self.writer.drain()
        while True:
            line = await self._line()
            if line.startswith(self._idle_tag + b" "):
                return line[len(self._idle_tag) + 1:].split(b" ", 1)[0]

    def close(self) -> None:
        self.writer.close()


def server_cpu(pids: str) -> float:
    """CPU seconds of the server's process trees (``--server-pids``), read from /proc."""
    if not pids:
        return 0.0
    from benchlib import procs

    roots = [int(p) for p in pids.split(",") if p]
    return procs.cpu_seconds(p for r in roots for p in procs.tree_pids(r))


def quote(s: str) -> bytes:
    return b'"' + s.replace("\\", "\\\\").replace('"', '\\"').encode() + b'"'


async def login(port: int, user: str, password: str, timeout: float) -> Session:
    session = await Session.open(port, timeout)
    status = await session.command(b"LOGIN " + quote(user) + b" " + quote(password))
    if status != RESULT_OK:
        raise RuntimeError(f"LOGIN {user} failed: {status!r}")
    status = await session.command(b"SELECT INBOX")
    if status != RESULT_OK:
        raise RuntimeError(f"SELECT failed for {user}: {status!r}")
    return session


APPEND_MESSAGE = (b"From: Load <load@example.test>\r\nTo: alice@bench.test\r\n"
                  b"Subject: appended by the load generator\r\n"
                  b"Date: Mon, 23 Nov 2026 10:00:00 +0000\r\n\r\nhello\r\n")


async def one_client(index: int, session: Session, args, stats: dict[str, list[float]],
                     failures: list[str], stop_at: float) -> None:
    rng = random.Random(index)
    try:
        rounds = 0
        while time.monotonic() < stop_at and rounds < args.max_rounds:
            rounds += 1
            n = max(1, session.exists)
            page = rng.randint(1, max(1, n - 49))
            pick = [rng.randint(1, n) for _ in range(3)]
            script: list[tuple[str, bytes, bytes | None]] = [
                ("uid fetch flags", b"UID FETCH 1:* (FLAGS)", None),
                ("fetch envelope page", b"FETCH %d:%d (UID RFC822.SIZE FLAGS ENVELOPE)"
                 % (page, min(n, page + 49)), None),
                ("fetch bodystructure", b"FETCH %d BODYSTRUCTURE" % pick[0], None),
                ("fetch body", b"FETCH %d BODY.PEEK[]" % pick[1], None),
                ("fetch body", b"FETCH %d BODY.PEEK[]" % pick[2], None),
                ("store flags", b"STORE %d +FLAGS (\\Flagged)" % pick[0], None),
                ("store flags", b"STORE %d -FLAGS (\\Flagged)" % pick[0], None),
                ("search unseen", b"UID SEARCH UNSEEN", None),
                ("search subject", b"SEARCH SUBJECT \"budget\"", None),
                ("append", b"APPEND INBOX (\\Seen)", APPEND_MESSAGE),
                ("noop", b"NOOP", None),
            ]
            for kind, text, literal in script:
                if time.monotonic() >= stop_at:
                    break
                t0 = time.monotonic()
                status = await session.command(text, literal)
                stats.setdefault(kind, []).append(time.monotonic() - t0)
                if status != RESULT_OK:
                    failures.append(f"{kind}: {status.decode(errors='replace')}")
            if time.monotonic() < stop_at:
                t0 = time.monotonic()
                status = await session.idle_start()
                if status == RESULT_OK:
                    status = await session.idle_done()
                stats.setdefault("idle+done", []).append(time.monotonic() - t0)
                if status != RESULT_OK:
                    failures.append(f"idle: {status.decode(errors='replace')}")
        await session.command(b"LOGOUT")
    finally:
        session.close()


async def load(args) -> dict:
    stats: dict[str, list[float]] = {}
    failures: list[str] = []
    users = args.users.split(",")
    # Every client logs in and selects first (50 at a time); the timed part starts after.
    gate = asyncio.Semaphore(50)

    async def open_one(i: int) -> Session:
        async with gate:
            return await login(args.port, users[i % len(users)], args.password, args.timeout)

    login_start = time.monotonic()
    opened = await asyncio.gather(*(open_one(i) for i in range(args.clients)),
                                  return_exceptions=True)
    login_seconds = time.monotonic() - login_start
    sessions = [s for s in opened if isinstance(s, Session)]
    crashed = [f"{type(r).__name__}: {r}" for r in opened if isinstance(r, BaseException)]
    cpu_before = server_cpu(args.server_pids)
    start = time.monotonic()
    stop_at = start + args.duration
    results = await asyncio.gather(
        *(one_client(i, s, args, stats, failures, stop_at) for i, s in enumerate(sessions)),
        return_exceptions=True)
    elapsed = time.monotonic() - start
    cpu_used = server_cpu(args.server_pids) - cpu_before
    crashed += [f"{type(r).__name__}: {r}" for r in results if isinstance(r, BaseException)]
    all_latencies = [x for values in stats.values() for x in values]
    return {
        "clients": args.clients,
        "login_seconds": login_seconds,
        "server_cpu": cpu_used if args.server_pids else None,
        "commands": len(all_latencies),
        "elapsed": elapsed,
        "failures": len(failures),
        "failure_examples": failures[:5],
        "crashed_clients": len(crashed),
        "crash_examples": crashed[:3],
        "p50_ms": statistics.median(all_latencies) * 1000 if all_latencies else None,
        "by_command": {k: {"count": len(v), "p50_ms": statistics.median(v) * 1000}
                       for k, v in sorted(stats.items())},
    }


async def warmup(args) -> dict:
    done = 0
    exists = []
    for user in args.users.split(","):
        session = await login(args.port, user, args.password, args.timeout)
        exists.append(session.exists)
        try:
            await session.command(b"FETCH 1:* (UID FLAGS RFC822.SIZE ENVELOPE BODYSTRUCTURE)")
            await session.command(b"LOGOUT")
            done += 1
        finally:
            session.close()
    return {"warmed": done, "min_exists": min(exists) if exists else 0}


async def idle_many(args) -> dict:
    users = args.users.split(",")
    gate = asyncio.Semaphore(50)
    sessions: list[Session] = []
    errors: list[str] = []

    async def open_one(i: int) -> None:
        async with gate:
            try:
                session = await login(args.port, users[i % len(users)], args.password,
                                      args.timeout)
                status = await session.idle_start()
                if status != RESULT_OK:
                    raise RuntimeError(f"IDLE refused: {status!r}")
                sessions.append(session)
            except Exception as exc:  # noqa: BLE001 - counted and reported
                errors.append(f"{type(exc).__name__}: {exc}")

    start = time.monotonic()
    await asyncio.wait_for(asyncio.gather(*(open_one(i) for i in range(args.idle))),
                           args.timeout * 4)
    print(f"READY {len(sessions)} {len(errors)} {time.monotonic() - start:.2f}", flush=True)
    loop = asyncio.get_running_loop()
    stdin_closed = loop.run_in_executor(None, sys.stdin.read)
    try:
        await asyncio.wait_for(stdin_closed, args.hold)
    except TimeoutError:
        pass
    for session in sessions:
        session.close()
    return {"idling": len(sessions), "errors": len(errors), "error_examples": errors[:3]}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--users", required=True, help="comma-separated login names")
    parser.add_argument("--password", required=True)
    parser.add_argument("--clients", type=int, default=10)
    parser.add_argument("--duration", type=float, default=10.0)
    parser.add_argument("--max-rounds", type=int, default=100_000)
    parser.add_argument("--timeout", type=float, default=60.0, help="bound on every single wait")
    parser.add_argument("--warmup", action="store_true")
    parser.add_argument("--server-pids", default="",
                        help="comma-separated pids of the server: report its CPU seconds over "
                             "the timed part (after the logins)")
    parser.add_argument("--idle", type=int, default=0, help="idle mode: number of sessions")
    parser.add_argument("--hold", type=float, default=60.0)
    args = parser.parse_args()
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    want = max(args.idle, args.clients) + 256
    if soft < want:
        resource.setrlimit(resource.RLIMIT_NOFILE, (min(hard, max(want, soft)), hard))
    if args.warmup:
        result = asyncio.run(warmup(args))
    elif args.idle:
        result = asyncio.run(idle_many(args))
    else:
        result = asyncio.run(load(args))
    print(json.dumps(result), flush=True)


if __name__ == "__main__":
    main()

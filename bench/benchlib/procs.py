"""Process handling for the benchmarks: free ports, process groups, /proc accounting.

CPU time and memory are read from ``/proc`` (no psutil). CPU time of a server is the sum over its
process tree of ``utime + stime + cutime + cstime``: children that exited and were reaped are
counted in their parent's ``cutime``/``cstime``, living ones in their own fields.  Memory is the
sum of the tree's proportional set size (PSS, from ``smaps_rollup``) so that pages shared by the
processes of a multi-process server (Postfix, Dovecot) are not counted several times; it falls
back to RSS where PSS is not readable.
"""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import threading
import time
from collections.abc import Iterable, Sequence
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_SIZE = os.sysconf("SC_PAGE_SIZE")


# Every port handed out in this run, so that the runner can check at the end that none of
# them is still listening (other programs on the machine may listen on ports of their own).
HANDED_OUT: set[int] = set()


def free_port() -> int:
    """A TCP port that is free on 127.0.0.1 right now (bound to port 0, then released)."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        port = int(sock.getsockname()[1])
    HANDED_OUT.add(port)
    return port


def free_udp_tcp_port() -> int:
    """A port free for both UDP and TCP on 127.0.0.1 (for a DNS server)."""
    for _ in range(50):
        port = free_port()
        with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return port
    raise RuntimeError("no free UDP+TCP port found on 127.0.0.1")


def wait_for_port(port: int, timeout: float, proc: subprocess.Popen | None = None,
                  banner: bool = True) -> None:
    """Wait until 127.0.0.1:port accepts a connection (and sends a greeting when ``banner``).

    Raises RuntimeError after ``timeout`` seconds or as soon as ``proc`` exits.
    """
    deadline = time.monotonic() + timeout
    last_error: Exception | None = None
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited with status {proc.returncode} before listening "
                               f"on port {port}")
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=2.0) as sock:
                if banner:
                    sock.settimeout(max(0.5, deadline - time.monotonic()))
                    if not sock.recv(512):
                        raise OSError("connection closed without a greeting")
                return
        except OSError as exc:
            last_error = exc
            time.sleep(0.05)
    raise RuntimeError(f"nothing answered on 127.0.0.1:{port} within {timeout:.0f} s "
                       f"({last_error})")


def start_group(argv: Sequence[str], *, cwd: Path, log: Path, env: dict[str, str] | None = None,
                stdin: int | None = subprocess.DEVNULL) -> subprocess.Popen:
    """Start ``argv`` in its own process group (session), output appended to ``log``."""
    out = open(log, "ab")  # noqa: SIM115 - closed below once the child has it
    try:
        return subprocess.Popen(list(argv), cwd=str(cwd), stdout=out, stderr=subprocess.STDOUT,
                                stdin=stdin, env=env, start_new_session=True)
    finally:
        out.close()


def kill_group(proc: subprocess.Popen | None, grace: float = 5.0) -> None:
    """Stop a process started by :func:`start_group`: SIGTERM to its group, then SIGKILL."""
    if proc is None:
        return
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            pass
        try:
            proc.wait(timeout=wait)
            break
        except subprocess.TimeoutExpired:
            continue
    # The group may outlive its leader (children that ignore SIGTERM): make sure it is gone.
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except ProcessLookupError:
        pass


def kill_pid_tree(pid: int) -> None:
    """SIGKILL a daemon we started (by pid, read from its pid file) and all its descendants."""
    for child in sorted(tree_pids(pid), reverse=True):
        try:
            os.kill(child, signal.SIGKILL)
        except ProcessLookupError:
            pass


def _children_map() -> dict[int, list[int]]:
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            with open(f"/proc/{entry}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        rest = data[data.rfind(b")") + 2:].split()
        children.setdefault(int(rest[1]), []).append(int(entry))
    return children


def tree_pids(root: int) -> list[int]:
    """``root`` and all its living descendants."""
    children = _children_map()
    out, todo = [], [root]
    while todo and len(out) < 100_000:
        pid = todo.pop()
        out.append(pid)
        todo.extend(children.get(pid, ()))
    return out


def cpu_seconds(pids: Iterable[int]) -> float:
    """User+system CPU seconds of the given processes, including their reaped children."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat", "rb") as f:
                data = f.read()
        except OSError:
            continue
        rest = data[data.rfind(b")") + 2:].split()
        # fields 14-17 (1-based in proc(5)) are utime stime cutime cstime; rest starts at field 3
        total += sum(int(x) for x in rest[11:15])
    return total / CLOCK_TICKS


def memory_bytes(pids: Iterable[int]) -> int:
    """Sum of PSS (or RSS where PSS is not readable) of the given processes, in bytes."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/smaps_rollup", "rb") as f:
                for line in f:
                    if line.startswith(b"Pss:"):
                        total += int(line.split()[1]) * 1024
                        break
            continue
        except OSError:
            pass
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                total += int(f.read().split()[1]) * PAGE_SIZE
        except OSError:
            continue
    return total


def rss_bytes(pids: Iterable[int]) -> int:
    """Sum of the resident set sizes of the given processes, in bytes."""
    total = 0
    for pid in pids:
        try:
            with open(f"/proc/{pid}/statm", "rb") as f:
                total += int(f.read().split()[1]) * PAGE_SIZE
        except OSError:
            continue
    return total


class TreeMonitor:
    """Measure CPU seconds and peak memory of a server's process tree during one load.

    ``root_pids`` is a callable returning the pids of the server's roots (read again at each
    sample, so a daemon's pid file can be used).  Memory is sampled every ``interval`` seconds in a
    background thread between :meth:`start` and :meth:`stop`.
    """

    def __init__(self, root_pids, interval: float = 0.2) -> None:
        self._root_pids = root_pids
        self._interval = interval
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.cpu_start = 0.0
        self.cpu_used = 0.0
        self.peak_memory = 0

    def _pids(self) -> list[int]:
        pids: list[int] = []
        for root in self._root_pids():
            pids.extend(tree_pids(root))
        return pids

    def _sample(self) -> None:
        self.peak_memory = max(self.peak_memory, memory_bytes(self._pids()))

    def _loop(self) -> None:
        while not self._stop.wait(self._interval):
            self._sample()

    def start(self) -> None:
        self.cpu_start = cpu_seconds(self._pids())
        self._sample()
        self._thread = threading.Thread(target=self._loop, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._sample()
        self.cpu_used = cpu_seconds(self._pids()) - self.cpu_start
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)


def listening_ports() -> set[int]:
    """TCP ports in LISTEN state on this machine (from /proc/net/tcp and tcp6)."""
    ports: set[int] = set()
    for name in ("/proc/net/tcp", "/proc/net/tcp6"):
        try:
            with open(name) as f:
                next(f)
                for line in f:
                    parts = line.split()
                    if parts[3] == "0A":
                        ports.add(int(parts[1].rsplit(":", 1)[1], 16))
        except OSError:
            continue
    return ports


def run_checked(argv: Sequence[str], timeout: float, **kwargs) -> subprocess.CompletedProcess:
    """Run a short command; raise RuntimeError with its output if it fails."""
    res = subprocess.run(list(argv), capture_output=True, text=True, timeout=timeout, **kwargs, check=False)
    if res.returncode != 0:
        raise RuntimeError(f"{' '.join(argv)} failed ({res.returncode}): "
                           f"{(res.stdout + res.stderr).strip()[-800:]}")
    return res

"""Run a real ``twistd -n mailsuite`` in a subprocess for end-to-end tests.

Usage (see also the ``mail_server`` fixtures in ``tests/conftest.py``)::

    from harness import MailServer      # tests/ is on sys.path under pytest

    server = MailServer(tmp_path, extra_toml='[pop3]\\nallow_plaintext_auth = true\\n')
    server.start()                      # returns when every listener is bound (bounded wait)
    server.add_user("alice@example.test", "secret")     # through the real `mailsuite` CLI
    smtplib.SMTP("127.0.0.1", server.ports["smtp"])
    ctx = server.ssl_context(check_hostname=False)   # trusts only the generated certificate
    imaplib.IMAP4_SSL("127.0.0.1", server.ports["imaps"], ssl_context=ctx)
    #   server.ssl_context() (hostname checked) with server_hostname=server.hostname when the
    #   client lets you name the host; imaplib/poplib/smtplib check the literal IP instead.
    server.log_text()                   # everything twistd printed so far
    server.stop()                       # SIGTERM and wait; returns the exit code

Every listener is configured on ``127.0.0.1`` port 0; the real ports are read from the
``<service> listening on <host>:<port>`` lines the server logs, so there is no port race.
``ports`` has the keys smtp, submission, submissions, pop3, pop3s, imap, imaps (a service
disabled with ``[listen] name = []`` in ``extra_toml`` is absent).

The configuration is ``hostname = "mail.example.test"``, ``domains = ["example.test"]``,
``data_dir = "data"`` (so ``data_dir`` is ``<tmp>/data``), ``[relay] nameservers`` pointing at
a closed loopback port (no test ever queries real DNS), plus ``extra_toml``, merged table by
table (your keys win). The generated certificate is ``cafile``
(``data_dir/.mailsuite/tls/cert.pem``), valid for ``hostname``.
"""

from __future__ import annotations

import os
import re
import signal
import ssl
import subprocess
import sys
import threading
import tomllib
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

REPO_ROOT = Path(__file__).resolve().parent.parent
SERVICES = ("smtp", "submission", "submissions", "pop3", "pop3s", "imap", "imaps")
START_TIMEOUT = 60.0  # seconds; a start normally takes about one
STOP_TIMEOUT = 30.0
READY = "mailsuite ready"
LISTENING = re.compile(r"mailsuite: (\w+) listening on ([\d.:a-f\[\]]+):(\d+)")
TWISTD = "from twisted.scripts.twistd import run; run()"


class ServerFailed(Exception):
    """The server exited or did not become ready; the message holds its output."""


def toml_value(value: Any) -> str:
    """``value`` (str, bool, int, float, list) as TOML."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return '"' + value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n") + '"'
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def toml_dump(document: dict[str, Any]) -> str:
    """A flat TOML document (top-level keys, then one level of tables)."""
    lines = [f"{k} = {toml_value(v)}" for k, v in document.items() if not isinstance(v, dict)]
    for name, table in document.items():
        if isinstance(table, dict):
            lines.append(f"\n[{name}]")
            lines.extend(f"{k} = {toml_value(v)}" for k, v in table.items())
    return "\n".join(lines) + "\n"


def base_document(hostname: str, domains: list[str]) -> dict[str, Any]:
    """The harness configuration before ``extra_toml`` is merged in."""
    return {
        "hostname": hostname,
        "data_dir": "data",
        "domains": list(domains),
        "listen": {name: ["tcp:port=0:interface=127.0.0.1"] for name in SERVICES},
        "relay": {"nameservers": ["127.0.0.1:9"]},
    }


def merge(base: dict[str, Any], extra: dict[str, Any]) -> dict[str, Any]:
    """``extra`` over ``base``, table by table."""
    out = {k: (dict(v) if isinstance(v, dict) else v) for k, v in base.items()}
    for key, value in extra.items():
        if isinstance(value, dict) and isinstance(out.get(key), dict):
            out[key].update(value)
        else:
            out[key] = value
    return out


def environment() -> dict[str, str]:
    """The environment for server and CLI processes: this checkout first on PYTHONPATH."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(
        p for p in (str(REPO_ROOT), env.get("PYTHONPATH", "")) if p
    )
    env["PYTHONUNBUFFERED"] = "1"
    return env


class MailServer:
    """One ``twistd -n mailsuite`` process with its own directory, config and data."""

    def __init__(
        self,
        directory: Path | str,
        extra_toml: str = "",
        *,
        hostname: str = "mail.example.test",
        domains: tuple[str, ...] = ("example.test",),
        twistd_args: tuple[str, ...] = (),
        mailsuite_args: tuple[str, ...] = (),
        config_text: str | None = None,
    ) -> None:
        """``config_text`` replaces the whole generated file (then ports are not forced to 0)."""
        self.directory = Path(directory)
        self.directory.mkdir(parents=True, exist_ok=True)
        self.hostname = hostname
        self.config_path = self.directory / "mailsuite.toml"
        if config_text is None:
            document = merge(base_document(hostname, list(domains)), tomllib.loads(extra_toml))
            config_text = toml_dump(document)
            data_dir = document["data_dir"]
        else:
            data_dir = tomllib.loads(config_text).get("data_dir", "maildirs")
        self.config_path.write_text(config_text)
        self.data_dir = self.directory / data_dir
        self.cafile = str(self.data_dir / ".mailsuite" / "tls" / "cert.pem")
        self.twistd_args = tuple(twistd_args)
        self.mailsuite_args = tuple(mailsuite_args)
        self.ports: dict[str, int] = {}
        self.process: subprocess.Popen[str] | None = None
        self._lines: list[str] = []
        self._lock = threading.Lock()
        self._ready = threading.Event()
        self._reader: threading.Thread | None = None

    # -- life cycle -------------------------------------------------------------------------

    def command(self) -> list[str]:
        """The twistd command line."""
        return [sys.executable, "-c", TWISTD, "-n", "--pidfile=", *self.twistd_args,
                "mailsuite", "--config", str(self.config_path), *self.mailsuite_args]

    def start(self, timeout: float = START_TIMEOUT) -> MailServer:
        """Start and wait until every listener is bound; raise ServerFailed otherwise.

        A server can be started again after ``stop()``; ``ports`` and ``log_text()`` then
        describe the new run.
        """
        with self._lock:
            self._lines = []
        self.ports = {}
        self._ready = threading.Event()
        self.process = subprocess.Popen(
            self.command(), cwd=self.directory, env=environment(), text=True,
            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
        )
        self._reader = threading.Thread(target=self._read, daemon=True)
        self._reader.start()
        ready = self._ready.wait(timeout)
        if not ready or READY not in self.log_text():
            code = self.stop()
            raise ServerFailed(
                f"mailsuite did not start within {timeout}s (exit code {code}):\n"
                f"{self.log_text()}"
            )
        return self

    def _read(self) -> None:
        assert self.process is not None and self.process.stdout is not None
        for line in self.process.stdout:
            with self._lock:
                self._lines.append(line)
            match = LISTENING.search(line)
            if match and match.group(1) in SERVICES:
                self.ports.setdefault(match.group(1), int(match.group(3)))
            if READY in line:
                self._ready.set()
        self._ready.set()  # the process ended: stop waiting

    def wait_exit(self, timeout: float = START_TIMEOUT) -> int:
        """Wait for the process to end by itself (a failed start); return its exit code."""
        assert self.process is not None
        code = self.process.wait(timeout)
        if self._reader is not None:
            self._reader.join(timeout)
        return code

    def stop(self) -> int | None:
        """SIGTERM, wait (bounded), SIGKILL if needed; return the exit code."""
        if self.process is None:
            return None
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(STOP_TIMEOUT)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(STOP_TIMEOUT)
        if self._reader is not None:
            self._reader.join(STOP_TIMEOUT)
        return self.process.returncode

    def signal(self, signum: int) -> None:
        """Send a signal (e.g. SIGHUP to reload the certificate)."""
        assert self.process is not None
        self.process.send_signal(signum)

    def __enter__(self) -> MailServer:  # noqa: PYI034 - start() returns self
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.stop()

    # -- helpers ----------------------------------------------------------------------------

    def log_text(self) -> str:
        """Everything the server printed so far."""
        with self._lock:
            return "".join(self._lines)

    def wait_for_log(self, text: str, timeout: float = 30.0) -> bool:
        """Wait (bounded) until ``text`` appears in the output; False if it did not."""
        done = threading.Event()

        def watch() -> None:
            while not done.is_set():
                if text in self.log_text():
                    done.set()
                    return
                if self.process is None or self.process.poll() is not None:
                    return
                done.wait(0.05)

        thread = threading.Thread(target=watch, daemon=True)
        thread.start()
        thread.join(timeout)
        found = text in self.log_text()
        done.set()
        return found

    def ssl_context(self, check_hostname: bool = True) -> ssl.SSLContext:
        """A client context trusting only this server's certificate.

        Keep ``check_hostname`` when you can pass ``server_hostname=server.hostname``; stdlib
        clients that connect to "127.0.0.1" (imaplib, poplib, smtplib) need it off (the chain
        is still verified).
        """
        ctx = ssl.create_default_context(cafile=self.cafile)
        ctx.check_hostname = check_hostname
        return ctx

    def cli(self, *args: str, input: str | None = None) -> subprocess.CompletedProcess[str]:
        """Run ``mailsuite --config <this config> ARGS...``; never raises on failure."""
        return run_cli(self.config_path, *args, input=input, cwd=self.directory)

    def add_user(self, address: str, password: str) -> None:
        """Create an account through the real CLI (the server sees it without a restart)."""
        result = self.cli("user", "add", address, "--password-stdin", input=password + "\n")
        if result.returncode != 0:
            raise RuntimeError(f"user add failed: {result.stderr}")

    def add_alias(self, alias: str, *targets: str) -> None:
        """Create an alias through the real CLI."""
        result = self.cli("alias", "add", alias, *targets)
        if result.returncode != 0:
            raise RuntimeError(f"alias add failed: {result.stderr}")


@contextmanager
def running_server(
    directory: Path | str, users: dict[str, str], **kwargs: Any
) -> Iterator[MailServer]:
    """A started server with ``users`` (address -> password), stopped on leaving the block."""
    server = MailServer(directory, **kwargs)
    server.start()
    try:
        for address, password in users.items():
            server.add_user(address, password)
        yield server
    finally:
        server.stop()


def run_cli(config_path: Path | str | None, *args: str, input: str | None = None,
            cwd: Path | str | None = None) -> subprocess.CompletedProcess[str]:
    """Run the ``mailsuite`` command of this checkout (as ``python -m mailsuite.cli``)."""
    command = [sys.executable, "-m", "mailsuite.cli"]
    if config_path is not None:
        command += ["--config", str(config_path)]
    return subprocess.run(command + list(args), input=input, text=True, capture_output=True,
                          env=environment(), cwd=cwd, timeout=120, check=False)

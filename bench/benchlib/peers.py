"""Servers started by the runner: mailsuite, ``twistd mail``, aiosmtpd, smtp-sink, a DNS server.

Each one runs in its own process group on 127.0.0.1 with data in a temporary directory, and
``stop()`` kills that group.  Postfix and Dovecot live in their own modules.
"""

from __future__ import annotations

import importlib.util
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

from benchlib import procs

BENCH_DIR = Path(__file__).resolve().parent.parent
REPO = BENCH_DIR.parent
DOMAIN = "bench.test"
PASSWORD = "bench-password-1"


class ProcessServer:
    """A server that is one child process group of ours."""

    name = "server"

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.dir.mkdir(parents=True, exist_ok=True)
        self.proc: subprocess.Popen | None = None
        self.log = workdir / "server.log"

    def root_pids(self) -> list[int]:
        return [self.proc.pid] if self.proc is not None and self.proc.poll() is None else []

    def stop(self) -> None:
        procs.kill_group(self.proc)
        self.proc = None

    def log_tail(self, n: int = 1500) -> str:
        try:
            return self.log.read_text(errors="replace")[-n:]
        except OSError:
            return ""


def python_env() -> dict[str, str]:
    env = dict(os.environ)
    env["PYTHONPATH"] = str(REPO) + (os.pathsep + env["PYTHONPATH"] if env.get("PYTHONPATH") else "")
    env.pop("PYTHONDONTWRITEBYTECODE", None)
    return env


# -- twistd mail ------------------------------------------------------------------------------
def twisted_version() -> str:
    import twisted

    return f"Twisted {twisted.__version__} (Python {sys.version.split()[0]})"


class TwistdMail(ProcessServer):
    """Twisted's own mail server: ``twistd -n mail --maildirdbmdomain=bench.test=DIR --user``.

    SMTP and POP3 on free loopback ports.  It writes messages into ``DIR/<user>/new`` and never
    fsyncs.  Started through ``bench/twistd_mail_py3.py``, which repairs the str/bytes mismatches
    that stop stock ``twistd mail`` from delivering or serving POP3 on Python 3.
    """

    name = "twistd mail"

    def __init__(self, workdir: Path, users: list[str]) -> None:
        super().__init__(workdir)
        self.users = users
        self.domain_dir = workdir / DOMAIN
        self.smtp_port = 0
        self.pop3_port = 0

    def maildir(self, user: str) -> Path:
        return self.domain_dir / user

    def start(self, smtp: bool = True, pop3: bool = True) -> None:
        self.domain_dir.mkdir(parents=True, exist_ok=True)
        argv = [sys.executable, str(BENCH_DIR / "twistd_mail_py3.py"), "-n",
                "--pidfile", str(self.dir / "twistd.pid"), "--logfile", str(self.log),
                "mail", "-E", "-H", "twistd.bench.test",
                f"--maildirdbmdomain={DOMAIN}={self.domain_dir}"]
        for user in self.users:
            argv.append(f"--user={user}={PASSWORD}")
        if smtp:
            self.smtp_port = procs.free_port()
            argv.append(f"--smtp=tcp:{self.smtp_port}:interface=127.0.0.1")
        else:
            argv.append("--no-smtp")
        if pop3:
            self.pop3_port = procs.free_port()
            argv.append(f"--pop3=tcp:{self.pop3_port}:interface=127.0.0.1")
        else:
            argv.append("--no-pop3")
        self.proc = procs.start_group(argv, cwd=self.dir, log=self.dir / "stdout.log",
                                      env=python_env())
        for port in (self.smtp_port, self.pop3_port):
            if port:
                procs.wait_for_port(port, 60, self.proc)


# -- aiosmtpd ---------------------------------------------------------------------------------
def aiosmtpd_missing() -> str | None:
    if importlib.util.find_spec("aiosmtpd") is None:
        return "aiosmtpd is not installed: pip install aiosmtpd"
    return None


def aiosmtpd_version() -> str:
    from importlib.metadata import version

    return f"aiosmtpd {version('aiosmtpd')}"


class Aiosmtpd(ProcessServer):
    """aiosmtpd with ``bench/aiosmtpd_maildir.py``: Maildir delivery with fsync before 250."""

    name = "aiosmtpd"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.smtp_port = 0

    def maildir(self, user: str) -> Path:
        return self.dir / "Maildir"

    def start(self) -> None:
        self.smtp_port = procs.free_port()
        argv = [sys.executable, str(BENCH_DIR / "aiosmtpd_maildir.py"), "--port",
                str(self.smtp_port), "--maildir", str(self.dir / "Maildir")]
        self.proc = procs.start_group(argv, cwd=self.dir, log=self.log, env=python_env())
        procs.wait_for_port(self.smtp_port, 60, self.proc)


# -- smtp-sink and DNS ------------------------------------------------------------------------
class SmtpSink(ProcessServer):
    """Postfix's ``smtp-sink``: accepts and discards mail, counting messages (``-c``)."""

    name = "smtp-sink"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.port = 0

    def start(self) -> None:
        self.port = procs.free_port()
        argv = ["smtp-sink", "-c", "-u", "nobody", "-h", "sink.bench.test", "-m", "1000",
                f"127.0.0.1:{self.port}", "1024"]
        self.proc = procs.start_group(argv, cwd=self.dir, log=self.log)
        procs.wait_for_port(self.port, 30, self.proc, banner=False)

    def messages(self) -> int:
        """Messages received so far (the last ``mesg=N`` counter smtp-sink printed)."""
        try:
            with open(self.log, "rb") as f:
                f.seek(0, os.SEEK_END)
                f.seek(max(0, f.tell() - 200))
                tail = f.read()
        except OSError:
            return 0
        found = re.findall(rb"mesg=(\d+)", tail)
        return int(found[-1]) if found else 0


class DnsServer(ProcessServer):
    """``bench/dns_server.py``: MX records for the relay domains, pointing at 127.0.0.1."""

    name = "dns"

    def __init__(self, workdir: Path, domains: list[str]) -> None:
        super().__init__(workdir)
        self.domains = domains
        self.port = 0

    def start(self) -> None:
        self.port = procs.free_udp_tcp_port()
        argv = [sys.executable, str(BENCH_DIR / "dns_server.py"), "--port", str(self.port),
                "--domains", ",".join(self.domains)]
        self.proc = procs.start_group(argv, cwd=self.dir, log=self.log, env=python_env())
        procs.wait_for_port(self.port, 30, self.proc, banner=False)


# -- mailsuite --------------------------------------------------------------------------------
def mailsuite_missing(parts: tuple[str, ...]) -> str | None:
    """What of mailsuite is not there yet for ``parts`` (e.g. ("smtp",)), or None."""
    needed = {"tap": "mailsuite/tap.py", "cli": "mailsuite/cli.py", "config": "mailsuite/config.py",
              "smtp": "mailsuite/smtp/service.py", "relay": "mailsuite/relay/service.py",
              "imap": "mailsuite/imap/service.py", "pop3": "mailsuite/pop3/service.py",
              "store": "mailsuite/store/maildir.py"}
    absent = [path for key, path in needed.items()
              if (key in parts or key in ("tap", "cli", "config", "store"))
              and not (REPO / path).exists()]
    if absent:
        return "mailsuite is not complete yet in this checkout (missing " + ", ".join(absent) + ")"
    return None


def mailsuite_version() -> str:
    try:
        rev = subprocess.run(["git", "-C", str(REPO), "rev-parse", "--short", "HEAD"],
                             capture_output=True, text=True, timeout=10, check=False).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        rev = "?"
    return f"mailsuite {rev} (Python {sys.version.split()[0]})"


def toml_list(items: list[str]) -> str:
    return "[" + ", ".join(f'"{i}"' for i in items) + "]"


def toml_value(value: object) -> str:
    """A Python bool, number, string or list of strings written as a TOML value."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, list):
        return toml_list([str(v) for v in value])
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


class Mailsuite(ProcessServer):
    """mailsuite from this checkout: ``python -m twisted mailsuite --config FILE``.

    ``start(...)`` writes the TOML configuration with the requested listeners on free loopback
    ports, adds the users with ``python -m mailsuite.cli user add``, optionally fills their
    Maildirs with hard-linked copies of a prepared Maildir, then starts the server and waits for
    every listener.
    """

    name = "mailsuite"

    def __init__(self, workdir: Path) -> None:
        super().__init__(workdir)
        self.data_dir = workdir / "maildirs"
        self.config = workdir / "mailsuite.toml"
        self.ports: dict[str, int] = {}

    def maildir(self, user: str) -> Path:
        return self.data_dir / DOMAIN / user

    def cli(self, *args: str, stdin: str | None = None, timeout: float = 60) -> str:
        argv = [sys.executable, "-m", "mailsuite.cli", "--config", str(self.config), *args]
        res = subprocess.run(argv, input=stdin, capture_output=True, text=True, timeout=timeout,
                             cwd=str(REPO), env=python_env(), check=False)
        if res.returncode != 0:
            raise RuntimeError(f"mailsuite cli {' '.join(args)} failed: "
                               f"{(res.stdout + res.stderr).strip()[-800:]}")
        return res.stdout

    def start(self, *, listen: tuple[str, ...] = ("smtp",), users: list[str] = (),
              prefill: Path | None = None, relay_port: int = 25, nameservers: list[str] = (),
              settings: dict[str, dict[str, object]] | None = None, start: bool = True) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.ports = {name: procs.free_port() for name in listen}
        lines = [
            'hostname = "mail.bench.test"',
            f'data_dir = "{self.data_dir}"',
            f'domains = ["{DOMAIN}"]',
            "[listen]",
        ]
        for name in ("smtp", "submission", "submissions", "pop3", "pop3s", "imap", "imaps"):
            eps = ([f"tcp:port={self.ports[name]}:interface=127.0.0.1"]
                   if name in self.ports else [])
            lines.append(f"{name} = {toml_list(eps)}")
        # Workloads without outbound mail never query DNS; naming a loopback port keeps the
        # server's start independent of this machine's resolver configuration.
        tables: dict[str, dict[str, object]] = {
            "relay": {"port": relay_port, "nameservers": list(nameservers) or ["127.0.0.1:1"]},
            "pop3": {"allow_plaintext_auth": True},  # as Dovecot's disable_plaintext_auth = no
            "imap": {"allow_plaintext_auth": True},
        }
        for table, values in (settings or {}).items():
            tables.setdefault(table, {}).update(values)
        for table, values in tables.items():
            lines.append(f"[{table}]")
            lines.extend(f"{key} = {toml_value(value)}" for key, value in values.items())
        self.config.write_text("\n".join(lines) + "\n")
        for user in users:
            self.cli("user", "add", f"{user}@{DOMAIN}", "--password-stdin", stdin=PASSWORD + "\n")
        if prefill is not None:
            from benchlib import fixtures

            for user in users:
                fixtures.link_copy(prefill, self.maildir(user))
        if start:
            self.launch()
            self.wait_listening()

    def launch(self) -> None:
        """Start the server process (configuration and users must exist).

        It runs under ``twistd -n``, as the README tells users to run it (``twist`` would filter
        the debug-level mail events out of its log, a saving a real deployment does not get)."""
        argv = [sys.executable, "-c", "from twisted.scripts.twistd import run; run()", "-n",
                "--pidfile=", "--logfile", str(self.log),
                "mailsuite", "--config", str(self.config)]
        self.proc = procs.start_group(argv, cwd=self.dir, log=self.dir / "stdout.log",
                                      env=python_env())

    def wait_listening(self) -> None:
        try:
            for port in self.ports.values():
                procs.wait_for_port(port, 60, self.proc)
        except RuntimeError as exc:
            raise RuntimeError(f"{exc}; log: {self.log_tail(800)} "
                               f"{(self.dir / 'stdout.log').read_text(errors='replace')[-800:]}"
                               ) from None


def have(tool: str) -> bool:
    return shutil.which(tool) is not None

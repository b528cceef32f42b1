"""A private Dovecot instance (IMAP + POP3) in a temporary directory.

Its own configuration file, ``base_dir``, log file and passwd-file user database (ARGON2ID
hashes made with ``doveadm pw``, as mailsuite stores argon2id hashes); it listens on
two free loopback ports and serves ``maildir:<root>/<domain>/<user>`` (a copy of the benchmark
Maildir) as the unprivileged user ``nobody``.  It runs in the foreground (``dovecot -F``) in its
own process group, so stopping it is killing that group.
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

from benchlib import procs

CONFIG = """\
# private benchmark instance, written by bench/run.py
base_dir = {base}
state_dir = {state}
instance_name = bench-{port_imap}
log_path = {log}
protocols = imap pop3
listen = 127.0.0.1
ssl = no
disable_plaintext_auth = no
auth_mechanisms = plain login
first_valid_uid = 1
mail_location = maildir:{mail}/%d/%n
default_internal_user = dovecot
default_login_user = dovenull
mail_uid = {uid}
mail_gid = {gid}
pop3_uidl_format = %08Xu%08Xv
# room for 1,000+ idle IMAP sessions (one imap process each, all talking to log/anvil/stats)
default_process_limit = 2500
default_client_limit = 5000
passdb {{
  driver = passwd-file
  args = scheme=PLAIN username_format=%u {passwd}
}}
userdb {{
  driver = static
  args = uid={uid} gid={gid} home={home}/%d/%n
}}
service imap-login {{
  inet_listener imap {{
    address = 127.0.0.1
    port = {port_imap}
  }}
  inet_listener imaps {{
    port = 0
  }}
}}
service pop3-login {{
  inet_listener pop3 {{
    address = 127.0.0.1
    port = {port_pop3}
  }}
  inet_listener pop3s {{
    port = 0
  }}
}}
service imap {{
  process_limit = 2000
}}
protocol imap {{
  # all benchmark clients come from 127.0.0.1
  mail_max_userip_connections = 5000
}}
"""


def missing(protocol: str) -> str | None:
    """What is missing to run Dovecot for ``protocol`` ("imap" or "pop3"), or None."""
    if shutil.which("dovecot") is None:
        return "dovecot not found: apt-get install dovecot-imapd dovecot-pop3d"
    libexec = Path("/usr/lib/dovecot")
    # The one configuration (CONFIG) serves both protocols, and Dovecot refuses to start when
    # either is missing, whichever one the workload uses.
    for needed in sorted({protocol, "imap", "pop3"}):
        if not (libexec / needed).exists():
            return f"Dovecot {needed} is not installed: apt-get install dovecot-{needed}d"
    if os.geteuid() != 0:
        return "a private Dovecot instance must be started as root"
    return None


def version() -> str:
    res = subprocess.run(["dovecot", "--version"], capture_output=True, text=True, timeout=20, check=False)
    return "Dovecot " + res.stdout.strip()


def password_hash(password: str) -> str:
    """An ARGON2ID hash made by Dovecot itself (64 MiB, 3 passes: the cost mailsuite pays)."""
    res = procs.run_checked(["doveadm", "pw", "-s", "ARGON2ID", "-p", password], timeout=60)
    return res.stdout.strip()


class DovecotInstance:
    """One private Dovecot serving the Maildirs under ``mail_root`` (``<domain>/<user>``)."""

    def __init__(self, workdir: Path, mail_root: Path, users: dict[str, str]) -> None:
        self.dir = workdir
        self.mail_root = mail_root
        self.users = users  # address -> password
        self.port_imap = 0
        self.port_pop3 = 0
        self.proc: subprocess.Popen | None = None

    def start(self) -> None:
        nobody = pwd.getpwnam("nobody")
        base = self.dir / "run"
        state = self.dir / "state"
        home = self.dir / "home"
        for d in (base, state, home):
            d.mkdir(parents=True, exist_ok=True)
        passwd = self.dir / "passwd"
        passwd.write_text("".join(f"{u}:{password_hash(p)}\n" for u, p in self.users.items()))
        for path in (self.mail_root, home):
            for root, dirs, files in os.walk(path):
                os.chown(root, nobody.pw_uid, nobody.pw_gid)
                for name in files:
                    os.chown(os.path.join(root, name), nobody.pw_uid, nobody.pw_gid)
        self.dir.chmod(0o755)
        self.port_imap = procs.free_port()
        self.port_pop3 = procs.free_port()
        conf = self.dir / "dovecot.conf"
        conf.write_text(CONFIG.format(
            base=base, state=state, log=self.dir / "dovecot.log", mail=self.mail_root,
            uid=nobody.pw_uid, gid=nobody.pw_gid, passwd=passwd, home=home,
            port_imap=self.port_imap, port_pop3=self.port_pop3))
        self.proc = procs.start_group(["dovecot", "-F", "-c", str(conf)], cwd=self.dir,
                                      log=self.dir / "dovecot.out")
        procs.wait_for_port(self.port_imap, 30, self.proc)
        procs.wait_for_port(self.port_pop3, 30, self.proc)

    def root_pids(self) -> list[int]:
        return [self.proc.pid] if self.proc and self.proc.poll() is None else []

    def stop(self) -> None:
        procs.kill_group(self.proc)
        self.proc = None

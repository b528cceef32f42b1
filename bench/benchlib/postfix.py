"""A private Postfix instance in a temporary directory (never the system's /etc/postfix).

It has its own ``main.cf``/``master.cf``, queue and data directories, listens on one loopback port
and is started with ``postfix -c DIR start`` and stopped with ``postfix -c DIR stop`` (then any
process left of it is killed by pid).  Two roles:

- ``accept``: mail for the bench domain goes to the virtual delivery agent, one Maildir per user
  (``virtual_mailbox_base``), files owned by the unprivileged user ``nobody``.
- ``relay``: clients on 127.0.0.0/8 may relay; ``transport_maps`` sends each destination domain to
  ``[127.0.0.1]:SINKPORT`` (no MX lookup: Postfix reads DNS through the system resolver, which
  cannot be pointed at a private DNS port).
"""

from __future__ import annotations

import os
import pwd
import shutil
import subprocess
from pathlib import Path

from benchlib import procs

SERVICES = """\
# service type  private unpriv  chroot  wakeup  maxproc command
{smtp_listen} inet n - n - - smtpd
pickup    unix  n       -       n       60      1       pickup
cleanup   unix  n       -       n       -       0       cleanup
qmgr      unix  n       -       n       300     1       qmgr
rewrite   unix  -       -       n       -       -       trivial-rewrite
bounce    unix  -       -       n       -       0       bounce
defer     unix  -       -       n       -       0       bounce
trace     unix  -       -       n       -       0       bounce
verify    unix  -       -       n       -       1       verify
flush     unix  n       -       n       1000?   0       flush
proxymap  unix  -       -       n       -       -       proxymap
proxywrite unix -       -       n       -       1       proxymap
smtp      unix  -       -       n       -       -       smtp
relay     unix  -       -       n       -       -       smtp
showq     unix  n       -       n       -       -       showq
error     unix  -       -       n       -       -       error
retry     unix  -       -       n       -       -       error
discard   unix  -       -       n       -       -       discard
local     unix  -       n       n       -       -       local
virtual   unix  -       n       n       -       -       virtual
anvil     unix  -       -       n       -       1       anvil
scache    unix  -       -       n       -       1       scache
postlog   unix-dgram n  -       n       -       1       postlogd
"""


def missing() -> str | None:
    """What is missing to run the Postfix peer, or None."""
    for tool in ("postfix", "postconf", "smtp-source", "smtp-sink"):
        if shutil.which(tool) is None:
            return f"{tool} not found: apt-get install postfix"
    try:
        pwd.getpwnam("postfix")
    except KeyError:
        return "user 'postfix' does not exist: apt-get install postfix"
    if os.geteuid() != 0:
        return "a private Postfix instance must be started as root"
    return None


def version() -> str:
    res = subprocess.run(["postconf", "-d", "-h", "mail_version"], capture_output=True, text=True,
                         timeout=20, check=False)
    return "Postfix " + res.stdout.strip()


class PostfixInstance:
    """One private Postfix: ``configure_accept``/``configure_relay``, then ``start``/``stop``."""

    def __init__(self, workdir: Path) -> None:
        self.dir = workdir
        self.conf = workdir / "conf"
        self.queue = workdir / "queue"
        self.data = workdir / "data"
        self.vmail = workdir / "vmail"
        self.port = 0
        self.log = workdir / "maillog"
        self._started = False

    # -- configuration ----------------------------------------------------------------------
    def _write(self, extra: dict[str, str]) -> None:
        for d in (self.conf, self.queue, self.data):
            d.mkdir(parents=True, exist_ok=True)
        pf = pwd.getpwnam("postfix")
        os.chown(self.data, pf.pw_uid, pf.pw_gid)
        self.dir.chmod(0o755)
        self.port = procs.free_port()
        settings = {
            "compatibility_level": "3.6",
            "queue_directory": str(self.queue),
            "data_directory": str(self.data),
            "mail_owner": "postfix",
            "setgid_group": "postdrop",
            "myhostname": "postfix.bench.test",
            "mydomain": "bench.test",
            "myorigin": "$myhostname",
            "mydestination": "",
            "inet_interfaces": "127.0.0.1",
            "inet_protocols": "ipv4",
            "mynetworks": "127.0.0.0/8",
            "smtpd_relay_restrictions": "permit_mynetworks, reject_unauth_destination",
            "alias_maps": "",
            "alias_database": "",
            "local_recipient_maps": "",
            "biff": "no",
            "smtpd_banner": "$myhostname ESMTP",
            "maillog_file": str(self.log),
            "maillog_file_prefixes": str(self.dir),
            "smtp_tls_security_level": "none",
            "smtpd_tls_security_level": "none",
            "append_dot_mydomain": "no",
            "readme_directory": "no",
        }
        settings.update(extra)
        self.conf.joinpath("main.cf").write_text(
            "# private benchmark instance, written by bench/run.py\n"
            + "".join(f"{k} = {v}\n" for k, v in settings.items()))
        self.conf.joinpath("master.cf").write_text(
            SERVICES.format(smtp_listen=f"127.0.0.1:{self.port}"))

    def configure_accept(self, domain: str, users: list[str]) -> None:
        """Deliver mail for ``user@domain`` into ``vmail/<domain>/<user>/`` (Maildir, fsync'd)."""
        nobody = pwd.getpwnam("nobody")
        self.dir.mkdir(parents=True, exist_ok=True)
        box = self.dir / "vmailbox"
        box.write_text("".join(f"{u}@{domain} {domain}/{u}/\n" for u in users))
        self.vmail.mkdir(parents=True, exist_ok=True)
        os.chown(self.vmail, nobody.pw_uid, nobody.pw_gid)
        self._write({
            "virtual_mailbox_domains": domain,
            "virtual_mailbox_base": str(self.vmail),
            "virtual_mailbox_maps": f"texthash:{box}",
            "virtual_uid_maps": f"static:{nobody.pw_uid}",
            "virtual_gid_maps": f"static:{nobody.pw_gid}",
            "virtual_minimum_uid": "100",
        })

    def maildir(self, domain: str, user: str) -> Path:
        return self.vmail / domain / user

    def configure_relay(self, domains: list[str], sink_port: int, hold: bool = False) -> None:
        """Relay mail for ``domains`` to the sink on 127.0.0.1:sink_port.

        With ``hold``, every accepted message goes to the hold queue until :meth:`release_all`.
        """
        self.dir.mkdir(parents=True, exist_ok=True)
        transport = self.dir / "transport"
        transport.write_text("".join(f"{d} smtp:[127.0.0.1]:{sink_port}\n" for d in domains))
        extra = {}
        if hold:
            extra["smtpd_recipient_restrictions"] = ("check_recipient_access static:HOLD, "
                                                     "permit_mynetworks, reject")
        self._write({
            **extra,
            "relay_domains": "",
            "transport_maps": f"texthash:{transport}",
            "smtp_destination_concurrency_limit": "50",
            "smtp_host_lookup": "native",
            "disable_dns_lookups": "yes",
        })

    # -- running ----------------------------------------------------------------------------
    def start(self) -> None:
        procs.run_checked(["postfix", "-c", str(self.conf), "check"], timeout=60)
        procs.run_checked(["postfix", "-c", str(self.conf), "start"], timeout=60)
        self._started = True
        procs.wait_for_port(self.port, 30)

    def master_pid(self) -> int | None:
        try:
            return int(self.queue.joinpath("pid", "master.pid").read_text().split()[0])
        except (OSError, ValueError, IndexError):
            return None

    def root_pids(self) -> list[int]:
        pid = self.master_pid()
        return [pid] if pid else []

    def queue_count(self) -> int:
        """Messages still in Postfix's queue (incoming, active, deferred, maildrop, hold)."""
        n = 0
        for sub in ("maildrop", "incoming", "active", "deferred", "hold"):
            base = self.queue / sub
            if base.is_dir():
                for _root, _dirs, files in os.walk(base):
                    n += len(files)
        return n

    def held_count(self) -> int:
        n = 0
        for _root, _dirs, files in os.walk(self.queue / "hold"):
            n += len(files)
        return n

    def release_all(self) -> None:
        """Release every held message and ask for delivery now.

        ``postsuper -H ALL`` moves them to the deferred queue; ``postqueue -f`` makes the queue
        manager schedule the deferred queue at once.
        """
        procs.run_checked(["postsuper", "-c", str(self.conf), "-H", "ALL"], timeout=300)
        procs.run_checked(["postqueue", "-c", str(self.conf), "-f"], timeout=300)

    def stop(self) -> None:
        pid = self.master_pid()
        if self._started:
            subprocess.run(["postfix", "-c", str(self.conf), "stop"], capture_output=True,
                           timeout=60, check=False)
        if pid:
            procs.kill_pid_tree(pid)
        self._started = False

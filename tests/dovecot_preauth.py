"""Run Dovecot's ``imap`` binary once in PREAUTH mode over a temporary Maildir (no network).

Interop tests compare our IMAP answers with Dovecot's for the same messages. The script's
commands are sent at once; Dovecot may run independent pipelined commands out of order, so a
script should not depend on one command's effect on the next. Skips the calling test when
Dovecot (Debian ``dovecot-imapd``) is not installed or does not start.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import tempfile
from pathlib import Path

import pytest

DOVECOT_IMAP = "/usr/lib/dovecot/imap"
NOBODY = 65534


def run_preauth(files: dict[str, bytes], script: list[bytes],
                uidlist: list[str] | None = None) -> bytes:
    """Dovecot's whole output for ``script`` (tagged command lines, without CRLF) over a
    Maildir whose ``cur/`` holds ``files`` (name -> content), with ``uidlist`` as its
    ``dovecot-uidlist`` lines when given."""
    if not os.path.exists(DOVECOT_IMAP):
        pytest.skip("Dovecot (dovecot-imapd) is not installed")
    as_root = os.geteuid() == 0
    if as_root and shutil.which("setpriv") is None:
        pytest.skip("setpriv is needed to run Dovecot as nobody")
    home = Path(tempfile.mkdtemp(prefix="dovecot-preauth-"))
    try:
        maildir = home / "Maildir"
        for sub in ("cur", "new", "tmp"):
            (maildir / sub).mkdir(parents=True)
        for name, content in files.items():
            (maildir / "cur" / name).write_bytes(content)
        if uidlist is not None:
            (maildir / "dovecot-uidlist").write_text("\n".join(uidlist) + "\n")
        (home / "dovecot.conf").write_text(
            f"mail_location = maildir:{maildir}:INDEX=MEMORY\nlog_path = {home}/log\nssl = no\n"
        )
        command = [DOVECOT_IMAP, "-c", str(home / "dovecot.conf")]
        env = {"PATH": os.environ.get("PATH", "/usr/bin:/bin"), "HOME": str(home)}
        if as_root:
            for path in [home, *home.rglob("*")]:
                os.chown(path, NOBODY, NOBODY)
            command = ["setpriv", f"--reuid={NOBODY}", f"--regid={NOBODY}", "--clear-groups",
                       *command]  # fmt: skip
            env["USER"] = "nobody"
        else:
            env["USER"] = os.environ.get("USER", "user")
        result = subprocess.run(command, input=b"\r\n".join(script) + b"\r\n",
                                capture_output=True, env=env, timeout=120, check=False)
        if not result.stdout.startswith(b"* PREAUTH"):
            pytest.skip(f"Dovecot did not start: {result.stderr[:200]!r}")
        return result.stdout
    finally:
        shutil.rmtree(home, ignore_errors=True)

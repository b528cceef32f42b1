"""The mail log: one line per mail event, for operators (apart from debug tracing).

``MailLog.log("delivered", id="1a2b", to="alice@example.test", folder="INBOX")`` appends::

    2026-11-23T18:50:00Z delivered id=1a2b to=alice@example.test folder=INBOX

to ``data_dir/.mailsuite/mail.log`` and emits the same as a structured ``twisted.logger``
event (namespace ``mailsuite.maillog``; fields ``mail_event`` and ``mail_fields``). While the
file keeps the events they are debug events, which twistd's log leaves out unless ``[log] level``
is ``debug`` (``mailsuite.twistd_log``), so each is written once; without a file (``path=None``)
they are info events and twistd's log is where they go. Values with
spaces, quotes or ``=`` are quoted; control characters are escaped, so a line is always one line.
Fields whose name suggests a secret (password, auth data, tokens) are written as ``<redacted>``.
``reopen()`` (on SIGHUP) lets logrotate move the file away.
"""

from __future__ import annotations

import functools
import json
import os
import re
import time
from pathlib import Path
from typing import IO, Any

from twisted.logger import Logger

__all__ = ["REDACTED", "MailLog", "format_line"]

REDACTED = "<redacted>"
_SECRET = re.compile(r"pass|secret|auth_?(data|response)|token|credential|private", re.IGNORECASE)
_PLAIN = re.compile(r"^[^\s\"'=\\\x00-\x1f\x7f]*$")


def _value(value: Any) -> str:
    kind = type(value)
    if kind is int or kind is bool:  # sizes, counts, flags: always plain (the common fields)
        return str(value)
    if kind is str:
        text = value
    elif value is None:
        return "-"
    elif isinstance(value, bytes):
        text = value.decode("utf-8", "backslashreplace")
    elif isinstance(value, (list, tuple, set, frozenset)):
        text = ",".join(str(v) for v in value)
    else:
        text = str(value)
    if text and _PLAIN.match(text):
        return text
    return json.dumps(text, ensure_ascii=False)


@functools.lru_cache(maxsize=256)
def _is_secret(key: str) -> bool:
    return _SECRET.search(key) is not None


def _redact(fields: dict[str, Any]) -> dict[str, Any]:
    return {k: (REDACTED if _is_secret(k) else v) for k, v in fields.items()}


def _join(event: str, redacted: dict[str, Any]) -> str:
    return " ".join([_value(event), *[f"{k}={_value(v)}" for k, v in redacted.items()]])


def format_body(event: str, fields: dict[str, Any]) -> str:
    """``event key=value ...`` with secrets redacted and values quoted where needed."""
    return _join(event, _redact(fields))


def format_line(event: str, fields: dict[str, Any], when: float) -> str:
    """One log line (without newline) for ``event`` with ``fields`` at time ``when``."""
    stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(when))
    return f"{stamp} {format_body(event, fields)}"


class MailLog:
    """Writes mail events; ``path=None`` only emits them to twisted.logger (tests)."""

    _tracer = Logger(namespace="mailsuite.maillog")

    def __init__(self, path: Path | None = None, clock: Any = None) -> None:
        self.path = Path(path) if path is not None else None
        self._clock = clock
        self._file: IO[str] | None = None
        self._stamp_second = -1
        self._stamp = ""
        # See the module docstring: debug while the file has them, info when it is all there is.
        self._emit = self._tracer.debug if self.path is not None else self._tracer.info

    def _now(self) -> float:
        return self._clock.seconds() if self._clock is not None else time.time()

    def log(self, event: str, /, **fields: Any) -> None:
        """Write one line ``<time> event key=value ...`` (secrets redacted)."""
        redacted = _redact(fields)
        body = _join(event, redacted)
        second = int(self._now())
        if second != self._stamp_second:  # formatted once per second
            self._stamp_second = second
            self._stamp = time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime(second))
        line = f"{self._stamp} {body}"
        # twistd's log has its own time stamp: the structured event carries the body only.
        self._emit("{mail_line}", mail_line=body, mail_event=event, mail_fields=redacted)
        if self.path is None:
            return
        try:
            if self._file is None:
                self.path.parent.mkdir(parents=True, exist_ok=True)
                fd = os.open(self.path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o640)
                self._file = os.fdopen(fd, "a", encoding="utf-8", buffering=1)
            self._file.write(line + "\n")
        except OSError as exc:
            self._tracer.error("cannot write the mail log {path}: {error}",
                           path=str(self.path), error=str(exc))

    def reopen(self) -> None:
        """Close the file; the next event opens it again (after log rotation)."""
        if self._file is not None:
            self._file.close()
            self._file = None

    def close(self) -> None:
        """Close the file."""
        self.reopen()

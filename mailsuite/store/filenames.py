"""Maildir file names: making unique names and parsing flags, size and time out of them.

A name is ``<base>:2,<info>`` (the ``:2,`` part is absent in ``new/``). Our bases look like
Dovecot's: ``<seconds>.M<usec>P<pid>Q<n>R<random per process>.<host>,S=<size>``. The info part holds
system flags as upper-case letters in ASCII order (``DFPRST``) followed by keyword letters
``a``-``z`` (indexes into the folder's ``dovecot-keywords`` file). Parsing is done without
regular expressions because it runs for every message when a folder is opened.
"""

from __future__ import annotations

import hashlib
import os
import socket
from itertools import count

INFO_SEPARATOR = ":2,"

# Maildir info letters for IMAP system flags (and P for $Forwarded, as Dovecot maps it).
LETTER_TO_FLAG = {
    "D": "\\Draft",
    "F": "\\Flagged",
    "P": "$Forwarded",
    "R": "\\Answered",
    "S": "\\Seen",
    "T": "\\Deleted",
}
FLAG_TO_LETTER = {flag: letter for letter, flag in LETTER_TO_FLAG.items()}
POP_ID_MAX = 70  # RFC 1939 7: a UIDL is 1 to 70 characters in 0x21-0x7E


def split_name(name: str) -> tuple[str, str | None]:
    """(base, info) of a file name; info is None when there is no ``:2,`` part."""
    idx = name.find(INFO_SEPARATOR)
    if idx < 0:
        return name, None
    return name[:idx], name[idx + 3 :]


def size_from_base(base: str) -> int | None:
    """The ``,S=<size>`` value of a base name, or None."""
    idx = base.find(",S=")
    if idx < 0:
        return None
    start = idx + 3
    end = base.find(",", start)
    digits = base[start:] if end < 0 else base[start:end]
    return int(digits) if digits.isdigit() else None


def time_from_base(base: str) -> int | None:
    """The leading seconds of a base name, or None."""
    idx = base.find(".")
    head = base[:idx] if idx > 0 else ""
    return int(head) if head.isdigit() else None


def arrival_key(base: str) -> tuple[int, int, int, str]:
    """Sort key putting base names in the order the messages arrived.

    ``<seconds>.M<usec>P<pid>Q<n>`` numbers are not zero-padded, so plain string order would
    put ``M95`` after ``M100``; this compares seconds, then microseconds, then the counter,
    then the whole name. Names of other shapes sort by their seconds (when they have them).
    """
    dot = base.find(".")
    head = base[:dot] if dot > 0 else ""
    seconds = int(head) if head.isdigit() else -1
    usec = counter = -1
    if base[dot + 1 : dot + 2] == "M":
        end = base.find("P", dot)
        digits = base[dot + 2 : end] if end > 0 else ""
        usec = int(digits) if digits.isdigit() else -1
        q = base.find("Q", end)
        if end > 0 and q > 0:
            r = q + 1
            while r < len(base) and base[r].isdigit():
                r += 1
            counter = int(base[q + 1 : r]) if r > q + 1 else -1
    return (seconds, usec, counter, base)


def pop_id_for(base: str) -> str:
    """The POP3 UIDL of a message: its base name when it is a valid UIDL, else a digest of it."""
    if len(base) <= POP_ID_MAX and base.isascii() and base.isprintable() and " " not in base:
        return base
    return hashlib.sha1(base.encode("utf-8", "surrogateescape")).hexdigest()


def _clean_host(host: str) -> str:
    # Maildir spec: '/' and ':' in the host name are written as \057 and \072; we also drop ','.
    return host.replace("/", "\\057").replace(":", "\\072").replace(",", "\\054") or "localhost"


class NameMaker:
    """Makes unique base names for one process (pid, counter and randomness)."""

    def __init__(self, host: str | None = None) -> None:
        self._host = _clean_host(host or socket.gethostname())
        self._counter = count(1)
        self._pid = os.getpid()
        # One random token per maker (not per message: os.urandom costs up to ~0.1 ms on a
        # busy VM). Two makers in one process, or a recycled pid, still differ by the token.
        self._token = os.urandom(4).hex()

    def make(self, now: float, size: int) -> str:
        """A fresh base name for a message of ``size`` bytes received at ``now``."""
        seconds = int(now)
        usec = int((now - seconds) * 1_000_000)
        return (
            f"{seconds}.M{usec}P{self._pid}Q{next(self._counter)}"
            f"R{self._token}.{self._host},S={size}"
        )

"""The message sets every server gets: deterministic messages and Maildirs built from them.

A Maildir is built once per workload in a temporary directory and each server gets a copy made
of hard links (message files are never modified in place by Maildir software, only renamed), so
every server starts from the same bytes without copying gigabytes.
"""

from __future__ import annotations

import os
import random
import shutil
from pathlib import Path

WORDS = ["mail", "server", "queue", "delivery", "message", "folder", "inbox", "report", "meeting", "budget", "invoice", "project", "release", "schedule", "update", "review", "draft", "notes", "agenda", "summary", "backup"]


def make_message(index: int, size: int, rng: random.Random, domain: str = "bench.test") -> bytes:
    """One RFC 5322 message of about ``size`` bytes (LF line ends, as Maildir files on Unix).

    Every fourth message is multipart/mixed with a text part and a small base64 attachment, so
    that BODYSTRUCTURE and section fetches have something to do.
    """
    sender = f"sender{index % 37}@example{index % 5}.test"
    subject = " ".join(rng.choice(WORDS) for _ in range(5))
    day = 1 + index % 28
    headers = (
        f"Return-Path: <{sender}>\n"
        f"Received: from client{index % 11}.example.test (client [127.0.0.1])\n"
        f"\tby mx.{domain} with ESMTP id B{index:08d}; Mon, {day} Nov 2026 10:{index % 60:02d}:00 +0000\n"
        f"Message-ID: <bench.{index}@example.test>\n"
        f"Date: Mon, {day} Nov 2026 10:{index % 60:02d}:{index % 59:02d} +0000\n"
        f"From: Sender {index % 37} <{sender}>\n"
        f"To: Alice <alice@{domain}>\n"
        f"Subject: [{index}] {subject}\n"
        "MIME-Version: 1.0\n"
    )
    line = " ".join(rng.choice(WORDS) for _ in range(12)) + "\n"
    if index % 4 == 3:
        boundary = f"=_bench_{index}"
        head = headers + f'Content-Type: multipart/mixed; boundary="{boundary}"\n\n'
        body_room = max(0, size - len(head) - 400)
        text = (line * (body_room // len(line) // 2 + 1))[: body_room // 2]
        attach = "QUJDREVGR0hJSktMTU5PUFFSU1RVVldYWVo=\n" * (body_room // 2 // 37 + 1)
        body = (f"--{boundary}\nContent-Type: text/plain; charset=utf-8\n\n{text}\n"
                f"--{boundary}\nContent-Type: application/octet-stream; name=\"a{index}.bin\"\n"
                f"Content-Transfer-Encoding: base64\n\n{attach}--{boundary}--\n")
        return (head + body).encode()
    head = headers + "Content-Type: text/plain; charset=utf-8\n\n"
    body_room = max(len(line), size - len(head))
    body = (line * (body_room // len(line) + 1))[:body_room]
    return (head + body.rstrip("\n") + "\n").encode()


def build_maildir(path: Path, count: int, size: int, seed: int = 8) -> int:
    """Create the Maildir ``path`` with ``count`` messages of about ``size`` bytes in ``cur/``.

    Every third message is flagged \\Seen.  Returns the total number of bytes written.
    """
    rng = random.Random(seed)
    for sub in ("tmp", "new", "cur"):
        (path / sub).mkdir(parents=True, exist_ok=True)
    total = 0
    base = 1_790_000_000
    for i in range(count):
        data = make_message(i, size, rng)
        flags = "S" if i % 3 == 0 else ""
        name = f"{base + i}.M{i}P1.bench:2,{flags}"
        (path / "cur" / name).write_bytes(data)
        total += len(data)
    return total


def link_copy(src: Path, dst: Path) -> None:
    """Copy the directory tree ``src`` to ``dst`` with hard links for the files."""
    shutil.copytree(src, dst, copy_function=os.link, dirs_exist_ok=True)


def count_files(directory: Path) -> int:
    """Number of entries in ``directory`` (0 when it does not exist yet)."""
    try:
        with os.scandir(directory) as it:
            return sum(1 for _ in it)
    except FileNotFoundError:
        return 0

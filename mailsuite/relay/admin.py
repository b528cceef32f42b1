"""Queue administration for the ``mailsuite queue`` command.

``list_queue`` and ``show`` read the spool files directly (read-only, always safe). ``flush``,
``hold``, ``release`` and ``delete`` ask the running server over its control socket so that the
runner acts at once; when no server is running they change the files directly (the next start
picks the change up). Every function takes the parsed ``Config`` (``config.data_dir``).
"""

from __future__ import annotations

import json
import os
import socket
import time
from typing import Any

from mailsuite.relay.service import control_path, spool_directory
from mailsuite.relay.spool import (
    PENDING,
    QueueItem,
    _write_atomic,
    read_all,
    read_item,
    removed_ids,
)

CONTROL_TIMEOUT = 30.0


class QueueError(Exception):
    """A queue command failed (unknown id, server error); the message says why."""


def _ask(config: Any, request: dict[str, Any]) -> dict[str, Any] | None:
    """Send one request to the running server; None when no server listens."""
    path = control_path(config.data_dir)
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(CONTROL_TIMEOUT)
    try:
        try:
            sock.connect(os.fspath(path))
        except (FileNotFoundError, ConnectionRefusedError, OSError):
            return None
        sock.sendall(json.dumps(request).encode() + b"\n")
        data = b""
        while not data.endswith(b"\n") and len(data) < 1_000_000:
            chunk = sock.recv(65536)
            if not chunk:
                break
            data += chunk
    finally:
        sock.close()
    reply = json.loads(data.decode() or "{}")
    if not reply.get("ok", False) and "error" in reply:
        raise QueueError(reply["error"])
    return reply


def _row(item: QueueItem, now: float) -> dict[str, Any]:
    return {
        "id": item.id,
        "age": max(0.0, now - item.created),
        "created": item.created,
        "sender": item.sender,
        "recipients": [r.address for r in item.recipients if r.state == PENDING],
        "attempts": item.attempts,
        "last_error": item.last_error(),
        "next_attempt": item.next_attempt,
        "held": item.held,
        "size": item.size,
    }


def list_queue(config: Any) -> list[dict[str, Any]]:
    """Every queued message, oldest first: id, age (s), sender, pending recipients, attempts,
    last error, next attempt (epoch seconds), held, size."""
    now = time.time()
    return [_row(item, now) for item in read_all(spool_directory(config.data_dir))]


def _find(config: Any, prefix: str) -> QueueItem:
    directory = spool_directory(config.data_dir)
    removed = removed_ids(directory)
    matches = [p.stem for p in directory.glob(f"{prefix}*.json") if p.stem not in removed] if prefix else []
    if len(matches) != 1:
        raise QueueError(f"no such queue id: {prefix}" if not matches else f"ambiguous id: {prefix}")
    try:
        return read_item(directory, matches[0])
    except FileNotFoundError:
        raise QueueError(f"no such queue id: {prefix}") from None


def show(config: Any, queue_id: str) -> dict[str, Any]:
    """The whole envelope of one message (every recipient with its state and last reply) and
    the message header under ``"headers"``."""
    item = _find(config, queue_id)
    data = item.to_json()
    path = spool_directory(config.data_dir) / f"{item.id}.msg"
    with open(path, "rb") as f:
        head = f.read(65536)
    end = head.find(b"\r\n\r\n")
    data["headers"] = head[: end if end >= 0 else len(head)].decode("utf-8", "replace")
    return data


def _offline_update(config: Any, queue_id: str, **changes: Any) -> bool:
    item = _find(config, queue_id)
    directory = spool_directory(config.data_dir)
    for key, value in changes.items():
        setattr(item, key, value)
    document = json.dumps(item.to_json()).encode()
    _write_atomic(directory / "tmp", directory / f"{item.id}.json", [document], sync_dir=True)
    return True


def flush(config: Any, queue_id: str | None = None) -> int:
    """Retry now every message not on hold (or only ``queue_id``); returns how many."""
    reply = _ask(config, {"op": "flush", "id": queue_id})
    if reply is not None:
        return int(reply.get("count", 0))
    if queue_id:
        return int(_offline_update(config, queue_id, next_attempt=0.0))
    count = 0
    for item in read_all(spool_directory(config.data_dir)):
        if not item.held:
            count += _offline_update(config, item.id, next_attempt=0.0)
    return count


def hold(config: Any, queue_id: str) -> bool:
    """Put a message on hold: no delivery attempt until ``release``."""
    reply = _ask(config, {"op": "hold", "id": queue_id})
    return bool(reply["ok"]) if reply is not None else _offline_update(config, queue_id, held=True)


def release(config: Any, queue_id: str) -> bool:
    """Release a held message and try it now."""
    reply = _ask(config, {"op": "release", "id": queue_id})
    if reply is not None:
        return bool(reply["ok"])
    return _offline_update(config, queue_id, held=False, next_attempt=0.0)


def delete(config: Any, queue_id: str) -> bool:
    """Remove a message from the queue without notifying anyone."""
    reply = _ask(config, {"op": "delete", "id": queue_id})
    if reply is not None:
        return bool(reply["ok"])
    item = _find(config, queue_id)
    directory = spool_directory(config.data_dir)
    (directory / f"{item.id}.json").unlink(missing_ok=True)
    (directory / f"{item.id}.msg").unlink(missing_ok=True)
    return True


def _age(seconds: float) -> str:
    if seconds < 60:
        return f"{seconds:.0f}s"
    if seconds < 3600:
        return f"{seconds / 60:.0f}m"
    if seconds < 86400:
        return f"{seconds / 3600:.1f}h"
    return f"{seconds / 86400:.1f}d"


def format_queue(rows: list[dict[str, Any]]) -> str:
    """A ``mailq``-like text listing of ``list_queue`` rows."""
    if not rows:
        return "Mail queue is empty\n"
    now = time.time()
    lines = []
    for row in rows:
        flag = "!" if row["held"] else " "
        when = "held" if row["held"] else (
            "now" if row["next_attempt"] <= now else "in " + _age(row["next_attempt"] - now)
        )
        lines.append(
            f"{row['id']}{flag} {row['size']:>8} {_age(row['age']):>6}  "
            f"<{row['sender']}>  attempts={row['attempts']}  next={when}"
        )
        if row["last_error"]:
            lines.append(f"    ({row['last_error'][:200]})")
        for rcpt in row["recipients"]:
            lines.append(f"    {rcpt}")
    lines.append(f"-- {len(rows)} message(s)")
    return "\n".join(lines) + "\n"


__all__ = [
    "QueueError", "delete", "flush", "format_queue", "hold", "list_queue", "release", "show",
]

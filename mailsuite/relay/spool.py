"""The durable outbound spool: one message file plus one JSON envelope file per queued message.

Layout of the spool directory::

    <id>.msg    the message bytes, exactly as accepted
    <id>.json   the envelope: sender, recipients with per-recipient state, DSN parameters,
                attempts, times, held flag
    tmp/        files being written
    removed.log ids of removed items, one a line, whose files may not all be deleted yet

Every write goes tmp -> fsync -> rename -> fsync(dir). The message file is written first and the
envelope last: the envelope's rename is the commit. At load time a message without an envelope is
an incomplete enqueue and is removed; an envelope always has its message. State updates rewrite the
envelope the same way, so a crash leaves either the old or the new state, never a torn file.

A removal's commit is its id appended to ``removed.log`` (fdatasync'ed, group-committed); both
files are deleted afterwards in the background, and the log is emptied once everything it names is
deleted durably. ``load()`` deletes what the log still names; the offline readers skip it.

Queue ids are 24 hex digits: 13 of microseconds since the epoch, 5 of a per-process counter and
6 random, so they sort by arrival time and never collide between two nodes sharing a directory.
"""

from __future__ import annotations

import json
import os
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure
from zope.interface import implementer

from mailsuite.interfaces import ISpool, SpoolEnvelope, SpoolRecipient

log = Logger()

# Per-recipient states.
PENDING = "pending"  # still to be delivered (never tried, or failed temporarily)
DELIVERED = "delivered"  # accepted by the next hop or delivered into a local mailbox
FAILED = "failed"  # failed permanently (5xx, expiry); a bounce is due unless NOTIFY forbids it
FINAL_STATES = frozenset({DELIVERED, FAILED})

ENVELOPE_VERSION = 1
READ_BATCH = 512
REMOVED_LOG = "removed.log"  # ids of removed items whose files may still be there  # message files read in one trip to the thread pool


@dataclass
class RecipientState:
    """One recipient of a queued message and where its delivery stands."""

    address: str
    notify: list[str] = field(default_factory=list)
    orcpt: str | None = None
    state: str = PENDING
    reply: str = ""  # the last reply or error text, e.g. "550 5.1.1 no such user"
    status: str = ""  # the last enhanced status code, e.g. "5.1.1" (RFC 3463)
    remote_mta: str = ""  # host name of the server that gave the reply
    last_attempt: float | None = None
    dsn_sent: bool = False  # the final DSN for this recipient has been queued
    relayed_action: str = ""  # "delivered" or "relayed" once done (for SUCCESS DSNs)

    @property
    def domain(self) -> str:
        """The domain part, lower case (empty for an address without one)."""
        return self.address.rpartition("@")[2].lower()


@dataclass
class QueueItem:
    """Everything the runner knows about one queued message (the JSON envelope file)."""

    id: str
    sender: str
    recipients: list[RecipientState]
    created: float
    next_attempt: float
    ret: str | None = None
    envid: str | None = None
    smtputf8: bool = False
    body_8bit: bool = False
    authenticated_user: str | None = None
    attempts: int = 0
    held: bool = False
    delay_notified: bool = False
    size: int = 0
    is_dsn: bool = False  # this message is itself a delivery status notification

    def pending(self) -> list[RecipientState]:
        """Recipients still to be delivered."""
        return [r for r in self.recipients if r.state == PENDING]

    def last_error(self) -> str:
        """The most recent failure text among pending recipients ('' if none)."""
        tried = [r for r in self.recipients if r.reply and r.state != DELIVERED]
        tried.sort(key=lambda r: r.last_attempt or 0.0)
        return tried[-1].reply if tried else ""

    def to_json(self) -> dict[str, Any]:
        """The JSON document written to ``<id>.json``."""
        data = {name: getattr(self, name) for name in _ITEM_FIELDS}
        data["recipients"] = [
            {name: getattr(r, name) for name in _RECIPIENT_FIELDS} for r in self.recipients
        ]
        data["version"] = ENVELOPE_VERSION
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> QueueItem:
        """Parse an envelope file's document (unknown keys are ignored)."""
        data = dict(data)
        data.pop("version", None)
        recipients = [RecipientState(**_known(RecipientState, r)) for r in data.pop("recipients")]
        return cls(recipients=recipients, **_known(cls, data))


_ITEM_FIELDS = tuple(f.name for f in fields(QueueItem) if f.name != "recipients")
_RECIPIENT_FIELDS = tuple(f.name for f in fields(RecipientState))


_FIELD_NAMES = {
    QueueItem: frozenset(_ITEM_FIELDS) | {"recipients"},
    RecipientState: frozenset(_RECIPIENT_FIELDS),
}


def _known(cls: type, data: dict[str, Any]) -> dict[str, Any]:
    names = _FIELD_NAMES.get(cls) or frozenset(cls.__dataclass_fields__)  # type: ignore[attr-defined]
    if names.issuperset(data):
        return data  # nothing unknown (the usual case): no copy
    return {k: v for k, v in data.items() if k in names}


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _write_atomic(tmp_dir: Path, final: Path, chunks: Iterable[bytes], sync_dir: bool) -> int:
    """Write ``chunks`` to ``final`` through a tmp file (fsync, rename); return the size."""
    # Unique without a random number: one thread writes one file at a time.
    tmp = tmp_dir / f"{final.name}.{os.getpid()}.{threading.get_ident()}.{time.monotonic_ns()}"
    size = 0
    with open(tmp, "wb") as f:
        for chunk in chunks:
            f.write(chunk)
            size += len(chunk)
        f.flush()
        os.fsync(f.fileno())
    os.rename(tmp, final)
    if sync_dir:
        _fsync_dir(final.parent)
    return size


@implementer(ISpool)
class Spool:
    """The spool directory and the in-memory index of its items.

    ``clock`` gives the time (``seconds()``). ``reactor``, when given, runs file I/O in its
    thread pool; without it (unit tests with ``task.Clock``) I/O runs inline and the returned
    Deferreds have already fired.
    """

    def __init__(self, directory: Path | str, clock: Any, reactor: Any = None) -> None:
        self.directory = Path(directory)
        self.tmp = self.directory / "tmp"
        self.clock = clock
        self._reactor = reactor
        self.items: dict[str, QueueItem] = {}
        self._locks: dict[str, defer.DeferredLock] = {}
        self._counter = 0
        self._node = secrets.token_hex(3)  # tells apart two processes sharing the directory
        self._sync_waiters: list[defer.Deferred[None]] = []
        self._doomed: list[str] = []  # removed ids for the next write of removed.log
        self._removal_waiters: list[defer.Deferred[None]] = []
        self._syncing = False
        self._removed_fd: int | None = None
        self._logged = 0  # ids in removed.log since it was last emptied
        self._unswept = 0  # ids in removed.log whose files are not surely gone yet
        self._litter: list[str] = []  # removed ids whose files are to be deleted
        self._sweeping = False
        self._quiet_waiters: list[defer.Deferred[None]] = []
        self._reads: list[tuple[str, defer.Deferred[bytes]]] = []
        self._reading = False
        self._listeners: list[Callable[[QueueItem], None]] = []
        self.directory.mkdir(mode=0o700, parents=True, exist_ok=True)  # mail: owner only
        self.tmp.mkdir(mode=0o700, exist_ok=True)

    # --- plumbing --------------------------------------------------------------------

    def _io(self, fn: Callable[..., Any], *args: Any) -> defer.Deferred[Any]:
        if self._reactor is None:
            return defer.maybeDeferred(fn, *args)
        from twisted.internet import threads

        return threads.deferToThreadPool(self._reactor, self._reactor.getThreadPool(), fn, *args)

    def new_id(self) -> str:
        """A fresh queue id: sortable by time, unique across processes."""
        self._counter = (self._counter + 1) % 0x100000
        micros = int(self.clock.seconds() * 1_000_000)
        return f"{micros:013x}{self._counter:05x}{self._node}"

    def message_path(self, queue_id: str) -> Path:
        return self.directory / f"{queue_id}.msg"

    def envelope_path(self, queue_id: str) -> Path:
        return self.directory / f"{queue_id}.json"

    def on_enqueue(self, listener: Callable[[QueueItem], None]) -> None:
        """Call ``listener(item)`` after each new item is durable (the runner's wake-up)."""
        self._listeners.append(listener)

    # --- ISpool ----------------------------------------------------------------------

    def enqueue(self, envelope: SpoolEnvelope, message: bytes | Sequence[bytes]) -> defer.Deferred[str]:
        """Store a message durably and return its queue id (see ``ISpool.enqueue``)."""
        return defer.Deferred.fromCoroutine(self._enqueue(envelope, message, is_dsn=False))

    def enqueue_dsn(self, sender: str, recipient: str, message: bytes) -> defer.Deferred[str]:
        """Queue a delivery status notification (null reverse-path, RFC 3461 6.2)."""
        envelope = SpoolEnvelope(sender=sender, recipients=(_recipient(recipient),),
                                 body_8bit=not message.isascii())
        return defer.Deferred.fromCoroutine(self._enqueue(envelope, message, is_dsn=True))

    async def _enqueue(
        self, envelope: SpoolEnvelope, message: bytes | Sequence[bytes], is_dsn: bool
    ) -> str:
        if not envelope.recipients:
            raise ValueError("an envelope needs at least one recipient")
        chunks = [message] if isinstance(message, (bytes, bytearray, memoryview)) else list(message)
        now = self.clock.seconds()
        item = QueueItem(
            id=self.new_id(),
            sender=envelope.sender,
            recipients=[
                RecipientState(address=r.address, notify=list(r.notify), orcpt=r.orcpt)
                for r in envelope.recipients
            ],
            created=now,
            next_attempt=now,
            ret=envelope.ret,
            envid=envelope.envid,
            smtputf8=envelope.smtputf8,
            body_8bit=envelope.body_8bit,
            authenticated_user=envelope.authenticated_user,
            size=sum(len(c) for c in chunks),
            is_dsn=is_dsn,
        )
        document = json.dumps(item.to_json()).encode()
        await self._io(self._write_new, item.id, chunks, document)
        await self.sync_directory()  # the envelope's rename is the commit
        self.items[item.id] = item
        for listener in list(self._listeners):
            listener(item)
        return item.id

    def _write_new(self, queue_id: str, chunks: list[bytes], document: bytes) -> None:
        _write_atomic(self.tmp, self.message_path(queue_id), chunks, sync_dir=False)
        _write_atomic(self.tmp, self.envelope_path(queue_id), [document], sync_dir=False)

    # --- directory fsync, shared -----------------------------------------------------

    def sync_directory(self) -> defer.Deferred[None]:
        """Fires after an fsync of the spool directory that began after this call.

        Group commit: renames and unlinks made by many operations at once are made durable
        by one fsync, instead of one each (the same guarantee, a fraction of the disk work).
        """
        waiter: defer.Deferred[None] = defer.Deferred()
        self._sync_waiters.append(waiter)
        self._start_sync()
        return waiter

    def _start_sync(self) -> None:
        if self._syncing or not (self._sync_waiters or self._removal_waiters):
            return
        waiters, self._sync_waiters = self._sync_waiters, []
        removals, self._removal_waiters = self._removal_waiters, []
        doomed, self._doomed = self._doomed, []
        # Every id written so far is swept and its unlinks are durable: start the log afresh.
        truncate = self._unswept == 0 and self._logged > 0
        if truncate:
            self._logged = 0
        self._logged += len(doomed)
        self._syncing = True

        def done(result: Any) -> None:
            self._syncing = False
            if doomed and not isinstance(result, Failure):
                self._unswept += len(doomed)
                self._litter.extend(doomed)
            for waiter in waiters + removals:
                if isinstance(result, Failure):
                    waiter.errback(result)
                else:
                    waiter.callback(None)
            self._start_sync()
            self._start_sweep()
            self._check_quiet()

        self._io(self._commit, doomed, bool(waiters), truncate).addBoth(done)

    def _commit(self, doomed: list[str], sync_dir: bool, truncate: bool) -> None:
        if doomed or truncate:
            fd = self._removed_log()
            if truncate:
                os.ftruncate(fd, 0)
            if doomed:
                os.write(fd, "".join(f"{queue_id}\n" for queue_id in doomed).encode("ascii"))
            os.fdatasync(fd)
        if sync_dir:
            _fsync_dir(self.directory)

    def _removed_log(self) -> int:
        if self._removed_fd is None:
            path = self.directory / REMOVED_LOG
            created = not path.exists()
            self._removed_fd = os.open(path, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o600)
            if created:
                _fsync_dir(self.directory)
        return self._removed_fd

    # --- files of removed items, swept behind the commit --------------------------------

    def _start_sweep(self) -> None:
        if self._sweeping or not self._litter:
            return
        batch, self._litter = self._litter, []
        self._sweeping = True

        def done(result: Any) -> None:
            self._sweeping = False
            if isinstance(result, Failure):
                # removed.log keeps naming them (it is not emptied): load() tries again.
                log.failure("cannot delete the files of removed spool items", result)
            else:
                self._unswept -= len(batch)
            self._start_sweep()
            self._check_quiet()

        self._io(self._unlink_removed, batch).addBoth(done)

    def _unlink_removed(self, queue_ids: list[str]) -> None:
        for queue_id in queue_ids:
            self.envelope_path(queue_id).unlink(missing_ok=True)
            self.message_path(queue_id).unlink(missing_ok=True)
        _fsync_dir(self.directory)  # before the log forgets them

    # --- updates ---------------------------------------------------------------------

    def save(self, item: QueueItem) -> defer.Deferred[None]:
        """Rewrite ``item``'s envelope atomically with its current state.

        The state is serialised now; writes of one item are applied in call order.
        """
        document = json.dumps(item.to_json()).encode()
        path = self.envelope_path(item.id)
        lock = self._locks.setdefault(item.id, defer.DeferredLock())

        def write() -> defer.Deferred[Any]:
            if item.id not in self.items:  # removed meanwhile: do not resurrect it
                return defer.succeed(None)
            return self._io(_write_atomic, self.tmp, path, [document], False)

        return lock.run(write).addCallback(lambda _: self.sync_directory())

    def remove(self, queue_id: str) -> defer.Deferred[None]:
        """Delete an item; the Deferred fires once the removal is durable.

        The commit is a line in ``removed.log``, written and fdatasync'ed once for every
        removal made meanwhile (group commit, in the thread pool). The envelope and message
        files are deleted afterwards, off that path; ``load()`` finishes the job for ids the
        log names after a crash. The log starts afresh whenever every id in it is swept.
        """
        self.items.pop(queue_id, None)
        lock = self._locks.pop(queue_id, None) or defer.DeferredLock()
        return lock.run(self._log_removal, queue_id)

    def _log_removal(self, queue_id: str) -> defer.Deferred[None]:
        waiter: defer.Deferred[None] = defer.Deferred()
        self._doomed.append(queue_id)
        self._removal_waiters.append(waiter)
        self._start_sync()
        return waiter

    def read_message(self, queue_id: str) -> defer.Deferred[bytes]:
        """The message bytes of an item (read off the reactor thread).

        Reads asked for while a batch is being read are read together in the next batch: one
        trip to the thread pool for many small files instead of one each.
        """
        if self._reactor is None:
            return self._io(self.message_path(queue_id).read_bytes)
        d: defer.Deferred[bytes] = defer.Deferred()
        self._reads.append((queue_id, d))
        self._start_reads()
        return d

    def _start_reads(self) -> None:
        if self._reading or not self._reads:
            return
        batch, self._reads = self._reads[:READ_BATCH], self._reads[READ_BATCH:]
        self._reading = True

        def done(result: Any) -> None:
            self._reading = False
            for (_, waiter), outcome in zip(batch, _results(result, len(batch))):
                if isinstance(outcome, BaseException):
                    waiter.errback(Failure(outcome))
                else:
                    waiter.callback(outcome)
            self._start_reads()

        self._io(self._read_batch, [queue_id for queue_id, _ in batch]).addBoth(done)

    def _read_batch(self, ids: list[str]) -> list[bytes | BaseException]:
        out: list[bytes | BaseException] = []
        for queue_id in ids:
            try:
                with open(self.message_path(queue_id), "rb") as f:
                    out.append(f.read())
            except OSError as e:
                out.append(e)
        return out

    # --- start-up --------------------------------------------------------------------

    def load(self) -> list[QueueItem]:
        """Read every envelope from disk into ``items`` (at start, before the runner runs).

        Messages without an envelope are incomplete enqueues (never acknowledged) and are
        removed; unreadable envelopes are left in place and logged.
        """
        self.items = {}
        for path in self.tmp.iterdir():
            path.unlink(missing_ok=True)
        self._finish_removals()
        names = os.listdir(self.directory)  # one listing instead of a stat per item
        envelopes = {n[:-5] for n in names if n.endswith(".json")}
        messages = {n[:-4] for n in names if n.endswith(".msg")}
        for stem in messages - envelopes:
            self.message_path(stem).unlink(missing_ok=True)
        base = os.fspath(self.directory)
        for stem in sorted(envelopes):
            try:
                # Plain os calls: at 10,000 envelopes pathlib's per-file objects show up in the
                # start-up time (inside the relay benchmark's timed window).
                fd = os.open(f"{base}/{stem}.json", os.O_RDONLY)
                try:
                    raw = _read_all(fd)
                finally:
                    os.close(fd)
                item = QueueItem.from_json(json.loads(raw))
            except (OSError, ValueError, TypeError, KeyError) as e:
                log.error("unreadable spool envelope {path}: {err}", path=stem, err=str(e))
                continue
            if stem not in messages:
                log.error("spool item {id} has no message file; skipped", id=stem)
                continue
            self.items[item.id] = item
        return sorted(self.items.values(), key=lambda i: i.id)

    def _finish_removals(self) -> None:
        """Delete the files of every item ``removed.log`` names, then empty the log."""
        removed = removed_ids(self.directory)
        if not removed:
            return
        for queue_id in removed:
            self.envelope_path(queue_id).unlink(missing_ok=True)
            self.message_path(queue_id).unlink(missing_ok=True)
        _fsync_dir(self.directory)
        fd = self._removed_log()
        os.ftruncate(fd, 0)
        os.fdatasync(fd)

    def flush_writes(self) -> defer.Deferred[None]:
        """Fires when every envelope write queued so far has finished, and the log writes and
        file deletions of removals with it (at shutdown: no thread left touching the spool)."""
        waits = [lock.run(defer.succeed, None) for lock in self._locks.values()]
        if self._syncing or self._sweeping or self._litter:
            quiet: defer.Deferred[None] = defer.Deferred()
            self._quiet_waiters.append(quiet)
            waits.append(quiet)
        return defer.gatherResults(waits).addCallback(lambda _: None)

    def _check_quiet(self) -> None:
        if self._syncing or self._sweeping or self._litter or not self._quiet_waiters:
            return
        waiting, self._quiet_waiters = self._quiet_waiters, []
        for d in waiting:
            d.callback(None)


def _read_all(fd: int) -> bytes:
    chunks: list[bytes] = []
    while True:
        chunk = os.read(fd, 65536)
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)


def _results(result: Any, count: int) -> list[Any]:
    """A batch's per-item results, or its failure repeated for every item."""
    if isinstance(result, Failure):
        return [result.value] * count
    return list(result)


def _recipient(address: str) -> SpoolRecipient:
    # A DSN never asks for a DSN about itself (RFC 3461 6.2).
    return SpoolRecipient(address=address, notify=("NEVER",))


def removed_ids(directory: Path | str) -> frozenset[str]:
    """The ids ``removed.log`` names: removed, although their files may still be there."""
    try:
        with open(Path(directory) / REMOVED_LOG, "rb") as f:
            text = f.read()
    except FileNotFoundError:
        return frozenset()
    lines = text.split(b"\n")[:-1]  # a torn last line (no newline) was never committed
    return frozenset(line.decode("ascii", "replace") for line in lines if line)


def read_item(directory: Path | str, queue_id: str) -> QueueItem:
    """Read one envelope straight from disk (for the CLI when the server is not running)."""
    if queue_id in removed_ids(directory):
        raise FileNotFoundError(f"{queue_id} was removed")
    path = Path(directory) / f"{queue_id}.json"
    return QueueItem.from_json(json.loads(path.read_bytes()))


def read_all(directory: Path | str) -> list[QueueItem]:
    """Every readable envelope in a spool directory, oldest first."""
    out = []
    removed = removed_ids(directory)
    for path in sorted(Path(directory).glob("*.json")):
        if path.stem in removed:
            continue
        try:
            out.append(QueueItem.from_json(json.loads(path.read_bytes())))
        except (OSError, ValueError, TypeError, KeyError):
            continue
    return out

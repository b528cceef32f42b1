"""The queue runner: attempts deliveries, records per-recipient results, retries, notifies.

For every due item the runner groups the pending recipients by domain and hands each group to a
delivery agent (local domains to the local agent, others to the remote one). Each agent answers
done / transient / permanent per recipient; the runner writes the new per-recipient state to the
spool as soon as a group's answer arrives, so a recipient that accepted the message is never sent
it again, even after a crash.

Retries back off exponentially (``retry_initial`` doubling up to ``retry_max``). After
``delay_notice_after`` the sender gets one delay notice; after ``bounce_after`` the remaining
recipients fail and the sender gets a bounce (RFC 3464). All times come from the injected clock.
"""

from __future__ import annotations

import heapq
from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger

from mailsuite.relay import dsn
from mailsuite.relay.agent import DeliveryJob, Outcome, Result
from mailsuite.relay.settings import RelaySettings
from mailsuite.relay.spool import DELIVERED, FAILED, PENDING, QueueItem, RecipientState, Spool

log = Logger()

MAX_IN_FLIGHT = 2000  # messages being attempted at once (each holds its bytes in memory)
MAX_IN_FLIGHT_BYTES = 256 * 1024 * 1024  # and their total size (one big message may exceed it)


class QueueRunner:
    """Drives the spool. ``is_local(domain)`` says which agent a recipient's domain goes to."""

    def __init__(
        self,
        spool: Spool,
        *,
        local_agent: Any,
        remote_agent: Any,
        is_local: Callable[[str], bool],
        clock: Any,
        settings: RelaySettings,
        hostname: str,
        maillog: Any = None,
    ) -> None:
        self.spool = spool
        self.local_agent = local_agent
        self.remote_agent = remote_agent
        self.is_local = is_local
        self.clock = clock
        self.settings = settings
        self.hostname = hostname
        self.maillog = maillog
        self.running = False
        self._timer: Any = None
        self._ready: deque[str] = deque()
        self._queued: set[str] = set()
        self._in_flight: dict[str, defer.Deferred[None]] = {}
        self._idle: list[defer.Deferred[None]] = []
        self._pumping = False
        self._finished: set[str] = set()
        self._in_flight_bytes = 0
        self._sizes: dict[str, int] = {}
        self._heap: list[tuple[float, str]] = []  # (next attempt, queue id), may hold stale entries
        spool.on_enqueue(self._enqueued)

    # --- life cycle ------------------------------------------------------------------

    def start(self) -> None:
        """Begin delivering whatever is in the spool (load it first)."""
        self.running = True
        self._heap = [(item.next_attempt, item.id) for item in self.spool.items.values()]
        heapq.heapify(self._heap)
        self._wake()

    def stop(self) -> defer.Deferred[None]:
        """Stop starting attempts, abort connections; fires when attempts in flight ended."""
        self.running = False
        if self._timer is not None and self._timer.active():
            self._timer.cancel()
        self._timer = None
        waits = [_observe(d) for d in self._in_flight.values()]
        if hasattr(self.remote_agent, "stop"):
            waits.append(defer.maybeDeferred(self.remote_agent.stop))
        return defer.gatherResults(waits).addCallback(lambda _: None)

    def wait_idle(self) -> defer.Deferred[None]:
        """Fires when no attempt is running or due now (for tests and orderly shutdown)."""
        d: defer.Deferred[None] = defer.Deferred()
        self._idle.append(d)
        self._check_idle()
        return d

    # --- scheduling ------------------------------------------------------------------

    def _enqueued(self, item: QueueItem) -> None:
        if self.running and not item.held:
            self._make_ready(item.id)
            self._pump()

    def _make_ready(self, queue_id: str) -> None:
        if queue_id not in self._queued and queue_id not in self._in_flight:
            self._queued.add(queue_id)
            self._ready.append(queue_id)

    def _wake(self) -> None:
        """Make every item that is due ready, then sleep until the next one is due."""
        self._timer = None
        if not self.running:
            return
        now = self.clock.seconds()
        heap = self._heap
        while heap and heap[0][0] <= now:
            _, queue_id = heapq.heappop(heap)
            item = self.spool.items.get(queue_id)
            # Stale entries (rescheduled, held, deleted, in flight) are simply dropped: every
            # reschedule pushes a fresh entry.
            if item is None or item.held or queue_id in self._in_flight:
                continue
            if item.next_attempt <= now:
                self._make_ready(queue_id)
        if heap:
            self._set_timer(heap[0][0])
        self._pump()

    def _schedule(self, item: QueueItem) -> None:
        heapq.heappush(self._heap, (item.next_attempt, item.id))
        if self.running:
            self._set_timer(item.next_attempt)

    def _set_timer(self, when: float) -> None:
        delay = max(0.0, when - self.clock.seconds())
        if self._timer is not None and self._timer.active():
            if self._timer.getTime() <= when:
                return
            self._timer.cancel()
        self._timer = self.clock.callLater(delay, self._wake)

    def _pump(self) -> None:
        if self._pumping:
            return  # an attempt that ended synchronously: the outer loop continues
        self._pumping = True
        try:
            while self.running and self._ready and len(self._in_flight) < MAX_IN_FLIGHT:
                if self._in_flight and self._in_flight_bytes >= MAX_IN_FLIGHT_BYTES:
                    break
                queue_id = self._ready.popleft()
                self._queued.discard(queue_id)
                item = self.spool.items.get(queue_id)
                if item is None or item.held or queue_id in self._in_flight:
                    continue
                self._in_flight[queue_id] = defer.Deferred()
                self._in_flight_bytes += item.size
                self._sizes[queue_id] = item.size
                attempt = defer.Deferred.fromCoroutine(self._attempt(item))
                attempt.addBoth(self._attempt_ended, queue_id)
        finally:
            self._pumping = False
        self._check_idle()

    def _attempt_ended(self, result: Any, queue_id: str) -> None:
        ended = self._in_flight.pop(queue_id, None)
        self._in_flight_bytes -= self._sizes.pop(queue_id, 0)
        item = self.spool.items.get(queue_id)
        if hasattr(result, "getErrorMessage"):
            log.failure("queue attempt of {id} failed", result, id=queue_id)
            if item is not None:  # e.g. the message file is unreadable: not in a tight loop
                item.next_attempt = self.clock.seconds() + self.settings.retry_initial
        if item is not None and not item.held:
            self._schedule(item)
        if ended is not None:
            ended.callback(None)
        self._pump()

    def _check_idle(self) -> None:
        if self._in_flight or self._ready or not self._idle:
            return
        waiting, self._idle = self._idle, []
        for d in waiting:
            d.callback(None)

    # --- one attempt -----------------------------------------------------------------

    async def _attempt(self, item: QueueItem) -> None:
        message = await self.spool.read_message(item.id)
        groups: dict[str, list[RecipientState]] = {}
        for r in item.pending():
            groups.setdefault(r.domain, []).append(r)
        # Like Postfix's smtp_destination_recipient_limit: a big group goes in several
        # transactions rather than meeting the server's "452 too many recipients".
        size = max(1, self.settings.max_recipients_per_transaction)
        jobs = [
            defer.Deferred.fromCoroutine(self._run_job(item, tuple(rs[i : i + size]), message))
            for rs in groups.values()
            for i in range(0, len(rs), size)
        ]
        if len(jobs) == 1:
            await jobs[0]  # the common case: one destination, no DeferredList needed
        else:
            await defer.gatherResults(jobs)
        if item.id in self._finished:  # every recipient accepted: already removed
            self._finished.discard(item.id)
            item.attempts += 1
            self._log_done(item)
            return
        if item.id not in self.spool.items:  # deleted by the operator meanwhile
            return
        await self._conclude(item, message)

    async def _run_job(
        self, item: QueueItem, recipients: tuple[RecipientState, ...], message: bytes
    ) -> None:
        domain = recipients[0].domain
        agent = self.local_agent if self.is_local(domain) else self.remote_agent
        committed: defer.Deferred[None] = defer.Deferred()
        try:
            outcomes = await agent.deliver(DeliveryJob(item, recipients, message, committed))
        except Exception as e:  # noqa: BLE001 - agents should not raise; stay safe if one does
            log.failure("delivery agent raised for {id}", id=item.id)
            outcomes = {r.address: Outcome.transient(f"internal error: {e!r}") for r in recipients}
        now = self.clock.seconds()
        for r in recipients:
            outcome = outcomes.get(r.address) or Outcome.transient("no result from delivery agent")
            apply_outcome(r, outcome, now)
        # Persist before anything else happens to this message: an accepted recipient is
        # never tried again, even if we crash right after this write. When this finished
        # the whole message and nobody is owed a notice, removing it is the commit.
        try:
            if self._nothing_left(item):
                self._finished.add(item.id)
                await self.spool.remove(item.id)
            else:
                await self.spool.save(item)
        finally:
            committed.callback(None)

    def _nothing_left(self, item: QueueItem) -> bool:
        for r in item.recipients:
            if r.state != DELIVERED:
                return False
            if r.dsn_sent or r.relayed_action not in (dsn.DELIVERED, dsn.RELAYED):
                continue
            if item.sender and not item.is_dsn and dsn.wants_notice(r, r.relayed_action):
                return False
        return True

    async def _conclude(self, item: QueueItem, message: bytes) -> None:
        now = self.clock.seconds()
        s = self.settings
        item.attempts += 1
        pending = item.pending()
        age = now - item.created
        if pending and age >= s.bounce_after:
            for r in pending:
                r.state = FAILED
                days = s.bounce_after / 86400
                last = r.reply or "no attempt succeeded"
                r.reply = f"message expired after {days:g} days in the queue; last error: {last}"
                if not r.status.startswith("4"):
                    r.status = "4.4.7"
            pending = []
        failed = [r for r in item.recipients if r.state == FAILED and not r.dsn_sent]
        succeeded = [
            r
            for r in item.recipients
            if r.state == DELIVERED and not r.dsn_sent and r.relayed_action in ("delivered", "relayed")
        ]
        await self._notify(item, dsn.FAILED, failed, message, now)
        for action in (dsn.DELIVERED, dsn.RELAYED):
            chosen = [r for r in succeeded if r.relayed_action == action]
            await self._notify(item, action, chosen, message, now)
        for r in failed + succeeded:
            r.dsn_sent = True
        if pending and age >= s.delay_notice_after and not item.delay_notified:
            await self._notify(item, dsn.DELAYED, pending, message, now)
            item.delay_notified = True
        if not pending:
            self._log_done(item)
            await self.spool.remove(item.id)
            return
        delay = min(s.retry_initial * (2 ** (item.attempts - 1)), s.retry_max)
        item.next_attempt = min(now + delay, item.created + s.bounce_after)
        if item.next_attempt <= now:
            item.next_attempt = now + min(s.retry_initial, s.retry_max)
        if not self.running:
            item.next_attempt = now  # cut short by a shutdown: try again as soon as we start
        await self.spool.save(item)

    async def _notify(
        self, item: QueueItem, action: str, recipients: list[RecipientState], message: bytes,
        now: float,
    ) -> None:
        report = dsn.reports_due(item, action, recipients)
        if report is None:
            return
        body = dsn.build_report(
            report, message, hostname=self.hostname, now=now, bounce_after=self.settings.bounce_after
        )
        queue_id = await self.spool.enqueue_dsn("", item.sender, body)
        if self.maillog is not None:
            self.maillog.log(
                "dsn",
                queue_id=item.id,
                dsn_id=queue_id,
                action=action,
                to=item.sender,
                rcpts=",".join(r.address for r in report.recipients),
            )

    def _log_done(self, item: QueueItem) -> None:
        if self.maillog is None:
            return
        delivered = sum(1 for r in item.recipients if r.state == DELIVERED)
        self.maillog.log(
            "removed",
            queue_id=item.id,
            delivered=delivered,
            failed=len(item.recipients) - delivered,
            attempts=item.attempts,
        )

    # --- operator commands (the control channel) -------------------------------------

    def flush(self, queue_id: str | None = None) -> int:
        """Try now: every item not on hold, or only ``queue_id``. Returns how many were woken."""
        now = self.clock.seconds()
        count = 0
        if hasattr(self.remote_agent, "forget_failures"):
            self.remote_agent.forget_failures()
        items = [self.spool.items.get(queue_id)] if queue_id else list(self.spool.items.values())
        for item in items:
            if item is None or item.held:
                continue
            item.next_attempt = now
            if item.id not in self._in_flight:
                self._make_ready(item.id)
            count += 1
        self._pump()
        return count

    async def hold(self, queue_id: str) -> bool:
        """Put an item on hold: no attempt starts until it is released."""
        item = self.spool.items.get(queue_id)
        if item is None:
            return False
        item.held = True
        await self.spool.save(item)
        return True

    async def release(self, queue_id: str) -> bool:
        """Take an item off hold and try it now."""
        item = self.spool.items.get(queue_id)
        if item is None:
            return False
        item.held = False
        item.next_attempt = self.clock.seconds()
        await self.spool.save(item)
        if self.running:
            self._make_ready(item.id)
            self._pump()
        return True

    async def delete(self, queue_id: str) -> bool:
        """Remove an item without notice to anyone (like ``postsuper -d``)."""
        if queue_id not in self.spool.items:
            return False
        await self.spool.remove(queue_id)
        if self.maillog is not None:
            self.maillog.log("deleted", queue_id=queue_id)
        return True


def apply_outcome(r: RecipientState, outcome: Outcome, now: float) -> None:
    """Record an agent's answer in a recipient's state."""
    r.last_attempt = now
    r.reply = outcome.reply
    r.status = outcome.status
    r.remote_mta = outcome.remote_mta
    if outcome.result is Result.DONE:
        r.state = DELIVERED
        r.relayed_action = outcome.action
    elif outcome.result is Result.PERMANENT:
        r.state = FAILED
    else:
        r.state = PENDING


def _observe(d: defer.Deferred[Any]) -> defer.Deferred[None]:
    out: defer.Deferred[None] = defer.Deferred()

    def fire(result: Any) -> Any:
        out.callback(None)
        return result

    d.addBoth(fire)
    return out

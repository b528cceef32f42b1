"""The remote delivery agent: per-destination queues of jobs, connection reuse, concurrency limits.

Each destination (a domain, or the smarthost) has a queue of jobs and up to
``max_per_destination`` workers; all destinations together hold at most ``max_connections``
connections. A worker keeps its connection open and sends the next job of the same destination
over it (after RSET), so a burst to one domain costs one TCP and TLS handshake per worker.
When no server of a destination can be reached, every job waiting for it gets the same
temporary failure at once instead of each waiting for its own timeout (Postfix's "dead
destination").
"""

from __future__ import annotations

from collections import deque
from typing import Any

from twisted.internet import defer, ssl
from twisted.logger import Logger
from zope.interface import implementer

from mailsuite.relay.agent import DeliveryJob, IDeliveryAgent, Outcome
from mailsuite.relay.client import LoopDetected, SessionFailed, SMTPSession, open_session
from mailsuite.relay.routing import SMARTHOST_KEY, Route, Router, RoutingError
from mailsuite.relay.settings import RelaySettings

log = Logger()


def opportunistic_tls_options() -> Any:
    """TLS for MX delivery: encrypt when offered, accept any certificate (RFC 3207 4.1)."""
    return ssl.CertificateOptions(verify=False)


def verified_tls_options(name: str, cafile: str) -> Any:
    """TLS that checks the certificate chain and that it names ``name`` (smarthost)."""
    if cafile:
        with open(cafile, "rb") as f:
            pem = f.read()
        marker = b"-----END CERTIFICATE-----"
        blocks = [b + marker for b in pem.split(marker) if b.strip()]
        trust = ssl.trustRootFromCertificates([ssl.Certificate.loadPEM(b) for b in blocks])
    else:
        trust = ssl.platformTrust()
    return ssl.optionsForClientTLS(name, trustRoot=trust)


class _Destination:
    """The jobs waiting for one destination and the workers serving them."""

    def __init__(self, key: str) -> None:
        self.key = key
        self.jobs: deque[tuple[DeliveryJob, defer.Deferred[dict[str, Outcome]]]] = deque()
        self.workers = 0
        self.idle: list[defer.Deferred[bool]] = []  # workers holding an open connection

    def wake_one(self) -> bool:
        """Hand new work to a worker waiting with an open connection, if there is one."""
        while self.idle:
            d = self.idle.pop()
            if not d.called:
                d.callback(True)
                return True
        return False


@implementer(IDeliveryAgent)
class RemoteAgent:
    """Delivers jobs over SMTP to the MX hosts of their domain (or the smarthost)."""

    def __init__(
        self,
        router: Router,
        settings: RelaySettings,
        reactor: Any,
        clock: Any,
        hostname: str,
        maillog: Any = None,
    ) -> None:
        self.router = router
        self.settings = settings
        self.reactor = reactor
        self.clock = clock
        self.hostname = hostname
        self.maillog = maillog
        self._destinations: dict[str, _Destination] = {}
        self._connections = defer.DeferredSemaphore(max(1, settings.max_connections))
        self._sessions: set[SMTPSession] = set()
        self._stopping = False
        self._workers: set[defer.Deferred[None]] = set()
        self._suspended: dict[str, tuple[float, Outcome]] = {}  # unreachable until (time)

    def destination_key(self, job: DeliveryJob) -> str:
        if self.settings.smarthost:
            return SMARTHOST_KEY
        return job.recipients[0].domain

    def deliver(self, job: DeliveryJob) -> defer.Deferred[dict[str, Outcome]]:
        """Queue the job behind others of its destination (see ``IDeliveryAgent``)."""
        key = self.destination_key(job)
        suspended = self._suspended.get(key)
        if suspended is not None:
            until, outcome = suspended
            if self.clock.seconds() < until:
                # Like Postfix's dead destinations: do not wait for the same timeout again.
                self._log(job, None, _all(job, outcome))
                return defer.succeed(_all(job, outcome))
            del self._suspended[key]
        dest = self._destinations.get(key)
        if dest is None:
            dest = self._destinations[key] = _Destination(key)
        d: defer.Deferred[dict[str, Outcome]] = defer.Deferred()
        dest.jobs.append((job, d))
        if not dest.wake_one():
            self._staff(dest)
        return d

    def _staff(self, dest: _Destination) -> None:
        """Start a worker for ``dest`` if it has more jobs than workers (within the limit).
        (While the agent stops, a new worker answers its jobs "shutting down" at once.)"""
        if dest.workers < self.settings.max_per_destination and dest.workers < len(dest.jobs):
            dest.workers += 1
            worker = defer.Deferred.fromCoroutine(self._worker(dest))
            if not worker.called:
                self._workers.add(worker)
                worker.addBoth(lambda _: self._workers.discard(worker))

    def stop(self) -> defer.Deferred[None]:
        """Stop: no new transactions; those in flight get ``stop_grace`` seconds to finish
        (so their recipients are not sent the message twice after a restart), then every
        connection is cut. Queued jobs get transient outcomes. Fires when all are closed."""
        self._stopping = True
        workers = [w for w in self._workers if not w.called]
        self._close_idle()
        for dest in list(self._destinations.values()):
            while dest.jobs:
                job, d = dest.jobs.popleft()
                d.callback(_all(job, Outcome.transient("relay shutting down", "4.3.2")))
        if not workers:
            return defer.succeed(None)
        timer = self.clock.callLater(self.settings.stop_grace, self._abort_all)

        def done(result: Any) -> None:
            if timer.active():
                timer.cancel()

        return defer.gatherResults(workers).addBoth(done)

    def _abort_all(self) -> None:
        for session in list(self._sessions):
            session.protocol.abort()

    async def _worker(self, dest: _Destination) -> None:
        session: SMTPSession | None = None
        holding = False
        # A job taken off the queue whose MAIL, RCPTs and DATA already went out on the
        # session behind the previous message (RFC 2920): it is sent next.
        carried: tuple[DeliveryJob, defer.Deferred[dict[str, Outcome]]] | None = None

        def take_next() -> tuple[Any, tuple[Any, ...], bytes] | None:
            nonlocal carried
            if carried is not None or self._stopping or not dest.jobs:
                return None
            carried = dest.jobs.popleft()
            job = carried[0]
            return job.item, job.recipients, job.message

        try:
            while not self._stopping:
                if carried is not None:
                    (job, d), carried = carried, None
                elif not dest.jobs:
                    if session is None or not session.usable or not await self._idle(dest):
                        break
                    continue
                else:
                    job, d = dest.jobs.popleft()
                if session is None or not session.usable:
                    if session is not None:
                        await self._close(session)
                        session = None
                    if not holding:
                        if self._connections.tokens == 0:
                            self._close_idle()  # an idle connection must not block new work
                        await self._connections.acquire()
                        holding = True
                    try:
                        session = await self._connect(job)
                    except (RoutingError, SessionFailed, LoopDetected) as e:
                        self._fail_destination(dest, job, d, e)
                        continue
                    if self._stopping:
                        d.callback(_all(job, Outcome.transient("relay shutting down", "4.3.2")))
                        break
                outcomes: dict[str, Outcome] | None = None
                try:
                    outcomes = await session.send(job.item, job.recipients, job.message, take_next)
                except SessionFailed:
                    # The kept-open connection went stale (RSET failed): one fresh try.
                    await self._close(session)
                    session = None
                    try:
                        session = await self._connect(job)
                        outcomes = await session.send(
                            job.item, job.recipients, job.message, take_next
                        )
                    except (RoutingError, SessionFailed, LoopDetected) as e:
                        self._fail_destination(dest, job, d, e)
                        continue
                self._log(job, session, outcomes)
                d.callback(outcomes)
                # The next message's content goes out only after these outcomes are durable,
                # so a crash sends at most the one message in flight twice.
                if job.committed is not None and not job.committed.called:
                    await _observe(job.committed)
        except Exception:  # noqa: BLE001 - a worker must never leave its jobs hanging
            log.failure("relay worker for {dest} crashed", dest=dest.key)
            if carried is not None:
                dest.jobs.appendleft(carried)
                carried = None
            while dest.jobs:
                job, d = dest.jobs.popleft()
                d.callback(_all(job, Outcome.transient("internal error in relay worker")))
        finally:
            if carried is not None:
                dest.jobs.appendleft(carried)  # not sent: shutting down (answered below)
            if self._stopping:
                while dest.jobs:
                    job, d = dest.jobs.popleft()
                    d.callback(_all(job, Outcome.transient("relay shutting down", "4.3.2")))
            if session is not None:
                await self._close(session)
            if holding:
                self._connections.release()
            dest.workers -= 1
            if dest.jobs:
                # Jobs queued while this worker was closing its connection found every
                # worker busy and started none: they would wait here forever.
                self._staff(dest)
            elif dest.workers == 0:
                self._destinations.pop(dest.key, None)

    def forget_failures(self) -> None:
        """Try every destination again at once (``queue flush``)."""
        self._suspended.clear()

    def _close_idle(self) -> None:
        """Tell every worker waiting with an idle connection to close it."""
        for dest in list(self._destinations.values()):
            while dest.idle:
                waiter = dest.idle.pop()
                if not waiter.called:
                    waiter.callback(False)

    async def _idle(self, dest: _Destination) -> bool:
        """Keep the connection open a little for more work (like Postfix's connection
        cache); True if work arrived, False when the time is up or the agent stops."""
        if self._connections.waiting:
            return False  # others wait for a connection slot: give ours up now
        waiter: defer.Deferred[bool] = defer.Deferred()
        dest.idle.append(waiter)

        def expire() -> None:
            if not waiter.called:
                dest.idle.remove(waiter)
                waiter.callback(False)

        timer = self.clock.callLater(self.settings.connection_cache_time, expire)
        woke = await waiter
        if timer.active():
            timer.cancel()
        return bool(woke) and not self._stopping

    async def _connect(self, job: DeliveryJob) -> SMTPSession:
        route: Route = await self.router.route(job.recipients[0].domain)
        if route.require_tls:
            tls_options = verified_tls_options(route.verify_name or route.hosts[0].name, route.cafile)
        else:
            tls_options = opportunistic_tls_options()
        last: Exception | None = None
        for host in route.hosts:
            for address in host.addresses:
                try:
                    session = await open_session(
                        self.reactor,
                        self.clock,
                        host_name=host.name,
                        address=address,
                        port=route.port,
                        settings=self.settings,
                        hostname=self.hostname,
                        tls_options=tls_options,
                        require_tls=route.require_tls,
                        implicit_tls=route.implicit_tls,
                        auth=route.auth,
                        check_loop=route.key != SMARTHOST_KEY,
                    )
                except SessionFailed as e:
                    last = e
                    log.info("relay: {err}", err=e.text)
                    continue
                self._sessions.add(session)
                return session
        raise last or SessionFailed(f"no address to connect to for {route.key}", "4.4.1")

    async def _close(self, session: SMTPSession) -> None:
        self._sessions.discard(session)
        await session.quit()

    def _fail_destination(
        self,
        dest: _Destination,
        job: DeliveryJob,
        d: defer.Deferred[dict[str, Outcome]],
        e: Exception,
    ) -> None:
        if isinstance(e, RoutingError):
            outcome = (Outcome.permanent if e.permanent else Outcome.transient)(e.text, e.status)
        elif isinstance(e, LoopDetected):
            outcome = Outcome.permanent(str(e), "5.4.6")
        else:
            outcome = Outcome.transient(e.text, e.status)  # type: ignore[attr-defined]
        failed = [(job, d)]
        if not (isinstance(e, RoutingError) and e.permanent) and not isinstance(e, LoopDetected):
            failed += list(dest.jobs)  # the same destination is unreachable for all of them
            dest.jobs.clear()
            if self.settings.suspend_after_failure > 0:
                until = self.clock.seconds() + self.settings.suspend_after_failure
                held = Outcome.transient(f"delivery temporarily suspended: {outcome.reply}",
                                         outcome.status)
                self._suspended[dest.key] = (until, held)
        for j, jd in failed:
            self._log(j, None, _all(j, outcome))
            jd.callback(_all(j, outcome))

    def _log(self, job: DeliveryJob, session: SMTPSession | None, outcomes: dict[str, Outcome]) -> None:
        if self.maillog is None:
            return
        for address, outcome in outcomes.items():
            self.maillog.log(
                "relay",
                queue_id=job.item.id,
                sender=job.item.sender,
                rcpt=address,
                host=session.host_name if session else "",
                address=session.address if session else "",
                tls=session.tls if session else "",
                result=outcome.result.value,
                status=outcome.status,
                reply=outcome.reply,
            )


def _observe(d: defer.Deferred[Any]) -> defer.Deferred[None]:
    out: defer.Deferred[None] = defer.Deferred()

    def fire(result: Any) -> Any:
        out.callback(None)
        return result

    d.addBoth(fire)
    return out


def _all(job: DeliveryJob, outcome: Outcome) -> dict[str, Outcome]:
    return {r.address: outcome for r in job.recipients}

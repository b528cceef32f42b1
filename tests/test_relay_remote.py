"""RemoteAgent's workers (mailsuite.relay.remote), driven with stand-in sessions and a clock."""

from __future__ import annotations

from typing import Any

from twisted.internet import defer, task

from mailsuite.relay.agent import DeliveryJob, Outcome, Result
from mailsuite.relay.remote import RemoteAgent
from mailsuite.relay.settings import RelaySettings
from mailsuite.relay.spool import QueueItem, RecipientState


class _Session:
    """Sends one message, then is spent (as after max_messages_per_connection); its QUIT
    finishes when the test says so."""

    host_name, address, tls = "mx.far.test", "192.0.2.1", ""

    def __init__(self, sent: list[str], quitting: list[defer.Deferred[None]]) -> None:
        self.usable = True
        self._sent = sent
        self._quitting = quitting

    async def send(self, item: QueueItem, recipients: Any, message: bytes, take_next: Any) -> dict:
        self._sent.append(item.id)
        self.usable = False
        return {r.address: Outcome.done("250 2.0.0 Ok") for r in recipients}

    async def quit(self) -> None:
        done: defer.Deferred[None] = defer.Deferred()
        self._quitting.append(done)
        await done


def _job(n: int, domain: str = "far.test") -> DeliveryJob:
    item = QueueItem(id=f"q{n}", sender="alice@a.test",
                     recipients=[RecipientState(f"bob{n}@{domain}")], created=0.0, next_attempt=0.0)
    return DeliveryJob(item, tuple(item.recipients), b"Subject: x\r\n\r\nx\r\n")


def _agent(sent: list[str], quitting: list[defer.Deferred[None]]) -> RemoteAgent:
    clock = task.Clock()
    agent = RemoteAgent(router=None, settings=RelaySettings(max_per_destination=1),  # type: ignore[arg-type]
                        reactor=clock, clock=clock, hostname="mail.a.test")

    async def connect(job: DeliveryJob) -> _Session:
        return _Session(sent, quitting)

    agent._connect = connect  # type: ignore[method-assign]
    return agent


def test_a_job_queued_while_the_only_worker_closes_its_connection_is_still_sent() -> None:
    sent: list[str] = []
    quitting: list[defer.Deferred[None]] = []
    agent = _agent(sent, quitting)
    first = agent.deliver(_job(1))
    assert first.called and sent == ["q1"]
    assert len(quitting) == 1  # the spent connection is being closed; the worker is still busy
    second = agent.deliver(_job(2))
    assert not second.called
    quitting[0].callback(None)  # the worker ends: the job it left behind gets a worker
    assert sent == ["q1", "q2"]
    assert second.called
    assert [o.result for o in second.result.values()] == [Result.DONE]


def test_jobs_are_answered_while_the_agent_stops() -> None:
    sent: list[str] = []
    quitting: list[defer.Deferred[None]] = []
    agent = _agent(sent, quitting)
    agent.deliver(_job(1))
    waiting = agent.deliver(_job(2))
    stopped = agent.stop()  # queued jobs are answered at once, transiently
    assert [o.result for o in waiting.result.values()] == [Result.TRANSIENT]
    # Given while the agent stops, for a destination with no worker: answered, not left waiting.
    late = agent.deliver(_job(3, "other.test"))
    assert late.called
    assert [o.result for o in late.result.values()] == [Result.TRANSIENT]
    quitting[0].callback(None)
    assert sent == ["q1"] and stopped.called

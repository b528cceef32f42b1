"""The queue runner on a fake clock: retries, backoff, delay notices, expiry, bounces, restarts."""

from __future__ import annotations

import email
import email.policy

from twisted.internet import defer, task
from twisted.trial import unittest

from mailsuite.interfaces import SpoolEnvelope, SpoolRecipient
from mailsuite.relay.agent import Outcome
from mailsuite.relay.runner import QueueRunner
from mailsuite.relay.settings import RelaySettings
from mailsuite.relay.spool import DELIVERED, FAILED, PENDING, Spool

MESSAGE = b"From: alice@a.test\r\nTo: bob@b.test\r\nSubject: hello\r\n\r\nbody\r\n"
HOUR = 3600.0
DAY = 86400.0

OK = Outcome.done("250 2.0.0 queued as X (in reply to end of DATA command)", "mx.b.test")
LATER = Outcome.transient("451 4.3.0 try again later (in reply to RCPT TO command)", "4.3.0",
                          "mx.b.test")
NO_USER = Outcome.permanent("550 5.1.1 no such user (in reply to RCPT TO command)", "5.1.1",
                            "mx.b.test")


class ScriptedAgent:
    """Answers from a per-address script (the last answer repeats) and records each call."""

    def __init__(self, clock: task.Clock, script: dict[str, list[Outcome]] | None = None) -> None:
        self.clock = clock
        self.script = script or {}
        self.calls: list[tuple[float, str, str]] = []  # (time, queue id, address)
        self.messages: list[tuple[str, bytes]] = []
        self.jobs: list[list[str]] = []

    def deliver(self, job):
        self.jobs.append([r.address for r in job.recipients])
        out = {}
        for r in job.recipients:
            self.calls.append((self.clock.seconds(), job.item.id, r.address))
            self.messages.append((r.address, job.message))
            answers = self.script.get(r.address, [OK])
            out[r.address] = answers.pop(0) if len(answers) > 1 else answers[0]
        return defer.succeed(out)

    def times_for(self, address: str) -> list[float]:
        return [t for t, _, a in self.calls if a == address]


class RunnerTests(unittest.TestCase):
    def setUp(self) -> None:
        self.dir = self.mktemp()
        self.clock = task.Clock()
        self.start = 1_700_000_000.0
        self.clock.advance(self.start)
        self.settings = RelaySettings()
        self.remote = ScriptedAgent(self.clock)
        self.local = ScriptedAgent(self.clock)
        self.runner = self.make_runner()

    def make_runner(self) -> QueueRunner:
        self.spool = Spool(self.dir, self.clock)
        self.spool.load()
        runner = QueueRunner(
            self.spool,
            local_agent=self.local,
            remote_agent=self.remote,
            is_local=lambda d: d == "a.test",
            clock=self.clock,
            settings=self.settings,
            hostname="mail.a.test",
        )
        runner.start()
        return runner

    def enqueue(self, *rcpts: str, sender: str = "alice@a.test", notify=(), ret=None) -> str:
        env = SpoolEnvelope(
            sender=sender,
            recipients=tuple(SpoolRecipient(r, notify=tuple(notify)) for r in rcpts),
            ret=ret,
        )
        return self.successResultOf(self.spool.enqueue(env, MESSAGE))

    def dsns(self) -> list[email.message.EmailMessage]:
        """DSNs delivered to the (local) sender by the local agent."""
        return [
            email.message_from_bytes(raw, policy=email.policy.default)
            for address, raw in self.local.messages
            if b"multipart/report" in raw
        ]

    def advance_to(self, seconds_after_start: float) -> None:
        """Move the clock to ``start + seconds``, firing each timer at its own time."""
        target = self.start + seconds_after_start
        for _ in range(10_000):  # bounded
            calls = sorted(c.getTime() for c in self.clock.getDelayedCalls())
            if not calls or calls[0] > target:
                break
            self.clock.advance(max(0.0, calls[0] - self.clock.seconds()))
        self.clock.advance(max(0.0, target - self.clock.seconds()))

    # --- delivery and retries ------------------------------------------------------

    def test_new_message_is_delivered_at_once_and_removed(self):
        queue_id = self.enqueue("bob@b.test")
        self.assertEqual(self.remote.times_for("bob@b.test"), [self.start])
        self.assertNotIn(queue_id, self.spool.items)
        self.assertFalse(self.spool.envelope_path(queue_id).exists())

    def test_bytes_in_flight_are_bounded(self):
        from mailsuite.relay import runner as runner_module

        self.patch(runner_module, "MAX_IN_FLIGHT_BYTES", len(MESSAGE) + 1)
        pending: list[defer.Deferred] = []

        class HoldingAgent:
            def deliver(self, job):
                d = defer.Deferred()
                pending.append((d, job))
                return d

        self.remote = HoldingAgent()
        self.runner = self.make_runner()
        for n in range(3):
            self.enqueue(f"u{n}@b.test")
        self.assertEqual(len(pending), 2)  # the second one crosses the limit, the third waits
        d, job = pending.pop(0)
        d.callback({r.address: OK for r in job.recipients})
        self.assertEqual(len(pending), 2)

    def test_local_domains_go_to_the_local_agent(self):
        self.enqueue("carol@a.test")
        self.assertEqual([a for _, _, a in self.local.calls], ["carol@a.test"])
        self.assertEqual(self.remote.calls, [])

    def test_many_recipients_of_one_domain_split_into_transactions(self):
        self.settings = RelaySettings(max_recipients_per_transaction=2)
        self.runner = self.make_runner()
        self.enqueue(*[f"u{n}@b.test" for n in range(5)])
        self.assertEqual([len(j) for j in self.remote.jobs], [2, 2, 1])

    def test_transient_failures_back_off_doubling_up_to_the_maximum(self):
        self.remote.script["bob@b.test"] = [LATER]
        self.enqueue("bob@b.test")
        self.advance_to(12 * HOUR)
        times = [t - self.start for t in self.remote.times_for("bob@b.test")]
        # Waits of 300, 600, 1200, 2400, 4800, 9600 s, then 4 h (the maximum) each time.
        self.assertEqual(times[:8], [0, 300, 900, 2100, 4500, 9300, 18900, 33300])

    def test_recipient_accepted_once_is_never_tried_again(self):
        self.remote.script["bob@b.test"] = [OK]
        self.remote.script["carol@b.test"] = [LATER, OK]
        queue_id = self.enqueue("bob@b.test", "carol@b.test")
        item = self.spool.items[queue_id]
        self.assertEqual([r.state for r in item.recipients], [DELIVERED, PENDING])
        self.advance_to(300)
        self.assertEqual(len(self.remote.times_for("bob@b.test")), 1)
        self.assertEqual(len(self.remote.times_for("carol@b.test")), 2)
        self.assertNotIn(queue_id, self.spool.items)

    def test_persisted_state_lists_each_recipients_result(self):
        self.remote.script["carol@b.test"] = [LATER]
        queue_id = self.enqueue("bob@b.test", "carol@b.test")
        fresh = Spool(self.dir, self.clock)
        fresh.load()
        item = fresh.items[queue_id]
        self.assertEqual([r.state for r in item.recipients], [DELIVERED, PENDING])
        self.assertIn("451 4.3.0", item.recipients[1].reply)
        self.assertEqual(item.attempts, 1)
        self.assertEqual(item.next_attempt, self.start + 300)

    def test_restarted_runner_resumes_only_pending_recipients(self):
        self.remote.script["carol@b.test"] = [LATER, OK]
        self.enqueue("bob@b.test", "carol@b.test")
        self.successResultOf(self.runner.stop())
        self.remote.calls.clear()
        self.runner = self.make_runner()
        self.advance_to(300)
        self.assertEqual([a for _, _, a in self.remote.calls], ["carol@b.test"])
        self.assertEqual(self.spool.items, {})

    # --- bounces -------------------------------------------------------------------

    def test_permanent_failure_bounces_to_the_sender(self):
        self.remote.script["bob@b.test"] = [NO_USER]
        queue_id = self.enqueue("bob@b.test")
        self.assertNotIn(queue_id, self.spool.items)
        [bounce] = self.dsns()
        self.assertEqual(self.local.calls[0][2], "alice@a.test")
        self.assertEqual(bounce["Subject"], "Undelivered Mail Returned to Sender")
        report = bounce.get_payload()[1].get_payload()
        self.assertEqual(report[1]["Action"], "failed")
        self.assertEqual(report[1]["Status"], "5.1.1")

    def test_bounce_has_the_null_sender(self):
        self.remote.script["bob@b.test"] = [NO_USER]
        self.enqueue("bob@b.test")
        bounce_items = [i for i in self.spool.items.values() if i.is_dsn]
        delivered = [c for c in self.local.calls]
        self.assertEqual(bounce_items, [])  # delivered and removed
        self.assertEqual(len(delivered), 1)

    def test_null_sender_never_gets_a_bounce(self):
        self.remote.script["bob@b.test"] = [NO_USER]
        self.enqueue("bob@b.test", sender="")
        self.assertEqual(self.local.calls, [])
        self.assertEqual(self.spool.items, {})

    def test_notify_never_suppresses_the_bounce(self):
        self.remote.script["bob@b.test"] = [NO_USER]
        self.enqueue("bob@b.test", notify=("NEVER",))
        self.assertEqual(self.dsns(), [])

    def test_notify_success_reports_relayed(self):
        self.enqueue("bob@b.test", notify=("SUCCESS",))
        [report] = self.dsns()
        status = report.get_payload()[1].get_payload()
        self.assertEqual(status[1]["Action"], "relayed")

    def test_one_bounce_lists_only_the_failed_recipients(self):
        self.remote.script["carol@b.test"] = [NO_USER]
        self.enqueue("bob@b.test", "carol@b.test")
        [bounce] = self.dsns()
        status = bounce.get_payload()[1].get_payload()
        self.assertEqual([g["Final-Recipient"] for g in status[1:]], ["rfc822; carol@b.test"])

    # --- delay notices and expiry --------------------------------------------------

    def test_delay_notice_after_four_hours_sent_once(self):
        self.remote.script["bob@b.test"] = [LATER]
        self.enqueue("bob@b.test")
        self.advance_to(3.9 * HOUR)
        self.assertEqual(self.dsns(), [])
        self.advance_to(2 * DAY)
        [notice] = self.dsns()
        self.assertEqual(notice.get_payload()[1].get_payload()[1]["Action"], "delayed")

    def test_expiry_bounces_after_five_days(self):
        self.remote.script["bob@b.test"] = [LATER]
        queue_id = self.enqueue("bob@b.test")
        self.advance_to(5 * DAY - 1)
        self.assertIn(queue_id, self.spool.items)
        self.advance_to(5 * DAY)
        self.assertNotIn(queue_id, self.spool.items)
        actions = [d.get_payload()[1].get_payload()[1]["Action"] for d in self.dsns()]
        self.assertEqual(actions, ["delayed", "failed"])
        bounce = self.dsns()[1]
        self.assertIn("expired", str(bounce.get_payload()[1].get_payload()[1]["Diagnostic-Code"]))

    def test_last_attempt_is_at_the_expiry_time(self):
        self.remote.script["bob@b.test"] = [LATER]
        self.enqueue("bob@b.test")
        self.advance_to(6 * DAY)
        self.assertEqual(self.remote.times_for("bob@b.test")[-1], self.start + 5 * DAY)

    # --- operator commands ---------------------------------------------------------

    def test_held_message_is_not_tried_until_released(self):
        self.remote.script["bob@b.test"] = [LATER, OK]
        queue_id = self.enqueue("bob@b.test")
        self.successResultOf(defer.Deferred.fromCoroutine(self.runner.hold(queue_id)))
        self.advance_to(HOUR)
        self.assertEqual(len(self.remote.calls), 1)
        self.successResultOf(defer.Deferred.fromCoroutine(self.runner.release(queue_id)))
        self.assertEqual(len(self.remote.calls), 2)
        self.assertNotIn(queue_id, self.spool.items)

    def test_flush_tries_now(self):
        self.remote.script["bob@b.test"] = [LATER, OK]
        queue_id = self.enqueue("bob@b.test")
        self.advance_to(10)
        self.assertEqual(self.runner.flush(), 1)
        self.assertEqual(self.remote.times_for("bob@b.test"), [self.start, self.start + 10])
        self.assertNotIn(queue_id, self.spool.items)

    def test_delete_removes_without_a_bounce(self):
        self.remote.script["bob@b.test"] = [LATER]
        queue_id = self.enqueue("bob@b.test")
        self.assertTrue(self.successResultOf(defer.Deferred.fromCoroutine(self.runner.delete(queue_id))))
        self.advance_to(6 * DAY)
        self.assertEqual(len(self.remote.calls), 1)
        self.assertEqual(self.dsns(), [])

    def test_failed_state_is_recorded_before_removal_for_partial_failure(self):
        self.remote.script["carol@b.test"] = [LATER]
        self.remote.script["dave@b.test"] = [NO_USER]
        queue_id = self.enqueue("bob@b.test", "carol@b.test", "dave@b.test")
        item = self.spool.items[queue_id]
        self.assertEqual([r.state for r in item.recipients], [DELIVERED, PENDING, FAILED])
        self.assertTrue(item.recipients[2].dsn_sent)

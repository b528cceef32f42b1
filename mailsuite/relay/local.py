"""The local delivery agent: recipients in our own domains go into their Maildir.

Used for bounces to local senders and for local recipients the SMTP receiver could not deliver
at once. Aliases are resolved here (``IAccounts.resolve``); alias targets outside our domains
are queued again as a new message with the same envelope sender.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer
from zope.interface import implementer

from mailsuite.errors import QuotaExceeded, TemporaryStoreError
from mailsuite.interfaces import SpoolEnvelope, SpoolRecipient
from mailsuite.relay.agent import DeliveryJob, IDeliveryAgent, Outcome


@implementer(IDeliveryAgent)
class LocalAgent:
    """Delivers through ``mailsuite.delivery.LocalDelivery`` (or any object with its ``deliver``)."""

    def __init__(self, delivery: Any, accounts: Any, spool: Any = None, maillog: Any = None) -> None:
        self.delivery = delivery
        self.accounts = accounts
        self.spool = spool
        self.maillog = maillog

    def deliver(self, job: DeliveryJob) -> defer.Deferred[dict[str, Outcome]]:
        return defer.Deferred.fromCoroutine(self._deliver(job))

    async def _deliver(self, job: DeliveryJob) -> dict[str, Outcome]:
        outcomes: dict[str, Outcome] = {}
        for r in job.recipients:
            outcome = await self._one(job, r.address)
            outcomes[r.address] = outcome
            if self.maillog is not None:
                self.maillog.log(
                    "local",
                    queue_id=job.item.id,
                    sender=job.item.sender,
                    rcpt=r.address,
                    result=outcome.result.value,
                    status=outcome.status,
                    reply=outcome.reply,
                )
        return outcomes

    async def _one(self, job: DeliveryJob, address: str) -> Outcome:
        try:
            resolution = self.accounts.resolve(address)
        except Exception as e:  # noqa: BLE001 - the accounts file may be mid-reload
            return Outcome.transient(f"451 4.3.0 cannot resolve {address}: {e}", "4.3.0")
        if resolution is None or not (resolution.local_users or resolution.remote_addresses):
            return Outcome.permanent(f"550 5.1.1 <{address}>: no such user here", "5.1.1")
        try:
            for user in resolution.local_users:
                await self.delivery.deliver(
                    user,
                    job.message,
                    return_path=job.item.sender,
                    delivered_to=address,
                    folder=resolution.folder,
                )
            if resolution.remote_addresses and self.spool is not None:
                envelope = SpoolEnvelope(
                    sender=job.item.sender,
                    recipients=tuple(SpoolRecipient(a) for a in resolution.remote_addresses),
                    smtputf8=job.item.smtputf8,
                    body_8bit=job.item.body_8bit,
                )
                await self.spool.enqueue(envelope, job.message)
        except QuotaExceeded as e:
            if e.permanent:
                return Outcome.permanent(f"552 5.2.2 <{address}>: mailbox full ({e})", "5.2.2")
            return Outcome.transient(f"452 4.2.2 <{address}>: mailbox full ({e})", "4.2.2")
        except TemporaryStoreError as e:
            return Outcome.transient(f"451 4.3.0 <{address}>: {e}", "4.3.0")
        except Exception as e:  # noqa: BLE001 - unknown store failures are retried, not lost
            return Outcome.transient(f"451 4.3.0 <{address}>: local delivery failed: {e!r}", "4.3.0")
        return Outcome.done(f"250 2.0.0 delivered to mailbox of <{address}>", action="delivered")

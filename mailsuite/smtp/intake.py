"""What happens to a message after DATA / BDAT LAST: trace headers, local delivery, the spool.

The reply is ``250`` only once every recipient is durable: delivered into its Maildir (fsynced
by the store) or handed to the outbound spool (fsynced by the relay). Local deliveries run in
parallel. A local delivery that fails temporarily goes to the spool for retries. When every
recipient fails permanently (quota that can never fit) the answer is 5xx; when something could
not be made durable, 451 so that the client tries again (some local copies may then arrive
twice, which SMTP's at-least-once delivery allows; losing mail it does not).
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import partial
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from mailsuite.delivery import LocalDelivery
from mailsuite.errors import QuotaExceeded, TemporaryStoreError
from mailsuite.interfaces import SpoolEnvelope, SpoolRecipient
from mailsuite.sender_auth import without_forged_results
from mailsuite.smtp import replies
from mailsuite.smtp.data import MessageBody
from mailsuite.smtp.headers import (
    DateCache,
    QueueIds,
    TraceInfo,
    completion_headers,
    received_header,
)
from mailsuite.smtp.replies import Reply
from mailsuite.smtp.session import Envelope, Recipient, Session


@dataclass(slots=True)
class _LocalTarget:
    user: str
    folder: str
    recipient: Recipient


class MessageIntake:
    """Turn an accepted transaction into durable copies; return the final reply."""

    log = Logger()

    def __init__(self, ctx: Any, hostname: str, delivery: LocalDelivery | None = None) -> None:
        self._ctx = ctx
        self._hostname = hostname
        self._delivery = delivery or LocalDelivery(ctx.store, ctx.accounts)
        self._dates = DateCache()
        self._queue_ids = QueueIds()

    async def accept(self, session: Session, envelope: Envelope, body: MessageBody) -> Reply:
        """Deliver / queue the message; see the module docstring."""
        ctx = self._ctx
        now = ctx.reactor.seconds()
        date = self._dates.format(now)
        queue_id = self._queue_ids.make(now)
        sender = envelope.sender or ""
        single = envelope.recipients[0].address if len(envelope.recipients) == 1 else None
        checker = getattr(ctx, "sender_auth", None)
        results, peer_name, original = None, None, None
        if session.role == "mx" and checker is not None and checker.applies_to(session.peer_ip):
            # Forged results claiming our name go before the checks see the message.
            original = without_forged_results(b"".join(body.chunks), checker.authserv_id)
            results, peer_name = await checker.check(
                original, session.peer_ip, sender, session.helo or "")
        trace = TraceInfo(
            helo=session.helo or "unknown",
            peer_ip=session.peer_ip,
            hostname=self._hostname,
            queue_id=queue_id,
            esmtp=session.esmtp,
            tls_version=session.tls_version,
            tls_cipher=session.tls_cipher,
            tls_bits=session.tls_bits,
            user=session.user,
            smtputf8=envelope.smtputf8,
            single_recipient=single,
            peer_name=peer_name,
        )
        prefix = received_header(trace, date)
        if session.user is not None:
            prefix += completion_headers(
                body.header_block(), hostname=self._hostname, queue_id=queue_id, date=date
            )
        if results is not None and original is not None:
            message = [results, prefix, original]
        else:
            message = [prefix, *body.chunks]
        if session.user is not None and getattr(ctx, "dkim", None) is not None:
            message = self._dkim_signed(message, now)
        size = body.size

        targets, remote = self._route(envelope)
        if sender:
            targets, remote = self._success_notices_through_the_queue(targets, remote)
        delivered, temporary, permanent = await self._deliver_locally(targets, message, sender)
        to_spool = list(remote)
        for target in temporary:
            to_spool.append(self._spool_recipient(target.user, target.recipient))
        if permanent and (delivered or to_spool):
            # Others got it: the relay retries these and bounces them with an RFC 3464 DSN.
            for target in permanent:
                to_spool.append(self._spool_recipient(target.user, target.recipient))
        elif permanent:
            self._log_rejected(session, envelope, queue_id, "permanent delivery failure")
            return replies.QUOTA_PERMANENT
        spool_id = None
        if to_spool:
            spool_id = await self._enqueue(session, envelope, to_spool, message)
            if spool_id is None:
                self._log_rejected(session, envelope, queue_id, "spool unavailable")
                return replies.QUEUE_UNAVAILABLE if ctx.spool is None else replies.TEMPORARY_FAILURE
        shown_id = spool_id or queue_id
        # Logged once the 250 is on its way: the client need not wait for the log line.
        session.after_reply.append(partial(
            ctx.maillog.log,
            "accepted",
            id=shown_id,
            client=session.peer_ip,
            user=session.user,
            sender=sender,
            recipients=[r.address for r in envelope.recipients],
            size=size,
            delivered=len(delivered),
            queued=len(to_spool),
        ))
        session.messages += 1
        return replies.QUEUED.with_text(f"Ok: queued as {shown_id}")

    def _dkim_signed(self, message: list[bytes], now: float) -> list[bytes]:
        """``message`` with a DKIM-Signature on top when its From is in one of our domains.

        Signing failures are logged and the message goes out unsigned: a missing signature
        costs some reputation, a refused submission costs the user their mail."""
        signer = self._ctx.dkim
        whole = b"".join(message)
        domain = signer.signing_domain(whole, self._ctx.accounts.local_domains())
        if domain is None:
            return message
        try:
            return [signer.sign(whole, domain, int(now)), whole]
        except Exception:  # noqa: BLE001 - see the docstring
            self.log.failure("DKIM signing for {domain} failed", domain=domain)
            return message

    def _route(self, envelope: Envelope) -> tuple[list[_LocalTarget], list[SpoolRecipient]]:
        """Local mailboxes (once each) and remote addresses for the spool."""
        targets: dict[tuple[str, str], _LocalTarget] = {}
        remote: list[SpoolRecipient] = []
        seen_remote: set[str] = set()
        for rcpt in envelope.recipients:
            resolution = rcpt.resolution
            if resolution is None:
                if rcpt.address not in seen_remote:
                    seen_remote.add(rcpt.address)
                    remote.append(SpoolRecipient(rcpt.address, rcpt.notify, rcpt.orcpt))
                continue
            for user in resolution.local_users:
                key = (user, resolution.folder)
                if key not in targets:
                    targets[key] = _LocalTarget(user, resolution.folder, rcpt)
            for address in resolution.remote_addresses:
                if address not in seen_remote:
                    seen_remote.add(address)
                    remote.append(self._spool_recipient(address, rcpt))
        return list(targets.values()), remote

    def _success_notices_through_the_queue(
        self, targets: list[_LocalTarget], remote: list[SpoolRecipient]
    ) -> tuple[list[_LocalTarget], list[SpoolRecipient]]:
        """Local recipients with NOTIFY=SUCCESS are delivered by the relay, which sends the
        RFC 3464 "delivered" notice after the copy is in the mailbox (as Postfix's local agent
        does); the others are delivered here at once."""
        direct, queued = [], list(remote)
        for target in targets:
            if any(n.upper() == "SUCCESS" for n in target.recipient.notify):
                queued.append(self._spool_recipient(target.user, target.recipient))
            else:
                direct.append(target)
        return direct, queued

    @staticmethod
    def _spool_recipient(address: str, rcpt: Recipient) -> SpoolRecipient:
        # ORCPT (RFC 3461 4.2) keeps the address the client gave when we rewrote it.
        orcpt = rcpt.orcpt
        if orcpt is None and address != rcpt.address:
            orcpt = f"rfc822;{rcpt.address}"
        return SpoolRecipient(address, rcpt.notify, orcpt)

    async def _deliver_locally(
        self, targets: list[_LocalTarget], message: list[bytes], sender: str
    ) -> tuple[list[_LocalTarget], list[_LocalTarget], list[_LocalTarget]]:
        """Deliver in parallel; return (delivered, failed temporarily, failed permanently)."""
        if not targets:
            return [], [], []
        attempts = [
            self._delivery.deliver(
                t.user, message, return_path=sender, delivered_to=t.user, folder=t.folder
            )
            for t in targets
        ]
        if len(attempts) == 1:  # the common case, without a DeferredList around it
            try:
                await attempts[0]
            except Exception:  # noqa: BLE001 - sorted below
                results: list[tuple[bool, Any]] = [(False, Failure())]
            else:
                results = [(True, None)]
        else:
            results = await defer.DeferredList(attempts, consumeErrors=True)
        delivered, temporary, permanent = [], [], []
        for target, (ok, value) in zip(targets, results):
            if ok:
                delivered.append(target)
                continue
            error = value.value
            if isinstance(error, QuotaExceeded) and error.permanent:
                permanent.append(target)
            else:
                if isinstance(error, (QuotaExceeded, TemporaryStoreError)):
                    self.log.warn(
                        "local delivery to {user} deferred: {error}", user=target.user, error=error
                    )
                else:
                    self.log.failure(
                        "local delivery to {user} failed", failure=value, user=target.user
                    )
                temporary.append(target)
        return delivered, temporary, permanent

    async def _enqueue(
        self,
        session: Session,
        envelope: Envelope,
        recipients: list[SpoolRecipient],
        message: list[bytes],
    ) -> str | None:
        spool = self._ctx.spool
        if spool is None:
            return None
        spool_envelope = SpoolEnvelope(
            sender=envelope.sender or "",
            recipients=tuple(recipients),
            ret=envelope.ret,
            envid=envelope.envid,
            smtputf8=envelope.smtputf8,
            body_8bit=envelope.body_8bit,
            authenticated_user=session.user,
        )
        try:
            return str(await defer.maybeDeferred(spool.enqueue, spool_envelope, message))
        except Exception:  # noqa: BLE001 (any spool failure means 451, never a lost message)
            self.log.failure("spool enqueue failed")
            return None

    def _log_rejected(self, session: Session, envelope: Envelope, queue_id: str, why: str) -> None:
        self._ctx.maillog.log(
            "rejected",
            id=queue_id,
            client=session.peer_ip,
            sender=envelope.sender or "",
            recipients=[r.address for r in envelope.recipients],
            reason=why,
        )

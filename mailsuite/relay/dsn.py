"""Delivery status notifications (RFC 3464) and the RFC 3461 rules for when to send them.

A DSN is a ``multipart/report; report-type=delivery-status`` message with three parts: a human
readable explanation, the ``message/delivery-status`` block (one per-message group, then one group
per recipient), and the original message (``message/rfc822``, RET=FULL) or only its header
(``text/rfc822-headers``, RET=HDRS or when the message is large).
"""

from __future__ import annotations

import email.utils
import secrets
from collections.abc import Iterable
from dataclasses import dataclass

from mailsuite.relay.spool import QueueItem, RecipientState

# Kinds of report (RFC 3464 2.3.3 Action field).
FAILED = "failed"
DELAYED = "delayed"
DELIVERED = "delivered"
RELAYED = "relayed"

# Like Postfix's bounce_size_limit: larger originals are returned as headers only.
RETURN_SIZE_LIMIT = 50_000


def wants_notice(recipient: RecipientState, action: str) -> bool:
    """RFC 3461 4.1: whether the NOTIFY parameter asks for a DSN of this kind.

    Without NOTIFY the MTA behaves as for ``FAILURE,DELAY`` (a failure and a delay notice,
    never a success report).
    """
    notify = {n.upper() for n in recipient.notify}
    if "NEVER" in notify:
        return False
    if not notify:
        return action in (FAILED, DELAYED)
    wanted = {FAILED: "FAILURE", DELAYED: "DELAY", DELIVERED: "SUCCESS", RELAYED: "SUCCESS"}
    return wanted[action] in notify


@dataclass(frozen=True)
class Report:
    """One DSN to build: what happened to which recipients of which message."""

    action: str
    item: QueueItem
    recipients: tuple[RecipientState, ...]


def _status_for(action: str, recipient: RecipientState) -> str:
    if recipient.status:
        return recipient.status
    return {FAILED: "5.0.0", DELAYED: "4.0.0", DELIVERED: "2.0.0", RELAYED: "2.0.0"}[action]


def _diagnostic(recipient: RecipientState) -> str | None:
    reply = " ".join(recipient.reply.split())
    if not reply:
        return None
    if reply[:3].isdigit() and recipient.remote_mta:
        return "smtp; " + reply
    return "X-mailsuite; " + reply


def _subject(action: str) -> str:
    return {
        FAILED: "Undelivered Mail Returned to Sender",
        DELAYED: "Delayed Mail (still being retried)",
        DELIVERED: "Successful Mail Delivery Report",
        RELAYED: "Successful Mail Delivery Report",
    }[action]


def _human_text(report: Report, hostname: str, bounce_after: float) -> str:
    lines = [f"This is the mail system at host {hostname}.", ""]
    if report.action == FAILED:
        lines += [
            "I'm sorry to have to inform you that your message could not",
            "be delivered to one or more recipients. It's attached below.",
        ]
    elif report.action == DELAYED:
        days = bounce_after / 86400
        lines += [
            "Your message could not be delivered yet to one or more recipients.",
            f"It will be retried until it is {days:g} days old.",
            "You do not need to send the message again.",
        ]
    else:
        lines += ["Your message was successfully delivered to the recipients below."]
    lines.append("")
    for r in report.recipients:
        reply = " ".join(r.reply.split())
        via = f" (host {r.remote_mta} said: {reply})" if r.remote_mta and reply else (
            f" ({reply})" if reply else ""
        )
        lines.append(f"<{r.address}>:{via}")
    return "\r\n".join(lines) + "\r\n"


def _header_block(raw: bytes) -> bytes:
    end = raw.find(b"\r\n\r\n")
    if end < 0:
        end_lf = raw.find(b"\n\n")
        return raw if end_lf < 0 else raw[: end_lf + 1]
    return raw[: end + 2]


def _fold_crlf(data: bytes) -> bytes:
    return data.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")


def build_report(
    report: Report,
    original: bytes,
    *,
    hostname: str,
    now: float,
    bounce_after: float = 5 * 86400.0,
) -> bytes:
    """The full DSN message (RFC 3464) as CRLF-terminated bytes."""
    item = report.item
    boundary = f"{secrets.token_hex(8)}/{hostname}"
    # RFC 6533 6: internationalized messages get the "global" report and returned types.
    utf8 = (
        item.smtputf8
        or not _header_block(original).isascii()
        or not all(r.address.isascii() for r in report.recipients)
    )
    report_type = "global-delivery-status" if utf8 else "delivery-status"
    date = email.utils.formatdate(now, localtime=False)
    arrival = email.utils.formatdate(item.created, localtime=False)
    message_id = f"<{secrets.token_hex(10)}@{hostname}>"
    heads = [
        f"From: Mail Delivery System <MAILER-DAEMON@{hostname}>",
        f"To: <{item.sender}>",
        f"Subject: {_subject(report.action)}",
        f"Date: {date}",
        f"Message-ID: {message_id}",
        "Auto-Submitted: auto-replied",  # RFC 3834 5
        "MIME-Version: 1.0",
        f'Content-Type: multipart/report; report-type={report_type};\r\n\tboundary="{boundary}"',
        "Content-Transfer-Encoding: 8bit",
    ]
    status = [f"Reporting-MTA: dns; {hostname}"]
    if item.envid:
        status.append(f"Original-Envelope-Id: {item.envid}")
    status.append(f"Arrival-Date: {arrival}")
    groups = ["\r\n".join(status)]
    for r in report.recipients:
        fields = []
        if r.orcpt:
            fields.append(f"Original-Recipient: {r.orcpt if ';' in r.orcpt else 'rfc822; ' + r.orcpt}")
        address_type = "rfc822" if r.address.isascii() else "utf-8"  # RFC 6533 3
        fields.append(f"Final-Recipient: {address_type}; {r.address}")
        fields.append(f"Action: {report.action}")
        fields.append(f"Status: {_status_for(report.action, r)}")
        if r.remote_mta:
            fields.append(f"Remote-MTA: dns; {r.remote_mta}")
        diagnostic = _diagnostic(r)
        if diagnostic and report.action in (FAILED, DELAYED):
            fields.append(f"Diagnostic-Code: {diagnostic}")
        if r.last_attempt:
            fields.append(f"Last-Attempt-Date: {email.utils.formatdate(r.last_attempt)}")
        if report.action == DELAYED:
            expiry = email.utils.formatdate(item.created + bounce_after)
            fields.append(f"Will-Retry-Until: {expiry}")
        groups.append("\r\n".join(fields))
    full = (item.ret or "FULL").upper() == "FULL" and report.action == FAILED
    if full and len(original) > RETURN_SIZE_LIMIT:
        full = False
    status_type = "message/global-delivery-status" if utf8 else "message/delivery-status"
    if full:
        returned_type = "message/global" if utf8 else "message/rfc822"
        returned = _fold_crlf(original)
    else:
        returned_type = "message/global-headers" if utf8 else "text/rfc822-headers"
        returned = _fold_crlf(_header_block(original))
    if not returned.endswith(b"\r\n"):
        returned += b"\r\n"
    human = _human_text(report, hostname, bounce_after)
    body = b"".join(
        [
            ("\r\n".join(heads) + "\r\n\r\n").encode(),
            b"This is a MIME-encapsulated message.\r\n\r\n",
            f"--{boundary}\r\nContent-Description: Notification\r\n"
            f"Content-Type: text/plain; charset=utf-8\r\n\r\n{human}\r\n".encode(),
            f"--{boundary}\r\nContent-Description: Delivery report\r\n"
            f"Content-Type: {status_type}\r\n\r\n".encode(),
            ("\r\n\r\n".join(groups) + "\r\n\r\n").encode(),
            f"--{boundary}\r\nContent-Description: Undelivered message\r\n"
            f"Content-Type: {returned_type}\r\n\r\n".encode(),
            returned,
            f"\r\n--{boundary}--\r\n".encode(),
        ]
    )
    return body


def reports_due(item: QueueItem, action: str, recipients: Iterable[RecipientState]) -> Report | None:
    """The report to send for ``recipients`` of ``item``, or None.

    RFC 3461 6.2 / RFC 5321 6.1: a message with a null reverse-path never causes a DSN, and
    neither does a DSN.
    """
    if not item.sender or item.is_dsn:
        return None
    chosen = tuple(r for r in recipients if wants_notice(r, action))
    return Report(action, item, chosen) if chosen else None

"""The mail transaction verbs of the server protocol: MAIL, RCPT, DATA and BDAT.

A mixin of :class:`mailsuite.smtp.protocol.SMTPServerProtocol`. Parsing is in
:mod:`mailsuite.smtp.paths`, acceptance decisions in :mod:`mailsuite.policy`, content checks in
:mod:`mailsuite.smtp.data`, and what happens after the final dot in :mod:`mailsuite.smtp.intake`.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from mailsuite import policy
from mailsuite.policy import RecipientVerdict
from mailsuite.smtp import replies
from mailsuite.smtp.data import DotReader, MessageBody
from mailsuite.smtp.paths import (
    PathError,
    parse_mail_dsn,
    parse_mail_from,
    parse_rcpt_dsn,
    parse_rcpt_to,
)
from mailsuite.smtp.replies import NO_REPLY, Reply
from mailsuite.smtp.session import Envelope, Recipient

COMMAND, DATA, BDAT = "command", "data", "bdat"  # what the input loop is reading
_MAIL_PARAMS = frozenset({"SIZE", "BODY", "SMTPUTF8", "RET", "ENVID", "AUTH"})
_RCPT_PARAMS = frozenset({"NOTIFY", "ORCPT"})


class MailCommands:
    """MAIL, RCPT, DATA, BDAT and the end of a message."""

    server: Any
    settings: Any
    session: Any
    envelope: Envelope
    _mode: str
    _buffer: bytes
    _body: MessageBody | None
    _dot_reader: DotReader | None
    _bdat_remaining: int
    _bdat_last: bool
    _bdat_refusal: Reply | None

    def _wait_for(self, result: defer.Deferred[Reply]) -> None:
        raise NotImplementedError

    def _answer(self, reply: Reply) -> None:
        raise NotImplementedError

    def _send(self, reply: Reply) -> None:
        raise NotImplementedError

    def _reset_transaction(self) -> None:
        raise NotImplementedError

    def _record_tls(self) -> None:
        raise NotImplementedError

    def _refuse(self, stage: str, reply: Reply, **fields: Any) -> Reply:
        self.server.ctx.maillog.log(
            "rejected",
            stage=stage,
            client=self.session.peer_ip,
            code=f"{reply.code} {reply.enhanced}",
            reason=reply.text,
            **fields,
        )
        return reply

    def do_MAIL(self, argument: str) -> Reply:
        """RFC 5321 4.1.1.2 with SIZE, BODY, SMTPUTF8, RET/ENVID and AUTH= parameters."""
        session = self.session
        if session.helo is None:
            return replies.NEED_HELO
        if self.envelope.has_sender:
            return replies.NESTED_MAIL
        if session.requires_auth and not session.tls:
            return replies.ENCRYPTION_REQUIRED
        if session.requires_auth and session.user is None:
            return replies.AUTH_REQUIRED
        if argument[:5].upper() != "FROM:":
            return replies.SYNTAX_ERROR.with_text("Syntax: MAIL FROM:<address>")
        try:
            parsed = parse_mail_from(argument[5:], utf8_allowed=session.esmtp)
            dsn = parse_mail_dsn(parsed.params)
        except PathError as e:
            return self._refuse("MAIL", e.reply)
        params = parsed.params
        if params and (not session.esmtp or not params.keys() <= _MAIL_PARAMS):
            return replies.PARAM_NOT_SUPPORTED
        envelope = Envelope()
        if "SIZE" in params:
            value = params["SIZE"] or ""
            if not value.isdigit() or len(value) > 20:
                return replies.SYNTAX_ERROR.with_text("Bad SIZE parameter (RFC 1870)")
            if int(value) > self.settings.max_message_size:
                return self._refuse("MAIL", replies.MESSAGE_TOO_BIG)
            if not self.server.memory.fits(int(value)):  # RFC 1870 6.2: 452 at MAIL
                return self._refuse("MAIL", replies.INSUFFICIENT_STORAGE)
            envelope.declared_size = int(value)
        if "BODY" in params:
            body = (params["BODY"] or "").upper()
            if body not in ("7BIT", "8BITMIME"):
                return replies.PARAM_NOT_SUPPORTED.with_text("Unsupported BODY type")
            envelope.body_8bit = body == "8BITMIME"
        if "SMTPUTF8" in params:
            if params["SMTPUTF8"] is not None:
                return replies.SYNTAX_ERROR.with_text("SMTPUTF8 takes no value")
            envelope.smtputf8 = True
        envelope.ret, envelope.envid = dsn.ret, dsn.envid
        sender = parsed.mailbox
        if not policy.sender_allowed(
            self.server.ctx.accounts, sender, authenticated_user=session.user
        ):
            address = sender.address if sender is not None else ""
            return self._refuse("MAIL", replies.SENDER_NOT_OWNED, sender=address)
        envelope.sender = sender.address if sender is not None else ""
        self.envelope = envelope
        return replies.SENDER_OK

    def do_RCPT(self, argument: str) -> Reply:
        """RFC 5321 4.1.1.3 with NOTIFY / ORCPT (RFC 3461); policy decides acceptance."""
        envelope = self.envelope
        if not envelope.has_sender:
            return replies.NEED_MAIL
        if argument[:3].upper() != "TO:":
            return replies.SYNTAX_ERROR.with_text("Syntax: RCPT TO:<address>")
        if len(envelope.recipients) >= self.settings.max_recipients:
            return replies.TOO_MANY_RECIPIENTS
        try:
            parsed = parse_rcpt_to(argument[3:], utf8=envelope.smtputf8)
            dsn = parse_rcpt_dsn(parsed.params)
        except PathError as e:
            return self._refuse("RCPT", e.reply, sender=envelope.sender)
        if parsed.params and not parsed.params.keys() <= _RCPT_PARAMS:
            return replies.PARAM_NOT_SUPPORTED
        mailbox = parsed.mailbox
        assert mailbox is not None
        decision = policy.check_recipient(
            self.server.ctx.accounts, mailbox, authenticated_user=self.session.user
        )
        verdict = decision.verdict
        if verdict is RecipientVerdict.RELAY_DENIED:
            return self._refuse(
                "RCPT",
                replies.RELAY_DENIED,
                sender=envelope.sender,
                recipient=mailbox.address,
                why=decision.reason,
            )
        if verdict is RecipientVerdict.UNKNOWN_USER:
            return self._refuse(
                "RCPT", replies.NO_SUCH_USER, sender=envelope.sender, recipient=mailbox.address
            )
        if verdict is RecipientVerdict.REMOTE and self.server.ctx.spool is None:
            return replies.QUEUE_UNAVAILABLE
        envelope.recipients.append(
            Recipient(mailbox, decision.address, decision.resolution, dsn.notify, dsn.orcpt)
        )
        return replies.RECIPIENT_OK

    def _ready_for_content(self) -> Reply | None:
        if not self.envelope.has_sender:
            return replies.NEED_MAIL
        if not self.envelope.recipients:
            return replies.NO_VALID_RECIPIENTS
        return None

    def _new_body(self) -> MessageBody:
        s = self.settings
        return MessageBody(s.max_message_size, s.max_line_length, s.max_received_headers,
                           self.server.memory)

    def do_DATA(self, argument: str) -> Reply:
        """RFC 5321 4.1.1.4."""
        if argument.strip():
            return replies.SYNTAX_ERROR
        refusal = self._ready_for_content()
        if refusal is not None:
            return refusal
        if self._body is not None:
            return replies.BAD_SEQUENCE.with_text("DATA after BDAT")
        self._body = self._new_body()
        self._dot_reader = DotReader(self._body)
        self._mode = DATA
        return replies.START_DATA

    def _data_input(self) -> None:
        reader = self._dot_reader
        assert reader is not None
        buf, self._buffer = self._buffer, b""
        leftover = reader.feed(buf)
        if leftover is None:
            return
        self._buffer = leftover
        self._mode = COMMAND
        self._end_of_message()

    def do_BDAT(self, argument: str) -> Reply:
        """RFC 3030 3: ``BDAT size [LAST]``; the chunk is read even when refused."""
        parts = argument.split()
        if not parts or len(parts) > 2 or not parts[0].isdigit() or len(parts[0]) > 18:
            return replies.SYNTAX_ERROR.with_text("Syntax: BDAT size [LAST]")
        if len(parts) == 2 and parts[1].upper() != "LAST":
            return replies.SYNTAX_ERROR.with_text("Syntax: BDAT size [LAST]")
        self._bdat_remaining = int(parts[0])
        self._bdat_last = len(parts) == 2
        self._bdat_refusal = self._ready_for_content()
        if self._bdat_refusal is None and self._dot_reader is not None:
            self._bdat_refusal = replies.BAD_SEQUENCE
        if self._bdat_refusal is None and self._body is None:
            self._body = self._new_body()
        self._mode = BDAT
        if self._bdat_remaining == 0:
            self._bdat_chunk_done()
        return NO_REPLY

    def _bdat_input(self) -> None:
        buf = self._buffer
        take = min(self._bdat_remaining, len(buf))
        chunk = buf[:take] if take < len(buf) else buf
        self._buffer = buf[take:] if take < len(buf) else b""
        self._bdat_remaining -= take
        if self._bdat_refusal is None and self._body is not None:
            self._body.add(chunk)
        if self._bdat_remaining == 0:
            self._bdat_chunk_done()

    def _bdat_chunk_done(self) -> None:
        self._mode = COMMAND
        if self._bdat_refusal is not None:
            refusal, self._bdat_refusal = self._bdat_refusal, None
            self._answer(refusal)
            return
        body = self._body
        assert body is not None
        if body.oversize or body.out_of_memory:
            # RFC 3030 3: a failed chunk fails the transaction.
            self._reset_transaction()
            refusal = replies.MESSAGE_TOO_BIG if body.oversize else replies.INSUFFICIENT_STORAGE
            self._answer(self._refuse("BDAT", refusal))
            return
        if not self._bdat_last:
            self._send(replies.CHUNK_OK.with_text(f"Ok: {body.size} octets received"))
            return
        self._end_of_message()

    def _end_of_message(self) -> None:
        body = self._body
        envelope = self.envelope
        assert body is not None
        self._reset_transaction()
        refusal = body.finish()
        if refusal is not None:
            self._send(
                self._refuse(
                    "DATA",
                    refusal,
                    sender=envelope.sender,
                    recipients=[r.address for r in envelope.recipients],
                    size=body.size,
                )
            )
            return
        self._record_tls()
        self._wait_for(
            defer.Deferred.fromCoroutine(self.server.intake.accept(self.session, envelope, body))
        )

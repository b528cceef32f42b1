"""SMTP AUTH verbs (RFC 4954) of the server protocol: PLAIN and LOGIN, under TLS, submission only.

A mixin of :class:`mailsuite.smtp.protocol.SMTPServerProtocol`; the SASL state machine and the
credential check live in :mod:`mailsuite.smtp.auth`.
"""

from __future__ import annotations

from typing import Any

from twisted.internet import defer

from mailsuite.smtp import replies
from mailsuite.smtp.auth import Credentials, SaslError, SaslExchange
from mailsuite.smtp.replies import Reply


class AuthCommands:
    """AUTH and its continuation lines."""

    server: Any
    session: Any
    envelope: Any
    _sasl: SaslExchange | None

    def _wait_for(self, result: defer.Deferred[Reply]) -> None:
        raise NotImplementedError

    def _answer(self, reply: Reply) -> None:
        raise NotImplementedError

    def do_AUTH(self, argument: str) -> Reply | defer.Deferred[Reply]:
        if not self.session.requires_auth:
            return replies.AUTH_NOT_ENABLED
        if not self.session.tls:
            return replies.ENCRYPTION_REQUIRED
        if self.session.helo is None or not self.session.esmtp:
            return replies.NEED_HELO
        if self.session.user is not None:
            return replies.ALREADY_AUTHENTICATED
        if self.envelope.has_sender:
            return replies.AUTH_IN_TRANSACTION
        if self.server.authenticator.is_blocked(self.session.peer_ip):
            self._log_auth(None, "blocked")
            return replies.AUTH_THROTTLED
        mechanism, _, initial = argument.strip().partition(" ")
        try:
            exchange = SaslExchange(mechanism.upper())
            step = exchange.start(initial.strip() or None)
        except SaslError as e:
            return self._auth_error(e)
        return self._auth_step(exchange, step)

    def _auth_continue(self, line: bytes) -> None:
        exchange = self._sasl
        assert exchange is not None
        self._sasl = None
        try:
            step = exchange.respond(line.decode("ascii", "replace"))
        except SaslError as e:
            result = self._auth_error(e)
        else:
            result = self._auth_step(exchange, step)
        if isinstance(result, defer.Deferred):
            self._wait_for(result)
        else:
            self._answer(result)

    def _auth_step(
        self, exchange: SaslExchange, step: Reply | Credentials
    ) -> Reply | defer.Deferred[Reply]:
        if isinstance(step, Reply):
            self._sasl = exchange
            return step
        return defer.Deferred.fromCoroutine(self._verify(step))

    def _auth_error(self, error: SaslError) -> Reply | defer.Deferred[Reply]:
        if not error.is_failure:
            return error.reply
        self._log_auth(None, "bad response")
        return defer.Deferred.fromCoroutine(self._delayed_failure(error.reply))

    async def _delayed_failure(self, reply: Reply) -> Reply:
        await self.server.authenticator.failed(self.session.peer_ip)
        return reply

    async def _verify(self, credentials: Credentials) -> Reply:
        user = await self.server.authenticator.authenticate(self.session.peer_ip, credentials)
        if user is None:
            self._log_auth(credentials.username, "failed")
            return replies.AUTH_FAILED
        self.session.user = user
        self._log_auth(user, "ok")
        return replies.AUTH_OK

    def _log_auth(self, user: str | None, result: str) -> None:
        self.server.ctx.maillog.log(
            "auth", service="smtp", client=self.session.peer_ip, user=user, result=result
        )

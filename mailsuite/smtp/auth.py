"""SMTP AUTH (RFC 4954) with the PLAIN (RFC 4616) and LOGIN mechanisms.

:class:`SaslExchange` is the pure client-line state machine of one exchange; :class:`Authenticator`
checks the credentials through the cred portal, applies the shared per-address throttle and
delays every failure (bad base64 included) so that guessing costs time.
"""

from __future__ import annotations

import base64
import binascii
from dataclasses import dataclass, field
from typing import Any

from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import LoginFailed, UnauthorizedLogin
from twisted.internet import task
from twisted.logger import Logger

from mailsuite.interfaces import IAccountStore
from mailsuite.smtp import replies
from mailsuite.smtp.replies import Reply

MECHANISMS = ("PLAIN", "LOGIN")
MAX_AUTH_LINE = 12288  # RFC 4954 4: the server must accept lines of at least this length
_USERNAME_CHALLENGE = Reply(334, None, base64.b64encode(b"Username:").decode())
_PASSWORD_CHALLENGE = Reply(334, None, base64.b64encode(b"Password:").decode())
_EMPTY_CHALLENGE = Reply(334, None, "")


@dataclass(frozen=True, slots=True)
class Credentials:
    """What the client sent. ``repr`` hides the password so it can never reach a log."""

    username: str
    password: str = field(repr=False)
    authzid: str = ""


class SaslError(Exception):
    """The exchange failed; ``reply`` is the answer and ``is_failure`` says whether it counts
    as a failed login (bad credentials or bad base64) rather than a cancellation."""

    def __init__(self, reply: Reply, is_failure: bool = True) -> None:
        super().__init__(reply.text)
        self.reply = reply
        self.is_failure = is_failure


def _decode(text: str) -> bytes:
    """Strict base64 (RFC 4954 4: '=' alone is an empty initial response)."""
    if text == "=":
        return b""
    try:
        return base64.b64decode(text.encode("ascii"), validate=True)
    except (binascii.Error, ValueError, UnicodeEncodeError):
        raise SaslError(replies.AUTH_BAD_BASE64) from None


def _text(raw: bytes) -> str:
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError:
        raise SaslError(replies.AUTH_FAILED) from None


class SaslExchange:
    """One PLAIN or LOGIN exchange: ``start`` then ``respond`` per client line.

    Each call returns a 334 challenge :class:`Reply` or the final :class:`Credentials`, or raises
    :class:`SaslError`. A line ``*`` cancels (RFC 4954 4: 501).
    """

    def __init__(self, mechanism: str) -> None:
        if mechanism not in MECHANISMS:
            raise SaslError(replies.UNKNOWN_AUTH_MECHANISM, is_failure=False)
        self.mechanism = mechanism
        self._username: str | None = None

    def start(self, initial: str | None) -> Reply | Credentials:
        """The AUTH command itself, with its optional initial response."""
        if self.mechanism == "PLAIN":
            if initial is None:
                return _EMPTY_CHALLENGE
            return self._plain(initial)
        if initial is None:
            return _USERNAME_CHALLENGE
        return self.respond(initial)

    def respond(self, line: str) -> Reply | Credentials:
        """One client line of the exchange."""
        if line == "*":
            raise SaslError(replies.AUTH_CANCELLED, is_failure=False)
        if self.mechanism == "PLAIN":
            return self._plain(line)
        if self._username is None:
            self._username = _text(_decode(line))
            return _PASSWORD_CHALLENGE
        return Credentials(self._username, _text(_decode(line)))

    def _plain(self, line: str) -> Credentials:
        # RFC 4616 2: [authzid] NUL authcid NUL passwd
        parts = _decode(line).split(b"\x00")
        if len(parts) != 3 or not parts[1]:
            raise SaslError(replies.AUTH_FAILED)
        authzid, authcid, passwd = (_text(p) for p in parts)
        return Credentials(authcid, passwd, authzid)


class Authenticator:
    """Verify credentials through the portal with throttling and a delay on every failure.

    ``throttle`` is the shared ``mailsuite.auth.LoginThrottle`` (``is_blocked``, ``delay_for``,
    ``record_failure``, ``record_success``); ``clock`` provides ``callLater``.
    """

    log = Logger()

    def __init__(self, portal: Any, throttle: Any, clock: Any, failure_delay: float = 1.0) -> None:
        self._portal = portal
        self._throttle = throttle
        self._clock = clock
        self.failure_delay = failure_delay

    def is_blocked(self, ip: str) -> bool:
        """True while this address must not even try."""
        return bool(self._throttle is not None and self._throttle.is_blocked(ip))

    async def failed(self, ip: str) -> None:
        """Record a failure for ``ip`` and wait before the 535 leaves."""
        delay = self.failure_delay
        if self._throttle is not None:
            self._throttle.record_failure(ip)
            delay = max(delay, float(self._throttle.delay_for(ip)))
        await task.deferLater(self._clock, delay, lambda: None)

    async def authenticate(self, ip: str, credentials: Credentials) -> str | None:
        """The canonical user, or None after the failure delay."""
        if credentials.authzid and credentials.authzid.lower() != credentials.username.lower():
            # We do not let one user act for another (RFC 4616 2: authzid).
            await self.failed(ip)
            return None
        try:
            _iface, avatar, logout = await self._portal.login(  # type: ignore[attr-defined]
                UsernamePassword(
                    credentials.username.encode("utf-8"), credentials.password.encode("utf-8")
                ),
                None,
                IAccountStore,
            )
        except (UnauthorizedLogin, LoginFailed):
            await self.failed(ip)
            return None
        user = str(avatar.user)
        if logout is not None:
            logout()
        if self._throttle is not None:
            self._throttle.record_success(ip)
        return user

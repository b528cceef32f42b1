"""AUTHORIZATION-state commands: CAPA (RFC 2449), STLS (RFC 2595), USER/PASS and APOP
(RFC 1939 section 7), AUTH PLAIN (RFC 5034, RFC 4616), with throttled failures (RFC 3206 codes).

APOP is not offered: it needs the plaintext secret on the server, and mailsuite stores only
memory-hard password hashes, so the greeting carries no timestamp and APOP is refused.

Combined with the TRANSACTION commands in :class:`mailsuite.pop3.protocol.Pop3Protocol`.
"""

from __future__ import annotations

import base64
import binascii

from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import LoginFailed, UnauthorizedLogin
from twisted.internet import task

from mailsuite.interfaces import IAccountStore
from mailsuite.pop3 import replies as R
from mailsuite.pop3.connection import Pop3Connection
from mailsuite.pop3.maildrop import Maildrop
from mailsuite.pop3.states import State

IMPLEMENTATION = "mailsuite"


def parse_plain(data: bytes) -> tuple[str, str] | None:
    """RFC 4616 PLAIN message ``authzid NUL authcid NUL passwd`` -> (user, password).

    An authorization identity different from the authentication identity (proxy login) is
    refused (None), as is a message that is not three UTF-8 fields.
    """
    parts = data.split(b"\0")
    if len(parts) != 3:
        return None
    try:
        authzid, authcid, passwd = (p.decode("utf-8") for p in parts)
    except UnicodeDecodeError:
        return None
    if not authcid or (authzid and authzid.lower() != authcid.lower()):
        return None
    return authcid, passwd


class AuthorizationCommands(Pop3Connection):
    """CAPA, STLS, USER, PASS, APOP and AUTH for :class:`Pop3Protocol`."""

    def _plaintext_allowed(self) -> bool:
        return self.secure or self.settings.allow_plaintext_auth

    def _tls_available(self) -> bool:
        return getattr(self.ctx, "tls", None) is not None and hasattr(self.transport, "startTLS")

    def do_CAPA(self, arg: str) -> None:
        """RFC 2449 section 5."""
        caps = ["TOP", "UIDL", "RESP-CODES", "AUTH-RESP-CODE", "PIPELINING"]
        if self.state is State.AUTHORIZATION:
            if self._plaintext_allowed():
                caps += ["USER", "SASL PLAIN"]
            if not self.secure and self._tls_available():
                caps.append("STLS")
        if self.settings.expire:
            caps.append(f"EXPIRE {self.settings.expire}")
        if self.settings.login_delay > 0:
            caps.append(f"LOGIN-DELAY {self.settings.login_delay}")
        caps.append(f"IMPLEMENTATION {IMPLEMENTATION}")
        body = "".join(c + "\r\n" for c in caps).encode("ascii")
        self._write(R.CAPA_FOLLOWS.to_bytes() + body + b".\r\n")

    def do_STLS(self, arg: str) -> None:
        """RFC 2595 section 4."""
        if self.secure:
            self._bad_command(R.STLS_ALREADY)
            return
        if not self._tls_available():
            self._bad_command(R.STLS_UNAVAILABLE)
            return
        self.send(R.STLS_BEGIN)
        # RFC 2595 / RFC 3207 lesson: anything pipelined after STLS was sent in clear text and
        # must not be executed after the handshake.
        self._queue.clear()
        self._buffer = b""
        self._discarding = False
        self.transport.startTLS(self.ctx.tls.server_options())
        self._tls_started = True

    def do_USER(self, arg: str) -> None:
        """RFC 1939 section 7."""
        if not self._plaintext_allowed():
            self._bad_command(R.PLAINTEXT_DISALLOWED)
            return
        user = arg.strip()
        if not user or " " in user:
            self._bad_command(R.INVALID_ARGUMENTS)
            return
        self._pending_user = user
        self.send(R.USER_OK)

    def do_PASS(self, arg: str) -> None:
        """RFC 1939 section 7: the password is the rest of the line (it may hold spaces)."""
        user, self._pending_user = self._pending_user, None
        if user is None:
            self._bad_command(R.PASS_WITHOUT_USER)
            return
        self._start_async(self._login(user, arg))

    def do_APOP(self, arg: str) -> None:
        """RFC 1939 section 7: not offered, see the module docstring."""
        self.send(R.APOP_UNAVAILABLE)

    def do_AUTH(self, arg: str) -> None:
        """RFC 5034: AUTH PLAIN with an optional initial response."""
        words = arg.split()
        if not words:
            mechs = b"PLAIN\r\n" if self._plaintext_allowed() else b""
            self._write(R.AUTH_MECHANISMS.to_bytes() + mechs + b".\r\n")
            return
        if words[0].upper() != "PLAIN" or len(words) > 2:
            self._bad_command(R.AUTH_BAD_MECHANISM)
            return
        if not self._plaintext_allowed():
            self._bad_command(R.PLAINTEXT_DISALLOWED)
            return
        if len(words) == 1:
            self._sasl_pending = True
            self._write(R.AUTH_CONTINUE)
            return
        initial = words[1]
        self._sasl_response(b"" if initial == "=" else initial.encode("ascii", "replace"))

    def _sasl_response(self, line: bytes) -> None:
        if line.strip() == b"*":
            self.send(R.AUTH_ABORTED)
            return
        try:
            data = base64.b64decode(line.strip(), validate=True)
        except (binascii.Error, ValueError):
            self._bad_command(R.AUTH_BAD_BASE64)
            return
        parsed = parse_plain(data)
        if parsed is None:
            self._start_async(self._fail_login())
            return
        self._start_async(self._login(*parsed))

    async def _sleep(self, seconds: float) -> None:
        if seconds <= 0:
            return
        self._waiting = task.deferLater(self.reactor, seconds, lambda: None)
        await self._waiting

    async def _fail_login(self, user: str | None = None) -> None:
        """Record a failure, wait the throttle's delay, answer the same for every cause."""
        self._maillog("auth", user=user, result="failed")
        throttle = getattr(self.ctx, "throttle", None)
        delay = 0.0
        if throttle is not None:
            throttle.record_failure(self.peer_host)
            delay = float(throttle.delay_for(self.peer_host))
        await self._sleep(delay)
        self._auth_failures += 1
        if self._auth_failures >= self.settings.max_auth_failures:
            self.send(R.AUTH_TOO_MANY_FAILURES)
            self._close()
        else:
            self.send(R.AUTH_FAILED)

    async def _login(self, user: str, password: str) -> None:
        """Check the credentials through the portal and open the maildrop."""
        throttle = getattr(self.ctx, "throttle", None)
        if throttle is not None and throttle.is_blocked(self.peer_host):
            self._maillog("auth", user=user, result="blocked")
            self.send(R.AUTH_BLOCKED)
            return
        try:
            self._waiting = self.ctx.portal.login(
                UsernamePassword(user.encode("utf-8"), password.encode("utf-8")),
                None,
                IAccountStore,
            )
            _iface, avatar, logout = await self._waiting
        except (UnauthorizedLogin, LoginFailed):
            await self._fail_login(user)
            return
        finally:
            self._waiting = None
        if self._disconnected:
            logout()
            return
        if throttle is not None:
            throttle.record_success(self.peer_host)
        canonical = str(avatar.user)
        now = self.reactor.seconds()
        last = self.sessions.last_login(canonical)
        delay = self.settings.login_delay
        if delay > 0 and last is not None and now - last < delay:
            logout()
            self.send(R.LOGIN_DELAY_REPLY)
            return
        if not self.sessions.acquire(canonical):
            self._maillog("auth", user=canonical, result="in-use")
            logout()
            self.send(R.IN_USE_REPLY)
            return
        try:
            maildrop = Maildrop.open(avatar)
        except Exception:  # noqa: BLE001 - any store failure: answer [SYS/TEMP]
            self.log.failure("pop3: cannot open the maildrop of {user}", user=canonical)
            self.sessions.release(canonical)
            logout()
            self.send(R.MAILDROP_UNAVAILABLE)
            return
        self.user = canonical
        self.maildrop = maildrop
        self._logout = logout
        self.sessions.record_login(canonical, now)
        self.state = State.TRANSACTION
        self.log.info(
            "pop3: login {user} from {peer}, {count} messages",
            user=canonical,
            peer=self.peer_host,
            count=len(maildrop),
        )
        self._maillog("auth", user=canonical, result="ok", messages=len(maildrop))
        self.send(R.LOGGED_IN)

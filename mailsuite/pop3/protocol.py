"""The POP3 protocol (RFC 1939) with CAPA and response codes (RFC 2449, RFC 3206), STLS
(RFC 2595) and AUTH PLAIN (RFC 5034).

States: AUTHORIZATION -> TRANSACTION -> UPDATE (RFC 1939 section 3). Commands are dispatched
through one table per state. Commands are handled strictly in order: while a command is
waiting (a password check, a throttle delay, a message being streamed) later pipelined lines
are queued (RFC 2449 PIPELINING), and reading from the socket pauses if the queue grows.

APOP (RFC 1939 section 7) is not offered: it needs the plaintext secret on the server, and
mailsuite stores only memory-hard password hashes, so the greeting carries no timestamp and
APOP is refused.
"""

from __future__ import annotations

import base64
import binascii
import enum
from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import LoginFailed, UnauthorizedLogin
from twisted.internet import defer, task
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure

from mailsuite.errors import MessageNotFound, StoreError
from mailsuite.interfaces import IAccountStore
from mailsuite.pop3 import replies as R
from mailsuite.pop3.maildrop import AlreadyDeleted, Maildrop, NoSuchMessage
from mailsuite.pop3.sessions import SessionRegistry
from mailsuite.pop3.settings import Pop3Settings
from mailsuite.pop3.stream import MessageSender, TopFilter, encode_message

IMPLEMENTATION = "mailsuite"
SASL_LINE_LIMIT = 8192  # RFC 5034 section 4: a continuation line may exceed the 255-octet rule
MAX_QUEUED_LINES = 256  # pause reading when this many pipelined commands wait


class State(enum.Enum):
    """RFC 1939 section 3 session states."""

    AUTHORIZATION = "AUTHORIZATION"
    TRANSACTION = "TRANSACTION"
    UPDATE = "UPDATE"


AUTHORIZATION_COMMANDS = frozenset({"CAPA", "USER", "PASS", "AUTH", "APOP", "STLS", "QUIT"})
TRANSACTION_COMMANDS = frozenset(
    {"CAPA", "STAT", "LIST", "RETR", "DELE", "NOOP", "RSET", "TOP", "UIDL", "QUIT"}
)
ALL_COMMANDS = AUTHORIZATION_COMMANDS | TRANSACTION_COMMANDS


class BadArgument(Exception):
    """A message number or line count that is not a plain decimal number."""


def parse_number(text: str) -> int:
    """A decimal number of at most 10 digits (RFC 1939 section 3: numbers are decimal)."""
    if not text or len(text) > 10 or not text.isascii() or not text.isdigit():
        raise BadArgument(text)
    return int(text)


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
    if not authcid or (authzid and authzid != authcid):
        return None
    return authcid, passwd


class Pop3Protocol(Protocol, TimeoutMixin):
    """One POP3 connection."""

    log = Logger()
    transport: Any  # ITCPTransport / ISSLTransport; zope interfaces do not type-check well

    def __init__(
        self,
        ctx: Any,
        settings: Pop3Settings,
        sessions: SessionRegistry,
        implicit_tls: bool,
        refuse: bool = False,
    ) -> None:
        self.ctx = ctx
        self.settings = settings
        self.sessions = sessions
        self.implicit_tls = implicit_tls
        self.reactor = ctx.reactor
        self.callLater = ctx.reactor.callLater  # type: ignore[method-assign]  # TimeoutMixin
        self._refuse = refuse
        self.state = State.AUTHORIZATION
        self.user: str | None = None  # canonical address once logged in
        self.maildrop: Maildrop | None = None
        self._logout: Callable[[], None] | None = None
        self._pending_user: str | None = None  # USER given, waiting for PASS
        self._sasl_pending = False  # waiting for the AUTH PLAIN continuation line
        self._buffer = b""
        self._discarding = False
        self._queue: deque[bytes | None] = deque()
        self._busy = False
        self._processing = False
        self._reading_paused = False
        self._closing = False
        self._disconnected = False
        self._auth_failures = 0
        self._bad_commands = 0
        self._tls_started = False
        self._waiting: defer.Deferred[Any] | None = None
        self._sender: MessageSender | None = None
        self._counted_host: str | None = None

    # --- connection ----------------------------------------------------------------------

    @property
    def peer_host(self) -> str:
        """The client's address, the key of the login throttle."""
        peer = self.transport.getPeer() if self.transport is not None else None
        return str(getattr(peer, "host", "unknown"))

    @property
    def secure(self) -> bool:
        """True under TLS (implicit on 995, or after STLS)."""
        return self.implicit_tls or self._tls_started or ISSLTransport.providedBy(self.transport)

    def connectionMade(self) -> None:
        _set_no_delay(self.transport)
        if self._refuse:
            self._write(R.TOO_MANY_CONNECTIONS.to_bytes())
            self._close()
            return
        self._counted_host = self.peer_host
        self.sessions.connection_opened(self._counted_host)
        self.setTimeout(self.settings.idle_timeout)
        self._write(R.GREETING.to_bytes())

    def connectionLost(self, reason: Failure | None = None) -> None:  # type: ignore[override]
        self._disconnected = True
        self.setTimeout(None)
        if self._counted_host is not None:
            self.sessions.connection_closed(self._counted_host)
            self._counted_host = None
        if self._waiting is not None:
            self._waiting.cancel()
        if self._sender is not None:
            self._sender.stopProducing()
        self._end_session(committed=False)

    def timeoutConnection(self) -> None:
        """RFC 1939 section 3: an idle session is closed without entering UPDATE."""
        self.log.info("pop3: idle timeout for {peer}", peer=self.peer_host)
        if self._sender is not None:
            # The client stopped reading in the middle of a message: no status line can be
            # sent any more, and the unread data would hold the connection open.
            self._closing = True
            abort = getattr(self.transport, "abortConnection", None)
            if abort is not None:
                abort()
            else:
                self.transport.loseConnection()
            return
        self._write(R.IDLE_TIMEOUT.to_bytes())
        self._close()

    def _end_session(self, committed: bool) -> None:
        if self.maildrop is not None:
            maildrop, self.maildrop = self.maildrop, None
            if not committed:
                maildrop.release()
        if self.user is not None:
            self.sessions.release(self.user)
            self.user = None
        if self._logout is not None:
            logout, self._logout = self._logout, None
            try:
                logout()
            except Exception:  # noqa: BLE001 - a broken logout must not stop the cleanup
                self.log.failure("pop3: logout failed")

    def _maillog(self, event: str, **fields: Any) -> None:
        """One line in the operators' mail log (never a password)."""
        maillog = getattr(self.ctx, "maillog", None)
        if maillog is not None:
            maillog.log(event, service="pop3", client=self.peer_host, **fields)

    def _write(self, data: bytes) -> None:
        if not self._disconnected:
            self.transport.write(data)

    def send(self, reply: R.Reply) -> None:
        """Write one status line."""
        self._write(reply.to_bytes())

    def _close(self) -> None:
        self._closing = True
        self._queue.clear()
        if not self._disconnected:
            self.transport.loseConnection()

    # --- input ---------------------------------------------------------------------------

    def _line_limit(self) -> int:
        return SASL_LINE_LIMIT if self._sasl_pending else self.settings.max_line_length

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        self.resetTimeout()
        buf = self._buffer + data
        lines = buf.split(b"\n")
        self._buffer = lines.pop()
        # Lines are cut here at the largest limit of any state; the limit of the state the
        # line is handled in (pipelining may change it meanwhile) is checked in _handle_line.
        limit = max(SASL_LINE_LIMIT, self.settings.max_line_length)
        for line in lines:
            if self._discarding:  # the end of an over-long line already answered
                self._discarding = False
                continue
            if line.endswith(b"\r"):
                line = line[:-1]
            self._queue.append(None if len(line) > limit else line)
        if len(self._buffer) > limit:
            if not self._discarding:
                self._queue.append(None)
                self._discarding = True
            self._buffer = b""
        if len(self._queue) > MAX_QUEUED_LINES and not self._reading_paused:
            self._reading_paused = True
            self.transport.pauseProducing()
        self._process()

    def _process(self) -> None:
        if self._processing:
            return
        self._processing = True
        try:
            while self._queue and not self._busy and not self._closing:
                self._handle_line(self._queue.popleft())
        finally:
            self._processing = False
        if self._reading_paused and len(self._queue) < MAX_QUEUED_LINES // 4:
            self._reading_paused = False
            if not self._closing and not self._disconnected:
                self.transport.resumeProducing()

    def _start_async(self, coro: Any) -> None:
        """Run a command that waits; later lines stay queued until it finishes."""
        self._busy = True
        d = defer.Deferred.fromCoroutine(coro)
        d.addErrback(self._async_failed)
        d.addBoth(self._async_done)

    def _async_failed(self, failure: Failure) -> None:
        if failure.check(defer.CancelledError):
            return
        self.log.failure("pop3: command failed", failure)
        if not self._disconnected:
            self.send(R.err("Internal error.", R.SYS_TEMP))
            self._close()
        return

    def _async_done(self, _: object) -> None:
        self._busy = False
        self._waiting = None
        if not self._disconnected:
            self._process()

    def _bad_command(self, reply: R.Reply) -> None:
        self._bad_commands += 1
        if self._bad_commands >= self.settings.max_bad_commands:
            self.send(R.TOO_MANY_BAD_COMMANDS)
            self._close()
        else:
            self.send(reply)

    def _handle_line(self, line: bytes | None) -> None:
        if line is None or len(line) > self._line_limit():
            self._sasl_pending = False
            self._bad_command(R.LINE_TOO_LONG)
            return
        if self._sasl_pending:
            self._sasl_pending = False
            self._sasl_response(line)
            return
        text = line.decode("utf-8", "replace")
        name, _, arg = text.partition(" ")
        command = name.upper()
        if command not in ALL_COMMANDS:
            self._bad_command(R.UNKNOWN_COMMAND)
            return
        allowed = (
            AUTHORIZATION_COMMANDS
            if self.state is State.AUTHORIZATION
            else TRANSACTION_COMMANDS
            if self.state is State.TRANSACTION
            else frozenset()
        )
        if command not in allowed:
            self._bad_command(R.WRONG_STATE)
            return
        if command != "PASS":
            self._pending_user = None  # RFC 1939: PASS must follow USER directly
        getattr(self, "do_" + command)(arg)

    # --- AUTHORIZATION -------------------------------------------------------------------

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

    # --- TRANSACTION ---------------------------------------------------------------------

    def _drop(self) -> Maildrop:
        assert self.maildrop is not None
        return self.maildrop

    def _message_arg(self, arg: str, extra: int = 0) -> int | None:
        """Parse ``n`` (and check the argument count); answer the error and return None."""
        words = arg.split()
        if len(words) != 1 + extra:
            self._bad_command(R.INVALID_ARGUMENTS)
            return None
        try:
            number = parse_number(words[0])
        except BadArgument:
            self._bad_command(R.INVALID_NUMBER)
            return None
        try:
            self._drop().entry(number)
        except NoSuchMessage:
            self.send(R.NO_SUCH_MESSAGE)
            return None
        except AlreadyDeleted:
            self.send(R.MESSAGE_DELETED.format(number=number))
            return None
        return number

    def do_STAT(self, arg: str) -> None:
        """RFC 1939 section 5."""
        count, size = self._drop().stat()
        self.send(R.STAT.format(count=count, size=size))

    def do_LIST(self, arg: str) -> None:
        """RFC 1939 section 5: one message, or a multi-line listing of all not deleted."""
        if arg.strip():
            number = self._message_arg(arg)
            if number is not None:
                size = self._drop().entry(number).size
                self.send(R.LIST_ONE.format(number=number, size=size))
            return
        live = self._drop().live()
        head = R.LIST_FOLLOWS.format(count=len(live), size=sum(e.size for e in live))
        body = "".join(f"{e.number} {e.size}\r\n" for e in live).encode("ascii")
        self._write(head.to_bytes() + body + b".\r\n")

    def do_UIDL(self, arg: str) -> None:
        """RFC 1939 section 7: the store's pop_id, stable for the life of the message."""
        if arg.strip():
            number = self._message_arg(arg)
            if number is not None:
                entry = self._drop().entry(number)
                self.send(R.UIDL_ONE.format(number=number, uid=entry.pop_id))
            return
        body = "".join(f"{e.number} {e.pop_id}\r\n" for e in self._drop().live())
        self._write(R.UIDL_FOLLOWS.to_bytes() + body.encode("ascii") + b".\r\n")

    def do_DELE(self, arg: str) -> None:
        """RFC 1939 section 5: only marks; the message is removed at QUIT."""
        number = self._message_arg(arg)
        if number is not None:
            self._drop().mark_deleted(number)
            self.send(R.DELETED.format(number=number))

    def do_RSET(self, arg: str) -> None:
        """RFC 1939 section 5."""
        self._drop().reset()
        count, size = self._drop().stat()
        self.send(R.RSET.format(count=count, size=size))

    def do_NOOP(self, arg: str) -> None:
        """RFC 1939 section 5."""
        self.send(R.NOOP)

    def do_RETR(self, arg: str) -> None:
        """RFC 1939 section 5: the whole message, byte-stuffed; \\Seen at session end."""
        number = self._message_arg(arg)
        if number is not None:
            size = self._drop().entry(number).size
            self._send_message(number, R.RETR_FOLLOWS.format(size=size), None)

    def do_TOP(self, arg: str) -> None:
        """RFC 1939 section 7: the header, the empty line and the first n body lines."""
        words = arg.split()
        lines = 0
        if len(words) == 2:
            try:
                lines = parse_number(words[1])
            except BadArgument:
                self._bad_command(R.INVALID_ARGUMENTS)
                return
        number = self._message_arg(arg, extra=1)
        if number is not None:
            self._send_message(number, R.TOP_FOLLOWS, lines)

    def _send_message(self, number: int, status: R.Reply, top_lines: int | None) -> None:
        drop = self._drop()
        try:
            source = drop.open_message(number)
        except MessageNotFound:
            self.send(R.MESSAGE_VANISHED.format(number=number))
            return
        except (OSError, StoreError):
            self.log.failure("pop3: cannot open message {number}", number=number)
            self.send(R.READ_FAILED)
            return
        limit = self.settings.chunk_size
        try:
            head = source.read(limit + 1)
            small = len(head) <= limit
            if small:
                source.close()
            else:
                source.seek(0)
        except OSError:
            source.close()
            self.log.failure("pop3: cannot read message {number}", number=number)
            self.send(R.READ_FAILED)
            return
        if small:
            if top_lines is not None:
                head = TopFilter(top_lines).feed(head)
            else:
                drop.mark_retrieved(number)
            # One write for status line and body: no Nagle wait (ARCHITECTURE.md).
            self._write(status.to_bytes() + encode_message(head))
            return
        self._busy = True

        def done(error: BaseException | None) -> None:
            self._sender = None
            if error is not None:
                if not self._disconnected:
                    self._close()  # half a response cannot be repaired
                return
            if top_lines is None:
                drop.mark_retrieved(number)
            self._busy = False
            self._process()

        self._sender = MessageSender(
            self.transport,
            self.reactor,
            source,
            status.to_bytes(),
            done,
            top_lines=top_lines,
            chunk_size=limit,
            on_progress=self.resetTimeout,
        )
        self._sender.start()

    # --- QUIT / UPDATE -------------------------------------------------------------------

    def do_QUIT(self, arg: str) -> None:
        """RFC 1939 section 6: in TRANSACTION, enter UPDATE and remove the marked messages."""
        if self.state is State.AUTHORIZATION:
            self.send(R.BYE)
            self._close()
            return
        self.state = State.UPDATE
        drop = self._drop()
        try:
            removed = drop.commit()
        except Exception:  # noqa: BLE001 - any store failure: answer [SYS/TEMP]
            self.log.failure("pop3: UPDATE failed for {user}", user=self.user)
            reply = R.QUIT_UPDATE_FAILED
        else:
            reply = R.QUIT_UPDATED.format(count=removed)
            self._maillog(
                "pop3-update", user=self.user, deleted=removed, retrieved=len(drop.retrieved)
            )
        self.maildrop = None
        self._end_session(committed=True)
        self.send(reply)
        self._close()


def _set_no_delay(transport: Any) -> None:
    """TCP_NODELAY: each response leaves at once instead of waiting for a delayed ACK."""
    try:
        transport.setTcpNoDelay(True)
    except (AttributeError, NotImplementedError, OSError):
        pass

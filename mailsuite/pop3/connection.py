"""The POP3 connection core (RFC 1939) shared by the command families.

States: AUTHORIZATION -> TRANSACTION -> UPDATE (RFC 1939 section 3). Commands are dispatched
through one table per state (``states.py``) to the command families in ``authorization.py``
and ``transaction.py``; this module owns the connection: framing, pipelining, limits, timeouts.

Commands are handled strictly in order: while a command is waiting (a password check, a
throttle delay, a message being streamed) later pipelined lines are queued (RFC 2449
PIPELINING), and reading from the socket pauses if the queue grows.
"""

from __future__ import annotations

from collections import deque
from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin
from twisted.python.failure import Failure

from mailsuite.networks import peer_text
from mailsuite.pop3 import replies as R
from mailsuite.pop3.maildrop import Maildrop
from mailsuite.pop3.sessions import SessionRegistry
from mailsuite.pop3.settings import Pop3Settings
from mailsuite.pop3.states import (
    ALL_COMMANDS,
    AUTHORIZATION_COMMANDS,
    MAX_QUEUED_LINES,
    SASL_LINE_LIMIT,
    TRANSACTION_COMMANDS,
    State,
)
from mailsuite.pop3.stream import MessageSender


class Pop3Connection(Protocol, TimeoutMixin):
    """One POP3 connection: framing, pipelining, limits, timeouts and session cleanup.

    The commands live in the subclasses ``AuthorizationCommands`` and ``TransactionCommands``;
    :class:`mailsuite.pop3.protocol.Pop3Protocol` combines them.
    """

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
        return peer_text(str(getattr(peer, "host", "unknown")))

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
        self.sessions.live.add(self)
        self.setTimeout(self.settings.idle_timeout)
        self._write(R.GREETING.to_bytes())

    def connectionLost(self, reason: Failure | None = None) -> None:  # type: ignore[override]
        self._disconnected = True
        self.setTimeout(None)
        if self._counted_host is not None:
            self.sessions.connection_closed(self._counted_host)
            self.sessions.live.discard(self)
            self._counted_host = None
        if self._waiting is not None:
            self._waiting.cancel()
        if self._sender is not None:
            self._sender.stopProducing()
        self._end_session(committed=False)

    def server_shutdown(self) -> None:
        """The server is stopping: say so to an idle client and close (nothing is deleted)."""
        if self._disconnected or self._closing:
            return
        if self._sender is None:
            self.send(R.SHUTTING_DOWN)
        self._close()

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
            self.send(R.INTERNAL_ERROR)
            self._close()
        return

    def _async_done(self, _: object) -> None:
        self._busy = False
        self._waiting = None
        if not self._disconnected:
            self._process()

    def _sasl_response(self, line: bytes) -> None:
        """The client's line after ``+ `` (implemented by the AUTHORIZATION commands)."""
        raise NotImplementedError

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
        bad_before = self._bad_commands
        try:
            getattr(self, "do_" + command)(arg)
            if self._bad_commands == bad_before:
                self._bad_commands = 0  # as Dovecot: only bad commands in a row count
        except Exception:  # noqa: BLE001 - a bug or a store failure must not kill the reactor loop
            self.log.failure("pop3: {command} failed", command=command)
            if not self._disconnected:
                self.send(R.INTERNAL_ERROR)
                self._close()


def _set_no_delay(transport: Any) -> None:
    """TCP_NODELAY: each response leaves at once instead of waiting for a delayed ACK."""
    try:
        transport.setTcpNoDelay(True)
    except (AttributeError, NotImplementedError, OSError):
        pass

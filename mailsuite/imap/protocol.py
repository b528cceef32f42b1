"""The IMAP protocol object: framing of lines and literals, dispatch, output.

Framing (RFC 3501 section 4.3, RFC 7888): a command is read line by line; a line ending in
``{n}`` or ``{n+}`` announces a literal of ``n`` bytes. The announced size is checked against
the limit *before* a byte of it is buffered: a synchronising literal over the limit gets a
tagged ``NO [TOOBIG]`` instead of the ``+`` continuation; a non-synchronising one gets ``BAD``
and the connection is closed (its bytes are already on the way). A line longer than the limit
is discarded up to its end and answered with ``BAD``; the session goes on.

Commands run one at a time in arrival order (pipelined commands wait in a bounded queue). Each
handler is an ``async def`` found through the per-state dispatch tables in
``mailsuite.imap.commands``. Any unexpected exception becomes ``NO [SERVERBUG]``: the session
never dies of a bug in one command.
"""

from __future__ import annotations

import zlib
from collections import deque
from typing import Any

from twisted.internet import error as net_error
from twisted.internet.defer import Deferred
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.protocols.policies import TimeoutMixin

from mailsuite.errors import MailsuiteError
from mailsuite.imap import commands
from mailsuite.imap.parser import (
    ParseError,
    Reader,
    parse_head,
    peek_command,
    peek_tag,
    trailing_literal,
)
from mailsuite.imap.responses import (
    BAD,
    NO,
    SERVER_BUG,
    Code,
    CommandFailed,
    Reply,
    from_store_error,
)
from mailsuite.imap.session import Session, State
from mailsuite.networks import peer_text

MAX_LITERALS_PER_COMMAND = 64
PRE_AUTH_LITERAL = 8192  # largest literal before login (a user name or a password)
MAX_QUEUED_COMMANDS = 64
INFLATE_CHUNK = 64 * 1024
WRITE_CHUNK = 256 * 1024


class ImapProtocol(Protocol, TimeoutMixin):
    """One IMAP connection."""

    log = Logger()
    transport: Any

    def __init__(self, ctx: Any, settings: Any, implicit_tls: bool, factory: Any = None) -> None:
        self.ctx = ctx
        self.settings = settings
        self.implicit_tls = implicit_tls
        self.factory = factory
        self.callLater = ctx.reactor.callLater  # type: ignore[method-assign]  # injected clock
        self.session: Session | None = None
        self.peer_host = "?"
        self._buffer = bytearray()
        self._parts: list[bytes] = []
        self._literal_remaining = 0
        self._literal_count = 0
        self._literal_total = 0  # bytes of literals in the command so far (bounded as one)
        self._discarding: str | None = None  # tag of an over-long line being skipped
        self._commands: deque[bytes] = deque()
        self._busy = False
        self._in_run_loop = False
        self._paused = False
        self._line_waiter: Deferred[bytes] | None = None
        self._flush_call: Any = None
        self._deflate: Any = None
        self._inflate: Any = None
        self._streaming = False
        self._output_paused = False
        self._drain_waiters: list[Deferred[None]] = []
        self.closed = False

    # --- connection ------------------------------------------------------------------------

    def connectionMade(self) -> None:
        if hasattr(self.transport, "setTcpNoDelay"):
            try:
                self.transport.setTcpNoDelay(True)  # one reply per command; no Nagle delay
            except (AttributeError, OSError):  # not a TCP socket (tests)
                pass
        peer = self.transport.getPeer()
        tls = self.implicit_tls or ISSLTransport.providedBy(self.transport)
        self.session = Session(self, self.ctx, self.settings, tls,
                               peer_text(getattr(peer, "host", "?")))
        self.setTimeout(self.settings.login_timeout)
        self.write(b"* OK [CAPABILITY " + commands.capabilities(self.session).encode()
                   + b"] " + self.settings.greeting.encode() + b"\r\n")

    def connectionLost(self, reason: Any = None) -> None:
        self.closed = True
        self._release_waiters()
        self.setTimeout(None)
        if self._flush_call is not None and self._flush_call.active():
            self._flush_call.cancel()
        waiter, self._line_waiter = self._line_waiter, None
        if waiter is not None:
            waiter.errback(net_error.ConnectionDone())
        if self.session is not None:
            try:
                self.session.close()
            except Exception:  # noqa: BLE001 - logged; the connection is going anyway
                self.log.failure("Error closing IMAP session")
        if self.factory is not None:
            self.factory.connection_closed(self)

    def timeoutConnection(self) -> None:
        self.write(b"* BYE Disconnected for inactivity.\r\n")
        self.transport.loseConnection()

    def set_authenticated_timeout(self) -> None:
        self.setTimeout(self.settings.idle_timeout)

    # --- output ----------------------------------------------------------------------------

    def write(self, data: bytes) -> None:
        if self.closed or not data:
            return
        if self._deflate is not None:
            data = self._deflate.compress(data) + self._deflate.flush(zlib.Z_SYNC_FLUSH)
        self.transport.write(data)

    def write_many(self, lines: list[bytes]) -> None:
        chunk: list[bytes] = []
        size = 0
        for line in lines:
            chunk.append(line)
            size += len(line)
            if size >= WRITE_CHUNK:
                self.write(b"".join(chunk))
                chunk, size = [], 0
        if chunk:
            self.write(b"".join(chunk))

    # --- output flow control (IPushProducer while a large response streams) -------------------

    def begin_streaming(self) -> None:
        """Register as the transport's producer so a slow reader pauses a large FETCH."""
        if not self._streaming and not self.closed:
            self._streaming = True
            self.transport.registerProducer(self, True)

    def end_streaming(self) -> None:
        if self._streaming:
            self._streaming = False
            self._output_paused = False
            if not self.closed:
                self.transport.unregisterProducer()
            self._release_waiters()

    async def pause(self) -> None:
        """Let the reactor run other connections for a moment (long commands call this)."""
        d: Deferred[None] = Deferred()
        self.ctx.reactor.callLater(0, d.callback, None)
        await d
        if self.closed:
            raise net_error.ConnectionDone()

    async def writable(self) -> None:
        """Wait until the transport has drained enough to take more output."""
        if self._output_paused and not self.closed:
            d: Deferred[None] = Deferred()
            self._drain_waiters.append(d)
            await d
        if self.closed:
            raise net_error.ConnectionDone()

    def pauseProducing(self) -> None:
        self._output_paused = True

    def resumeProducing(self) -> None:
        self._output_paused = False
        self._release_waiters()

    def stopProducing(self) -> None:
        self.closed = True
        self._release_waiters()

    def _release_waiters(self) -> None:
        waiters, self._drain_waiters = self._drain_waiters, []
        for d in waiters:
            d.callback(None)

    def abort_session(self, text: bytes) -> None:
        """Say BYE and close at once (the selected mailbox became unusable)."""
        self.write(b"* BYE " + text + b"\r\n")
        self.transport.loseConnection()
        self.closed = True

    def start_compression(self) -> None:
        """RFC 4978: everything after the tagged OK is raw DEFLATE both ways."""
        self._deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
        self._inflate = zlib.decompressobj(-15)
        pending = bytes(self._buffer)
        self._buffer.clear()
        if pending:
            self.dataReceived(pending, _already_counted=True)

    def start_tls(self) -> None:
        """RFC 3501 6.2.1: negotiate TLS; bytes pipelined after STARTTLS are discarded."""
        self._buffer.clear()
        self._commands.clear()
        self.transport.startTLS(self.ctx.tls.server_options())
        assert self.session is not None
        self.session.tls = True

    def close_after_reply(self) -> None:
        self.transport.loseConnection()

    # --- input framing ---------------------------------------------------------------------

    def dataReceived(self, data: bytes, _already_counted: bool = False) -> None:
        if self.closed:
            return
        self.resetTimeout()
        if self._inflate is not None:
            try:
                out = self._inflate.decompress(data, INFLATE_CHUNK)
                self._buffer += out
                self._drain()
                while self._inflate.unconsumed_tail and not self.closed:
                    out = self._inflate.decompress(self._inflate.unconsumed_tail, INFLATE_CHUNK)
                    self._buffer += out
                    self._drain()
            except zlib.error:
                self.write(b"* BYE Invalid compressed data\r\n")
                self.transport.loseConnection()
                self.closed = True
            return
        self._buffer += data
        self._drain()

    def _literal_limit(self) -> int:
        first = self._parts[0] if self._parts else b""
        name = peek_command(first)
        assert self.session is not None
        if self.session.state is State.NOT_AUTHENTICATED:
            return min(self.settings.max_line_length, PRE_AUTH_LITERAL)  # names, passwords
        if name == "APPEND":
            return self.settings.max_literal_size
        return self.settings.max_line_length

    def _drain(self) -> None:
        buf = self._buffer
        max_line = self.settings.max_line_length
        while buf and not self.closed:
            if self._literal_remaining:
                take = min(self._literal_remaining, len(buf))
                self._parts.append(bytes(buf[:take]))
                del buf[:take]
                self._literal_remaining -= take
                if self._literal_remaining:
                    return
                continue
            nl = buf.find(b"\n")
            if nl < 0:
                if len(buf) > max_line:
                    if self._discarding is None:
                        self._discarding = peek_tag(bytes(buf[:200])) or "*"
                    buf.clear()
                return
            line = bytes(buf[:nl])
            del buf[: nl + 1]
            if line.endswith(b"\r"):
                line = line[:-1]
            if self._discarding is not None or len(line) > max_line:
                tag = self._discarding or peek_tag(line[:200]) or "*"
                self._discarding = None
                self._reset_command()
                self.write(Reply(BAD, "Command line too long.", Code.TOOBIG).render(tag))
                continue
            if self._line_waiter is not None and not self._parts:
                waiter, self._line_waiter = self._line_waiter, None
                waiter.callback(line)
                continue
            self._parts.append(line)
            literal = trailing_literal(line)
            if literal is None:
                data = b"".join(self._parts)
                self._reset_command()
                self._queue(data)
                continue
            size, non_sync = literal
            self._literal_count += 1
            self._literal_total += size
            if (self._literal_total > self._literal_limit()
                    or self._literal_count > MAX_LITERALS_PER_COMMAND):
                tag = peek_tag(self._parts[0]) or "*"
                self._reset_command()
                if non_sync:
                    # RFC 7888 section 4: the bytes are coming anyway; refuse and close.
                    self.write(Reply(BAD, "Literal too large.", Code.TOOBIG).render(tag))
                    self.write(b"* BYE Literal too large.\r\n")
                    self.closed_by_server()
                    return
                self.write(Reply(NO, "Literal too large.", Code.TOOBIG).render(tag))
                continue
            self._parts.append(b"\r\n")
            self._literal_remaining = size
            if not non_sync:
                self.write(b"+ Ready for literal data\r\n")

    def closed_by_server(self) -> None:
        self._buffer.clear()
        self.transport.loseConnection()
        self.closed = True

    def _reset_command(self) -> None:
        self._parts = []
        self._literal_count = 0
        self._literal_total = 0
        self._literal_remaining = 0

    def read_line(self) -> Deferred[bytes]:
        """The next line the client sends (AUTHENTICATE continuation, IDLE's DONE)."""
        d: Deferred[bytes] = Deferred()
        self._line_waiter = d
        if self._buffer and not self._busy_reading():
            self.ctx.reactor.callLater(0, self._drain)
        return d

    def _busy_reading(self) -> bool:
        return bool(self._parts)

    # --- command queue ---------------------------------------------------------------------

    def _queue(self, data: bytes) -> None:
        self._commands.append(data)
        if len(self._commands) >= MAX_QUEUED_COMMANDS and not self._paused:
            self._paused = True
            self.transport.pauseProducing()
        self._run_next()

    def _run_next(self) -> None:
        if self._in_run_loop:
            return
        self._in_run_loop = True
        try:
            while not self._busy and self._commands and not self.closed:
                data = self._commands.popleft()
                if self._paused and len(self._commands) < MAX_QUEUED_COMMANDS // 2:
                    self._paused = False
                    self.transport.resumeProducing()
                self._busy = True
                d = Deferred.fromCoroutine(self._execute(data))
                d.addErrback(self._unexpected)
                d.addBoth(self._command_done)
        finally:
            self._in_run_loop = False

    def _command_done(self, _: Any) -> None:
        self._busy = False
        if not self.closed:
            self._run_next()

    def _unexpected(self, failure: Any) -> None:
        self.log.failure("Unexpected error in IMAP command loop", failure)

    async def _execute(self, data: bytes) -> None:
        session = self.session
        assert session is not None
        reader = Reader(data)
        try:
            tag, name = parse_head(reader)
        except ParseError:
            tag = peek_tag(data) or "*"
            self.write(Reply(BAD, "Error in IMAP command received by server.").render(tag))
            return
        handler = commands.lookup(session.state, name)
        if handler is None:
            text = ("Command not allowed in this state." if commands.is_known(name)
                    else "Unknown command.")
            self.write(Reply(BAD, f"Error in IMAP command {name}: {text}").render(tag))
            return
        reply: Reply | None
        session.current_tag = tag
        if name not in ("LOGIN", "AUTHENTICATE"):  # never trace credentials
            self.log.debug("imap {client} {user} {tag} {command}", client=session.peer_ip,
                           user=session.user, tag=tag, command=name)
        try:
            reply = await handler(session, reader)
        except ParseError as e:
            reply = Reply(BAD, f"Error in IMAP command {name}: {e}.")
        except CommandFailed as e:
            reply = e.reply
        except MailsuiteError as e:
            reply = from_store_error(e)
        except (net_error.ConnectionDone, net_error.ConnectionLost):
            return
        except Exception:  # noqa: BLE001 - logged and answered; the session goes on
            if self.closed:
                return
            self.log.failure("IMAP command {name} failed for {user}", name=name,
                             user=session.user)
            reply = SERVER_BUG
        if self.closed:
            return
        if reply is None:
            reply = Reply("OK", f"{name.title()} completed.")
        if session.state is State.SELECTED:
            try:
                session.flush_updates(allow_expunge=name not in ("FETCH", "STORE", "SEARCH"))
            except Exception:  # noqa: BLE001 - logged; the command's answer still goes out
                self.log.failure("IMAP update flush failed for {user}", user=session.user)
        self.write(reply.render(tag))
        action, session.after_reply = session.after_reply, None
        if action is not None:
            action()

    # --- pushed updates (IDLE) -------------------------------------------------------------

    def schedule_flush(self) -> None:
        if self._flush_call is None or not self._flush_call.active():
            self._flush_call = self.ctx.reactor.callLater(0, self._push_updates)

    def _push_updates(self) -> None:
        self._flush_call = None
        session = self.session
        if self.closed or session is None or not session.idling:
            return
        try:
            session.flush_updates(allow_expunge=True)
        except Exception:  # noqa: BLE001 - logged; IDLE goes on
            self.log.failure("IMAP IDLE update failed for {user}", user=session.user)

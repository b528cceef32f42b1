"""The SMTP server protocol (RFC 5321) for the MX and submission roles.

Each verb handler returns a :class:`~mailsuite.smtp.replies.Reply` (or a Deferred of one for the
slow ones: AUTH and the end of a message); the input loop writes it. Replies produced while
handling one read are written together (RFC 2920 PIPELINING), and while a reply is pending the
loop reads nothing further, so pipelined commands run strictly in order.

Input framing is exact: command lines end in CRLF; a bare CR or LF in a command is an error;
a line over the limit is discarded as it arrives and answered 500 5.5.2; DATA ends only at
CRLF "." CRLF (see ``mailsuite.smtp.data``); BDAT reads exactly the announced octets
(RFC 3030). After STARTTLS, whatever the client sent in the same packet is thrown away before
the handshake (the CVE-2011-0411 class), and the session starts over (RFC 3207 4.2).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from twisted.internet import defer
from twisted.internet.interfaces import ISSLTransport
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from twisted.python.failure import Failure

from mailsuite.networks import peer_text
from mailsuite.smtp import replies
from mailsuite.smtp.auth import MAX_AUTH_LINE, SaslExchange
from mailsuite.smtp.cmd_auth import AuthCommands
from mailsuite.smtp.cmd_mail import BDAT, COMMAND, DATA, MailCommands
from mailsuite.smtp.data import DotReader, MessageBody
from mailsuite.smtp.replies import NO_REPLY, Reply
from mailsuite.smtp.session import Envelope, Session
from mailsuite.transport_write import write_now

_NOT_IMPLEMENTED = frozenset({"EXPN", "TURN", "ETRN", "SEND", "SOML", "SAML", "ATRN"})
_MAX_PENDING_INPUT = 1024 * 1024  # unread pipelined input before we stop reading


def tls_details(transport: Any) -> tuple[str | None, str | None, int | None]:
    """(protocol version, cipher, bits) of a TLS transport, for the Received header."""
    try:
        connection = transport.getHandle()
        return (
            connection.get_protocol_version_name(),
            connection.get_cipher_name(),
            connection.get_cipher_bits(),
        )
    except Exception:  # noqa: BLE001 (trace detail only; never fail a message for it)
        return ("TLS", "unknown", None)


# The verbs answered; ``do_<VERB>`` is looked up per command (no bound methods per connection).
_VERBS = frozenset({
    "HELO", "EHLO", "MAIL", "RCPT", "DATA", "BDAT", "RSET", "NOOP", "QUIT", "VRFY", "HELP",
    "STARTTLS", "AUTH"})


class SMTPServerProtocol(AuthCommands, MailCommands, Protocol):
    """One SMTP connection; see the module docstring.

    ``server`` is the ``mailsuite.smtp.service.SMTPFactory`` that holds what connections share:
    ``ctx``, ``role``, ``settings``, ``hostname``, ``intake`` and ``authenticator``.
    """

    log = Logger()
    transport: Any  # ITransport, and ITLSTransport for STARTTLS

    def __init__(self, server: Any) -> None:
        self.server = server
        self.settings = server.settings
        self.session: Session = Session(role=server.role, peer_ip="")
        self.envelope = Envelope()
        self._buffer = b""
        self._out: list[bytes] = []
        self._mode = COMMAND
        self._busy = False
        self._processing = False
        self._closing = False
        self._paused = False
        self._skipping_line = False
        self._sasl: SaslExchange | None = None
        self._body: MessageBody | None = None
        self._dot_reader: DotReader | None = None
        self._bdat_remaining = 0
        self._bdat_last = False
        self._bdat_refusal: Reply | None = None
        self._idle_call: Any = None
        self._session_call: Any = None
        self._command_limit = self.settings.max_line_length

    # --- connection ------------------------------------------------------------------------

    def connectionMade(self) -> None:
        peer = self.transport.getPeer()
        self.session.peer_ip = peer_text(getattr(peer, "host", "") or "")
        self.session.peer_port = getattr(peer, "port", 0) or 0
        self.session.tls = ISSLTransport.providedBy(self.transport)
        set_nodelay = getattr(self.transport, "setTcpNoDelay", None)
        if set_nodelay is not None:
            try:
                set_nodelay(True)
            except OSError:
                self.log.debug("TCP_NODELAY not available on this transport")
        clock = self.server.ctx.reactor
        self._idle_call = clock.callLater(self.settings.idle_timeout, self._idle_timeout)
        self._session_call = clock.callLater(self.settings.session_timeout, self._session_timeout)
        self._send(self.server.greeting)
        self._flush()  # the client's clock runs from here: the log line can follow
        self.server.ctx.maillog.log(
            "connect", client=self.session.peer_ip, role=self.session.role, tls=self.session.tls
        )

    def connectionLost(self, reason: Failure = None) -> None:  # type: ignore[assignment]
        self._closing = True
        for call in (self._idle_call, self._session_call):
            if call is not None and call.active():
                call.cancel()
        self._idle_call = self._session_call = None
        self._buffer = b""
        self._reset_transaction()  # a message being received lets its memory go now
        self._run_after_reply()
        self.server.connection_closed(self)

    def _idle_timeout(self) -> None:
        if self._busy:
            # Waiting on our own disk or AUTH delay is not the client being idle.
            self._idle_call = self.server.ctx.reactor.callLater(
                self.settings.idle_timeout, self._idle_timeout
            )
            return
        self._idle_call = None
        self._close_with(replies.IDLE_TIMEOUT)

    def shut_down(self) -> None:
        """The server is stopping: say 421 unless a message is being made durable."""
        if not self._busy:
            self._close_with(replies.SHUTTING_DOWN)

    def _session_timeout(self) -> None:
        if self._busy:
            # Let the pending reply (a 250 after fsync) go out first: a 421 now would make the
            # client send the message again.
            self._session_call = self.server.ctx.reactor.callLater(1.0, self._session_timeout)
            return
        self._session_call = None
        self._close_with(replies.SESSION_TIMEOUT)

    def _close_with(self, reply: Reply) -> None:
        if self._closing:
            return
        self._send(reply)
        self._flush()
        self._closing = True
        self._buffer = b""
        self.transport.loseConnection()

    # --- input loop ------------------------------------------------------------------------

    def dataReceived(self, data: bytes) -> None:
        if self._closing:
            return
        self._buffer = self._buffer + data if self._buffer else data
        idle = self._idle_call
        if (self._mode != COMMAND or b"\n" in data) and idle is not None and idle.active():
            idle.reset(self.settings.idle_timeout)
        if self._busy:
            if len(self._buffer) > _MAX_PENDING_INPUT and not self._paused:
                self._paused = True
                self.transport.pauseProducing()
            return
        self._process()

    def _process(self) -> None:
        self._processing = True
        try:
            while self._buffer and not self._busy and not self._closing:
                if self._mode == DATA:
                    self._data_input()
                elif self._mode == BDAT:
                    self._bdat_input()
                elif not self._command_input():
                    break
        finally:
            self._processing = False
        self._flush()
        if self._paused and not self._busy and not self._closing:
            self._paused = False
            self.transport.resumeProducing()

    def _command_input(self) -> bool:
        """Take one line from the buffer; False when no complete line is there."""
        buf = self._buffer
        lf = buf.find(b"\n")
        if self._skipping_line:
            if lf < 0:
                self._buffer = b""
                return False
            self._buffer = buf[lf + 1 :]
            self._skipping_line = False
            self._error(replies.LINE_TOO_LONG)
            return True
        if lf < 0:
            if len(buf) > MAX_AUTH_LINE + 2:
                self._buffer = b""
                self._skipping_line = True
            return False
        self._buffer = buf[lf + 1 :]
        self._line_received(buf[:lf])
        return True

    def _line_received(self, raw: bytes) -> None:
        if not raw.endswith(b"\r"):
            self._error(replies.BARE_NEWLINE_IN_COMMAND)
            return
        line = raw[:-1]
        if b"\r" in line:
            self._error(replies.BARE_NEWLINE_IN_COMMAND)
            return
        if b"\x00" in line:
            self._error(replies.BAD_CHARACTER)
            return
        if self._sasl is not None:
            self._auth_continue(line)
            return
        if len(line) + 2 > self._command_limit and not line[:5].upper().startswith(b"AUTH "):
            self._error(replies.LINE_TOO_LONG)
            return
        try:
            text = line.decode("utf-8")
        except UnicodeDecodeError:
            self._error(replies.SYNTAX_ERROR.with_text("Invalid UTF-8 in command"))
            return
        verb, _, argument = text.partition(" ")
        verb = verb.upper()
        if verb not in _VERBS:
            self._error(replies.NOT_IMPLEMENTED if verb in _NOT_IMPLEMENTED else replies.UNKNOWN_COMMAND)
            return
        handler: Callable[[str], Reply | defer.Deferred[Reply]] = getattr(self, "do_" + verb)
        if verb == "AUTH" and len(line) > MAX_AUTH_LINE:
            self._error(replies.AUTH_LINE_TOO_LONG)
            return
        try:
            result = handler(argument)
        except Exception:  # noqa: BLE001 (a lookup failing must not kill the session)
            # Postfix answers 451 4.3.0 when a table lookup fails; the client retries later.
            self.log.failure("SMTP {verb} failed", verb=verb)
            result = replies.TEMPORARY_FAILURE
        if isinstance(result, defer.Deferred):
            self._wait_for(result)
        else:
            self._answer(result)

    def _wait_for(self, result: defer.Deferred[Reply]) -> None:
        """Hold the input loop until a slow handler has its reply."""
        self._busy = True
        result.addErrback(self._internal_error)
        result.addCallback(self._resume)

    def _internal_error(self, failure: Failure) -> Reply:
        self.log.failure("SMTP handler failed", failure=failure)
        return replies.TEMPORARY_FAILURE

    def _resume(self, reply: Reply) -> None:
        self._busy = False
        if self._closing:
            self._run_after_reply()  # nobody to answer; the log line is still due
            return
        self._answer(reply)
        if not self._processing:
            self._process()

    def _answer(self, reply: Reply) -> None:
        if reply is NO_REPLY:
            return
        if reply.code >= 400 and reply is not replies.TOO_MANY_RECIPIENTS:
            self._error(reply)
        else:
            self._send(reply)

    def _error(self, reply: Reply) -> None:
        """Send an error reply; close after ``max_errors`` (Postfix smtpd_hard_error_limit)."""
        self._send(reply)
        self.session.errors += 1
        if self.session.errors >= self.settings.max_errors:
            self._close_with(replies.TOO_MANY_ERRORS)

    def _send(self, reply: Reply) -> None:
        self._out.append(reply.encode())

    def _flush(self) -> None:
        if self._out:
            out, self._out = self._out, []
            write_now(self.transport, b"".join(out) if len(out) > 1 else out[0])
        if self.session.after_reply:
            self._run_after_reply()

    def _run_after_reply(self) -> None:
        work, self.session.after_reply = self.session.after_reply, []
        for call in work:
            call()

    # --- HELO / EHLO -----------------------------------------------------------------------

    def _reset_transaction(self) -> None:
        self.envelope = Envelope()
        self._body = None
        self._dot_reader = None

    def do_HELO(self, argument: str) -> Reply:
        """RFC 5321 4.1.1.1."""
        name = argument.strip()
        if not name or " " in name:
            return replies.HELO_REQUIRED
        self._reset_transaction()
        self.session.helo = name
        self.session.esmtp = False
        return self.server.helo_reply

    def do_EHLO(self, argument: str) -> Reply:
        """RFC 5321 4.1.1.1 with the extensions of this role."""
        name = argument.strip()
        if not name or " " in name:
            return replies.HELO_REQUIRED
        self._reset_transaction()
        self.session.helo = name
        self.session.esmtp = True
        lines = [f"{self.server.hostname} Hello {name}", "PIPELINING"]
        lines.append(f"SIZE {self.settings.max_message_size}")
        lines += ["8BITMIME", "ENHANCEDSTATUSCODES"]
        if self._starttls_available():
            lines.append("STARTTLS")
        if self._auth_offered():
            lines.append("AUTH PLAIN LOGIN")
        lines += ["SMTPUTF8", "CHUNKING", "DSN"]
        return Reply(250, None, "\n".join(lines))

    def _starttls_available(self) -> bool:
        return not self.session.tls and self.server.ctx.tls is not None

    def _auth_offered(self) -> bool:
        """AUTH only on submission and only under TLS (RFC 4954 4, RFC 8314)."""
        return self.session.requires_auth and self.session.tls and self.session.user is None

    # --- STARTTLS (RFC 3207) ---------------------------------------------------------------

    def do_STARTTLS(self, argument: str) -> Reply:
        if argument.strip():
            return replies.SYNTAX_ERROR
        if self.session.tls:
            return replies.ALREADY_TLS
        if self.server.ctx.tls is None:
            return replies.TLS_NOT_AVAILABLE
        try:
            options = self.server.ctx.tls.server_options()
        except Exception:  # noqa: BLE001 (a broken certificate must not end the session)
            self.log.failure("no TLS options")
            return replies.TLS_NOT_AVAILABLE
        # Anything pipelined after STARTTLS was sent in clear: drop it (CVE-2011-0411).
        self._buffer = b""
        self._send(replies.READY_FOR_TLS)
        self._flush()
        self.transport.startTLS(options)
        # RFC 3207 4.2: forget everything learnt before the handshake.
        self.session.tls = True
        self.session.helo = None
        self.session.esmtp = False
        self._reset_transaction()
        return NO_REPLY

    def _record_tls(self) -> None:
        if self.session.tls and self.session.tls_version is None:
            version, cipher, bits = tls_details(self.transport)
            self.session.tls_version, self.session.tls_cipher, self.session.tls_bits = (
                version,
                cipher,
                bits,
            )

    # --- the rest --------------------------------------------------------------------------

    def do_RSET(self, argument: str) -> Reply:
        """RFC 5321 4.1.1.5."""
        if argument.strip():
            return replies.SYNTAX_ERROR
        self._reset_transaction()
        return replies.RESET_OK

    def do_NOOP(self, argument: str) -> Reply:
        """RFC 5321 4.1.1.9 (an argument is allowed and ignored)."""
        return replies.NOOP_OK

    def do_VRFY(self, argument: str) -> Reply:
        """RFC 5321 3.5.3: 252, never revealing whether a user exists."""
        if not argument.strip():
            return replies.SYNTAX_ERROR
        return replies.VRFY_CANNOT

    def do_HELP(self, argument: str) -> Reply:
        return replies.HELP

    def do_QUIT(self, argument: str) -> Reply:
        """RFC 5321 4.1.1.10."""
        self._close_with(replies.BYE)
        return NO_REPLY

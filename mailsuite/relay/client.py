"""An ESMTP client for relaying: per-recipient results, PIPELINING, STARTTLS, connection reuse.

``SMTPClientProtocol`` only parses replies and enforces timeouts; ``SMTPSession`` speaks the
dialogue (RFC 5321 4.1, 4.5.3.2 timeouts; RFC 2920 PIPELINING; RFC 3207 STARTTLS; RFC 4954 AUTH;
RFC 1870 SIZE; RFC 6152 8BITMIME; RFC 6531 SMTPUTF8; RFC 3461 DSN parameters). A broken
connection, a garbage reply or a stall raises ``SessionFailed`` (always transient).
"""

from __future__ import annotations

import base64
import re
from collections import deque
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from twisted.internet import defer
from twisted.internet import error as net_error
from twisted.internet.interfaces import IPushProducer, ISSLTransport
from twisted.internet.protocol import Protocol
from twisted.logger import Logger
from zope.interface import implementer

from mailsuite.relay.agent import Outcome, enhanced_status
from mailsuite.relay.settings import RelaySettings
from mailsuite.relay.spool import QueueItem, RecipientState

log = Logger()

MAX_REPLY_LINE = 2048  # longer reply lines are garbage (RFC 5321 4.5.3.1.5 allows 512)
MAX_REPLY_LINES = 100
_REPLY_LINE = re.compile(rb"^([2-5][0-9][0-9])([ -]|$)(.*)$")


@dataclass(frozen=True)
class Reply:
    """One (possibly multi-line) SMTP reply."""

    code: int
    lines: tuple[str, ...]

    @property
    def text(self) -> str:
        """The lines joined by spaces, the enhanced code kept only once (RFC 2034 4)."""
        code = self.status
        parts = [self.lines[0]] if self.lines else []
        for line in self.lines[1:]:
            if line.startswith(code + " "):
                line = line[len(code) + 1 :]
            parts.append(line)
        return " ".join(p for p in parts if p)

    @property
    def status(self) -> str:
        return enhanced_status(self.code, self.lines[0] if self.lines else "")

    @property
    def positive(self) -> bool:
        return 200 <= self.code < 400

    def __str__(self) -> str:
        return f"{self.code} {self.text}".strip()


class SessionFailed(Exception):
    """The session cannot go on (connection lost, timeout, garbage); retry later."""

    def __init__(self, text: str, status: str = "4.4.2") -> None:
        super().__init__(text)
        self.text = text
        self.status = status
        self.during_tls = False  # the TLS handshake (or the EHLO right after it) failed


class SMTPClientProtocol(Protocol):
    """Reads SMTP replies and hands them, in order, to whoever waits for them."""

    transport: Any  # TCP, or TLS over it: also abortConnection() and the producer calls

    def __init__(self, clock: Any) -> None:
        self.clock = clock
        self._code = 0
        self._buffer = b""
        self._lines: list[str] = []
        self._waiting: deque[tuple[defer.Deferred[Reply], Any]] = deque()
        self._unclaimed: deque[Reply] = deque()
        self._failure: SessionFailed | None = None
        self.closed = False
        self.connected_d: defer.Deferred[None] = defer.Deferred()

    # --- Twisted ---------------------------------------------------------------------

    def connectionMade(self) -> None:
        if not self.connected_d.called:
            self.connected_d.callback(None)

    def dataReceived(self, data: bytes) -> None:
        self._buffer += data
        while self._failure is None:
            line, sep, rest = self._buffer.partition(b"\n")
            if not sep:
                if len(self._buffer) > MAX_REPLY_LINE:
                    self._fail(SessionFailed("reply line too long"))
                return
            self._buffer = rest
            self._line_received(line.rstrip(b"\r"))

    def connectionLost(self, reason: Any = None) -> None:
        self.closed = True
        text = "lost connection"
        if reason is not None and not reason.check(net_error.ConnectionDone):
            text = f"lost connection: {reason.getErrorMessage()}"
        self._fail(SessionFailed(text))

    # --- replies ---------------------------------------------------------------------

    def _line_received(self, line: bytes) -> None:
        m = _REPLY_LINE.match(line)
        if not m or len(line) > MAX_REPLY_LINE or len(self._lines) >= MAX_REPLY_LINES:
            shown = line[:80].decode("utf-8", "replace")
            self._fail(SessionFailed(f"garbage in reply: {shown!r}", "4.5.0"))
            self.abort()
            return
        code, sep, text = m.groups()
        if self._lines and int(code) != self._code:
            self._fail(SessionFailed("inconsistent multi-line reply", "4.5.0"))
            self.abort()
            return
        self._code = int(code)
        self._lines.append(text.decode("utf-8", "replace").strip())
        if sep != b"-":
            reply = Reply(self._code, tuple(self._lines))
            self._lines = []
            self._deliver(reply)

    def _deliver(self, reply: Reply) -> None:
        if self._waiting:
            d, timer = self._waiting.popleft()
            if timer.active():
                timer.cancel()
            d.callback(reply)
        else:
            self._unclaimed.append(reply)

    def expect(self, timeout: float) -> defer.Deferred[Reply]:
        """The next reply not yet claimed; fails with ``SessionFailed`` after ``timeout``."""
        if self._unclaimed:
            return defer.succeed(self._unclaimed.popleft())
        if self._failure is not None:
            return defer.fail(self._failure)
        d: defer.Deferred[Reply] = defer.Deferred()
        timer = self.clock.callLater(timeout, self._timed_out, timeout)
        self._waiting.append((d, timer))
        return d

    def _timed_out(self, timeout: float) -> None:
        self._fail(SessionFailed(f"conversation timed out after {timeout:g}s", "4.4.2"))
        self.abort()

    def _fail(self, failure: SessionFailed) -> None:
        if self._failure is None:
            self._failure = failure
        waiting, self._waiting = self._waiting, deque()
        for d, timer in waiting:
            if timer.active():
                timer.cancel()
            d.errback(self._failure)

    def send(self, data: bytes) -> None:
        if not self.closed and self.transport is not None:
            self.transport.write(data)  # type: ignore[call-arg, misc]  # zope interface method

    def abort(self) -> None:
        if self.transport is not None and not self.closed:
            self.transport.abortConnection()

    def tls_description(self) -> str:
        """``"TLSv1.3 TLS_AES_256_GCM_SHA384"`` under TLS, else ``""``."""
        transport = self.transport
        if transport is None or not ISSLTransport.providedBy(transport):
            return ""
        handle = None
        for candidate in (getattr(transport, "protocol", None), transport):
            try:
                handle = candidate.getHandle()  # type: ignore[union-attr]
            except Exception:  # noqa: BLE001, S112 - not every transport has a TLS handle
                continue
            if hasattr(handle, "get_protocol_version_name"):
                break
            handle = None
        if handle is None:
            return "TLS"
        return f"{handle.get_protocol_version_name()} {handle.get_cipher_name()}"


@implementer(IPushProducer)
class BodyWriter:
    """Hands the DATA payload to the transport in blocks, as fast as the peer reads it.

    RFC 5321 4.5.3.2.5: if a block cannot be sent for ``timeout`` seconds (the transport
    stays paused because the peer stopped reading) the session fails. Writing in blocks also
    keeps a large message from sitting twice in memory inside the transport's buffer.
    """

    BLOCK = 64 * 1024

    def __init__(self, protocol: SMTPClientProtocol, data: bytes, timeout: float) -> None:
        self.protocol = protocol
        self.data = memoryview(data)
        self.timeout = timeout
        self.position = 0
        self.paused = False
        self.done: defer.Deferred[None] = defer.Deferred()
        self.timer: Any = None
        self.registered = False

    def run(self) -> defer.Deferred[None]:
        """Fires when every byte is handed to the transport; fails with ``SessionFailed``."""
        transport = self.protocol.transport
        if transport is None or self.protocol.closed:
            return defer.fail(SessionFailed("lost connection before the message was sent"))
        transport.registerProducer(self, True)
        self.registered = True
        self._arm()
        self._write_more()
        return self.done

    def _arm(self) -> None:
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        self.timer = self.protocol.clock.callLater(self.timeout, self._stalled)

    def _finish(self, failure: SessionFailed | None) -> None:
        if self.done.called:
            return
        if self.timer is not None and self.timer.active():
            self.timer.cancel()
        transport = self.protocol.transport
        if self.registered and transport is not None:
            self.registered = False
            transport.unregisterProducer()
        if failure is None:
            self.done.callback(None)
        else:
            self.done.errback(failure)

    def _write_more(self) -> None:
        while not self.paused and not self.done.called and self.position < len(self.data):
            block = self.data[self.position : self.position + self.BLOCK]
            self.position += len(block)
            self.protocol.send(bytes(block))
            self._arm()
        if self.position >= len(self.data):
            self._finish(None)

    def _stalled(self) -> None:
        self._finish(SessionFailed(f"message body stalled for {self.timeout:g}s", "4.4.2"))
        self.protocol.abort()

    def pauseProducing(self) -> None:
        self.paused = True

    def resumeProducing(self) -> None:
        self.paused = False
        if not self.done.called:
            self._arm()
            self._write_more()

    def stopProducing(self) -> None:
        self._finish(SessionFailed("lost connection while sending the message"))


def to_wire(message: bytes) -> bytes:
    """The DATA payload: CRLF line ends, dot-stuffed (RFC 5321 4.5.2), ending with CRLF.CRLF."""
    data = message.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
    if data and not data.endswith(b"\r\n"):
        data += b"\r\n"
    if data.startswith(b"."):
        data = b"." + data
    return data.replace(b"\r\n.", b"\r\n..") + b".\r\n"


def xtext(text: str) -> str:
    """RFC 3461 4: xtext encoding of a DSN parameter value."""
    out = []
    for ch in text.encode("utf-8"):
        out.append(chr(ch) if 33 <= ch <= 126 and ch not in (43, 61) else f"+{ch:02X}")
    return "".join(out)


def _needs_utf8(item: QueueItem, recipients: tuple[RecipientState, ...] | list[RecipientState]) -> bool:
    if item.smtputf8:
        return True
    return not (item.sender.isascii() and all(r.address.isascii() for r in recipients))


NextJob = Callable[[], "tuple[QueueItem, tuple[RecipientState, ...], bytes] | None"]


@dataclass(frozen=True)
class _Announced:
    """A message whose MAIL, RCPTs and DATA went out behind the previous message's content."""

    item: QueueItem
    wire: bytes


class SMTPSession:
    """One open ESMTP connection to one server, good for several transactions."""

    def __init__(
        self,
        protocol: SMTPClientProtocol,
        *,
        host_name: str,
        address: str,
        settings: RelaySettings,
        hostname: str,
    ) -> None:
        self.protocol = protocol
        self.host_name = host_name
        self.address = address
        self.settings = settings
        self.hostname = hostname
        self.capabilities: dict[str, str] = {}
        self.tls = ""
        self.transactions = 0
        self.dirty = False
        self._mail_answered = False
        self._announced: _Announced | None = None  # the next message's envelope is sent

    @property
    def remote(self) -> str:
        """``host[address]`` as mail logs print it."""
        return f"{self.host_name}[{self.address}]"

    @property
    def usable(self) -> bool:
        """Still connected and below the per-connection message limit."""
        return (
            not self.protocol.closed
            and self.transactions < self.settings.max_messages_per_connection
        )

    async def _command(self, line: str, timeout: float) -> Reply:
        self.protocol.send(line.encode("utf-8") + b"\r\n")
        return await self.protocol.expect(timeout)

    async def start(
        self,
        *,
        tls_options: Any,
        require_tls: bool,
        auth: tuple[str, str] | None,
        check_loop: bool,
        implicit_tls: bool = False,
    ) -> None:
        """Greeting, EHLO, STARTTLS and AUTH; raises ``SessionFailed`` or ``LoopDetected``.

        With ``implicit_tls`` the connection is already under TLS (RFC 8314 3.3)."""
        s = self.settings
        try:
            greeting = await self.protocol.expect(s.greeting_timeout)
        except SessionFailed as e:
            e.during_tls = implicit_tls
            raise
        if implicit_tls:
            self.tls = self.protocol.tls_description() or "TLS"
            tls_options = None  # no STARTTLS inside TLS
        if greeting.code != 220:
            raise SessionFailed(f"host {self.remote} refused to talk to me: {greeting}",
                                greeting.status if greeting.code >= 400 else "4.4.2")
        greeted_name = greeting.lines[0].split(" ", 1)[0].lower() if greeting.lines else ""
        if check_loop and greeted_name == self.hostname.lower():
            raise LoopDetected(f"host {self.remote} greeted me with my own hostname {greeted_name}")
        await self._ehlo()
        if "STARTTLS" in self.capabilities and tls_options is not None:
            reply = await self._command("STARTTLS", s.command_timeout)
            if reply.code == 220:
                self.protocol.transport.startTLS(tls_options)  # type: ignore[union-attr]
                try:
                    await self._ehlo()  # RFC 3207 4.2: forget what we knew, ask again
                except SessionFailed as e:
                    e.during_tls = True
                    raise
                self.tls = self.protocol.tls_description() or "TLS"
            elif require_tls:
                raise SessionFailed(f"host {self.remote} refused STARTTLS: {reply}", "4.7.5")
        if require_tls and not self.tls:
            raise SessionFailed(f"TLS is required, but host {self.remote} did not offer STARTTLS",
                                "4.7.4")
        if auth is not None:
            await self._auth(*auth)

    async def _ehlo(self) -> None:
        s = self.settings
        reply = await self._command(f"EHLO {self.hostname}", s.command_timeout)
        if reply.code != 250:
            if reply.code not in (500, 502, 504, 550):
                raise SessionFailed(f"host {self.remote} refused EHLO: {reply}", "4.4.2")
            reply = await self._command(f"HELO {self.hostname}", s.command_timeout)
            if reply.code != 250:
                raise SessionFailed(f"host {self.remote} refused HELO: {reply}", "4.4.2")
            self.capabilities = {}
            return
        caps: dict[str, str] = {}
        for line in reply.lines[1:]:
            keyword, _, params = line.partition(" ")
            caps[keyword.upper()] = params.strip()
        self.capabilities = caps

    async def _auth(self, user: str, password: str) -> None:
        mechanisms = self.capabilities.get("AUTH", "").upper().split()
        if "PLAIN" not in mechanisms:
            raise SessionFailed(f"host {self.remote} does not offer AUTH PLAIN", "4.7.0")
        token = base64.b64encode(f"\0{user}\0{password}".encode()).decode()
        reply = await self._command(f"AUTH PLAIN {token}", self.settings.command_timeout)
        if reply.code != 235:
            # Like Postfix: a refused login defers the mail until the operator fixes it.
            raise SessionFailed(f"SASL authentication failed; server {self.remote} said: {reply}",
                                "4.7.0")

    async def reset(self) -> None:
        """RSET before reusing the connection; raises ``SessionFailed`` if it is not usable."""
        reply = await self._command("RSET", self.settings.command_timeout)
        if reply.code != 250:
            raise SessionFailed(f"RSET refused: {reply}")
        self.dirty = False

    async def quit(self) -> None:
        """QUIT and close, ignoring failures."""
        if self._announced is not None:
            # The server waits for the content of the announced message (or its DATA reply):
            # QUIT would read as content. Cutting the connection abandons that transaction.
            self._announced = None
            self.protocol.abort()
            return
        try:
            if not self.protocol.closed:
                self.protocol.send(b"QUIT\r\n")
                await self.protocol.expect(self.settings.command_timeout)
        except SessionFailed:
            pass
        finally:
            if self.protocol.transport is not None and not self.protocol.closed:
                self.protocol.transport.loseConnection()  # type: ignore[misc]

    def _outcome(self, reply: Reply, command: str) -> Outcome:
        text = f"{reply} (in reply to {command} command)"
        if reply.code < 300:
            # RFC 3461 4.2: a DSN-capable next hop reports success itself; otherwise "relayed".
            action = "passed" if "DSN" in self.capabilities else "relayed"
            return Outcome.done(text, self.host_name, action)
        if reply.code < 500:
            return Outcome.transient(text, reply.status, self.host_name)
        return Outcome.permanent(text, reply.status, self.host_name)

    async def send(
        self,
        item: QueueItem,
        recipients: tuple[RecipientState, ...],
        message: bytes,
        take_next: NextJob | None = None,
    ) -> dict[str, Outcome]:
        """One transaction; an outcome for every recipient.

        Raises ``SessionFailed`` only when the connection proved unusable before the
        transaction began (a failed RSET): the caller may then try another connection. A
        failure during the transaction makes every recipient without a final answer transient.

        ``take_next()``, when given, is asked for the next message for this connection just as
        this one's content goes out; if it gives one, that message's MAIL, RCPTs and DATA go in
        the same write (RFC 2920 3.1: message content may be the first "command" of a group),
        and the caller must send it next on this session. Its content still waits for that call.
        """
        announced = self._announced
        if announced is not None and announced.item is not item:
            self.protocol.abort()
            raise SessionFailed("internal error: another message was announced on this connection")
        if self.dirty and announced is None:
            await self.reset()
        reused = self.transactions > 0
        self._mail_answered = False
        outcomes: dict[str, Outcome] = {}
        try:
            await self._transaction(item, recipients, message, outcomes, take_next)
        except SessionFailed as e:
            self.protocol.abort()
            if reused and not self._mail_answered:
                # The kept-open connection died before this transaction began (the server
                # timed it out): nothing was sent, so the caller may try a fresh connection.
                raise
            failed = Outcome.transient(f"{e.text} with {self.remote}", e.status, self.host_name)
            for r in recipients:
                outcomes.setdefault(r.address, failed)
        return outcomes

    def _refusal(
        self, item: QueueItem, recipients: tuple[RecipientState, ...], wire: bytes
    ) -> Outcome | None:
        """A permanent outcome for a message this server cannot take at all, else None."""
        caps = self.capabilities
        if _needs_utf8(item, recipients) and "SMTPUTF8" not in caps:
            text = f"SMTPUTF8 is required, but was not offered by host {self.remote}"
            return Outcome.permanent(text, "5.6.7", self.host_name)
        size_limit = caps.get("SIZE", "")
        if size_limit.isdigit() and int(size_limit) and len(wire) > int(size_limit):
            text = f"message size {len(wire)} exceeds size limit {size_limit} of server {self.remote}"
            return Outcome.permanent(text, "5.3.4", self.host_name)
        return None

    def _envelope(
        self, item: QueueItem, recipients: tuple[RecipientState, ...], wire: bytes
    ) -> list[str]:
        """MAIL FROM with its parameters, then one RCPT TO per recipient."""
        caps = self.capabilities
        params = []
        if "SIZE" in caps:
            params.append(f"SIZE={len(wire)}")
        if item.body_8bit and "8BITMIME" in caps:
            params.append("BODY=8BITMIME")
        if _needs_utf8(item, recipients):
            params.append("SMTPUTF8")
        dsn = "DSN" in caps
        if dsn and item.ret:
            params.append(f"RET={item.ret}")
        if dsn and item.envid:
            params.append(f"ENVID={xtext(item.envid)}")
        commands = [f"MAIL FROM:<{item.sender}>" + "".join(" " + p for p in params)]
        for r in recipients:
            rcpt = f"RCPT TO:<{r.address}>"
            if dsn and r.notify:
                rcpt += " NOTIFY=" + ",".join(r.notify)
            if dsn and r.orcpt:
                orcpt = r.orcpt if ";" in r.orcpt else "rfc822;" + r.orcpt
                kind, _, value = orcpt.partition(";")
                rcpt += f" ORCPT={kind};{xtext(value)}"
            commands.append(rcpt)
        return commands

    def _announce(self, take_next: NextJob | None) -> None:
        """Send the next message's MAIL, RCPTs and DATA behind this one's content."""
        if (
            take_next is None
            or "PIPELINING" not in self.capabilities
            or self.transactions >= self.settings.max_messages_per_connection
        ):
            return
        following = take_next()
        if following is None:
            return
        item, recipients, message = following
        wire = to_wire(message)
        if self._refusal(item, recipients, wire) is not None:
            return  # answered without a word to the server when its turn comes
        commands = self._envelope(item, recipients, wire) + ["DATA"]
        self.protocol.send("".join(c + "\r\n" for c in commands).encode("utf-8"))
        self._announced = _Announced(item, wire)

    async def _transaction(
        self,
        item: QueueItem,
        recipients: tuple[RecipientState, ...],
        message: bytes,
        outcomes: dict[str, Outcome],
        take_next: NextJob | None,
    ) -> None:
        s = self.settings
        caps = self.capabilities
        announced, self._announced = self._announced, None
        if announced is not None:
            wire = announced.wire  # MAIL, RCPTs and DATA went out behind the last message
        else:
            wire = to_wire(message)
            refusal = self._refusal(item, recipients, wire)
            if refusal is not None:
                for r in recipients:
                    outcomes[r.address] = refusal
                return
        after_failure = self.dirty  # the last transaction did not end well
        self.dirty = True
        self.transactions += 1
        pipelining = "PIPELINING" in caps
        if announced is not None or pipelining:
            if announced is None:
                # RFC 2920 3.1: MAIL, every RCPT and DATA go in one write; replies come in order.
                commands = self._envelope(item, recipients, wire) + ["DATA"]
                self.protocol.send("".join(c + "\r\n" for c in commands).encode("utf-8"))
            mail = await self.protocol.expect(s.command_timeout)
            rcpt_replies = [await self.protocol.expect(s.command_timeout) for _ in recipients]
            data = await self.protocol.expect(s.data_init_timeout)
        else:
            commands = self._envelope(item, recipients, wire)
            mail = await self._command(commands[0], s.command_timeout)
            rcpt_replies = []
            if mail.code == 250:
                for c in commands[1:]:
                    rcpt_replies.append(await self._command(c, s.command_timeout))
            data = None
        self._mail_answered = True
        if mail.code != 250:
            if data is not None and data.code == 354:
                await self._finish_empty_data()
            bad = self._outcome(mail, "MAIL FROM")
            if announced is not None and after_failure:
                # Sent before the last message's end was answered, which went wrong: the
                # server may not have been ready for it. Only a fresh try can tell.
                bad = Outcome.transient(bad.reply, "4.0.0", self.host_name)
            for r in recipients:
                outcomes[r.address] = bad
            return
        accepted = []
        for r, reply in zip(recipients, rcpt_replies):
            if reply.code in (250, 251):
                accepted.append(r)
            else:
                outcomes[r.address] = self._outcome(reply, "RCPT TO")
        if data is None and not pipelining:
            data = await self._command("DATA", s.data_init_timeout) if accepted else None
        assert data is not None or not accepted
        if data is None:
            return
        if data.code != 354:
            for r in accepted:
                outcomes[r.address] = self._outcome(data, "DATA")
            return
        if not accepted:
            await self._finish_empty_data()
            return
        await BodyWriter(self.protocol, wire, s.data_block_timeout).run()
        self._announce(take_next)
        final = await self.protocol.expect(s.data_end_timeout)
        for r in accepted:
            outcomes[r.address] = self._outcome(final, "end of DATA")
        if final.code == 250:
            self.dirty = False

    async def _finish_empty_data(self) -> None:
        # RFC 2920 3.1: DATA accepted although no recipient was; send an empty message.
        self.protocol.send(b".\r\n")
        await self.protocol.expect(self.settings.data_end_timeout)


class LoopDetected(Exception):
    """The remote server is ourselves (RFC 5321 5.1): a permanent failure."""


async def open_session(
    reactor: Any,
    clock: Any,
    *,
    host_name: str,
    address: str,
    port: int,
    settings: RelaySettings,
    hostname: str,
    tls_options: Any,
    require_tls: bool,
    auth: tuple[str, str] | None,
    check_loop: bool,
    implicit_tls: bool = False,
) -> SMTPSession:
    """Connect to one address and get through greeting, EHLO, STARTTLS and AUTH."""
    from twisted.internet.endpoints import (
        TCP4ClientEndpoint,
        TCP6ClientEndpoint,
        connectProtocol,
        wrapClientTLS,
    )

    endpoint_type = TCP6ClientEndpoint if ":" in address else TCP4ClientEndpoint
    for options in (tls_options, None):
        endpoint: Any = endpoint_type(reactor, address, port, timeout=settings.connect_timeout)
        if implicit_tls:
            endpoint = wrapClientTLS(tls_options, endpoint)
        protocol = SMTPClientProtocol(clock)
        try:
            await connectProtocol(endpoint, protocol)
        except Exception as e:  # noqa: BLE001 - every connect error is transient
            raise SessionFailed(f"connect to {host_name}[{address}]:{port}: {e}", "4.4.1") from None
        session = SMTPSession(protocol, host_name=host_name, address=address, settings=settings,
                              hostname=hostname)
        try:
            await session.start(tls_options=options, require_tls=require_tls, auth=auth,
                                check_loop=check_loop, implicit_tls=implicit_tls)
        except SessionFailed as e:
            protocol.abort()
            if e.during_tls and not require_tls and options is not None:
                # Opportunistic TLS failed: like Postfix, deliver in plaintext rather than not.
                log.info("TLS with {remote} failed ({err}); retrying without TLS",
                         remote=session.remote, err=e.text)
                continue
            raise
        except BaseException:
            protocol.abort()
            raise
        return session
    raise SessionFailed(f"cannot talk to {host_name}[{address}]", "4.4.2")  # not reached

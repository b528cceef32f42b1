"""Sending a message as a POP3 multi-line response (RFC 1939 section 3), streamed from disk.

- :class:`DotStuffer` turns raw message bytes into the wire form incrementally: every line ends
  in CRLF (bare LF becomes CRLF), a line starting with "." gets another "." in front, and the
  response ends with ".\\r\\n". It is correct when a line, a CRLF or a leading dot spans two
  chunks.
- :class:`TopFilter` cuts a message after its header and the first *n* body lines (TOP).
- :class:`MessageSender` is an ``IPushProducer`` registered on the transport: it reads the file in
  fixed-size chunks and writes them while the transport wants more, so a 50 MB message never sits
  in memory whole. A message that fits in one chunk goes out in a single write together with its
  status line, which matters for latency (see ARCHITECTURE.md, Nagle and delayed ACK).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import IO, Any

from twisted.internet.interfaces import IPushProducer
from twisted.logger import Logger
from zope.interface import implementer

CHUNK_SIZE = 64 * 1024
TERMINATOR = b".\r\n"


class DotStuffer:
    """Incremental CRLF normalisation and dot-stuffing of one message."""

    __slots__ = ("_at_line_start", "_pending_cr")

    def __init__(self) -> None:
        self._at_line_start = True
        self._pending_cr = False

    def feed(self, chunk: bytes) -> bytes:
        """Encode the next chunk of the raw message; may hold back a final CR."""
        if self._pending_cr:
            chunk = b"\r" + chunk
            self._pending_cr = False
        if chunk.endswith(b"\r"):
            # The CR may be the first half of a CRLF that the next chunk completes.
            chunk = chunk[:-1]
            self._pending_cr = True
        if not chunk:
            return b""
        lines = chunk.count(b"\n")
        if lines:
            if b"\r" not in chunk:  # LF line ends (as Dovecot and mutt write Maildir files)
                chunk = chunk.replace(b"\n", b"\r\n")
            elif chunk.count(b"\r\n") != lines:
                # Mixed: CRLF -> LF -> CRLF normalises both; a lone CR is kept as it is.
                chunk = chunk.replace(b"\r\n", b"\n").replace(b"\n", b"\r\n")
            if b"\n." in chunk:
                chunk = chunk.replace(b"\n.", b"\n..")
        if self._at_line_start and chunk[:1] == b".":
            chunk = b"." + chunk
        self._at_line_start = chunk.endswith(b"\n")
        return chunk

    def finish(self) -> bytes:
        """Whatever was held back, a line end if the message did not end with one, and "."."""
        tail = b""
        if self._pending_cr:
            self._pending_cr = False
            tail = b"\r\n"  # a final CR with no LF after it ends the last line
            self._at_line_start = True
        if not self._at_line_start:
            tail += b"\r\n"
        return tail + TERMINATOR


def encode_message(raw: bytes) -> bytes:
    """The whole multi-line body of a small message in wire form (ends with ".\\r\\n")."""
    stuffer = DotStuffer()
    return stuffer.feed(raw) + stuffer.finish()


class TopFilter:
    """Passes the header, the empty line and the first ``lines`` body lines (RFC 1939 TOP)."""

    __slots__ = ("_in_header", "_line_head", "_remaining", "done")

    def __init__(self, lines: int) -> None:
        self._remaining = lines
        self._in_header = True
        self._line_head = b""  # the first bytes of the current header line (at most 2)
        self.done = False

    def feed(self, chunk: bytes) -> bytes:
        """The part of ``chunk`` to send; sets ``done`` once the cut-off is reached."""
        if self.done:
            return b""
        pos = 0
        if self._in_header:
            while True:
                nl = chunk.find(b"\n", pos)
                if nl < 0:
                    self._line_head = (self._line_head + chunk[pos : pos + 2])[:2]
                    return chunk
                head = (self._line_head + chunk[pos : min(nl, pos + 2)])[:2]
                self._line_head = b""
                pos = nl + 1
                if head in (b"", b"\r"):
                    self._in_header = False
                    break
        if self._remaining <= 0:
            self.done = True
            return chunk[:pos]
        count = chunk.count(b"\n", pos)
        if count < self._remaining:
            self._remaining -= count
            return chunk
        while self._remaining > 0:
            pos = chunk.index(b"\n", pos) + 1
            self._remaining -= 1
        self.done = True
        return chunk[:pos]


@implementer(IPushProducer)
class MessageSender:
    """Streams one message file to a transport as a multi-line response.

    ``start()`` registers the sender as a streaming producer and writes chunks until the
    transport pauses it; ``resumeProducing`` continues. At most ``max_chunks_per_turn`` chunks
    are written per reactor turn, so a transport that never pauses cannot make it hold the whole
    message (the rest follows from ``reactor.callLater(0, ...)``). ``on_done`` is called once,
    with None on success or the exception that stopped it.
    """

    log = Logger()

    def __init__(
        self,
        transport: Any,
        reactor: Any,
        source: IO[bytes],
        status_line: bytes,
        on_done: Callable[[BaseException | None], None],
        top_lines: int | None = None,
        chunk_size: int = CHUNK_SIZE,
        max_chunks_per_turn: int = 16,
        on_progress: Callable[[], None] | None = None,
    ) -> None:
        self._transport = transport
        self._reactor = reactor
        self._source = source
        self._head = status_line
        self._on_done = on_done
        self._on_progress = on_progress
        self._top = TopFilter(top_lines) if top_lines is not None else None
        self._stuffer = DotStuffer()
        self._chunk_size = chunk_size
        self._max_chunks = max_chunks_per_turn
        self._paused = False
        self._pumping = False
        self._scheduled: Any = None
        self._finished = False
        self.max_read = 0  # the largest single read, for tests of the memory bound

    def start(self) -> None:
        """Register on the transport and write until paused or done."""
        self._transport.registerProducer(self, True)
        self._pump()

    # IPushProducer

    def pauseProducing(self) -> None:
        self._paused = True

    def resumeProducing(self) -> None:
        self._paused = False
        if not self._finished:
            self._pump()

    def stopProducing(self) -> None:
        """The connection went away: close the file and report it."""
        self._finish(ConnectionError("connection lost while sending"), unregister=False)

    # internals

    def _read(self) -> bytes:
        data = self._source.read(self._chunk_size)
        self.max_read = max(self.max_read, len(data))
        return data

    def _pump(self) -> None:
        if self._pumping or self._finished:
            return
        self._pumping = True
        self._scheduled = None
        try:
            turns = 0
            while not self._paused and not self._finished:
                if turns >= self._max_chunks:
                    self._scheduled = self._reactor.callLater(0, self._pump)
                    return
                turns += 1
                data = self._read()
                eof = not data
                if self._top is not None and data:
                    data = self._top.feed(data)
                    eof = self._top.done
                out = self._stuffer.feed(data) if data else b""
                if eof:
                    out += self._stuffer.finish()
                if self._head:
                    out = self._head + out
                    self._head = b""
                if out:
                    self._transport.write(out)
                if self._on_progress is not None:
                    self._on_progress()
                if eof:
                    self._finish(None, unregister=True)
        except Exception as e:  # noqa: BLE001 - I/O error half-way: the reply cannot complete
            self.log.failure("pop3: error while sending a message")
            self._finish(e, unregister=True)
        finally:
            self._pumping = False

    def _finish(self, error: BaseException | None, unregister: bool) -> None:
        if self._finished:
            return
        self._finished = True
        if self._scheduled is not None and self._scheduled.active():
            self._scheduled.cancel()
        self._scheduled = None
        try:
            self._source.close()
        finally:
            if unregister:
                self._transport.unregisterProducer()
            self._on_done(error)

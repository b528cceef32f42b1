"""TRANSACTION-state commands (RFC 1939 section 5 and TOP/UIDL of section 7) and QUIT with
the UPDATE state (section 6). RETR and TOP stream from the store (``mailsuite.pop3.stream``).

Combined with the AUTHORIZATION commands in :class:`mailsuite.pop3.protocol.Pop3Protocol`.
"""

from __future__ import annotations

from mailsuite.errors import MessageNotFound, StoreError
from mailsuite.pop3 import replies as R
from mailsuite.pop3.connection import Pop3Connection
from mailsuite.pop3.maildrop import AlreadyDeleted, Maildrop, NoSuchMessage
from mailsuite.pop3.states import State
from mailsuite.pop3.stream import MessageSender, TopFilter, encode_message


class BadArgument(Exception):
    """A message number or line count that is not a plain decimal number."""


def parse_number(text: str) -> int:
    """A decimal number of at most 10 digits (RFC 1939 section 3: numbers are decimal)."""
    if not text or len(text) > 10 or not text.isascii() or not text.isdigit():
        raise BadArgument(text)
    return int(text)


class TransactionCommands(Pop3Connection):
    """STAT, LIST, UIDL, RETR, TOP, DELE, RSET, NOOP and QUIT for :class:`Pop3Protocol`."""

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
            self._stream_done()  # _process() does not nest: it returns if already running

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

    def _stream_done(self) -> None:
        self._busy = False
        if not self._disconnected:
            self._process()

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

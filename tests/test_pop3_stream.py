"""Byte-stuffing, CRLF normalisation and TOP cut-off, whole and across chunk boundaries."""

from __future__ import annotations

import io

from hypothesis import given, settings
from hypothesis import strategies as st
from twisted.internet import task
from twisted.internet.testing import StringTransport

from mailsuite.pop3.stream import DotStuffer, MessageSender, TopFilter, encode_message


def reference_encode(raw: bytes) -> bytes:
    """A slow, obviously-correct model: split into lines, fix endings, stuff dots."""
    if not raw:
        return b".\r\n"
    lines = raw.replace(b"\r\n", b"\n").split(b"\n")
    ended = raw.endswith(b"\n")
    if ended:
        lines = lines[:-1]
    out = b""
    for index, line in enumerate(lines):
        if line.endswith(b"\r") and index == len(lines) - 1 and not ended:
            line = line[:-1]  # a final CR with nothing after it ends the last line
        out += (b"." + line if line.startswith(b".") else line) + b"\r\n"
    return out + b".\r\n"


def chunked(raw: bytes, size: int) -> bytes:
    stuffer = DotStuffer()
    out = b"".join(stuffer.feed(raw[i : i + size]) for i in range(0, len(raw), size))
    return out + stuffer.finish()


def test_leading_dot_is_doubled() -> None:
    assert encode_message(b"a\r\n.b\r\n..c\r\n") == b"a\r\n..b\r\n...c\r\n.\r\n"


def test_first_line_dot_is_doubled() -> None:
    assert encode_message(b".\r\n") == b"..\r\n.\r\n"


def test_bare_lf_becomes_crlf() -> None:
    assert encode_message(b"a\nb\n") == b"a\r\nb\r\n.\r\n"


def test_missing_final_line_end_is_added() -> None:
    assert encode_message(b"a\r\nb") == b"a\r\nb\r\n.\r\n"


def test_crlf_split_across_chunks() -> None:
    assert chunked(b"ab\r\n.c\r\n", 3) == b"ab\r\n..c\r\n.\r\n"


def test_dot_at_start_of_chunk_after_line_end() -> None:
    assert chunked(b"ab\r\n.c\r\n", 4) == b"ab\r\n..c\r\n.\r\n"


def test_empty_message() -> None:
    assert encode_message(b"") == b".\r\n"


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from([b"a", b".", b"\r", b"\n", b"\r\n", b"..", b"x.y"]), max_size=40),
    st.integers(min_value=1, max_value=7),
)
def test_any_chunking_matches_the_model(parts: list[bytes], size: int) -> None:
    raw = b"".join(parts)
    assert chunked(raw, size) == reference_encode(raw)


def top(raw: bytes, lines: int, size: int) -> bytes:
    f = TopFilter(lines)
    out = b""
    for i in range(0, len(raw), size):
        out += f.feed(raw[i : i + size])
        if f.done:
            break
    return out


MESSAGE = b"Subject: x\r\nFrom: a@b\r\n\r\nline1\r\nline2\r\nline3\r\n"


def test_top_zero_lines_is_header_and_blank_line() -> None:
    assert top(MESSAGE, 0, 1000) == b"Subject: x\r\nFrom: a@b\r\n\r\n"


def test_top_two_lines_with_tiny_chunks() -> None:
    assert top(MESSAGE, 2, 1) == b"Subject: x\r\nFrom: a@b\r\n\r\nline1\r\nline2\r\n"


def test_top_more_lines_than_body_is_whole_message() -> None:
    assert top(MESSAGE, 99, 5) == MESSAGE


def test_top_with_bare_lf_blank_line() -> None:
    assert top(b"A: b\n\nx\ny\n", 1, 2) == b"A: b\n\nx\n"


def test_sender_streams_in_chunks_and_never_reads_more_than_one() -> None:
    raw = b"".join(b".line %d\n" % i for i in range(2000))
    transport = StringTransport()
    clock = task.Clock()
    done: list[object] = []
    sender = MessageSender(
        transport,
        clock,
        io.BytesIO(raw),
        b"+OK\r\n",
        done.append,
        chunk_size=7,
        max_chunks_per_turn=3,
    )
    sender.start()
    for _ in range(10000):
        if done:
            break
        clock.advance(0)
    assert done == [None]
    assert sender.max_read == 7
    assert transport.value() == b"+OK\r\n" + reference_encode(raw)


def test_sender_stops_writing_while_paused() -> None:
    transport = StringTransport()
    clock = task.Clock()
    done: list[object] = []
    sender = MessageSender(
        transport, clock, io.BytesIO(b"x" * 100), b"+OK\r\n", done.append, chunk_size=10
    )
    sender.pauseProducing()
    sender.start()
    assert transport.value() == b""
    sender.resumeProducing()
    assert done == [None]
    assert transport.producer is None


def test_sender_stop_producing_closes_the_file() -> None:
    source = io.BytesIO(b"x" * 100)
    done: list[object] = []
    sender = MessageSender(
        StringTransport(), task.Clock(), source, b"+OK\r\n", done.append, chunk_size=10
    )
    sender.pauseProducing()
    sender.start()
    sender.stopProducing()
    assert source.closed and isinstance(done[0], ConnectionError)


def reference_top(raw: bytes, lines: int) -> bytes:
    """Model: everything up to the first empty line, then ``lines`` more lines."""
    out, pos, in_header = b"", 0, True
    remaining = lines
    while pos < len(raw):
        nl = raw.find(b"\n", pos)
        line = raw[pos:] if nl < 0 else raw[pos : nl + 1]
        if not in_header:
            if remaining == 0:
                break
            remaining -= 1
        out += line
        if in_header and line in (b"\n", b"\r\n"):
            in_header = False
        pos += len(line)
    return out


@settings(max_examples=300, deadline=None)
@given(
    st.lists(st.sampled_from([b"H: v", b"\r\n", b"\n", b"\r", b"x", b""]), max_size=30),
    st.integers(min_value=0, max_value=4),
    st.integers(min_value=1, max_value=6),
)
def test_top_any_chunking_matches_the_model(parts: list[bytes], lines: int, size: int) -> None:
    raw = b"".join(parts)
    assert top(raw, lines, size) == reference_top(raw, lines)

"""Property tests: whatever bytes a client sends, the server answers without a traceback
(never ``[SERVERBUG]``), keeps its framing, and stays responsive."""

from __future__ import annotations

import re

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from test_imap_helpers import ALICE, Client, deliver, make_ctx, message

COMMANDS = ["FETCH", "UID FETCH", "STORE", "UID STORE", "SEARCH", "UID SEARCH", "COPY", "MOVE",
            "UID EXPUNGE", "LIST", "LSUB", "STATUS", "SELECT", "EXAMINE", "CREATE", "RENAME",
            "APPEND", "ENABLE", "ID", "GETQUOTAROOT", "NOOP", "EXPUNGE", "CHECK", "NAMESPACE"]
TOKENS = ["1", "*", "1:*", "*:1", "0", "4294967295", "1:4294967295", "2,3", "(", ")", "[", "]",
          "<0.5>", "BODY[", "BODY.PEEK[1.2.MIME]", "HEADER.FIELDS", "(FLAGS UID)", "FLAGS",
          "+FLAGS", "-FLAGS.SILENT", "\\Seen", "\\Bogus", "$x", "INBOX", "\"INBOX\"", "\"\"",
          "\"a\\\"b\"", "NIL", "OR", "NOT", "ALL", "SUBJECT", "x", "UID", "CHANGEDSINCE",
          "(CHANGEDSINCE 1 VANISHED)", "RETURN", "(MIN MAX)", "CHARSET", "UTF-8", "&Jjo-",
          "Sent", "%", "*", "(MESSAGES UNSEEN)", "{3+}\r\nabc", "\"01-Jan-2020 00:00:00 +0000\"",
          "1-Jan-2020", "ENVELOPE", "BODYSTRUCTURE", "RFC822", "(QRESYNC (1 1))", "(CONDSTORE)"]


@st.composite
def command_lines(draw):  # type: ignore[no-untyped-def]
    name = draw(st.sampled_from(COMMANDS))
    args = draw(st.lists(st.sampled_from(TOKENS), max_size=6))
    return (name + "".join(" " + a for a in args)).encode()


def session() -> Client:
    ctx = make_ctx()
    for n in range(3):
        deliver(ctx, ALICE, message(n))
    c = Client(ctx)
    c.login()
    c.select()
    return c


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(command_lines(), min_size=1, max_size=5))
def test_grammar_fuzz_never_serverbug(lines: list[bytes]) -> None:
    c = session()
    for line in lines:
        out = c.cmd(line)
        if out.startswith(b"+ "):  # a synchronising literal was announced: finish it
            out += c.send(b"abc\r\n")
        assert b"SERVERBUG" not in out, (line, out)
    if not c.transport.disconnecting:
        assert c.status(c.cmd("NOOP")).startswith(b"OK")


@settings(max_examples=200, deadline=None)
@given(st.binary(max_size=300))
def test_random_bytes_never_serverbug(data: bytes) -> None:
    c = session()
    out = c.send(data + b"\r\n")
    assert b"SERVERBUG" not in out
    if not c.transport.disconnecting:
        assert b"z OK" in c.send(b"\r\nz NOOP\r\n") or c.transport.disconnecting


DIALOG = (b"a SELECT INBOX\r\nb FETCH 1:* (UID FLAGS)\r\nc APPEND INBOX {5}\r\nhello\r\n"
          b"d APPEND INBOX {3+}\r\nabc\r\ne SEARCH SUBJECT {1+}\r\n1\r\nf STORE 1 +FLAGS (\\Seen)\r\n"
          b"g " + b"x" * 100 + b"\r\nh NOOP\r\n")


def _normalise(output: bytes) -> bytes:
    """Continuations depend on the chunking; UIDVALIDITY on the second the store was made."""
    output = output.replace(b"+ Ready for literal data\r\n", b"")
    return re.sub(rb"(UIDVALIDITY|APPENDUID) \d+", rb"\1 n", output)


@settings(max_examples=100, deadline=None)
@given(st.lists(st.integers(min_value=1, max_value=len(DIALOG)), max_size=30))
def test_any_chunking_gives_the_same_dialog(cuts: list[int]) -> None:
    whole = session()
    expected = _normalise(whole.send(DIALOG))
    chunked = session()
    out = b""
    previous = 0
    for cut in sorted(set(cuts)) + [len(DIALOG)]:
        out += chunked.send(DIALOG[previous:cut])
        previous = cut
    assert _normalise(out) == expected

"""mailsuite.imap.render: IMAP strings, ENVELOPE and BODYSTRUCTURE syntax (RFC 3501)."""

from __future__ import annotations

from mailsuite.imap import render
from mailsuite.message import summarize

try:
    from tests.test_message_corpus import plain
except ImportError:
    from test_message_corpus import plain


def test_quoted_string_escapes_quote_and_backslash() -> None:
    assert render.string('a "b" \\c') == b'"a \\"b\\" \\\\c"'


def test_string_with_crlf_is_a_literal() -> None:
    assert render.string(b"a\r\nb") == b"{4}\r\na\r\nb"


def test_nstring_none_is_nil() -> None:
    assert render.nstring(None) == b"NIL"


def test_rfc3501_example_envelope() -> None:
    assert render.envelope(summarize(plain().raw)) == (
        b'("Mon, 7 Feb 1994 21:52:25 -0800 (PST)" "afternoon meeting" '
        b'(("Fred Foobar" NIL "foobar" "Blurdybloop.example")) '
        b'(("Fred Foobar" NIL "foobar" "Blurdybloop.example")) '
        b'(("Fred Foobar" NIL "foobar" "Blurdybloop.example")) '
        b'((NIL NIL "mooch" "owatagu.siam.edu.example")) NIL NIL NIL '
        b'"<B27397-0100000@Blurdybloop.example>")'
    )


def test_rfc3501_example_body() -> None:
    assert render.bodystructure(summarize(plain().raw), extensible=False) == (
        b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 55 1)'
    )

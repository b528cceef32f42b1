"""mailsuite.imap.render: IMAP strings, ENVELOPE, BODY and BODYSTRUCTURE (RFC 3501 7.4.2).

The expected texts were worked out from RFC 3501's grammar and then compared with what
Dovecot 2.3.19 sends for the same messages (run through ``/usr/lib/dovecot/imap`` in PREAUTH
mode on a temporary Maildir): they agree except that we upper-case type, subtype, encoding,
parameter names and disposition types (clients compare these case-insensitively; RFC 3501's
examples are upper case).
"""

from __future__ import annotations

from mailsuite.imap import render
from mailsuite.message import summarize

try:
    from tests import test_message_corpus as corpus
except ImportError:
    import test_message_corpus as corpus  # type: ignore[no-redef]


# --- strings --------------------------------------------------------------------------------


def test_quoted_string_escapes_quote_and_backslash() -> None:
    assert render.string('a "b" \\c') == b'"a \\"b\\" \\\\c"'


def test_string_with_crlf_is_a_literal() -> None:
    assert render.string(b"a\r\nb") == b"{4}\r\na\r\nb"


def test_string_with_8bit_is_a_literal() -> None:
    assert render.string("caf\xe9") == b"{4}\r\ncaf\xe9"


def test_long_string_is_a_literal() -> None:
    assert render.string("x" * 2000).startswith(b"{2000}\r\n")


def test_empty_string_is_quoted() -> None:
    assert render.string("") == b'""'


def test_nstring_none_is_nil() -> None:
    assert render.nstring(None) == b"NIL"


def test_literal_replaces_nul_keeping_length() -> None:
    assert render.literal(b"a\x00b") == b"{3}\r\na\x80b"


def test_astring_atom_and_quoted() -> None:
    assert render.astring("INBOX") == b"INBOX"
    assert render.astring("two words") == b'"two words"'
    assert render.astring("NIL") == b'"NIL"'


def test_unicode_beyond_latin1_goes_as_utf8() -> None:
    assert render.string("\u20ac") == b"{3}\r\n\xe2\x82\xac"


# --- ENVELOPE -------------------------------------------------------------------------------


def test_rfc3501_example_envelope() -> None:
    assert render.envelope(summarize(corpus.plain().raw)) == (
        b'("Mon, 7 Feb 1994 21:52:25 -0800 (PST)" "afternoon meeting" '
        b'(("Fred Foobar" NIL "foobar" "Blurdybloop.example")) '
        b'(("Fred Foobar" NIL "foobar" "Blurdybloop.example")) '
        b'(("Fred Foobar" NIL "foobar" "Blurdybloop.example")) '
        b'((NIL NIL "mooch" "owatagu.siam.edu.example")) NIL NIL NIL '
        b'"<B27397-0100000@Blurdybloop.example>")'
    )


def test_group_envelope() -> None:
    assert render.envelope(summarize(corpus.groups().raw)) == (
        b'(NIL "groups" ((NIL NIL "boss" "example.com")) ((NIL NIL "boss" "example.com")) '
        b'((NIL NIL "boss" "example.com")) ((NIL NIL "undisclosed-recipients" NIL)(NIL NIL NIL NIL)) '
        b'((NIL NIL "Team" NIL)(NIL NIL "alice" "example.com")("Bob B." NIL "bob" "example.com")'
        b'(NIL NIL NIL NIL)(NIL NIL "carol" "example.com")) NIL NIL NIL)'
    )


def test_envelope_without_from_keeps_sender() -> None:
    assert render.envelope(summarize(corpus.no_date_from().raw)) == (
        b'(NIL "orphan" NIL (("Agent" NIL "agent" "example.com")) NIL NIL NIL NIL NIL NIL)'
    )


def test_8bit_envelope_strings_are_literals_of_the_original_octets() -> None:
    env = render.envelope(summarize(corpus.eight_bit_headers().raw))
    assert env.startswith(
        b"(NIL {17}\r\nGr\xc3\xbc\xc3\x9fe aus K\xc3\xb6ln (({5}\r\nJ\xc3\xb6rg NIL "
    )


def test_envelope_of_empty_message_is_all_nil() -> None:
    assert render.envelope(summarize(b"")) == b"(NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL)"


# --- BODY / BODYSTRUCTURE -------------------------------------------------------------------


def test_rfc3501_example_body() -> None:
    assert render.bodystructure(summarize(corpus.plain().raw), extensible=False) == (
        b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 55 1)'
    )


def test_rfc3501_example_bodystructure() -> None:
    assert render.bodystructure(summarize(corpus.plain().raw)) == (
        b'("TEXT" "PLAIN" ("CHARSET" "US-ASCII") NIL NIL "7BIT" 55 1 NIL NIL NIL NIL)'
    )


def test_alternative_bodystructure() -> None:
    assert render.bodystructure(summarize(corpus.alternative().raw)) == (
        b'(("TEXT" "PLAIN" ("CHARSET" "utf-8") NIL NIL "QUOTED-PRINTABLE" 50 3 NIL NIL NIL NIL)'
        b'("TEXT" "HTML" ("CHARSET" "us-ascii") NIL NIL "7BIT" 89 2 NIL NIL NIL NIL) '
        b'"ALTERNATIVE" ("BOUNDARY" "=-alt-boundary-1") NIL NIL NIL)'
    )


def test_mixed_bodystructure_with_every_extension_field() -> None:
    assert render.bodystructure(summarize(corpus.mixed().raw)) == (
        b'(("TEXT" "PLAIN" ("CHARSET" "us-ascii" "FORMAT" "flowed") NIL NIL "7BIT" 15 1 NIL NIL NIL NIL)'
        b'("APPLICATION" "PDF" ("NAME" "report.pdf") "<part2@example.org>" "The report" "BASE64" 1076 '
        b'"Q2hlY2sgSW50ZWdyaXR5IQ==" ("ATTACHMENT" ("FILENAME" "report.pdf" "SIZE" "777")) ("en" "de") '
        b'"http://example.org/report.pdf")'
        b'("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 30 2 NIL ("INLINE" ("FILENAME" "notes.txt")) '
        b'NIL NIL) "MIXED" ("BOUNDARY" "MIX") NIL ("en") NIL)'
    )


def test_mixed_body_has_no_extension_data() -> None:
    assert render.bodystructure(summarize(corpus.mixed().raw), extensible=False) == (
        b'(("TEXT" "PLAIN" ("CHARSET" "us-ascii" "FORMAT" "flowed") NIL NIL "7BIT" 15 1)'
        b'("APPLICATION" "PDF" ("NAME" "report.pdf") "<part2@example.org>" "The report" "BASE64" 1076)'
        b'("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 30 2) "MIXED")'
    )


def test_forwarded_message_rfc822_body() -> None:
    assert render.bodystructure(summarize(corpus.forwarded().raw), extensible=False) == (
        b'(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 12 1)'
        b'("MESSAGE" "RFC822" NIL NIL NIL "7BIT" 372 ("Thu, 3 Mar 2022 12:00:00 +0000" "the original" '
        b'(("Original" NIL "orig" "example.net")) (("Original" NIL "orig" "example.net")) '
        b'(("Original" NIL "orig" "example.net")) ((NIL NIL "someone" "example.com")) NIL NIL NIL '
        b'"<inner@example.net>") (("TEXT" "PLAIN" ("CHARSET" "iso-8859-1") NIL NIL "7BIT" 12 1)'
        b'("TEXT" "HTML" ("CHARSET" "us-ascii") NIL NIL "7BIT" 14 1) "ALTERNATIVE") 19) "MIXED")'
    )


def test_nested_bodystructure() -> None:
    assert render.bodystructure(summarize(corpus.nested().raw)) == (
        b'((("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 12 1 NIL NIL NIL NIL)'
        b'(("TEXT" "HTML" ("CHARSET" "utf-8") NIL NIL "7BIT" 34 1 NIL NIL NIL NIL)'
        b'("IMAGE" "GIF" NIL "<img1>" NIL "BASE64" 66 NIL NIL NIL NIL) "RELATED" '
        b'("BOUNDARY" "rel" "TYPE" "text/html") NIL NIL NIL) "ALTERNATIVE" ("BOUNDARY" "alt") NIL NIL NIL)'
        b'("APPLICATION" "ZIP" NIL NIL NIL "BASE64" 50 NIL ("ATTACHMENT" ("FILENAME" "a.zip")) NIL NIL) '
        b'"MIXED" ("BOUNDARY" "outer") NIL NIL NIL)'
    )


def test_truncated_multipart_body() -> None:
    assert render.bodystructure(summarize(corpus.truncated_multipart().raw), extensible=False) == (
        b'(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 15 1)'
        b'("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 14 0) "MIXED")'
    )


def test_multipart_without_boundary_body() -> None:
    summary = summarize(b"Subject: x\r\nContent-Type: multipart/mixed\r\n\r\nhello\r\n")
    assert render.bodystructure(summary) == (
        b'(("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 0 0 NIL NIL NIL NIL) "MIXED" NIL NIL NIL NIL)'
    )


def test_base64_message_rfc822_renders_nil_envelope() -> None:
    raw = (
        b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"U3ViamVjdDogeQ0KDQpib2R5DQo=\r\n"
    )
    assert render.bodystructure(summarize(raw), extensible=False) == (
        b'("MESSAGE" "RFC822" NIL NIL NIL "BASE64" 30 (NIL NIL NIL NIL NIL NIL NIL NIL NIL NIL) '
        b'("TEXT" "PLAIN" ("CHARSET" "us-ascii") NIL NIL "7BIT" 0 0) 1)'
    )


def test_every_corpus_message_renders_balanced_parentheses() -> None:
    for name, build in corpus.ALL.items():
        text = render.bodystructure(summarize(build().raw))
        if b"{" not in text:  # literals may hold parentheses
            depth = 0
            in_quote = False
            escaped = False
            for byte in text:
                ch = chr(byte)
                if in_quote:
                    if escaped:
                        escaped = False
                    elif ch == "\\":
                        escaped = True
                    elif ch == '"':
                        in_quote = False
                elif ch == '"':
                    in_quote = True
                elif ch == "(":
                    depth += 1
                elif ch == ")":
                    depth -= 1
                assert depth >= 0, name
            assert depth == 0, name


def test_astring_quotes_wildcards() -> None:
    assert render.astring("a*") == b'"a*"'
    assert render.astring("50%") == b'"50%"'

"""SEARCH helpers (RFC 3501 6.4.4): decoded, case-insensitive matching and IMAP dates."""

from __future__ import annotations

import base64
import datetime

import pytest

from mailsuite.message import summarize
from mailsuite.message.search_text import (
    body_matches,
    body_text,
    contains,
    date_of_epoch,
    format_imap_datetime,
    header_matches,
    header_values,
    parse_imap_date,
    parse_imap_datetime,
    sent_date,
    text_matches,
)

try:
    from tests import test_message_corpus as corpus
except ImportError:
    import test_message_corpus as corpus  # type: ignore[no-redef]


def test_contains_is_case_insensitive_beyond_ascii() -> None:
    assert contains("GRÜSSE aus Köln", "grüsse AUS")


def test_empty_needle_matches() -> None:
    assert contains("anything", "")


# --- headers ------------------------------------------------------------------------------


def test_subject_b_and_q_encoded_words_across_charsets() -> None:
    raw = corpus.encoded_words().raw
    assert header_matches(raw, "Subject", "größen und grüße")


def test_from_display_name_utf8_b() -> None:
    assert header_matches(corpus.encoded_words().raw, "FROM", "jörg müller")


def test_to_display_name_latin1_q() -> None:
    assert header_matches(corpus.encoded_words().raw, "to", "andré pirard")


def test_header_match_uses_summary_when_given() -> None:
    raw = corpus.encoded_words().raw
    summary = summarize(raw)
    assert header_matches(None, "cc", "rené", summary=summary)


def test_header_address_matches_the_address_too() -> None:
    assert header_matches(corpus.plain().raw, "from", "foobar@blurdybloop")


def test_header_absent_never_matches_even_empty_needle() -> None:
    assert not header_matches(corpus.plain().raw, "X-Missing", "")


def test_header_present_matches_empty_needle() -> None:
    assert header_matches(corpus.plain().raw, "Message-Id", "")


def test_8bit_utf8_header_matches() -> None:
    assert header_matches(corpus.eight_bit_headers().raw, "subject", "GRÜSSE")


def test_latin1_8bit_header_matches() -> None:
    assert header_matches(corpus.eight_bit_headers().raw, "x-latin", "café")


def test_header_values_are_unfolded() -> None:
    assert header_values(b"Subject: a\r\n b\r\n\r\n", "subject") == ["a b"]


def test_encoded_words_split_in_a_multibyte_character() -> None:
    # "é" (C3 A9) split across two encoded words of the same charset.
    raw = b"Subject: =?utf-8?B?w6=?= =?utf-8?Q?=A9t=C3=A9?=\r\n\r\n"
    assert header_values(raw, "subject") == ["été"]


def test_unknown_charset_still_decodes() -> None:
    raw = b"Subject: =?x-nonsense?Q?abc?= =?base64?Q?def?=\r\n\r\n"
    assert header_values(raw, "subject") == ["abcdef"]


# --- body -----------------------------------------------------------------------------------


def test_quoted_printable_utf8_body() -> None:
    assert body_matches(corpus.alternative().raw, "café au lait for everyone")


def test_base64_text_body() -> None:
    raw = (
        b"Content-Type: text/plain; charset=iso-8859-1\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        + base64.encodebytes("Grüße von der Ostsee".encode("latin-1"))
    )
    assert body_matches(raw, "GRÜSSE VON")


def test_body_of_attachment_is_not_searched() -> None:
    assert not body_matches(corpus.mixed().raw, "PDF-1.4")


def test_body_does_not_match_headers() -> None:
    assert not body_matches(corpus.plain().raw, "afternoon meeting")


def test_body_searches_forwarded_message() -> None:
    raw = corpus.forwarded().raw
    assert body_matches(raw, "inner text")
    assert body_matches(raw, "the original")  # the encapsulated header is body text


def test_text_matches_header_or_body() -> None:
    raw = corpus.plain().raw
    assert text_matches(raw, "AFTERNOON")
    assert text_matches(raw, "3:30 tomorrow")
    assert not text_matches(raw, "evening")


def test_body_text_of_garbage_is_text() -> None:
    assert isinstance(body_text(b"\x00\xff" * 100), str)


# --- dates ----------------------------------------------------------------------------------


def test_parse_imap_date() -> None:
    assert parse_imap_date("1-Feb-1994") == datetime.date(1994, 2, 1)
    assert parse_imap_date('"07-jul-2020"') == datetime.date(2020, 7, 7)


@pytest.mark.parametrize(
    "bad", ["", "1-Foo-1994", "31-Feb-2020", "1994-02-01", "1-Feb-94", "1-Feb-1994x"]
)
def test_parse_imap_date_rejects(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_imap_date(bad)


def test_parse_imap_datetime() -> None:
    assert parse_imap_datetime('"17-Jul-1996 02:44:25 -0700"') == 837596665.0
    assert parse_imap_datetime(" 7-Jul-1996 02:44:25 +0000") == 836707465.0


def test_format_imap_datetime_round_trips() -> None:
    text = format_imap_datetime(837596665, -7 * 3600)
    assert text == "17-Jul-1996 02:44:25 -0700"
    assert parse_imap_datetime(text) == 837596665.0


def test_date_of_epoch_in_zone() -> None:
    assert date_of_epoch(837596665, -7 * 3600) == datetime.date(1996, 7, 17)
    assert date_of_epoch(837596665) == datetime.date(1996, 7, 17)


def test_sent_date_from_raw_and_summary() -> None:
    raw = corpus.plain().raw
    assert sent_date(raw) == datetime.date(1994, 2, 7)
    assert sent_date(b"", summarize(raw)) == datetime.date(1994, 2, 7)


def test_sent_date_missing() -> None:
    assert sent_date(corpus.no_date_from().raw) is None


def test_python_only_codecs_are_not_charsets() -> None:
    raw = b"Subject: =?idna?q?=FF?= =?punycode?q?=FF?= =?undefined?q?x?= =?unicode_escape?q?\\x41?=\r\n\r\n"
    values = header_values(raw, "subject")
    assert len(values) == 1 and "x" in values[0]


def test_body_in_every_python_codec_never_raises() -> None:
    import encodings.aliases

    for charset in set(encodings.aliases.aliases.values()):
        raw = (
            b"Content-Type: text/plain; charset=" + charset.encode() + b"\r\n\r\n\xff\xfe\x00\\x41"
        )
        assert isinstance(body_text(raw), str), charset

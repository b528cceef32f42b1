"""Sections (RFC 3501 6.4.5): parsing the specifier and extracting exact stored bytes."""

from __future__ import annotations

import pytest

from mailsuite.message.sections import (
    HEADER,
    HEADER_FIELDS,
    HEADER_FIELDS_NOT,
    MAX_PART_DEPTH,
    MIME,
    TEXT,
    Section,
    extract,
    parse_section,
    partial,
)

try:
    from tests import test_message_corpus as corpus
except ImportError:
    import test_message_corpus as corpus  # type: ignore[no-redef]


# --- parsing ----------------------------------------------------------------------------------


def test_parse_empty_is_whole_message() -> None:
    assert parse_section("") == Section()


def test_parse_part_with_header_fields() -> None:
    assert parse_section("1.2.HEADER.FIELDS (From To)") == Section(
        (1, 2), HEADER_FIELDS, ("From", "To")
    )


def test_parse_header_fields_not_case_insensitive_keyword() -> None:
    assert parse_section('header.fields.not (X-A "X-B")') == Section(
        (), HEADER_FIELDS_NOT, ("X-A", "X-B")
    )


def test_parse_mime_and_text() -> None:
    assert parse_section("3.MIME") == Section((3,), MIME)
    assert parse_section("2.TEXT") == Section((2,), TEXT)
    assert parse_section("HEADER") == Section((), HEADER)


@pytest.mark.parametrize(
    "bad",
    [
        "0",
        "1.0",
        "01",
        "1.",
        ".1",
        "MIME",
        "FOO",
        "1.FOO",
        "HEADER.FIELDS",
        "HEADER.FIELDS ()",
        "HEADER.FIELDS (a b",
        "TEXT (x)",
        "1..2",
        "HEADER.FIELDS (a:b)",
        "1.MIME.TEXT",
    ],
)
def test_parse_rejects_nonsense(bad: str) -> None:
    with pytest.raises(ValueError):
        parse_section(bad)


def test_parse_refuses_deep_part_numbers() -> None:
    with pytest.raises(ValueError):
        parse_section(".".join(["1"] * 50))


def test_parse_accepts_depth_at_the_limit() -> None:
    assert len(parse_section(".".join(["1"] * MAX_PART_DEPTH)).part) == MAX_PART_DEPTH


def test_section_text_form_round_trips() -> None:
    section = Section((1, 2), HEADER_FIELDS, ("From", "To"))
    assert str(section) == "1.2.HEADER.FIELDS (From To)"
    assert parse_section(str(section)) == section


def test_section_value_validates() -> None:
    with pytest.raises(ValueError):
        Section((), MIME)


# --- whole message ------------------------------------------------------------------------


def test_whole_header_and_text() -> None:
    built = corpus.mixed()
    assert extract(built.raw, "") == built.raw
    assert extract(built.raw, "HEADER") == built.header
    assert extract(built.raw, "TEXT") == built.text


def test_header_fields_keeps_folding_and_order_of_message() -> None:
    built = corpus.alternative()
    assert extract(built.raw, "HEADER.FIELDS (CONTENT-TYPE From)") == (
        b'From: "Doe, Jane" <jane@example.com>\r\n'
        b'Content-Type: multipart/alternative;\r\n boundary="=-alt-boundary-1"\r\n\r\n'
    )


def test_header_fields_with_no_match_is_the_empty_line() -> None:
    assert extract(corpus.plain().raw, "HEADER.FIELDS (X-Nothing)") == b"\r\n"


def test_header_fields_not() -> None:
    raw = b"From: a@b\r\nTo: c@d\r\nSubject: s\r\n\r\nbody"
    assert extract(raw, "HEADER.FIELDS.NOT (to SUBJECT)") == b"From: a@b\r\n\r\n"


def test_header_fields_of_bare_lf_message_use_lf() -> None:
    built = corpus.bare_lf()
    assert extract(built.raw, "HEADER.FIELDS (Subject)") == b"Subject: bare LF\n\n"


# --- parts --------------------------------------------------------------------------------


def test_non_multipart_part_one_is_the_body() -> None:
    built = corpus.plain()
    assert extract(built.raw, "1") == built.pieces["body"]


def test_non_multipart_has_no_part_two() -> None:
    assert extract(corpus.plain().raw, "2") == b""


@pytest.mark.parametrize(
    "name",
    [
        "alternative",
        "mixed",
        "nested",
        "forwarded",
        "bare_lf",
        "truncated_multipart",
        "digest",
        "reused_boundary",
        "header_only_part",
    ],
)
def test_every_known_piece(name: str) -> None:
    built = corpus.ALL[name]()
    for spec, piece in built.pieces.items():
        assert extract(built.raw, spec) == piece, spec


def test_mime_header_of_a_part() -> None:
    built = corpus.mixed()
    assert extract(built.raw, "2.MIME") == built.pieces["2.MIME"]


def test_rfc822_part_header_and_text() -> None:
    built = corpus.forwarded()
    assert extract(built.raw, "2.HEADER") == built.pieces["2.HEADER"]
    assert extract(built.raw, "2.TEXT") == built.pieces["2.TEXT"]
    assert extract(built.raw, "2.HEADER.FIELDS (Subject)") == b"Subject: the original\r\n\r\n"


def test_rfc822_inner_part_mime() -> None:
    built = corpus.forwarded()
    assert extract(built.raw, "2.1.MIME") == b"Content-Type: text/plain; charset=iso-8859-1\r\n\r\n"


def test_leaf_part_is_its_own_part_one() -> None:
    built = corpus.mixed()  # as Dovecot answers BODY[1.1] for a text part
    assert extract(built.raw, "1.1") == built.pieces["1"]


def test_single_part_message_body_has_no_subpart() -> None:
    assert extract(corpus.plain().raw, "1.1") == b""


def test_header_of_a_non_message_part_is_empty() -> None:
    assert extract(corpus.mixed().raw, "1.HEADER") == b""


def test_missing_parts_are_empty() -> None:
    raw = corpus.nested().raw
    assert extract(raw, "3") == b""
    assert extract(raw, "1.3") == b""
    assert extract(raw, "1.2.3.4") == b""
    assert extract(raw, "9.MIME") == b""


def test_sections_of_empty_message() -> None:
    assert extract(b"", "HEADER") == b""
    assert extract(b"", "TEXT") == b""
    assert extract(b"", "1") == b""


def test_section_value_accepted_as_well_as_text() -> None:
    built = corpus.mixed()
    assert extract(built.raw, Section((1,))) == built.pieces["1"]


# --- partial ------------------------------------------------------------------------------


def test_partial_range() -> None:
    assert partial(b"0123456789", 2, 3) == b"234"


def test_partial_past_the_end_is_empty() -> None:
    assert partial(b"0123", 10, 5) == b""


def test_partial_count_beyond_end_is_truncated() -> None:
    assert partial(b"0123", 2, 100) == b"23"


# --- extraction from the cached summary's offsets -------------------------------------------


@pytest.mark.parametrize("name", sorted(corpus.ALL))
def test_summary_offsets_give_the_same_sections(name: str) -> None:
    from mailsuite.message import summarize

    built = corpus.ALL[name]()
    summary = summarize(built.raw)
    specs = list(built.pieces) + [
        "1",
        "1.MIME",
        "2.HEADER",
        "2.TEXT",
        "1.1",
        "2.1.MIME",
        "2.HEADER.FIELDS (Subject)",
        "3",
        "1.2.2",
    ]
    for spec in specs:
        if spec in ("body",):
            continue
        assert extract(built.raw, spec, summary) == extract(built.raw, spec), spec


def test_summary_of_other_bytes_is_not_trusted() -> None:
    from mailsuite.message import summarize

    built = corpus.mixed()
    stale = summarize(corpus.nested().raw)  # wrong message: its size differs
    assert extract(built.raw, "1", stale) == built.pieces["1"]


def test_nul_bytes_survive_in_sections() -> None:
    built = corpus.nul_bytes()
    assert extract(built.raw, "TEXT") == built.pieces["body"]
    assert extract(built.raw, "HEADER.FIELDS (Subject)") == b"Subject: has\x00nul\r\n\r\n"


def test_8bit_header_fields_are_the_stored_octets() -> None:
    raw = corpus.eight_bit_headers().raw
    assert extract(raw, "HEADER.FIELDS (subject x-latin)") == (
        "Subject: Grüße aus Köln\r\n".encode() + b"X-Latin: caf\xe9\r\n\r\n"
    )


def test_groups_message_header_fields() -> None:
    assert (
        extract(corpus.groups().raw, "HEADER.FIELDS (To)")
        == b"To: undisclosed-recipients:;\r\n\r\n"
    )


def test_header_of_empty_and_headerless_messages() -> None:
    assert extract(b"\r\nbody only\r\n", "HEADER") == b"\r\n"
    assert extract(b"\r\nbody only\r\n", "TEXT") == b"body only\r\n"
    assert extract(b"Subject: x", "HEADER") == b"Subject: x"
    assert extract(b"Subject: x", "TEXT") == b""


def test_stale_summary_version_is_not_trusted() -> None:
    from mailsuite.message import summarize

    built = corpus.mixed()
    summary = dict(summarize(built.raw), version=-1, body={"offset": 0})  # unusable tree
    assert extract(built.raw, "1", summary) == built.pieces["1"]


def test_part_without_empty_line_is_header_only() -> None:
    # The line break before a delimiter is the delimiter's, so this part has no empty line:
    # all header, no body (Dovecot answers the same).
    raw = (
        b"Content-Type: multipart/mixed; boundary=foo\r\n\r\n"
        b"--foo\r\nContent-Type: text/plain\r\nbar\r\n\r\n--foo--\r\n"
    )
    assert extract(raw, "1.MIME") == b"Content-Type: text/plain\r\nbar\r\n"
    assert extract(raw, "1") == b""

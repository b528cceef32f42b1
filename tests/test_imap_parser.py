"""The pure IMAP command parser: tokens, literals, sequence sets and its limits."""

from __future__ import annotations

import pytest

from mailsuite.imap.parser import (
    ParseError,
    Reader,
    SequenceSet,
    compact_set,
    parse_head,
    peek_tag,
    trailing_literal,
)


def test_head_joins_uid_subcommand() -> None:
    assert parse_head(Reader(b"a1 uid fetch 1 FLAGS")) == ("a1", "UID FETCH")


def test_tag_may_not_contain_plus() -> None:
    with pytest.raises(ParseError):
        parse_head(Reader(b"+ NOOP"))


def test_quoted_string_unescapes() -> None:
    assert Reader(b'"a\\"b\\\\c"').quoted() == b'a"b\\c'


def test_quoted_string_rejects_bad_escape() -> None:
    with pytest.raises(ParseError):
        Reader(b'"a\\nb"').quoted()


def test_literal_takes_exactly_announced_bytes() -> None:
    r = Reader(b"{5}\r\nhello rest")
    assert r.astring() == b"hello"
    assert r.data[r.pos:] == b" rest"


def test_non_synchronising_literal() -> None:
    assert Reader(b"{3+}\r\nabc").astring() == b"abc"


def test_literal_shorter_than_announced_is_an_error() -> None:
    with pytest.raises(ParseError):
        Reader(b"{10}\r\nabc").astring()


def test_trailing_literal_detects_both_forms() -> None:
    assert trailing_literal(b"a LOGIN {5}") == (5, False)
    assert trailing_literal(b"a APPEND x {4294967295+}") == (4294967295, True)
    assert trailing_literal(b"a NOOP") is None


def test_seqset_ranges_and_star() -> None:
    s = Reader(b"1:3,5,*").seqset()
    assert s.resolve(10) == [(1, 3), (5, 5), (10, 10)]


def test_star_colon_one_equals_one_colon_star() -> None:
    assert Reader(b"*:1").seqset().resolve(7) == [(1, 7)]


def test_zero_is_not_a_sequence_number() -> None:
    with pytest.raises(ParseError):
        Reader(b"0").seqset()


def test_number_over_32_bits_is_refused() -> None:
    with pytest.raises(ParseError):
        Reader(b"4294967296").seqset()


def test_huge_range_resolves_without_expansion() -> None:
    s = Reader(b"1:4294967295").seqset()
    assert s.resolve(3) == [(1, 4294967295)]


def test_nested_lists_are_bounded() -> None:
    r = Reader(b"(" * 50 + b")" * 50)
    with pytest.raises(ParseError):
        r.items(r.astring)


def test_flag_list_normalises_system_flags() -> None:
    r = Reader(b"(\\seen $Forwarded)")
    assert r.flag_list() == ["\\Seen", "$Forwarded"]


def test_date_time_parses_zone() -> None:
    assert Reader(b'"01-Jan-2000 01:00:00 +0100"').date_time() == 946684800.0


def test_peek_tag_of_garbage() -> None:
    assert peek_tag(b"a1 FOO") == "a1"
    assert peek_tag(b"\x00\x01") is None


def test_compact_set() -> None:
    assert compact_set([1, 2, 3, 5, 7, 8]) == "1:3,5,7:8"


def test_sequence_set_merges_overlaps() -> None:
    assert SequenceSet(((5, 1), (3, 9))).resolve(20) == [(1, 9)]

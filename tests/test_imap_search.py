"""SEARCH and UID SEARCH: every key family, nesting, charsets, ESEARCH and bounds."""

from __future__ import annotations

import pytest
from test_imap_helpers import ALICE, Client, deliver, make_ctx, message

UTF8 = ("From: =?utf-8?q?J=C3=BCrgen?= <j@example.test>\r\nTo: alice@example.test\r\n"
        "Subject: =?utf-8?q?Gr=C3=BC=C3=9Fe?=\r\nDate: Tue, 02 Jan 2024 10:00:00 +0000\r\n"
        "Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n"
        "X-Custom: marker\r\n\r\nSchöne Grüße aus Köln\r\n").encode()


@pytest.fixture
def c() -> Client:
    ctx = make_ctx()
    deliver(ctx, ALICE, message(1, subject="apple pie", body="crust"))
    deliver(ctx, ALICE, message(2, subject="banana", body="yellow fruit"), flags=("\\Seen",))
    deliver(ctx, ALICE, message(3, subject="cherry", body="red fruit"),
            flags=("\\Flagged", "$Work"))
    deliver(ctx, ALICE, UTF8)
    client = Client(ctx)
    client.login()
    client.select()
    return client


def result(c: Client, criteria: str) -> list[int]:
    out = c.ok("SEARCH " + criteria)
    line = next(x for x in out.split(b"\r\n") if x.startswith(b"* SEARCH"))
    return [int(x) for x in line.split()[2:] if x.isdigit()]


def test_all(c: Client) -> None:
    assert result(c, "ALL") == [1, 2, 3, 4]


def test_flag_keys(c: Client) -> None:
    assert result(c, "SEEN") == [2]
    assert result(c, "UNSEEN") == [1, 3, 4]
    assert result(c, "FLAGGED") == [3]
    assert result(c, "KEYWORD $Work") == [3]
    assert result(c, "UNKEYWORD $Work") == [1, 2, 4]


def test_subject_and_body(c: Client) -> None:
    assert result(c, "SUBJECT apple") == [1]
    assert result(c, "BODY fruit") == [2, 3]
    assert result(c, 'TEXT "crust"') == [1]


def test_header_key(c: Client) -> None:
    assert result(c, "HEADER X-Custom marker") == [4]
    assert result(c, 'HEADER X-Custom ""') == [4]


def test_utf8_charset_matches_decoded_text(c: Client) -> None:
    out = c.send(b"u SEARCH CHARSET UTF-8 SUBJECT {7}\r\n")
    assert out == b"+ Ready for literal data\r\n"
    out = c.send("grüße".encode() + b"\r\n")
    assert b"* SEARCH 4" in out
    assert result(c, "CHARSET UTF-8 FROM \"jürgen\"") == [4]
    assert result(c, 'CHARSET UTF-8 BODY "köln"') == [4]


def test_unknown_charset_is_no(c: Client) -> None:
    assert b"NO [BADCHARSET" in c.cmd("SEARCH CHARSET KOI8-R ALL")


def test_or_not_and_parentheses(c: Client) -> None:
    assert result(c, "OR SEEN FLAGGED") == [2, 3]
    assert result(c, "NOT (OR SEEN FLAGGED)") == [1, 4]
    assert result(c, "(UNSEEN) NOT 4") == [1, 3]


def test_sizes(c: Client) -> None:
    assert result(c, "LARGER 1") == [1, 2, 3, 4]
    assert result(c, "SMALLER 1") == []


def test_dates(c: Client) -> None:
    assert result(c, "SENTBEFORE 1-Jan-2025") == [4]
    assert result(c, "SENTON 23-Nov-2026") == [1, 2, 3]
    assert result(c, "SINCE 1-Jan-1970") == [1, 2, 3, 4]


def test_sequence_and_uid_sets(c: Client) -> None:
    assert result(c, "2:3") == [2, 3]
    assert result(c, "UID 3:*") == [3, 4]


def test_uid_search_returns_uids(c: Client) -> None:
    c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    c.ok("EXPUNGE")
    assert b"* SEARCH 3" in c.ok("UID SEARCH FLAGGED")


def test_esearch(c: Client) -> None:
    out = c.ok("SEARCH RETURN (MIN MAX COUNT ALL) UNSEEN")
    assert b'* ESEARCH (TAG "t3") MIN 1 MAX 4 ALL 1,3:4 COUNT 3' in out


def test_modseq_key(c: Client) -> None:
    out = c.ok("SEARCH MODSEQ 1")
    assert b"(MODSEQ " in out


def test_nesting_1000_deep_is_bad(c: Client) -> None:
    assert c.status(c.cmd("SEARCH " + "NOT " * 1000 + "ALL")).startswith(b"BAD")
    assert c.status(c.cmd("SEARCH " + "(" * 1000 + "ALL" + ")" * 1000)).startswith(b"BAD")


def test_unknown_key_is_bad(c: Client) -> None:
    assert c.status(c.cmd("SEARCH BOGUS")).startswith(b"BAD")

"""SORT and UID SORT (RFC 5256, RFC 5957)."""

from __future__ import annotations

import pytest
from test_imap_helpers import ALICE, Client, deliver, make_ctx

from mailsuite.imap.cmd_sort import base_subject
from mailsuite.imap.subjects import extract_base_subject


def raw(sender: str, subject: str, date: str, body: str = "x") -> bytes:
    return (f"From: {sender}\r\nTo: alice@example.test\r\nSubject: {subject}\r\n"
            f"Date: {date}\r\n\r\n{body}\r\n").encode()


@pytest.fixture
def c() -> Client:
    ctx = make_ctx()
    deliver(ctx, ALICE, raw("Zed <zed@example.test>", "Re: banana", "Tue, 03 Jan 2023 10:00:00 +0000"))
    deliver(ctx, ALICE, raw("adam@example.test", "apple", "Thu, 05 Jan 2023 10:00:00 +0000",
                            body="longer body " * 20))
    deliver(ctx, ALICE, raw("Bea <bea@example.test>", "Fwd: [list] cherry (fwd)",
                            "Mon, 02 Jan 2023 10:00:00 +0000"))
    client = Client(ctx)
    client.login()
    client.select()
    return client


def result(c: Client, command: str) -> list[int]:
    out = c.ok(command)
    line = next(x for x in out.split(b"\r\n") if x.startswith(b"* SORT"))
    return [int(x) for x in line.split()[2:]]


def test_sort_by_date(c: Client) -> None:
    assert result(c, "SORT (DATE) UTF-8 ALL") == [3, 1, 2]


def test_sort_reverse_date(c: Client) -> None:
    assert result(c, "SORT (REVERSE DATE) UTF-8 ALL") == [2, 1, 3]


def test_sort_by_base_subject(c: Client) -> None:
    assert result(c, "SORT (SUBJECT) UTF-8 ALL") == [2, 1, 3]


def test_sort_by_from_mailbox(c: Client) -> None:
    assert result(c, "SORT (FROM) UTF-8 ALL") == [2, 3, 1]


def test_sort_by_display_from(c: Client) -> None:
    assert result(c, "SORT (DISPLAYFROM) UTF-8 ALL") == [2, 3, 1]


def test_sort_by_size_with_search_keys(c: Client) -> None:
    assert result(c, "SORT (REVERSE SIZE) UTF-8 NOT 3") == [2, 1]


def test_uid_sort(c: Client) -> None:
    assert result(c, "UID SORT (ARRIVAL) US-ASCII ALL") == [1, 2, 3]


def test_sort_bad_criteria(c: Client) -> None:
    assert c.status(c.cmd("SORT (BOGUS) UTF-8 ALL")).startswith(b"BAD")
    assert c.status(c.cmd("SORT (REVERSE) UTF-8 ALL")).startswith(b"BAD")
    assert c.status(c.cmd("SORT (DATE) KOI8-R ALL")).startswith(b"NO [BADCHARSET")


@pytest.mark.parametrize(("subject", "base"), [
    ("Re: hello", "hello"), ("RE: Fwd: Hello (fwd)", "hello"), ("[list] re: x", "x"),
    ("[fwd: inner]", "inner"), ("Re:", "re:"), ("", "")])
def test_base_subject(subject: str, base: str) -> None:
    assert base_subject(subject) == base


@pytest.mark.parametrize(("subject", "refwd"), [
    ("Re: hello", True), ("hello (fwd)", True), ("[fwd: hello]", True), ("Fw: hello", True),
    ("[list] hello", False), ("hello", False), ("Re:", False), ("", False)])
def test_reply_or_forward(subject: str, refwd: bool) -> None:
    assert extract_base_subject(subject)[1] is refwd

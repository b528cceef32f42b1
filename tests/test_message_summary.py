"""summarize(): envelope, body structure, sizes and the JSON contract."""

from __future__ import annotations

import json

from mailsuite.message import SUMMARY_VERSION, summarize

try:
    from tests.test_message_corpus import plain
except ImportError:  # tests/ on sys.path instead of the project root
    from test_message_corpus import plain


def test_summary_is_json_round_trippable() -> None:
    summary = summarize(plain().raw)
    assert json.loads(json.dumps(summary)) == summary


def test_summary_has_version() -> None:
    assert summarize(b"")["version"] == SUMMARY_VERSION


def test_plain_envelope_matches_rfc3501_example() -> None:
    env = summarize(plain().raw)["envelope"]
    assert env["date"] == "Mon, 7 Feb 1994 21:52:25 -0800 (PST)"
    assert env["subject"] == "afternoon meeting"
    assert env["from"] == [["Fred Foobar", None, "foobar", "Blurdybloop.example"]]
    assert env["sender"] == env["from"]
    assert env["reply_to"] == env["from"]
    assert env["to"] == [[None, None, "mooch", "owatagu.siam.edu.example"]]
    assert env["cc"] is None and env["bcc"] is None and env["in_reply_to"] is None
    assert env["message_id"] == "<B27397-0100000@Blurdybloop.example>"


def test_plain_body_size_and_lines() -> None:
    built = plain()
    body = summarize(built.raw)["body"]
    assert (body["type"], body["subtype"]) == ("text", "plain")
    assert body["params"] == [["charset", "US-ASCII"]]
    assert body["size"] == len(built.pieces["body"])
    assert body["lines"] == built.pieces["body"].count(b"\n")


def test_header_size_counts_the_empty_line() -> None:
    built = plain()
    assert summarize(built.raw)["header_size"] == len(built.header)


def test_date_epoch_is_utc() -> None:
    summary = summarize(plain().raw)
    assert summary["date_epoch"] == 760686745  # 1994-02-08 05:52:25 UTC
    assert summary["sent_date"] == "1994-02-07"


def test_empty_message_still_summarizes() -> None:
    summary = summarize(b"")
    assert summary["size"] == 0
    assert summary["body"]["size"] == 0
    assert summary["envelope"]["from"] is None

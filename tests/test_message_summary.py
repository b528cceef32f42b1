"""summarize(): envelope, body structure, sizes and the JSON contract.

Sizes and line counts are compared with ``len``/``count`` on the pieces the corpus built the
message from, never with the parser's own idea of where a part starts.
"""

from __future__ import annotations

import json

from mailsuite.message import MAX_DEPTH, SUMMARY_VERSION, summarize

try:
    from tests import test_message_corpus as corpus
except ImportError:  # tests/ on sys.path instead of the project root
    import test_message_corpus as corpus  # type: ignore[no-redef]


def _part(summary: dict, path: str) -> dict:
    node = summary["body"]
    for number in path.split("."):
        if "message" in node:
            node = node["message"]["body"]
        node = node["parts"][int(number) - 1]
    return node


# --- the contract ---------------------------------------------------------------------------


def test_every_corpus_summary_is_json_round_trippable() -> None:
    for name, build in corpus.ALL.items():
        summary = summarize(build().raw)
        assert json.loads(json.dumps(summary)) == summary, name


def test_summary_has_version() -> None:
    assert summarize(b"")["version"] == SUMMARY_VERSION


def test_size_is_the_stored_length() -> None:
    built = corpus.mixed()
    assert summarize(built.raw)["size"] == len(built.raw)


def test_header_size_counts_the_empty_line() -> None:
    for name, build in corpus.ALL.items():
        built = build()
        assert summarize(built.raw)["header_size"] == len(built.header), name


def test_body_offsets_point_at_the_part_bodies() -> None:
    built = corpus.nested()
    summary = summarize(built.raw)
    for path in ("1.1", "1.2.1", "1.2.2", "2"):
        node = _part(summary, path)
        start = node["body_offset"]
        assert built.raw[start : start + node["size"]] == built.pieces[path], path


# --- envelope -------------------------------------------------------------------------------


def test_plain_envelope_matches_rfc3501_example() -> None:
    env = summarize(corpus.plain().raw)["envelope"]
    assert env["date"] == "Mon, 7 Feb 1994 21:52:25 -0800 (PST)"
    assert env["subject"] == "afternoon meeting"
    assert env["from"] == [["Fred Foobar", None, "foobar", "Blurdybloop.example"]]
    assert env["to"] == [[None, None, "mooch", "owatagu.siam.edu.example"]]
    assert env["cc"] is None and env["bcc"] is None and env["in_reply_to"] is None
    assert env["message_id"] == "<B27397-0100000@Blurdybloop.example>"


def test_sender_and_reply_to_default_to_from() -> None:
    env = summarize(corpus.plain().raw)["envelope"]
    assert env["sender"] == env["from"] and env["reply_to"] == env["from"]


def test_quoted_display_name_with_comma_is_unquoted() -> None:
    env = summarize(corpus.alternative().raw)["envelope"]
    assert env["from"] == [["Doe, Jane", None, "jane", "example.com"]]
    assert env["to"] == [
        [None, None, "bob", "example.net"],
        ["Carol", None, "carol", "example.net"],
    ]
    assert env["in_reply_to"] == "<orig@example.net>"


def test_encoded_words_stay_encoded_in_the_envelope() -> None:
    env = summarize(corpus.encoded_words().raw)["envelope"]
    assert env["subject"] == "=?UTF-8?B?w5xiZXJncsO2w59lbg==?= =?ISO-8859-1?Q?_und_Gr=FC=DFe?="
    assert env["to"] == [["=?ISO-8859-1?Q?Andr=E9?= Pirard", None, "PIRARD", "vm1.ulg.ac.be"]]


def test_decoded_fields_for_search() -> None:
    decoded = summarize(corpus.encoded_words().raw)["decoded"]
    assert decoded["subject"] == "Übergrößen und Grüße"
    assert decoded["from"] == "Jörg Müller <joerg@example.de>"
    assert decoded["cc"] == "René Zürcher <rene@example.ch>"


def test_empty_group_is_start_and_end_marker() -> None:
    env = summarize(corpus.groups().raw)["envelope"]
    assert env["to"] == [[None, None, "undisclosed-recipients", None], [None, None, None, None]]


def test_group_members_between_markers() -> None:
    env = summarize(corpus.groups().raw)["envelope"]
    assert env["cc"] == [
        [None, None, "Team", None],
        [None, None, "alice", "example.com"],
        ["Bob B.", None, "bob", "example.com"],
        [None, None, None, None],
        [None, None, "carol", "example.com"],
    ]


def test_missing_date_and_from_are_none_but_sender_stays() -> None:
    env = summarize(corpus.no_date_from().raw)["envelope"]
    assert env["date"] is None and env["from"] is None and env["reply_to"] is None
    assert env["sender"] == [["Agent", None, "agent", "example.com"]]


def test_address_without_domain_gets_placeholder_not_nil() -> None:
    # A NIL host would mean group syntax (RFC 3501 7.4.2).
    env = summarize(b"From: foo\r\nTo: <>\r\n\r\n")["envelope"]
    assert env["from"] == [[None, None, "foo", "MISSING_DOMAIN"]]
    assert env["to"] == [[None, None, "MISSING_MAILBOX", "MISSING_DOMAIN"]]


def test_source_route_goes_to_adl() -> None:
    env = summarize(b'To: "Q" <@r1,@r2:u@h>\r\n\r\n')["envelope"]
    assert env["to"] == [["Q", "@r1,@r2", "u", "h"]]


def test_comment_becomes_the_name_of_a_bare_address() -> None:
    env = summarize(b"From: x@y (Comment Name)\r\n\r\n")["envelope"]
    assert env["from"] == [["Comment Name", None, "x", "y"]]


def test_folded_subject_is_unfolded_with_one_space() -> None:
    env = summarize(b"Subject: a\r\n  b\r\n\tc\r\n\r\n")["envelope"]
    assert env["subject"] == "a b c"


def test_repeated_fields_last_subject_and_all_addresses() -> None:
    env = summarize(b"Subject: first\r\nSubject: second\r\nFrom: a@b\r\nFrom: c@d\r\n\r\n")[
        "envelope"
    ]
    assert env["subject"] == "second"
    assert env["from"] == [[None, None, "a", "b"], [None, None, "c", "d"]]


def test_present_but_empty_subject_is_empty_string() -> None:
    assert summarize(b"Subject:\r\n\r\nx")["envelope"]["subject"] == ""


def test_8bit_header_octets_survive_as_latin1() -> None:
    built = corpus.eight_bit_headers()
    env = summarize(built.raw)["envelope"]
    assert env["subject"].encode("latin-1") == "Grüße aus Köln".encode()
    assert env["from"][0][3].encode("latin-1") == "bücher.example".encode()


def test_nul_in_header_is_kept() -> None:
    assert summarize(corpus.nul_bytes().raw)["envelope"]["subject"] == "has\x00nul"


def test_date_epoch_is_utc() -> None:
    summary = summarize(corpus.plain().raw)
    assert summary["date_epoch"] == 760686745  # 1994-02-08 05:52:25 UTC
    assert summary["sent_date"] == "1994-02-07"  # the date as written, in its own zone


def test_unparsable_date_gives_none() -> None:
    summary = summarize(b"Date: yesterday-ish\r\n\r\n")
    assert summary["date_epoch"] is None and summary["sent_date"] is None


# --- body structure -------------------------------------------------------------------------


def test_plain_body_size_and_lines() -> None:
    built = corpus.plain()
    body = summarize(built.raw)["body"]
    assert (body["type"], body["subtype"]) == ("text", "plain")
    assert body["params"] == [["charset", "US-ASCII"]]
    assert body["size"] == len(built.pieces["body"])
    assert body["lines"] == built.pieces["body"].count(b"\n")


def test_alternative_parts_sizes_and_lines() -> None:
    built = corpus.alternative()
    summary = summarize(built.raw)
    assert summary["body"]["subtype"] == "alternative"
    assert summary["body"]["params"] == [["boundary", "=-alt-boundary-1"]]
    for path in ("1", "2"):
        node = _part(summary, path)
        assert node["size"] == len(built.pieces[path])
        assert node["lines"] == built.pieces[path].count(b"\n")
    assert _part(summary, "1")["encoding"] == "quoted-printable"


def test_attachment_extension_fields() -> None:
    pdf = _part(summarize(corpus.mixed().raw), "2")
    assert (pdf["type"], pdf["subtype"], pdf["encoding"]) == ("application", "pdf", "base64")
    assert pdf["params"] == [["name", "report.pdf"]]
    assert pdf["id"] == "<part2@example.org>"
    assert pdf["description"] == "The report"
    assert pdf["md5"] == "Q2hlY2sgSW50ZWdyaXR5IQ=="
    assert pdf["disposition"] == {
        "type": "attachment",
        "params": [["filename", "report.pdf"], ["size", "777"]],
    }
    assert pdf["language"] == ["en", "de"]
    assert pdf["location"] == "http://example.org/report.pdf"
    assert pdf["lines"] is None
    assert pdf["size"] == len(corpus.PDF_B64)


def test_multipart_extension_fields() -> None:
    body = summarize(corpus.mixed().raw)["body"]
    assert body["language"] == ["en"]
    assert body["params"] == [["boundary", "MIX"]]


def test_text_part_without_final_newline_counts_line_breaks() -> None:
    built = corpus.mixed()
    notes = _part(summarize(built.raw), "3")
    assert notes["size"] == len(built.pieces["3"])
    assert notes["lines"] == built.pieces["3"].count(b"\n")  # 2: as Dovecot counts


def test_text_without_charset_gets_us_ascii_appended() -> None:
    body = summarize(b"Content-Type: text/plain; format=flowed\r\n\r\nx\r\n")["body"]
    assert body["params"] == [["format", "flowed"], ["charset", "us-ascii"]]


def test_nested_multiparts() -> None:
    built = corpus.nested()
    summary = summarize(built.raw)
    assert [p["subtype"] for p in summary["body"]["parts"]] == ["alternative", "zip"]
    related = _part(summary, "1.2")
    assert related["subtype"] == "related"
    assert related["params"] == [["boundary", "rel"], ["type", "text/html"]]
    assert _part(summary, "1.2.2")["id"] == "<img1>"
    assert _part(summary, "1.2.2")["size"] == len(built.pieces["1.2.2"])


def test_message_rfc822_has_envelope_structure_and_lines() -> None:
    built = corpus.forwarded()
    node = _part(summarize(built.raw), "2")
    assert (node["type"], node["subtype"]) == ("message", "rfc822")
    assert node["size"] == len(built.pieces["2"])
    assert node["lines"] == built.pieces["2"].count(b"\n")
    inner = node["message"]
    assert inner["envelope"]["subject"] == "the original"
    assert inner["envelope"]["message_id"] == "<inner@example.net>"
    assert inner["header_size"] == len(built.pieces["2.HEADER"])
    assert inner["body"]["subtype"] == "alternative"
    assert [p["size"] for p in inner["body"]["parts"]] == [
        len(built.pieces["2.1"]),
        len(built.pieces["2.2"]),
    ]


def test_digest_parts_default_to_message_rfc822() -> None:
    built = corpus.digest()
    parts = summarize(built.raw)["body"]["parts"]
    assert [(p["type"], p["subtype"]) for p in parts] == [("message", "rfc822")] * 2
    assert parts[1]["message"]["envelope"]["subject"] == "second"
    assert parts[0]["size"] == len(built.pieces["1"])


def test_bare_lf_sizes_are_as_stored() -> None:
    built = corpus.bare_lf()
    summary = summarize(built.raw)
    for path in ("1", "2"):
        node = _part(summary, path)
        assert node["size"] == len(built.pieces[path])
        assert node["lines"] == built.pieces[path].count(b"\n")


def test_truncated_multipart_keeps_the_partial_part() -> None:
    built = corpus.truncated_multipart()
    parts = summarize(built.raw)["body"]["parts"]
    assert [p["size"] for p in parts] == [len(built.pieces["1"]), len(built.pieces["2"])]
    assert parts[1]["lines"] == 0


def test_multipart_without_boundary_has_one_empty_part() -> None:
    body = summarize(b"Content-Type: multipart/mixed\r\n\r\nhello\r\n")["body"]
    assert body["type"] == "multipart"
    assert [(p["type"], p["size"]) for p in body["parts"]] == [("text", 0)]


def test_invalid_content_type_falls_back_to_text_plain() -> None:
    body = summarize(b"Content-Type: text\r\n\r\nhello\r\n")["body"]
    assert (body["type"], body["subtype"], body["params"]) == (
        "text",
        "plain",
        [["charset", "us-ascii"]],
    )


def test_rfc2231_continuations_are_joined() -> None:
    raw = (
        b'Content-Type: application/octet-stream;\r\n name*0="long"; name*1="name.txt"\r\n'
        b"Content-Disposition: attachment; filename*=utf-8''%E2%82%AC%20rates.txt\r\n\r\nxx"
    )
    body = summarize(raw)["body"]
    assert body["params"] == [["name", "longname.txt"]]
    assert body["disposition"]["params"] == [["filename*", "utf-8''%E2%82%AC%20rates.txt"]]


def test_boundary_that_extends_the_outer_one_is_not_confused() -> None:
    raw = (
        b"Content-Type: multipart/mixed; boundary=abc\r\n\r\n--abc\r\n"
        b"Content-Type: multipart/mixed; boundary=abcdef\r\n\r\n--abcdef\r\n\r\ninner1\r\n"
        b"--abcdef--\r\n--abc\r\n\r\nouter2\r\n--abc--\r\n"
    )
    body = summarize(raw)["body"]
    assert [p["type"] for p in body["parts"]] == ["multipart", "text"]
    assert body["parts"][0]["parts"][0]["size"] == len(b"inner1")


def test_unclosed_inner_multipart_ends_at_outer_boundary() -> None:
    raw = (
        b"Content-Type: multipart/mixed; boundary=o\r\n\r\n--o\r\n"
        b"Content-Type: multipart/mixed; boundary=i\r\n\r\n--i\r\n\r\ninner1\r\n"
        b"--o\r\n\r\nouter2\r\n--o--\r\n"
    )
    body = summarize(raw)["body"]
    assert body["parts"][0]["parts"][0]["size"] == len(b"inner1")
    assert body["parts"][1]["size"] == len(b"outer2")


def test_base64_message_rfc822_is_not_parsed() -> None:
    raw = (
        b"Content-Type: message/rfc822\r\nContent-Transfer-Encoding: base64\r\n\r\n"
        b"U3ViamVjdDogeQ0KDQpib2R5DQo=\r\n"
    )
    body = summarize(raw)["body"]
    assert body["message"]["envelope"]["subject"] is None
    assert body["message"]["body"]["size"] == 0


def test_deep_nesting_is_bounded() -> None:
    summary = summarize(corpus.deep_nesting(MAX_DEPTH + 50))
    node, depth = summary["body"], 0
    while "parts" in node:
        node, depth = node["parts"][0], depth + 1
    assert depth == MAX_DEPTH
    assert (node["type"], node["subtype"]) == ("application", "octet-stream")


def test_deep_message_rfc822_nesting_is_bounded() -> None:
    raw = b"Subject: bottom\r\n\r\nx"
    for _ in range(MAX_DEPTH + 20):
        raw = b"Content-Type: message/rfc822\r\n\r\n" + raw
    summary = summarize(raw)
    assert json.loads(json.dumps(summary)) == summary


def test_empty_message_still_summarizes() -> None:
    summary = summarize(b"")
    assert summary["size"] == 0 and summary["header_size"] == 0
    assert summary["body"]["size"] == 0
    assert summary["envelope"]["from"] is None


def test_header_without_end_is_all_header() -> None:
    summary = summarize(b"Subject: x\r\nFrom: a@b")
    assert summary["header_size"] == len(b"Subject: x\r\nFrom: a@b")
    assert summary["body"]["size"] == 0
    assert summary["envelope"]["from"] == [[None, None, "a", "b"]]


def test_nul_bytes_in_body_count_in_size() -> None:
    built = corpus.nul_bytes()
    assert summarize(built.raw)["body"]["size"] == len(built.pieces["body"])


def test_many_parts_are_bounded() -> None:
    raw = b"Content-Type: multipart/mixed; boundary=b\r\n\r\n" + b"--b\r\n\r\nx\r\n" * 20_000
    summary = summarize(raw)
    assert 1 <= len(summary["body"]["parts"]) <= 10_000


def test_message_global_is_a_leaf() -> None:
    raw = (
        b"Content-Type: multipart/mixed; boundary=z\r\n\r\n--z\r\nContent-Type: message/global\r\n"
        b"\r\nSubject: inner\r\n\r\nbody\r\n--z--\r\n"
    )
    part = summarize(raw)["body"]["parts"][0]
    assert (part["type"], part["subtype"], part["lines"]) == ("message", "global", None)
    assert "message" not in part


def test_huge_header_field_count_is_bounded() -> None:
    raw = b"X-A: b\r\n" * 50_000 + b"Subject: late\r\n\r\nbody"
    summary = summarize(raw)
    assert summary["header_size"] == len(raw) - len(b"body")
    assert summary["body"]["size"] == len(b"body")


def test_nested_multipart_reusing_the_parent_boundary() -> None:
    # Outlook Express for Mac reused the outer boundary for the inner multipart; delimiters
    # are matched innermost first, as Dovecot does.
    b = b"MS_Mac_OE_3071477847_720252_MIME_Part"
    raw = (
        b'Content-Type: multipart/mixed; boundary="' + b + b'"\r\n\r\n'
        b"--" + b + b'\r\nContent-Type: multipart/alternative; boundary="' + b + b'"\r\n\r\n'
        b"--" + b + b"\r\nContent-Type: text/plain\r\n\r\nplain\r\n"
        b"--" + b + b"\r\nContent-Type: text/html\r\n\r\n<p>html</p>\r\n"
        b"--" + b + b"--\r\n\r\n"
        b"--"
        + b
        + b"\r\nContent-Type: image/gif\r\nContent-Transfer-Encoding: base64\r\n\r\nR0lGODlh\r\n"
        b"--" + b + b"--\r\n"
    )
    body = summarize(raw)["body"]
    assert [p["subtype"] for p in body["parts"]] == ["alternative", "gif"]
    assert [p["subtype"] for p in body["parts"][0]["parts"]] == ["plain", "html"]
    assert body["parts"][0]["parts"][1]["size"] == len(b"<p>html</p>")
    assert body["parts"][1]["size"] == len(b"R0lGODlh")


def test_rfc2231_plain_sections_join_as_written() -> None:
    raw = (
        b"Content-Type: text/plain; charset=us-ascii;\r\n"
        b"     title*0*=\"us-ascii'en'This%20is%20\";\r\n"
        b'     title*1="isn\'t it!"\r\n\r\nx'
    )
    params = summarize(raw)["body"]["params"]
    assert params == [["charset", "us-ascii"], ["title*", "us-ascii'en'This%20is%20isn't it!"]]


def test_transfer_encoding_with_trailing_junk_is_7bit() -> None:
    raw = b"Content-Type: application/zip\r\nContent-Transfer-Encoding: ent; x=y\r\n\r\nzz"
    assert summarize(raw)["body"]["encoding"] == "7bit"


def test_transfer_encoding_with_comment_is_read() -> None:
    raw = b"Content-Transfer-Encoding: (old mailer) BASE64 (really)\r\n\r\nzz"
    assert summarize(raw)["body"]["encoding"] == "base64"


def test_delimiter_with_trailing_text_still_delimits() -> None:
    raw = b"Content-Type: multipart/mixed; boundary=cut\r\n\r\n--cut\r\n\r\none\r\n--cutjunk\r\n\r\ntwo\r\n--cut--\r\n"
    assert [p["size"] for p in summarize(raw)["body"]["parts"]] == [3, 3]


def test_header_only_parts_do_not_rescan_the_message() -> None:
    raw = (
        b"Content-Type: multipart/mixed; boundary=b\r\n\r\n"
        + b"--b\r\nX-A: y\r\n" * 5000
        + b"--b--\r\n"
    )
    parts = summarize(raw)["body"]["parts"]
    assert len(parts) == 5000 and parts[0]["size"] == 0


def test_long_blank_runs_in_content_type_stay_linear() -> None:
    # A regular expression fast path would backtrack quadratically here.
    raw = b"Content-Type: text/plain; charset=utf-8" + b" " * 1_000_000 + b"x\r\n\r\nbody"
    assert summarize(raw)["body"]["params"] == [["charset", "utf-8"]]


def test_references_kept_for_threading() -> None:
    raw = (b"Subject: x\r\nReferences: <a@example.test>\r\n <b@example.test>\r\n"
           b"In-Reply-To: <b@example.test>\r\n\r\nbody\r\n")
    summary = summarize(raw)
    assert summary["references"] == "<a@example.test> <b@example.test>"
    assert summary["envelope"]["in_reply_to"] == "<b@example.test>"
    assert summarize(b"Subject: x\r\n\r\n")["references"] is None

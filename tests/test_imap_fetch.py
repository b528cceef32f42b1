"""FETCH and UID FETCH over a StringTransport: every item, sections, partials, \\Seen rules,
CONDSTORE modifiers and bad sequence sets."""

from __future__ import annotations

from test_imap_helpers import ALICE, SIMPLE, Client, deliver, make_ctx, message, selected

MULTIPART = (b"From: a@example.test\r\nSubject: parts\r\nMIME-Version: 1.0\r\n"
             b'Content-Type: multipart/mixed; boundary="b1"\r\n\r\n'
             b"--b1\r\nContent-Type: text/plain\r\n\r\nfirst part\r\n"
             b"--b1\r\nContent-Type: message/rfc822\r\n\r\n"
             b"Subject: inner\r\nFrom: c@example.test\r\n\r\ninner body\r\n"
             b"--b1--\r\n")


def test_flags_uid_size() -> None:
    c = selected(SIMPLE)
    out = c.ok("FETCH 1 (FLAGS UID RFC822.SIZE)")
    assert b"* 1 FETCH (FLAGS () UID 1 RFC822.SIZE %d)" % len(SIMPLE) in out


def test_uid_fetch_always_includes_uid() -> None:
    c = selected(SIMPLE)
    assert b"* 1 FETCH (UID 1 FLAGS ())" in c.ok("UID FETCH 1 FLAGS")


def test_envelope() -> None:
    c = selected(SIMPLE)
    out = c.ok("FETCH 1 ENVELOPE")
    assert b'ENVELOPE ("Mon, 23 Nov 2026 10:00:00 +0000" "hello" (("Alice" NIL "alice"' in out


def test_bodystructure_of_multipart_with_message_part() -> None:
    c = selected(MULTIPART)
    out = c.ok("FETCH 1 BODYSTRUCTURE")
    assert b'"MIXED"' in out and b'"MESSAGE" "RFC822"' in out


def test_body_section_part_and_mime() -> None:
    c = selected(MULTIPART)
    assert b"BODY[1] {10}\r\nfirst part)" in c.ok("FETCH 1 BODY.PEEK[1]")
    assert b"Content-Type: text/plain" in c.ok("FETCH 1 BODY.PEEK[1.MIME]")
    assert b"Subject: inner" in c.ok("FETCH 1 BODY.PEEK[2.HEADER]")


def test_header_fields_and_not() -> None:
    c = selected(SIMPLE)
    out = c.ok("FETCH 1 BODY.PEEK[HEADER.FIELDS (SUBJECT)]")
    assert b"BODY[HEADER.FIELDS (SUBJECT)] {18}\r\nSubject: hello\r\n\r\n" in out
    out = c.ok("FETCH 1 BODY.PEEK[HEADER.FIELDS.NOT (Subject)]")
    assert b"Subject" not in out.split(b"{", 1)[1] and b"From: Alice" in out


def test_partial_body() -> None:
    c = selected(SIMPLE)
    assert b"BODY[]<0> {4}\r\nFrom)" in c.ok("FETCH 1 BODY.PEEK[]<0.4>")
    assert b"BODY[TEXT]<6> {6}\r\nBob.\r\n)" in c.ok("FETCH 1 BODY.PEEK[TEXT]<6.100>")


def test_body_sets_seen_and_reports_flags() -> None:
    c = selected(SIMPLE)
    out = c.ok("FETCH 1 BODY[TEXT]")
    assert b"FLAGS (\\Seen)" in out


def test_peek_does_not_set_seen() -> None:
    c = selected(SIMPLE)
    c.ok("FETCH 1 BODY.PEEK[]")
    assert b"FLAGS ()" in c.ok("FETCH 1 FLAGS")


def test_examine_never_sets_seen() -> None:
    ctx = make_ctx()
    deliver(ctx, ALICE, SIMPLE)
    c = Client(ctx)
    c.login()
    c.ok("EXAMINE INBOX")
    c.ok("FETCH 1 RFC822")
    assert b"FLAGS ()" in c.ok("FETCH 1 FLAGS")


def test_rfc822_forms() -> None:
    c = selected(SIMPLE)
    out = c.ok("FETCH 1 (RFC822.HEADER RFC822.TEXT)")
    assert b"RFC822.HEADER {" in out and b"RFC822.TEXT {12}\r\nHello Bob.\r\n" in out


def test_macros() -> None:
    c = selected(SIMPLE)
    out = c.ok("FETCH 1 FULL")
    for item in (b"FLAGS", b"INTERNALDATE", b"RFC822.SIZE", b"ENVELOPE", b"BODY ("):
        assert item in out


def test_missing_part_is_empty() -> None:
    c = selected(SIMPLE)
    assert b'BODY[3] {0}' in c.ok("FETCH 1 BODY.PEEK[3]") or b'BODY[3] ""' in c.ok(
        "FETCH 1 BODY.PEEK[3]")


def test_sections_nested_50_deep_are_bad() -> None:
    c = selected(SIMPLE)
    spec = ".".join(["1"] * 50)
    assert c.status(c.cmd(f"FETCH 1 BODY[{spec}]")).startswith(b"BAD")


def test_sequence_zero_is_bad() -> None:
    c = selected(SIMPLE)
    assert c.status(c.cmd("FETCH 0 FLAGS")).startswith(b"BAD")


def test_sequence_beyond_exists_is_bad() -> None:
    c = selected(SIMPLE)
    assert c.status(c.cmd("FETCH 1:4294967295 FLAGS")).startswith(b"BAD")


def test_uid_huge_range_is_fine() -> None:
    c = selected(SIMPLE, message(2))
    out = c.ok("UID FETCH 1:4294967295 FLAGS")
    assert out.count(b"FETCH (") == 2


def test_star_colon_one_means_all() -> None:
    c = selected(SIMPLE, message(2))
    assert c.ok("FETCH *:1 UID").count(b"FETCH (") == 2


def test_uid_star_on_higher_range_includes_last() -> None:
    c = selected(SIMPLE, message(2))
    out = c.ok("UID FETCH 100:* UID")
    assert b"* 2 FETCH (UID 2)" in out


def test_unknown_item_is_bad() -> None:
    c = selected(SIMPLE)
    assert c.status(c.cmd("FETCH 1 (FLAGS BOGUS)")).startswith(b"BAD")


def test_changedsince_filters_and_adds_modseq() -> None:
    c = selected(SIMPLE, message(2))
    c.ok("STORE 2 +FLAGS (\\Flagged)")
    out = c.ok("FETCH 1:* (FLAGS) (CHANGEDSINCE 3)")
    assert out.count(b"FETCH (") == 1 and b"MODSEQ (" in out


def test_fetch_in_empty_mailbox_with_star() -> None:
    c = selected()
    out = c.cmd("FETCH 1:* FLAGS")
    assert c.status(out).startswith(b"OK")

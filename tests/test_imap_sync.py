"""Sessions sharing a mailbox: untagged EXISTS/EXPUNGE/FETCH updates, the RFC 3501 7.4.1 rule
(no EXPUNGE during FETCH/STORE/SEARCH), IDLE push, QRESYNC VANISHED."""

from __future__ import annotations

from test_imap_helpers import ALICE, Client, deliver, make_ctx, message, untagged


def two_sessions(count: int = 3):  # type: ignore[no-untyped-def]
    ctx = make_ctx()
    for n in range(1, count + 1):
        deliver(ctx, ALICE, message(n))
    a, b = Client(ctx), Client(ctx, peer="192.0.2.2")
    for c in (a, b):
        c.login()
        c.select()
    return ctx, a, b


def test_other_sessions_flag_change_is_reported() -> None:
    _, a, b = two_sessions()
    a.ok("STORE 2 +FLAGS.SILENT (\\Flagged)")
    out = b.ok("NOOP")
    assert b"* 2 FETCH (UID 2 FLAGS (\\Flagged))" in out


def test_new_mail_is_reported_as_exists() -> None:
    ctx, a, _ = two_sessions()
    deliver(ctx, ALICE, message(9))
    assert b"* 4 EXISTS" in a.ok("NOOP")


def test_expunge_elsewhere_is_reported_on_noop() -> None:
    _, a, b = two_sessions()
    a.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    a.ok("EXPUNGE")
    assert untagged(b.ok("NOOP"), "EXPUNGE") == [b"* 1 EXPUNGE"]


def test_no_expunge_during_fetch_and_sequence_numbers_stay() -> None:
    _, a, b = two_sessions()
    a.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    a.ok("EXPUNGE")
    out = b.cmd("FETCH 1:3 UID")
    assert b"* 1 EXPUNGE" not in out and b"[EXPUNGEISSUED]" in out
    assert b"* 2 FETCH (UID 2)" in out and b"* 3 FETCH (UID 3)" in out
    assert b"* 1 EXPUNGE" in b.ok("NOOP")
    assert b"* 1 FETCH (UID 2)" in b.ok("FETCH 1 UID")


def test_no_expunge_during_store_or_search() -> None:
    _, a, b = two_sessions()
    a.ok("STORE 3 +FLAGS.SILENT (\\Deleted)")
    a.ok("EXPUNGE")
    assert b"* 3 EXPUNGE" not in b.cmd("SEARCH ALL")
    assert b"* 3 EXPUNGE" not in b.cmd("STORE 1 +FLAGS (\\Seen)")
    assert b"* 3 EXPUNGE" in b.ok("UID SEARCH ALL")


def test_new_mail_while_expunge_pending_keeps_numbers_consistent() -> None:
    ctx, a, b = two_sessions()
    a.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    a.ok("EXPUNGE")
    deliver(ctx, ALICE, message(9))
    assert b"* 4 EXISTS" in b.cmd("FETCH 2 UID")
    assert b"* 4 FETCH (UID 4)" in b.cmd("FETCH 4 UID")
    out = b.ok("NOOP")
    assert b"* 1 EXPUNGE" in out
    assert b"* 3 FETCH (UID 4)" in b.ok("FETCH 3 UID")


def test_idle_pushes_delivery_at_once() -> None:
    ctx, a, _ = two_sessions()
    assert a.cmd("IDLE") == b"+ idling\r\n"
    deliver(ctx, ALICE, message(9))
    assert a.take() == b"* 4 EXISTS\r\n"
    assert a.status(a.raw("DONE")).startswith(b"OK")


def test_idle_pushes_expunge_and_flags_from_other_session() -> None:
    _, a, b = two_sessions()
    a.cmd("IDLE")
    b.ok("STORE 2 +FLAGS.SILENT (\\Seen)")
    assert b"* 2 FETCH (UID 2 FLAGS (\\Seen))" in a.take()
    b.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    b.ok("EXPUNGE")
    assert b"* 1 EXPUNGE" in a.take()
    a.raw("DONE")


def test_idle_without_done_line_is_bad() -> None:
    _, a, _ = two_sessions()
    a.cmd("IDLE")
    assert a.status(a.raw("NOPE")).startswith(b"BAD")


def test_qresync_reports_vanished() -> None:
    _, a, b = two_sessions()
    b.ok("ENABLE QRESYNC")
    a.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    a.ok("EXPUNGE")
    assert b"* VANISHED 2" in b.ok("NOOP")


def test_select_qresync_sends_vanished_earlier_and_changes() -> None:
    ctx, a, _ = two_sessions(4)
    status = ctx.store.account(ALICE).folder_status("INBOX")
    a.ok("STORE 2 +FLAGS.SILENT (\\Deleted)")
    a.ok("EXPUNGE")
    a.ok("STORE 3 +FLAGS.SILENT (\\Flagged)")
    c = Client(ctx)
    c.login()
    c.ok("ENABLE QRESYNC")
    out = c.ok(f"SELECT INBOX (QRESYNC ({status.uidvalidity} {status.highest_modseq} 1:4))")
    assert b"* VANISHED (EARLIER) 2" in out
    assert b"* 3 FETCH (UID 4 FLAGS (\\Flagged) MODSEQ" in out


def test_uid_fetch_vanished_modifier() -> None:
    _, a, b = two_sessions(4)
    b.ok("ENABLE QRESYNC")
    a.ok("STORE 4 +FLAGS.SILENT (\\Deleted)")
    a.ok("EXPUNGE")
    b.ok("NOOP")
    out = b.ok("UID FETCH 1:4 FLAGS (CHANGEDSINCE 1 VANISHED)")
    assert b"* VANISHED (EARLIER) 4" in out

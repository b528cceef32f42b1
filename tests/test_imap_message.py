"""STORE, COPY, MOVE, EXPUNGE, UID EXPUNGE, CLOSE, UNSELECT, CHECK and APPEND over a
StringTransport."""

from __future__ import annotations

from test_imap_helpers import ALICE, Client, deliver, make_ctx, message, untagged


def selected(count: int = 3, readonly: bool = False) -> Client:
    ctx = make_ctx()
    for n in range(1, count + 1):
        deliver(ctx, ALICE, message(n))
    c = Client(ctx)
    c.login()
    c.ok("EXAMINE INBOX" if readonly else "SELECT INBOX")
    return c


def test_store_add_reports_new_flags() -> None:
    c = selected()
    assert b"* 2 FETCH (FLAGS (\\Flagged))" in c.ok("STORE 2 +FLAGS (\\Flagged)")


def test_store_silent_reports_nothing() -> None:
    c = selected()
    out = c.ok("STORE 1:3 +FLAGS.SILENT \\Seen")
    assert b"FETCH" not in out
    assert c.ok("FETCH 1:3 FLAGS").count(b"\\Seen") == 3


def test_store_replace_and_remove() -> None:
    c = selected()
    c.ok("STORE 1 FLAGS (\\Seen $Label1)")
    assert b"FLAGS ($Label1)" in c.ok("STORE 1 -FLAGS (\\Seen)")


def test_uid_store_includes_uid() -> None:
    c = selected()
    assert b"* 1 FETCH (UID 1 FLAGS (\\Answered))" in c.ok("UID STORE 1 +FLAGS (\\Answered)")


def test_store_unknown_system_flag_is_bad() -> None:
    c = selected()
    assert c.status(c.cmd("STORE 1 +FLAGS (\\Bogus)")).startswith(b"BAD")


def test_store_in_examine_is_refused() -> None:
    c = selected(readonly=True)
    assert c.status(c.cmd("STORE 1 +FLAGS (\\Seen)")).startswith(b"NO")


def test_unchangedsince_reports_modified() -> None:
    c = selected()
    c.ok("STORE 1 +FLAGS (\\Seen)")
    out = c.cmd("STORE 1:2 (UNCHANGEDSINCE 1) +FLAGS (\\Flagged)")
    assert b"[MODIFIED 1" in c.status(out)


def test_expunge_reports_each_message() -> None:
    c = selected(4)
    c.ok("STORE 2:3 +FLAGS.SILENT (\\Deleted)")
    out = c.ok("EXPUNGE")
    assert untagged(out, "EXPUNGE") == [b"* 2 EXPUNGE", b"* 2 EXPUNGE"]
    assert b"* 2 FETCH (UID 4)" in c.ok("FETCH 2 UID")


def test_uid_expunge_only_named_messages() -> None:
    c = selected(3)
    c.ok("STORE 1:3 +FLAGS.SILENT (\\Deleted)")
    out = c.ok("UID EXPUNGE 2")
    assert untagged(out, "EXPUNGE") == [b"* 2 EXPUNGE"]


def test_expunge_in_examine_refused() -> None:
    c = selected(readonly=True)
    assert c.status(c.cmd("EXPUNGE")).startswith(b"NO")


def test_copy_reports_copyuid() -> None:
    c = selected(2)
    out = c.ok("COPY 1:2 Archive")
    assert b"[COPYUID " in out and b" 1:2 1:2]" in out


def test_copy_to_missing_folder_says_trycreate() -> None:
    c = selected(1)
    assert c.status(c.cmd("COPY 1 Nope")).startswith(b"NO [TRYCREATE]")


def test_move_expunges_and_reports_copyuid() -> None:
    c = selected(3)
    out = c.ok("MOVE 2 Trash")
    assert b"* OK [COPYUID " in out and b"* 2 EXPUNGE" in out
    assert b"MESSAGES 1" in c.ok("STATUS Trash (MESSAGES)")


def test_uid_move() -> None:
    c = selected(3)
    out = c.ok("UID MOVE 3 Trash")
    assert b"* 3 EXPUNGE" in out


def test_close_expunges_silently() -> None:
    c = selected(2)
    c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    out = c.ok("CLOSE")
    assert b"EXPUNGE" not in out
    assert b"MESSAGES 1" in c.ok("STATUS INBOX (MESSAGES)")


def test_unselect_keeps_deleted() -> None:
    c = selected(2)
    c.ok("STORE 1 +FLAGS.SILENT (\\Deleted)")
    c.ok("UNSELECT")
    assert b"MESSAGES 2" in c.ok("STATUS INBOX (MESSAGES)")
    assert c.status(c.cmd("FETCH 1 FLAGS")).startswith(b"BAD")


def test_check() -> None:
    c = selected(1)
    c.ok("CHECK")


def test_append_with_flags_and_date() -> None:
    c = Client(make_ctx())
    c.login()
    raw = message(1)
    assert c.cmd(f'APPEND Drafts (\\Draft \\Seen) "05-Mar-2024 10:00:00 +0000" {{{len(raw)}}}') \
        == b"+ Ready for literal data\r\n"
    out = c.send(raw + b"\r\n")
    assert b"OK [APPENDUID " in out
    c.ok("SELECT Drafts")
    out = c.ok("FETCH 1 (FLAGS INTERNALDATE)")
    assert b"\\Draft" in out and b'"05-Mar-2024 10:00:00 +0000"' in out


def test_append_literal_plus() -> None:
    c = Client(make_ctx())
    c.login()
    raw = message(1)
    out = c.send(b"a APPEND INBOX {%d+}\r\n" % len(raw) + raw + b"\r\n")
    assert b"a OK [APPENDUID" in out and b"+ Ready" not in out


def test_append_to_missing_folder_says_trycreate() -> None:
    c = Client(make_ctx())
    c.login()
    out = c.send(b"a APPEND Nope {3+}\r\nabc\r\n")
    assert b"a NO [TRYCREATE]" in out


def test_append_to_selected_folder_announces_exists() -> None:
    c = selected(1)
    out = c.send(b"a APPEND INBOX {3+}\r\nabc\r\n")
    assert b"* 2 EXISTS" in out


def quota_client(messages_limit: int) -> Client:
    from twisted.internet import task

    from mailsuite.store.memory import MemoryStore
    from mailsuite.store.settings import StoreSettings

    store = MemoryStore(StoreSettings(default_quota_messages=messages_limit), clock=task.Clock())
    c = Client(make_ctx(store=store))
    c.login()
    return c


def test_append_over_quota_is_overquota() -> None:
    c = quota_client(1)
    c.send(b"a APPEND INBOX {3+}\r\nabc\r\n")
    assert b"b NO [OVERQUOTA]" in c.send(b"b APPEND INBOX {3+}\r\nabc\r\n")


def test_quota_reports_message_limit() -> None:
    c = quota_client(5)
    c.send(b"a APPEND INBOX {3+}\r\nabc\r\n")
    assert b'* QUOTA "" (MESSAGE 1 5)' in c.ok('GETQUOTA ""')


def test_copy_over_quota_is_overquota() -> None:
    c = quota_client(1)
    c.send(b"a APPEND INBOX {3+}\r\nabc\r\n")
    c.select()
    assert c.status(c.cmd("COPY 1 Archive")).startswith(b"NO [OVERQUOTA]")


def test_multiappend() -> None:
    c = Client(make_ctx())
    c.login()
    out = c.send(b"a APPEND Drafts (\\Draft) {3+}\r\none {3+}\r\ntwo\r\n")
    assert b"a OK [APPENDUID " in out and b" 1:2]" in out
    assert b"MESSAGES 2" in c.ok("STATUS Drafts (MESSAGES)")


def test_multiappend_is_all_or_nothing() -> None:
    c = quota_client(2)
    out = c.send(b"a APPEND INBOX {3+}\r\none {3+}\r\ntwo {5+}\r\nthree\r\n")
    assert b"a NO [OVERQUOTA]" in out
    assert b"MESSAGES 0" in c.ok("STATUS INBOX (MESSAGES)")

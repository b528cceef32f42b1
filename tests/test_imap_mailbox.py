"""Mailbox commands over a StringTransport: SELECT/EXAMINE, CREATE/DELETE/RENAME, LIST/LSUB,
SUBSCRIBE, STATUS, NAMESPACE, QUOTA, and folder names that try to escape."""

from __future__ import annotations

import pytest
from test_imap_helpers import ALICE, BOB, Client, deliver, make_ctx, message, untagged


def logged_in(ctx=None) -> Client:  # type: ignore[no-untyped-def]
    c = Client(ctx or make_ctx())
    c.login()
    return c


def test_select_reports_counts_and_uid_state() -> None:
    ctx = make_ctx()
    deliver(ctx, ALICE, message(1))
    deliver(ctx, ALICE, message(2), flags=("\\Seen",))
    c = logged_in(ctx)
    out = c.select()
    assert b"* 2 EXISTS" in out
    assert b"* OK [UIDNEXT 3]" in out
    assert b"[UIDVALIDITY " in out and b"[HIGHESTMODSEQ " in out
    assert b"* OK [UNSEEN 1]" in out
    assert b"OK [READ-WRITE]" in out


def test_examine_is_read_only() -> None:
    c = logged_in()
    out = c.ok("EXAMINE INBOX")
    assert b"OK [READ-ONLY]" in out and b"[PERMANENTFLAGS ()]" in out


def test_select_missing_folder_leaves_nothing_selected() -> None:
    c = logged_in()
    c.select()
    assert c.status(c.cmd("SELECT Nope")).startswith(b"NO [NONEXISTENT]")
    assert c.status(c.cmd("FETCH 1 FLAGS")).startswith(b"BAD")


def test_list_shows_special_use_folders() -> None:
    c = logged_in()
    out = c.ok('LIST "" "*"')
    assert b'* LIST (\\HasNoChildren \\Sent) "/" "Sent"' in out
    assert b'"INBOX"' in out and b"\\Trash" in out and b"\\Junk" in out


def test_list_empty_pattern_gives_delimiter() -> None:
    c = logged_in()
    assert b'* LIST (\\Noselect) "/" ""' in c.ok('LIST "" ""')


def test_percent_does_not_descend() -> None:
    c = logged_in()
    c.ok("CREATE Work/2026")
    out = c.ok('LIST "" "%"')
    assert b'"Work"' in out and b'"Work/2026"' not in out
    assert b'\\HasChildren) "/" "Work"' in out


def test_list_with_reference() -> None:
    c = logged_in()
    c.ok("CREATE Work/2026")
    out = c.ok('LIST "Work/" "%"')
    assert len(untagged(out, "LIST")) == 1 and b'"Work/2026"' in out


def test_list_special_use_selection() -> None:
    c = logged_in()
    c.ok("CREATE Plain")
    out = c.ok('LIST (SPECIAL-USE) "" "*"')
    assert b'"Plain"' not in out and b"\\Drafts" in out


def test_list_status_returns_status() -> None:
    ctx = make_ctx()
    deliver(ctx, ALICE, message(1))
    c = logged_in(ctx)
    out = c.ok('LIST "" "INBOX" RETURN (STATUS (MESSAGES UNSEEN))')
    assert b'* STATUS "INBOX" (MESSAGES 1 UNSEEN 1)' in out


def test_create_and_delete() -> None:
    c = logged_in()
    c.ok("CREATE Projects")
    assert c.status(c.cmd("CREATE Projects")).startswith(b"NO [ALREADYEXISTS]")
    c.ok("DELETE Projects")
    assert c.status(c.cmd("DELETE Projects")).startswith(b"NO [NONEXISTENT]")


def test_delete_inbox_refused() -> None:
    c = logged_in()
    assert c.status(c.cmd("DELETE INBOX")).startswith(b"NO")


def test_rename_inbox_moves_messages() -> None:
    ctx = make_ctx()
    deliver(ctx, ALICE, message(1))
    c = logged_in(ctx)
    c.ok("RENAME INBOX Old")
    assert b"MESSAGES 1" in c.ok("STATUS Old (MESSAGES)")
    assert b"MESSAGES 0" in c.ok("STATUS INBOX (MESSAGES)")


def test_rename_folder() -> None:
    c = logged_in()
    c.ok("CREATE A")
    c.ok("RENAME A B")
    out = c.ok('LIST "" "*"')
    assert b'"B"' in out and b'"A"' not in out


def test_modified_utf7_names_round_trip() -> None:
    c = logged_in()
    c.ok('CREATE "Entw&APw-rfe"')
    assert b'"Entw&APw-rfe"' in c.ok('LIST "" "Entw*"')


def test_bad_utf7_refused() -> None:
    c = logged_in()
    assert c.status(c.cmd('CREATE "a&Jjo"')).startswith(b"NO")


@pytest.mark.parametrize("name", ['"../x"', '"/etc"', '"~bob"', '"a/../b"', '"a*"', '"b%"',
                                  '"a//b"', "{3}\r\na\x00b"])
def test_escaping_names_refused(name: str) -> None:
    c = logged_in()
    if name.startswith("{"):
        c.send(b"x CREATE {3}\r\n")
        out = c.send(b"a\x00b\r\n")
        assert b"x NO" in out or b"x BAD" in out
        return
    assert c.status(c.cmd(f"CREATE {name}")).startswith(b"NO")


def test_other_users_folders_unreachable() -> None:
    ctx = make_ctx()
    deliver(ctx, BOB, message(1, subject="secret"))
    c = logged_in(ctx)
    for name in ('"../bob@example.test/INBOX"', '"~bob/INBOX"', '"/bob@example.test"'):
        assert c.status(c.cmd(f"SELECT {name}")).startswith(b"NO")
    assert b"secret" not in c.ok('LIST "" "*"')


def test_subscribe_and_lsub() -> None:
    c = logged_in()
    c.ok("CREATE News")
    c.ok("SUBSCRIBE News")
    assert b'* LSUB () "/" "News"' in c.ok('LSUB "" "*"')
    c.ok("UNSUBSCRIBE News")
    assert b'"News"' not in c.ok('LSUB "" "*"')


def test_list_subscribed_selection() -> None:
    c = logged_in()
    c.ok("CREATE News")
    c.ok("CREATE Other")
    c.ok("SUBSCRIBE News")
    c.ok("UNSUBSCRIBE Other")
    out = c.ok('LIST (SUBSCRIBED) "" "*"')
    assert b'\\Subscribed) "/" "News"' in out and b'"Other"' not in out


def test_status_items() -> None:
    ctx = make_ctx()
    deliver(ctx, ALICE, message(1), folder="Sent")
    c = logged_in(ctx)
    out = c.ok("STATUS Sent (MESSAGES UIDNEXT UNSEEN SIZE HIGHESTMODSEQ)")
    assert b'* STATUS "Sent" (MESSAGES 1 UIDNEXT 2 UNSEEN 1 SIZE ' in out


def test_status_unknown_item_is_bad() -> None:
    c = logged_in()
    assert c.status(c.cmd("STATUS INBOX (BOGUS)")).startswith(b"BAD")


def test_namespace() -> None:
    c = logged_in()
    assert b'* NAMESPACE (("" "/")) NIL NIL' in c.ok("NAMESPACE")


def test_getquotaroot() -> None:
    c = logged_in()
    out = c.ok("GETQUOTAROOT INBOX")
    assert b'* QUOTAROOT "INBOX" ""' in out and b'* QUOTA "" (' in out


def test_list_extended_several_patterns() -> None:
    c = logged_in()
    out = c.ok('LIST "" ("Sent" "Trash")')
    assert len(untagged(out, "LIST")) == 2


def test_list_return_subscribed() -> None:
    c = logged_in()
    c.ok("CREATE News")
    c.ok("SUBSCRIBE News")
    assert b'(\\HasNoChildren \\Subscribed) "/" "News"' in c.ok('LIST "" "News" RETURN (SUBSCRIBED)')


def test_status_appendlimit() -> None:
    c = logged_in()
    assert b"APPENDLIMIT 52428800" in c.ok("STATUS INBOX (APPENDLIMIT)")


def test_closed_sent_when_switching_mailbox() -> None:
    c = logged_in()
    c.select()
    assert b"* OK [CLOSED]" in c.select("Sent")


def test_utf8_accept_names_in_utf8() -> None:
    c = logged_in()
    assert b"* ENABLED UTF8=ACCEPT" in c.ok("ENABLE UTF8=ACCEPT")
    c.ok('CREATE "Entwürfe"')
    assert '"Entwürfe"'.encode() in c.ok('LIST "" "Entw*"')
    assert '* STATUS "Entwürfe" (MESSAGES 0)'.encode() in c.ok('STATUS "Entwürfe" (MESSAGES)')


def test_utf8_name_seen_as_mutf7_by_other_clients() -> None:
    c = logged_in()
    c.ok("ENABLE UTF8=ACCEPT")
    c.ok('CREATE "Entwürfe"')
    other = logged_in(c.ctx)
    assert b'"Entw&APw-rfe"' in other.ok('LIST "" "Entw*"')


def test_utf8_append() -> None:
    c = logged_in()
    c.ok("ENABLE UTF8=ACCEPT")
    out = c.send(b"a APPEND INBOX UTF8 (~{3+}\r\nabc)\r\n")
    assert b"a OK [APPENDUID" in out


def test_utf8_append_needs_enable() -> None:
    c = logged_in()
    assert b"a BAD" in c.send(b"a APPEND INBOX UTF8 (~{3+}\r\nabc)\r\n")


# --- CREATE-SPECIAL-USE (RFC 6154 section 3) --------------------------------------------------


def test_create_special_use_is_advertised() -> None:
    c = logged_in()
    assert b"CREATE-SPECIAL-USE" in untagged(c.ok("CAPABILITY"), "CAPABILITY")[0].split()


def test_create_with_use_lists_the_attribute() -> None:
    c = logged_in()
    c.ok("CREATE Outgoing (USE (\\Sent))")
    c.ok("CREATE Bin (USE (\\trash \\Trash))")  # case-insensitive; a repeat is one use
    c.ok("CREATE Plain")
    out = c.ok('LIST "" "*"')
    assert b'* LIST (\\HasNoChildren \\Sent) "/" "Outgoing"' in out
    assert b'* LIST (\\HasNoChildren \\Trash) "/" "Bin"' in out
    assert b'* LIST (\\HasNoChildren) "/" "Plain"' in out
    special = c.ok('LIST (SPECIAL-USE) "" "*"')
    names = {line.rsplit(b" ", 1)[1] for line in untagged(special, "LIST")}
    assert names == {b'"Outgoing"', b'"Bin"', b'"Sent"', b'"Drafts"', b'"Trash"', b'"Junk"',
                     b'"Archive"'}
    assert b'"Outgoing"' in c.ok('LIST "" "*" RETURN (SPECIAL-USE)')


def test_create_with_empty_use_list_is_a_plain_folder() -> None:
    c = logged_in()
    c.ok("CREATE Nothing (USE ())")
    assert b'* LIST (\\HasNoChildren) "/" "Nothing"' in c.ok('LIST "" "Nothing"')


def test_create_with_unknown_or_virtual_use_is_refused() -> None:
    c = logged_in()
    for command in ("CREATE A (USE (\\Bogus))", "CREATE A (USE (\\All))",
                    "CREATE A (USE (\\Flagged))", "CREATE A (USE (\\Sent \\Trash))"):
        assert c.status(c.cmd(command)).startswith(b"NO [USEATTR]"), command
    assert untagged(c.ok('LIST "" "A"'), "LIST") == []  # nothing was created


def test_create_with_bad_parameters_is_bad() -> None:
    c = logged_in()
    for command in ("CREATE A (FOO)", "CREATE A (USE)", "CREATE A (USE (Sent))",
                    "CREATE A (USE (\\Sent)", "CREATE A USE (\\Sent)"):
        assert c.status(c.cmd(command)).startswith(b"BAD"), command
    assert untagged(c.ok('LIST "" "A"'), "LIST") == []


def test_create_with_use_on_existing_name_fails() -> None:
    c = logged_in()
    assert c.status(c.cmd("CREATE Sent (USE (\\Archive))")).startswith(b"NO [ALREADYEXISTS]")
    assert b"\\Sent" in c.ok('LIST "" "Sent"')

"""Interop: our THREAD answers against Dovecot's for the same mailbox.

Dovecot's ``imap`` binary runs in PREAUTH mode (``dovecot_preauth``) over a temporary Maildir
holding the messages below, with the UIDs our store gives them. Skipped when Dovecot (Debian
``dovecot-imapd``) is not installed.
"""

from __future__ import annotations

import re

import pytest
from dovecot_preauth import run_preauth
from test_imap_helpers import selected, untagged
from test_imap_thread import MAILBOX, raw

# MAILBOX's cases, plus: a chain whose middle is missing, a References list that loops, two
# messages sharing one Message-ID, a reply found through In-Reply-To when References holds no
# valid ID, roots merged by subject under REFERENCES, and a message without a Message-ID.
MESSAGES = [
    *MAILBOX,
    raw(9, "Budget", 9, mid="<b1@example.test>"),
    raw(10, "Re: Budget", 11, refs="<b1@example.test> <b2@example.test>",
        mid="<b3@example.test>"),
    raw(11, "Re: Budget", 10, refs="<b2@example.test>", mid="<b4@example.test>"),
    raw(12, "Loop", 12, refs="<l2@example.test>", mid="<l1@example.test>"),
    raw(13, "Re: Loop", 13, refs="<l1@example.test>", mid="<l2@example.test>"),
    raw(14, "Twins", 14, mid="<same@example.test>"),
    raw(15, "Twins", 15, mid="<same@example.test>"),
    raw(16, "Re: Invoice", 16, refs="not a message id", irt="<5@example.test>"),
    raw(17, "Re: Quarterly report", 17, refs="<gone@example.test>"),
    raw(18, "Quarterly report", 18, mid="<q1@example.test>"),
    raw(19, "Re: Re: Quarterly report", 19, refs="<gone2@example.test>"),
    (b"From: x@example.test\r\nSubject: No id\r\nDate: 20 Jan 2026 10:00:00 +0000\r\n\r\n"
     b"body\r\n"),
]
COMMANDS = ["THREAD REFERENCES UTF-8 ALL", "THREAD ORDEREDSUBJECT UTF-8 ALL",
            "THREAD REFERENCES UTF-8 NOT SUBJECT Loop", "UID THREAD REFERENCES UTF-8 ALL"]
# The second mailbox lacks the first message (UID 1): sequence numbers and UIDs differ there.
# (Dovecot runs a pipelined script's commands out of order, so the gap is made on disk.)
AFTER_EXPUNGE = ["UID THREAD REFERENCES UTF-8 ALL", "THREAD REFERENCES UTF-8 ALL"]


def _run_dovecot(messages: dict[int, bytes], commands: list[str]) -> list[bytes]:
    """Dovecot's ``* THREAD`` line for each of ``commands`` over ``{uid: message}``."""
    files, uidlist = {}, [f"3 V1 N{max(messages) + 1}"]
    for uid, message in sorted(messages.items()):
        name = f"{1000 + uid}.M{uid}.test"
        files[f"{name}:2,"] = message
        uidlist.append(f"{uid} :{name}")
    script = [b"a SELECT INBOX", *(b"t " + c.encode() for c in commands), b"z LOGOUT"]
    out = run_preauth(files, script, uidlist)
    lines = re.findall(rb"^\* THREAD ?(.*?)\r$", out, re.MULTILINE)
    assert len(lines) == len(commands), out
    return [line.strip() for line in lines]


@pytest.fixture(scope="module")
def dovecot_threads() -> list[bytes]:
    """Dovecot's answers to COMMANDS, then to AFTER_EXPUNGE without message 1."""
    everything = dict(enumerate(MESSAGES, start=1))
    without_first = {uid: m for uid, m in everything.items() if uid != 1}
    return (_run_dovecot(everything, COMMANDS) + _run_dovecot(without_first, AFTER_EXPUNGE))


@pytest.fixture(scope="module")
def our_threads() -> list[bytes]:
    client = selected(*MESSAGES)

    def ask(command: str) -> bytes:
        [line] = untagged(client.ok(command), "THREAD")
        return line.removeprefix(b"* THREAD").strip()

    answers = [ask(command) for command in COMMANDS]
    client.ok("STORE 1 +FLAGS (\\Deleted)")
    client.ok("EXPUNGE")
    return answers + [ask(command) for command in AFTER_EXPUNGE]


ALL_COMMANDS = COMMANDS + [f"{c} (message 1 expunged)" for c in AFTER_EXPUNGE]


@pytest.mark.parametrize("index", range(len(ALL_COMMANDS)), ids=ALL_COMMANDS)
def test_thread_matches_dovecot(index: int, dovecot_threads: list[bytes],
                                our_threads: list[bytes]) -> None:
    assert our_threads[index].decode() == dovecot_threads[index].decode()

"""Interop: our ENVELOPE, BODY, BODYSTRUCTURE and sections against Dovecot's for the corpus.

Dovecot's ``imap`` binary runs once, in PREAUTH mode on stdin/stdout (no network), over a
temporary Maildir holding the corpus. Skipped when Dovecot (Debian ``dovecot-imapd``) is not
installed. Known, deliberate differences are left out: we upper-case type names (compared
case-insensitively here), we may send a quoted string where Dovecot sends a literal, bare-LF
messages (Dovecot counts sizes as if CRLF, we count the stored octets), and NUL octets.
"""

from __future__ import annotations

import re

import pytest
from dovecot_preauth import run_preauth

from mailsuite.imap import render
from mailsuite.message import summarize
from mailsuite.message.sections import extract

try:
    from tests import test_message_corpus as corpus
except ImportError:
    import test_message_corpus as corpus  # type: ignore[no-redef]

SKIP = {"bare_lf", "nul_bytes"}
NAMES = sorted(set(corpus.ALL) - SKIP)
SECTIONS = ["HEADER", "TEXT", "1", "1.MIME", "1.1", "1.2", "2", "2.MIME", "2.HEADER", "2.TEXT", "2.1", "1.2.1",
            "HEADER.FIELDS (From Subject)"]  # fmt: skip


def _literals_to_quoted(data: bytes) -> bytes:
    """Rewrite ``{n}\\r\\n...`` literals as quoted strings so both sides compare equal."""
    out, pos = [], 0
    for m in re.finditer(rb"\{(\d+)\}\r\n", data):
        if m.start() < pos:
            continue
        n = int(m.group(1))
        text = data[m.end() : m.end() + n]
        out.append(data[pos : m.start()])
        out.append(b'"' + text.replace(b"\\", b"\\\\").replace(b'"', b'\\"') + b'"')
        pos = m.end() + n
    out.append(data[pos:])
    return b"".join(out)


@pytest.fixture(scope="module")
def dovecot_answers() -> dict[tuple[int, str], bytes]:
    """{(message number, fetch item): Dovecot's value} for every corpus message."""
    files = {f"{i:04d}.msg:2,": corpus.ALL[name]().raw for i, name in enumerate(NAMES)}
    items = ["ENVELOPE", "BODY", "BODYSTRUCTURE"] + [f"BODY.PEEK[{s}]" for s in SECTIONS]
    script = [b"a SELECT INBOX"]
    for i in range(len(NAMES)):
        script += [b"f FETCH %d (%s)" % (i + 1, item.encode()) for item in items]
    script.append(b"z LOGOUT")
    out = run_preauth(files, script)
    answers: dict[tuple[int, str], bytes] = {}
    pattern = re.compile(rb"\* (\d+) FETCH \((ENVELOPE|BODYSTRUCTURE|BODY\[[^\]]*\]|BODY) ")
    pos = 0
    while (m := pattern.search(out, pos)) is not None:
        value, pos = _value(out, m.end())
        answers[(int(m.group(1)), m.group(2).decode().upper())] = value
    assert len(answers) == len(NAMES) * len(items), "a Dovecot answer is missing"
    return answers


def _value(out: bytes, pos: int) -> tuple[bytes, int]:
    """One IMAP value at ``pos``: a literal's octets, or a balanced parenthesised/quoted text."""
    if out.startswith(b"{", pos):
        close = out.index(b"}", pos)
        n = int(out[pos + 1 : close])
        start = close + 3
        return out[start : start + n], start + n
    if out.startswith(b'"', pos):
        end = out.index(b'"', pos + 1)
        return out[pos + 1 : end], end + 1
    if out.startswith(b"NIL)", pos):
        return b"", pos + 3
    end = out.index(b")\r\n", pos)  # the FETCH response ends with ")\r\n"
    # a parenthesised value can itself contain literals: take everything up to the end
    return _literals_to_quoted(out[pos:end]), end


@pytest.mark.parametrize("name", NAMES)
def test_envelope_and_structure_match_dovecot(
    name: str, dovecot_answers: dict[tuple[int, str], bytes]
) -> None:
    number = NAMES.index(name) + 1
    summary = summarize(corpus.ALL[name]().raw)
    ours = {
        "ENVELOPE": render.envelope(summary),
        "BODY": render.bodystructure(summary, extensible=False),
        "BODYSTRUCTURE": render.bodystructure(summary),
    }
    for item, value in ours.items():
        theirs = dovecot_answers[(number, item)]
        assert _literals_to_quoted(value).lower() == theirs.lower(), item


@pytest.mark.parametrize("name", NAMES)
def test_sections_match_dovecot(name: str, dovecot_answers: dict[tuple[int, str], bytes]) -> None:
    number = NAMES.index(name) + 1
    raw = corpus.ALL[name]().raw
    for spec in SECTIONS:
        assert extract(raw, spec) == dovecot_answers[(number, f"BODY[{spec.upper()}]")], spec

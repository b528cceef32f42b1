"""SEARCH and UID SEARCH (RFC 3501 6.4.4) with ESEARCH result options (RFC 4731) and the
CONDSTORE MODSEQ key (RFC 7162 3.1.5).

The keys are parsed into a small tree (depth and size bounded, so ``NOT NOT ...`` a thousand
deep is a BAD, not a stack overflow) and evaluated per message, cheapest tests first: flags,
sizes and dates come from the folder's message list, address and subject keys from the cached
summary, and only HEADER/BODY/TEXT of other fields read the message file.
"""

from __future__ import annotations

import datetime
from bisect import bisect_right
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from mailsuite.imap.parser import ParseError, Reader, SequenceSet, compact_set
from mailsuite.imap.responses import Reply, bad, no
from mailsuite.imap.session import SelectedView, Session, State
from mailsuite.message import search_text

SELECTED = (State.SELECTED,)
MAX_DEPTH = 32
MAX_KEYS = 1000
CHARSETS = ("UTF-8", "US-ASCII")
YIELD_EVERY = (50000, 2000, 200, 100)  # messages tested between reactor turns, by cost

FLAG_KEYS = {
    "ANSWERED": ("\\Answered", True), "UNANSWERED": ("\\Answered", False),
    "DELETED": ("\\Deleted", True), "UNDELETED": ("\\Deleted", False),
    "DRAFT": ("\\Draft", True), "UNDRAFT": ("\\Draft", False),
    "FLAGGED": ("\\Flagged", True), "UNFLAGGED": ("\\Flagged", False),
    "SEEN": ("\\Seen", True), "UNSEEN": ("\\Seen", False),
}
HEADER_KEYS = {"FROM": "from", "TO": "to", "CC": "cc", "BCC": "bcc", "SUBJECT": "subject"}
DATE_KEYS = {"BEFORE", "ON", "SINCE", "SENTBEFORE", "SENTON", "SENTSINCE"}

# Costs: 0 metadata only, 1 needs the summary, 2 reads the message.
Test = Callable[["Candidate"], bool]


@dataclass(slots=True)
class Node:
    """One search key: ``test`` decides for a message; ``cost`` orders AND operands."""

    test: Test
    cost: int = 0
    modseq: bool = False


@dataclass(slots=True)
class Candidate:
    """One message under test; the summary and bytes are loaded at most once."""

    index: int
    info: Any
    folder: Any
    _raw: bytes | None = None
    _summary: dict[str, Any] | None = field(default=None)

    @property
    def raw(self) -> bytes:
        if self._raw is None:
            self._raw = self.folder.read_message(self.info.uid)
        return self._raw

    @property
    def summary(self) -> dict[str, Any]:
        if self._summary is None:
            self._summary = self.folder.summary(self.info.uid)
        return self._summary


class KeyParser:
    """Parses search keys for one command (RFC 3501 9 ``search-key``)."""

    def __init__(self, r: Reader, view: SelectedView, charset: str) -> None:
        self.r = r
        self.view = view
        self.charset = "utf-8"  # US-ASCII is a subset; 8-bit text is read as UTF-8 (RFC 6855)
        self.count = 0
        self.uses_modseq = False

    def text(self) -> str:
        raw = self.r.astring()
        try:
            return raw.decode(self.charset)
        except UnicodeDecodeError:
            raise bad("Search string is not valid in the given charset.") from None

    def keys(self) -> Node:
        """search-key *(SP search-key) up to the end of the command or a ``)``."""
        nodes = [self.key(0)]
        while self.r.maybe_sp():
            nodes.append(self.key(0))
        return _and(nodes)

    def key(self, depth: int) -> Node:
        r = self.r
        self.count += 1
        if depth > MAX_DEPTH or self.count > MAX_KEYS:
            raise ParseError("Search expression too complex")
        if r.peek() == 0x28:
            r.open_list()
            nodes = [self.key(depth + 1)]
            while not r.close_list():
                r.sp()
                nodes.append(self.key(depth + 1))
            return _and(nodes)
        if r.looks_like_seqset():
            return self._seq_node(r.seqset(), uid_mode=False)
        name = r.keyword()
        if name == "ALL":
            return Node(lambda c: True)
        if name in FLAG_KEYS:
            flag, present = FLAG_KEYS[name]
            return Node(lambda c: (flag in c.info.flags) == present)
        if name in ("KEYWORD", "UNKEYWORD"):
            r.sp()
            keyword = r.atom()
            present = name == "KEYWORD"
            return Node(lambda c: (keyword in c.info.flags) == present)
        if name == "NEW":
            recent = self.view.recent_from_uid
            return Node(lambda c: c.info.uid >= recent and "\\Seen" not in c.info.flags)
        if name == "RECENT":
            recent = self.view.recent_from_uid
            return Node(lambda c: c.info.uid >= recent)
        if name == "OLD":
            recent = self.view.recent_from_uid
            return Node(lambda c: c.info.uid < recent)
        if name == "NOT":
            r.sp()
            inner = self.key(depth + 1)
            test = inner.test
            return Node(lambda c: not test(c), inner.cost, inner.modseq)
        if name == "OR":
            r.sp()
            a = self.key(depth + 1)
            r.sp()
            b = self.key(depth + 1)
            ta, tb = (a.test, b.test) if a.cost <= b.cost else (b.test, a.test)
            return Node(lambda c: ta(c) or tb(c), max(a.cost, b.cost), a.modseq or b.modseq)
        if name == "UID":
            r.sp()
            return self._seq_node(r.seqset(), uid_mode=True)
        if name in ("LARGER", "SMALLER"):
            r.sp()
            n = r.number()
            if name == "LARGER":
                return Node(lambda c: c.info.size > n)
            return Node(lambda c: c.info.size < n)
        if name in DATE_KEYS:
            r.sp()
            y, m, d = r.date()
            try:
                day = datetime.date(y, m, d)
            except ValueError:
                raise ParseError("Bad date") from None
            return _date_node(name, day)
        if name in ("OLDER", "YOUNGER"):  # RFC 5032 WITHIN
            r.sp()
            seconds = r.number()
            now = self.view.session.ctx.reactor.seconds()
            if name == "OLDER":
                return Node(lambda c: c.info.internal_date <= now - seconds)
            return Node(lambda c: c.info.internal_date >= now - seconds)
        if name in HEADER_KEYS:
            r.sp()
            needle = self.text()
            fieldname = HEADER_KEYS[name]
            return Node(lambda c: search_text.header_matches(b"", fieldname, needle, c.summary), 1)
        if name == "HEADER":
            r.sp()
            fieldname = r.astring().decode("ascii", "replace")
            r.sp()
            needle = self.text()
            if fieldname.lower() in HEADER_KEYS.values():
                return Node(lambda c: search_text.header_matches(b"", fieldname, needle,
                                                                c.summary), 1)
            return Node(lambda c: search_text.header_matches(c.raw, fieldname, needle), 2)
        if name == "BODY":
            r.sp()
            needle = self.text()
            return Node(lambda c: search_text.body_matches(c.raw, needle), 3)
        if name == "TEXT":
            r.sp()
            needle = self.text()
            return Node(lambda c: search_text.text_matches(c.raw, needle), 3)
        if name == "MODSEQ":
            r.sp()
            if r.peek() == 0x22:  # entry-name entry-type-req: accepted, all entries alike
                r.quoted()
                r.sp()
                kind = r.keyword()
                if kind not in ("PRIV", "SHARED", "ALL"):
                    raise ParseError("Bad MODSEQ entry type")
                r.sp()
            modseq = r.number64()
            self.uses_modseq = True
            return Node(lambda c: c.info.modseq >= modseq, 0, True)
        raise ParseError(f"Unknown search key {name}")

    def _seq_node(self, seqset: SequenceSet, uid_mode: bool) -> Node:
        view = self.view
        if uid_mode:
            star = view.uids[-1] if view.uids else 0
            ranges = seqset.resolve(star)
            starts = [a for a, _ in ranges]

            def in_uids(c: Candidate) -> bool:
                k = bisect_right(starts, c.info.uid) - 1
                return k >= 0 and c.info.uid <= ranges[k][1]
            return Node(in_uids)
        ranges = seqset.resolve(view.exists)
        starts = [a for a, _ in ranges]

        def in_seqs(c: Candidate) -> bool:
            seq = c.index + 1
            k = bisect_right(starts, seq) - 1
            return k >= 0 and seq <= ranges[k][1]
        return Node(in_seqs)


def _and(nodes: list[Node]) -> Node:
    if len(nodes) == 1:
        return nodes[0]
    ordered = sorted(nodes, key=lambda n: n.cost)
    tests = [n.test for n in ordered]

    def all_of(c: Candidate) -> bool:
        for test in tests:
            if not test(c):
                return False
        return True
    return Node(all_of, ordered[-1].cost, any(n.modseq for n in nodes))


def _internal_day(c: Candidate) -> datetime.date:
    return datetime.datetime.fromtimestamp(c.info.internal_date, datetime.UTC).date()


def _sent_day(c: Candidate) -> datetime.date | None:
    text = c.summary.get("sent_date")
    if not text:
        return None
    try:
        return datetime.date.fromisoformat(text)
    except ValueError:
        return None


def _date_node(name: str, day: datetime.date) -> Node:
    if name.startswith("SENT"):
        op = name[4:]

        def sent(c: Candidate) -> bool:
            got = _sent_day(c)
            return got is not None and _compare(op, got, day)
        return Node(sent, 1)
    return Node(lambda c: _compare(name, _internal_day(c), day))


def _compare(op: str, got: datetime.date, day: datetime.date) -> bool:
    if op == "BEFORE":
        return got < day
    if op == "ON":
        return got == day
    return got >= day  # SINCE


async def search(session: Session, r: Reader) -> Reply | None:
    return await _search(session, r, uid_mode=False)


async def uid_search(session: Session, r: Reader) -> Reply | None:
    return await _search(session, r, uid_mode=True)


async def _search(session: Session, r: Reader, uid_mode: bool) -> Reply | None:
    view = session.require_selected()
    r.sp()
    return_opts: list[str] | None = None
    charset = "US-ASCII"
    save = r.pos
    first = r.keyword() if r.peek() not in (0x28, None) and not r.looks_like_seqset() else ""
    if first == "RETURN":
        r.sp()
        return_opts = r.items(r.keyword)
        for opt in return_opts:
            if opt not in ("MIN", "MAX", "ALL", "COUNT"):
                raise bad(f"Unsupported SEARCH RETURN option {opt}.")
        r.sp()
        save = r.pos
        first = r.keyword() if r.peek() not in (0x28, None) and not r.looks_like_seqset() else ""
    if first == "CHARSET":
        r.sp()
        charset = read_charset(r)
        r.sp()
    else:
        r.pos = save
    parser = KeyParser(r, view, charset)
    root = parser.keys()
    r.end()
    if parser.uses_modseq:
        session.condstore = True  # RFC 7162 3.1
    matches: list[int] = []
    highest = 0
    for candidate in await matching(session, view, root):
        info = candidate.info
        matches.append(info.uid if uid_mode else candidate.index + 1)
        highest = max(highest, info.modseq)
    if return_opts is not None:
        session.send(_esearch_line(session, matches, return_opts, uid_mode,
                                   highest if parser.uses_modseq else 0))
        return None
    line = b"* SEARCH" + b"".join(b" %d" % n for n in matches)
    if parser.uses_modseq and matches:
        line += b" (MODSEQ %d)" % highest
    session.send(line + b"\r\n")
    return None


async def matching(session: Session, view: SelectedView, root: Node) -> list[Candidate]:
    """The messages of the view that pass ``root``, in sequence order (ghosts skipped)."""
    out: list[Candidate] = []
    folder = view.folder
    messages = folder.messages()
    test = root.test
    step = YIELD_EVERY[min(root.cost, 3)]
    for index in range(view.exists):
        if index and index % step == 0:
            await session.protocol.pause()  # reading messages: let other sessions run
            messages = folder.messages()
        info = view.info_at(index, messages)
        if info is None:
            continue
        candidate = Candidate(index, info, folder)
        if test(candidate):
            out.append(candidate)
    return out


def read_charset(r: Reader) -> str:
    """A CHARSET argument: UTF-8 or US-ASCII, else NO [BADCHARSET] (RFC 3501 6.4.4)."""
    charset = r.astring().decode("ascii", "replace").upper()
    if charset not in CHARSETS:
        raise no("Unsupported charset.", "BADCHARSET (UTF-8 US-ASCII)")
    return charset


def _esearch_line(session: Session, matches: list[int], opts: list[str], uid_mode: bool,
                  modseq: int) -> bytes:
    """RFC 4731 ESEARCH response; an empty RETURN list means ALL."""
    opts = opts or ["ALL"]
    tag = session.current_tag.replace("\\", "\\\\").replace('"', '\\"')
    parts = [f'* ESEARCH (TAG "{tag}")']
    if uid_mode:
        parts.append("UID")
    if matches:
        if "MIN" in opts:
            parts.append(f"MIN {matches[0]}")
        if "MAX" in opts:
            parts.append(f"MAX {matches[-1]}")
        if "ALL" in opts:
            parts.append(f"ALL {compact_set(matches)}")
    if "COUNT" in opts:
        parts.append(f"COUNT {len(matches)}")
    if modseq and matches:
        parts.append(f"MODSEQ {modseq}")
    return " ".join(parts).encode() + b"\r\n"


HANDLERS: dict[str, tuple[Any, tuple[State, ...]]] = {
    "SEARCH": (search, SELECTED),
    "UID SEARCH": (uid_search, SELECTED),
}



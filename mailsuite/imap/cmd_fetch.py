"""FETCH and UID FETCH (RFC 3501 6.4.5, 6.4.8, 7.4.2) with CONDSTORE/QRESYNC modifiers
(RFC 7162 3.1.4, 3.2.6).

Items: FLAGS, INTERNALDATE, RFC822.SIZE, ENVELOPE, BODY, BODYSTRUCTURE, UID, MODSEQ,
BODY[section]<partial>, BODY.PEEK[...], RFC822, RFC822.HEADER, RFC822.TEXT and the macros ALL,
FAST, FULL. Fetching a body section without PEEK sets ``\\Seen`` unless the folder is read-only,
and the new FLAGS are reported in the same response.

Cheap items (flags, sizes, dates) come from the folder's in-memory message list, so
``UID FETCH 1:* (FLAGS)`` on a large folder is a tight loop. ENVELOPE and BODYSTRUCTURE use the
store's cached summary; only sections read the message file.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import Any

from mailsuite.imap import render, wire
from mailsuite.imap.cmd_mailbox import vanished_uids
from mailsuite.imap.parser import ParseError, Reader
from mailsuite.imap.responses import Code, Reply, bad
from mailsuite.imap.session import SelectedView, Session, State
from mailsuite.interfaces import FlagMode
from mailsuite.message import sections

SELECTED = (State.SELECTED,)
_ITEM_NAME = re.compile(rb"[A-Za-z0-9.]+")
_PARTIAL = re.compile(rb"<([0-9]{1,10})\.([0-9]{1,10})>")
MAX_ITEMS = 100

SIMPLE_ITEMS = frozenset({"FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY",
                          "BODYSTRUCTURE", "UID", "MODSEQ", "RFC822", "RFC822.HEADER",
                          "RFC822.TEXT"})
MACROS = {
    "ALL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE"),
    "FAST": ("FLAGS", "INTERNALDATE", "RFC822.SIZE"),
    "FULL": ("FLAGS", "INTERNALDATE", "RFC822.SIZE", "ENVELOPE", "BODY"),
}


@dataclass(frozen=True, slots=True)
class FetchItem:
    """One requested data item. ``section`` is set for BODY[...] and the RFC822 body forms."""

    name: str
    section: sections.Section | None = None
    peek: bool = True
    partial: tuple[int, int] | None = None
    label: bytes = b""

    @property
    def sets_seen(self) -> bool:
        return not self.peek


def _section_spec(r: Reader) -> sections.Section:
    """section-spec between ``[`` and ``]`` (RFC 3501 9)."""
    head = b""
    match = re.compile(rb"[A-Za-z0-9.]*").match(r.data, r.pos)
    if match:
        head = match.group(0)
        r.pos = match.end()
    text = head.decode("ascii")
    fields: list[str] = []
    if text.upper().endswith("HEADER.FIELDS") or text.upper().endswith("HEADER.FIELDS.NOT"):
        r.sp()
        fields = [f.decode("latin-1") for f in r.items(r.astring)]
    r.char(b"]")
    pieces = text.split(".") if text else []
    part: list[int] = []
    while pieces and pieces[0].isdigit():
        if len(part) >= sections.MAX_PART_DEPTH:
            raise ParseError("Section nested too deep")
        if len(pieces[0]) > 7 or pieces[0].startswith("0"):
            raise ParseError("Bad section part number")
        part.append(int(pieces.pop(0)))
    spec = ".".join(pieces).upper() or None
    try:
        return sections.Section(tuple(part), spec, tuple(fields))
    except ValueError as e:
        raise ParseError(f"Invalid section: {e}") from None


def _body_item(r: Reader, peek: bool) -> FetchItem:
    r.char(b"[")
    section = _section_spec(r)
    partial = None
    match = _PARTIAL.match(r.data, r.pos)
    if match is not None:
        r.pos = match.end()
        start, count = int(match.group(1)), int(match.group(2))
        if count == 0 or start > 4294967295 or count > 4294967295:
            raise ParseError("Invalid partial range")
        partial = (start, count)
    elif r.peek() == 0x3C:
        raise ParseError("Invalid partial range")
    label = b"BODY[" + str(section).encode("latin-1", "replace") + b"]"
    if partial is not None:
        label += b"<%d>" % partial[0]
    return FetchItem("BODY[]", section, peek, partial, label)


def _one_item(r: Reader) -> list[FetchItem]:
    match = _ITEM_NAME.match(r.data, r.pos)
    if match is None:
        raise ParseError("Expected a fetch item")
    r.pos = match.end()
    name = match.group(0).decode("ascii").upper()
    if name in ("BODY", "BODY.PEEK") and r.peek() == 0x5B:
        return [_body_item(r, peek=name == "BODY.PEEK")]
    if name == "RFC822":
        return [FetchItem(name, sections.Section(), peek=False, label=b"RFC822")]
    if name == "RFC822.HEADER":
        return [FetchItem(name, sections.Section((), sections.HEADER), label=b"RFC822.HEADER")]
    if name == "RFC822.TEXT":
        return [FetchItem(name, sections.Section((), sections.TEXT), peek=False,
                          label=b"RFC822.TEXT")]
    if name in SIMPLE_ITEMS:
        return [FetchItem(name)]
    raise ParseError(f"Unknown fetch item {name}")


def parse_items(r: Reader) -> list[FetchItem]:
    """fetch-att / macro / parenthesised list (RFC 3501 6.4.5)."""
    if r.peek() == 0x28:
        r.open_list()
        items: list[FetchItem] = []
        while True:
            items.extend(_one_item(r))
            if len(items) > MAX_ITEMS:
                raise ParseError("Too many fetch items")
            if r.close_list():
                break
            r.sp()
        if not items:
            raise ParseError("Empty fetch list")
        return items
    match = _ITEM_NAME.match(r.data, r.pos)
    if match is not None and match.group(0).upper().decode() in MACROS:
        r.pos = match.end()
        return [FetchItem(n) for n in MACROS[match.group(0).upper().decode()]]
    return _one_item(r)


def _modifiers(r: Reader, uid_mode: bool) -> tuple[int | None, bool]:
    """``(CHANGEDSINCE n [VANISHED])`` (RFC 7162 3.1.4.1, 3.2.6)."""
    changed_since: int | None = None
    vanished = False
    if not r.maybe_sp():
        return None, False
    r.open_list()
    while True:
        name = r.keyword()
        if name == "CHANGEDSINCE":
            r.sp()
            changed_since = r.number64()
        elif name == "VANISHED":
            vanished = True
        else:
            raise ParseError(f"Unknown FETCH modifier {name}")
        if r.close_list():
            break
        r.sp()
    if vanished and (not uid_mode or changed_since is None):
        raise ParseError("VANISHED needs UID FETCH and CHANGEDSINCE")
    return changed_since, vanished


async def fetch(session: Session, r: Reader) -> Reply | None:
    return await run_fetch(session, r, uid_mode=False)


async def uid_fetch(session: Session, r: Reader) -> Reply | None:
    return await run_fetch(session, r, uid_mode=True)


async def run_fetch(session: Session, r: Reader, uid_mode: bool) -> Reply | None:
    view = session.require_selected()
    r.sp()
    seqset = r.seqset()
    r.sp()
    items = parse_items(r)
    changed_since, vanished = _modifiers(r, uid_mode)
    r.end()
    if vanished and not session.qresync:
        raise bad("VANISHED needs ENABLE QRESYNC.")
    if changed_since is not None or any(i.name == "MODSEQ" for i in items):
        session.condstore = True  # RFC 7162 3.1: CONDSTORE-enabling commands
    names = {i.name for i in items}
    if (uid_mode or session.qresync) and "UID" not in names:  # RFC 7162 3.2.4: UID always
        items.insert(0, FetchItem("UID"))
    if (changed_since is not None or (session.condstore and "FLAGS" in names)) \
            and "MODSEQ" not in names:
        items.append(FetchItem("MODSEQ"))
    ranges = view.resolve(seqset, uid_mode)
    if vanished:
        gone = vanished_uids(view, seqset)
        if gone:
            session.send(b"* VANISHED (EARLIER) " + gone.encode() + b"\r\n")
    seen_uids = _mark_seen(session, view, ranges, items)
    try:
        return await _write_responses(session, view, ranges, items, changed_since, seen_uids)
    finally:
        session.protocol.end_streaming()


def _mark_seen(session: Session, view: SelectedView, ranges: list[range],
               items: list[FetchItem]) -> set[int]:
    """RFC 3501 6.4.5: BODY[...] without PEEK sets \\Seen (not in a read-only folder)."""
    if view.readonly or not any(i.sets_seen for i in items):
        return set()
    messages = view.folder.messages()
    unseen = []
    for index in SelectedView.iter_indexes(ranges):
        info = view.info_at(index, messages)
        if info is not None and "\\Seen" not in info.flags:
            unseen.append(info.uid)
    if unseen:
        view.folder.store_flags(unseen, ["\\Seen"], FlagMode.ADD, origin=session)
    return set(unseen)


async def _write_responses(session: Session, view: SelectedView, ranges: list[range],
                     items: list[FetchItem], changed_since: int | None,
                     seen_uids: set[int]) -> Reply | None:
    folder = view.folder
    messages = folder.messages()
    flag_cache: dict[frozenset[str], bytes] = {}
    has_flags = any(i.name == "FLAGS" for i in items)
    out: list[bytes] = []
    size = 0
    missing = False
    for index in SelectedView.iter_indexes(ranges):
        info = view.info_at(index, messages)
        if info is None:
            missing = True
            continue
        if changed_since is not None and info.modseq <= changed_since:
            continue
        parts = _render(folder, info, items, flag_cache)
        if info.uid in seen_uids and not has_flags:
            parts.append(b"FLAGS " + _flags(info.flags, flag_cache))
        line = b"* %d FETCH (" % (index + 1) + b" ".join(parts) + b")\r\n"
        out.append(line)
        size += len(line)
        if size > 256 * 1024:
            session.send(b"".join(out))
            out, size = [], 0
            session.protocol.begin_streaming()
            await session.protocol.writable()
            await session.protocol.pause()  # other sessions get a turn during long FETCHes
            messages = folder.messages()
    if out:
        session.send(b"".join(out))
    if missing:
        return Reply("NO", "Some messages were expunged meanwhile.", Code.EXPUNGEISSUED)
    return None


def _flags(flags: frozenset[str], cache: dict[frozenset[str], bytes]) -> bytes:
    rendered = cache.get(flags)
    if rendered is None:
        rendered = cache[flags] = wire.flag_list(flags)
    return rendered


def _render(folder: Any, info: Any, items: list[FetchItem],
            flag_cache: dict[frozenset[str], bytes]) -> list[bytes]:
    parts: list[bytes] = []
    raw: bytes | None = None
    for item in items:
        name = item.name
        if name == "UID":
            parts.append(b"UID %d" % info.uid)
        elif name == "FLAGS":
            parts.append(b"FLAGS " + _flags(info.flags, flag_cache))
        elif name == "MODSEQ":
            parts.append(b"MODSEQ (%d)" % info.modseq)
        elif name == "RFC822.SIZE":
            parts.append(b"RFC822.SIZE %d" % info.size)
        elif name == "INTERNALDATE":
            parts.append(b"INTERNALDATE " + wire.internal_date(info.internal_date))
        elif name == "ENVELOPE":
            parts.append(b"ENVELOPE " + folder.derived(info.uid, "imap.envelope", render.envelope))
        elif name == "BODYSTRUCTURE":
            parts.append(b"BODYSTRUCTURE "
                         + folder.derived(info.uid, "imap.bodystructure", render.bodystructure))
        elif name == "BODY":
            parts.append(b"BODY " + folder.derived(info.uid, "imap.body", render.body))
        else:
            if raw is None:
                raw = folder.read_message(info.uid)
            assert item.section is not None
            # A part section (BODY[1.2]) uses the cached summary's offsets instead of scanning
            # the MIME structure again; whole-message sections only read the header.
            summary = folder.summary(info.uid) if item.section.part else None
            data = sections.extract(raw, item.section, summary)
            if item.partial is not None:
                data = sections.partial(data, item.partial[0], item.partial[1])
            parts.append(item.label + b" " + render.literal(data))
    return parts


HANDLERS: dict[str, tuple[Any, tuple[State, ...]]] = {
    "FETCH": (fetch, SELECTED),
    "UID FETCH": (uid_fetch, SELECTED),
}

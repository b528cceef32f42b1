"""Mailbox commands: SELECT, EXAMINE, CREATE, DELETE, RENAME, SUBSCRIBE, UNSUBSCRIBE, LIST, LSUB,
STATUS (RFC 3501 6.3), NAMESPACE (RFC 2342), LIST-EXTENDED/LIST-STATUS (RFC 5258, 5819),
SPECIAL-USE and CREATE-SPECIAL-USE (RFC 6154), QUOTA (RFC 9208), SELECT (CONDSTORE/QRESYNC) (RFC 7162 3.1.2, 3.2.5).
"""

from __future__ import annotations

from bisect import bisect_left, bisect_right
from typing import Any

from mailsuite.errors import MailsuiteError
from mailsuite.imap import wire
from mailsuite.imap.folders import checked_name, effective_pattern, matches
from mailsuite.imap.parser import ParseError, Reader, SequenceSet
from mailsuite.imap.responses import Code, CommandFailed, Reply, bad, from_store_error, no, ok
from mailsuite.imap.session import SelectedView, Session, State
from mailsuite.interfaces import INBOX, SPECIAL_USE_ATTRIBUTES, SYSTEM_FLAGS, FolderInfo

AUTHED = (State.AUTHENTICATED, State.SELECTED)
STATUS_ITEMS = ("MESSAGES", "RECENT", "UIDNEXT", "UIDVALIDITY", "UNSEEN", "HIGHESTMODSEQ", "SIZE",
                "APPENDLIMIT")
SYSTEM_FLAG_ORDER = "\\Answered \\Flagged \\Deleted \\Seen \\Draft"


def _store_call(func: Any, *args: Any, mailbox: str | None = None) -> Any:
    try:
        return func(*args)
    except MailsuiteError as e:
        raise CommandFailed(from_store_error(e, mailbox)) from None


# --- SELECT / EXAMINE ------------------------------------------------------------------------


async def select(session: Session, r: Reader) -> Reply | None:
    return await _select(session, r, readonly=False)


async def examine(session: Session, r: Reader) -> Reply | None:
    return await _select(session, r, readonly=True)


async def _select(session: Session, r: Reader, readonly: bool) -> Reply | None:
    r.sp()
    raw = r.astring()
    qresync: tuple[int, int, SequenceSet | None] | None = None
    if r.maybe_sp():
        r.open_list()
        while True:
            param = r.keyword()
            if param == "CONDSTORE":
                session.condstore = True
            elif param == "QRESYNC":
                if not session.qresync:
                    raise bad("QRESYNC must be enabled first (RFC 7162 3.2.5).")
                r.sp()
                r.open_list()
                uidvalidity = r.nz_number()
                r.sp()
                modseq = r.number64()
                known = None
                if r.maybe_sp():
                    if r.peek() != 0x28:
                        known = r.seqset()
                        r.maybe_sp()
                    if r.peek() == 0x28:  # seq-match-data: accepted, not needed
                        r.open_list()
                        r.seqset()
                        r.sp()
                        r.seqset()
                        if not r.close_list():
                            raise ParseError("Bad seq-match-data")
                if not r.close_list():
                    raise ParseError("Bad QRESYNC parameters")
                qresync = (uidvalidity, modseq, known)
            else:
                raise bad(f"Unknown SELECT parameter {param}.")
            if r.close_list():
                break
            r.sp()
    r.end()
    name = checked_name(raw, utf8=session.utf8)
    had_selection = session.selected is not None
    session.unselect()
    if had_selection:  # RFC 7162 3.2.11
        session.send(b"* OK [CLOSED] Previous mailbox closed.\r\n")
    folder = _store_call(session.account.open_folder, name, readonly, mailbox=name)
    view = SelectedView(folder, readonly, session)
    session.selected = view
    session.state = State.SELECTED
    lines = _select_responses(session, view)
    if qresync is not None and qresync[0] == folder.uidvalidity:
        lines.extend(_qresync_responses(session, view, qresync[1], qresync[2]))
    session.send_lines(lines)
    if readonly:
        return ok("Examine completed (read-only).", Code.READ_ONLY)
    return ok("Select completed.", Code.READ_WRITE)


def _select_responses(session: Session, view: SelectedView) -> list[bytes]:
    folder = view.folder
    messages = folder.messages()
    status = folder.status()
    keywords: set[str] = set()
    for flags in {m.flags for m in messages}:
        keywords.update(f for f in flags if f not in SYSTEM_FLAGS)
    keyword_text = "".join(" " + k for k in sorted(keywords))
    lines = [f"* FLAGS ({SYSTEM_FLAG_ORDER}{keyword_text})\r\n".encode("utf-8", "replace")]
    if view.readonly:
        lines.append(b"* OK [PERMANENTFLAGS ()] Read-only mailbox.\r\n")
    else:
        lines.append(f"* OK [PERMANENTFLAGS ({SYSTEM_FLAG_ORDER}{keyword_text} \\*)] "
                     "Flags permitted.\r\n".encode("utf-8", "replace"))
    lines.append(b"* %d EXISTS\r\n" % view.exists)
    recent = min(status.recent, view.exists)
    lines.append(b"* %d RECENT\r\n" % recent)
    if recent:
        view.recent_from_uid = view.uids[view.exists - recent]
    for seq, m in enumerate(messages, 1):
        if "\\Seen" not in m.flags:
            lines.append(b"* OK [UNSEEN %d] First unseen.\r\n" % seq)
            break
    lines.append(b"* OK [UIDVALIDITY %d] UIDs valid\r\n" % folder.uidvalidity)
    lines.append(b"* OK [UIDNEXT %d] Predicted next UID\r\n" % folder.uidnext)
    lines.append(b"* OK [HIGHESTMODSEQ %d] Highest\r\n" % folder.highest_modseq)
    return lines


def _qresync_responses(session: Session, view: SelectedView, modseq: int,
                       known: SequenceSet | None) -> list[bytes]:
    """RFC 7162 3.2.5.1: VANISHED (EARLIER) for UIDs gone, FETCH for messages changed."""
    lines = []
    vanished = vanished_uids(view, known)
    if vanished:
        lines.append(b"* VANISHED (EARLIER) " + vanished.encode() + b"\r\n")
    messages = view.folder.messages()
    for index, uid in enumerate(view.uids):
        info = view.info_at(index, messages)
        if info is not None and info.modseq > modseq:
            lines.append(b"* %d FETCH (UID %d FLAGS %s MODSEQ (%d))\r\n" % (
                index + 1, uid, wire.flag_list(info.flags), info.modseq))
    return lines


def vanished_uids(view: SelectedView, known: SequenceSet | None) -> str:
    """UIDs in ``known`` (default: 1 to the highest) that no longer exist, as a compact set.

    Without a record of every expunge, gaps below UIDNEXT are reported; RFC 7162 3.2.5.1 allows
    UIDs that were expunged before the client's MODSEQ (clients ignore UIDs they do not know).
    """
    top = view.folder.uidnext - 1
    if top < 1:
        return ""
    ranges = known.resolve(top) if known is not None else [(1, top)]
    uids = view.uids
    parts: list[str] = []
    for low, high in ranges:
        high = min(high, top)
        if low > high:
            continue
        i = bisect_left(uids, low)
        j = bisect_right(uids, high)
        cursor = low
        for k in range(i, j):
            u = uids[k]
            if u > cursor:
                parts.append(_range_text(cursor, u - 1))
            cursor = u + 1
        if cursor <= high:
            parts.append(_range_text(cursor, high))
    return ",".join(parts)


def _range_text(low: int, high: int) -> str:
    return str(low) if low == high else f"{low}:{high}"


# --- CREATE / DELETE / RENAME / SUBSCRIBE ------------------------------------------------------


async def create(session: Session, r: Reader) -> Reply | None:
    r.sp()
    raw = r.astring()
    uses: list[str] = []
    if r.maybe_sp():
        uses = list(dict.fromkeys(_create_params(r)))  # (\Sent \Sent) is one use
    r.end()
    name = checked_name(raw, creating=True, utf8=session.utf8)
    if name.upper() == INBOX:
        raise no("Mailbox already exists.", Code.ALREADYEXISTS)
    for use in uses:
        if use not in SPECIAL_USE_ATTRIBUTES:  # RFC 6154 section 3: refuse, create nothing
            raise no(f"Unknown special use {use}.", Code.USEATTR)
    if len(uses) > 1:  # RFC 6154 allows refusing combinations; a folder here has one use
        raise no("Only one special use per mailbox is supported.", Code.USEATTR)
    special_use = uses[0] if uses else None
    _store_call(session.account.create_folder, name, special_use, mailbox=name)
    return ok("Create completed.")


def _create_params(r: Reader) -> list[str]:
    """RFC 4466 create-params; only RFC 6154's ``USE (attr ...)`` is known: its attributes."""
    uses: list[str] = []
    r.open_list()
    while True:
        param = r.keyword()
        if param != "USE":
            raise bad(f"Unknown CREATE parameter {param}.")
        r.sp()
        for use in r.items(r.flag):
            if not use.startswith("\\") or use == "\\*":
                raise bad("A special use is a backslash attribute.")
            uses.append(use)
        if r.close_list():
            return uses
        r.sp()


async def delete(session: Session, r: Reader) -> Reply | None:
    r.sp()
    name = checked_name(r.astring(), utf8=session.utf8)
    r.end()
    if name == INBOX:
        raise no("INBOX can't be deleted.", Code.CANNOT)
    if session.selected is not None and session.selected.folder.name == name:
        raise no("Can't delete the selected mailbox.", Code.INUSE)
    _store_call(session.account.delete_folder, name, mailbox=name)
    return ok("Delete completed.")


async def rename(session: Session, r: Reader) -> Reply | None:
    r.sp()
    old = checked_name(r.astring(), utf8=session.utf8)
    r.sp()
    new = checked_name(r.astring(), creating=True, utf8=session.utf8)
    r.end()
    if new == INBOX:
        raise no("Mailbox already exists.", Code.ALREADYEXISTS)
    _store_call(session.account.rename_folder, old, new, mailbox=old)
    return ok("Rename completed.")


async def subscribe(session: Session, r: Reader) -> Reply | None:
    return _subscription(session, r, True)


async def unsubscribe(session: Session, r: Reader) -> Reply | None:
    return _subscription(session, r, False)


def _subscription(session: Session, r: Reader, subscribed: bool) -> Reply | None:
    r.sp()
    name = checked_name(r.astring(), utf8=session.utf8)
    r.end()
    _store_call(session.account.set_subscribed, name, subscribed, mailbox=name)
    return None


# --- LIST / LSUB ----------------------------------------------------------------------------


def _attributes(info: FolderInfo, subscribed: bool) -> str:
    attrs = []
    if not info.selectable:
        attrs.append("\\Noselect")
    attrs.append("\\HasChildren" if info.has_children else "\\HasNoChildren")
    if subscribed and info.subscribed:
        attrs.append("\\Subscribed")
    if info.special_use:
        attrs.append(info.special_use)
    return " ".join(attrs)


def _list_line(kind: bytes, attrs: str, name: str, utf8: bool) -> bytes:
    return b"* " + kind + b" (" + attrs.encode() + b') "/" ' + wire.mailbox(name, utf8) + b"\r\n"


def _decode_pattern(raw: bytes, utf8: bool) -> str:
    try:
        return wire.mailbox_from_wire(raw, utf8) if raw.upper() != b"INBOX" else INBOX
    except (ValueError, UnicodeError):
        raise no("Invalid mailbox pattern.", Code.CANNOT) from None


async def list_(session: Session, r: Reader) -> Reply | None:
    r.sp()
    select_opts: list[str] = []
    if r.peek() == 0x28:
        select_opts = r.items(r.keyword)
        r.sp()
    reference = _decode_pattern(r.astring(), session.utf8)
    r.sp()
    if r.peek() == 0x28:
        patterns = r.items(r.list_mailbox)
    else:
        patterns = [r.list_mailbox()]
    return_opts: list[str] = []
    status_items: list[str] = []
    if r.maybe_sp():
        if r.keyword() != "RETURN":
            raise ParseError("Expected RETURN")
        r.sp()
        r.open_list()
        if not r.close_list():
            while True:
                opt = r.keyword()
                return_opts.append(opt)
                if opt == "STATUS":
                    r.sp()
                    status_items = _status_items(r)
                if r.close_list():
                    break
                r.sp()
    r.end()
    for opt in select_opts:
        if opt not in ("SUBSCRIBED", "REMOTE", "RECURSIVEMATCH", "SPECIAL-USE"):
            raise bad(f"Unknown LIST selection option {opt}.")
    if select_opts == ["RECURSIVEMATCH"]:
        raise bad("RECURSIVEMATCH needs another selection option.")
    for opt in return_opts:
        if opt not in ("SUBSCRIBED", "CHILDREN", "SPECIAL-USE", "STATUS"):
            raise bad(f"Unknown LIST return option {opt}.")
    ref_text = reference
    decoded = [_decode_pattern(p, session.utf8) for p in patterns]
    if len(decoded) == 1 and decoded[0] == "" and not select_opts:
        session.send(b'* LIST (\\Noselect) "/" ""\r\n')
        return None
    only_subscribed = "SUBSCRIBED" in select_opts
    only_special = "SPECIAL-USE" in select_opts
    show_subscribed = only_subscribed or "SUBSCRIBED" in return_opts
    full = [effective_pattern(ref_text, p) for p in decoded]
    lines: list[bytes] = []
    for info in _store_call(session.account.list_folders):
        if not any(matches(p, info.name) for p in full):
            continue
        if only_subscribed and not info.subscribed:
            continue
        if only_special and not info.special_use:
            continue
        lines.append(_list_line(b"LIST", _attributes(info, show_subscribed), info.name,
                                session.utf8))
        if status_items and info.selectable:
            try:
                status = session.account.folder_status(info.name)
            except MailsuiteError:
                continue
            lines.append(_status_line(info.name, status, status_items,
                                      session.settings.max_literal_size, session.utf8))
    session.send_lines(lines)
    return None


async def lsub(session: Session, r: Reader) -> Reply | None:
    r.sp()
    reference = _decode_pattern(r.astring(), session.utf8)
    r.sp()
    pattern = effective_pattern(reference, _decode_pattern(r.list_mailbox(), session.utf8))
    r.end()
    lines = []
    for info in _store_call(session.account.list_folders):
        if info.subscribed and matches(pattern, info.name):
            attrs = "" if info.selectable else "\\Noselect"
            lines.append(_list_line(b"LSUB", attrs, info.name, session.utf8))
    session.send_lines(lines)
    return None


async def namespace(session: Session, r: Reader) -> Reply | None:
    r.end()
    session.send(b'* NAMESPACE (("" "/")) NIL NIL\r\n')
    return None


# --- STATUS ---------------------------------------------------------------------------------


def _status_items(r: Reader) -> list[str]:
    items = r.items(r.keyword)
    if not items:
        raise ParseError("Empty status list")
    for item in items:
        if item not in STATUS_ITEMS:
            raise ParseError(f"Unknown status item {item}")
    return items


def _status_line(name: str, status: Any, items: list[str], appendlimit: int = 0,
                 utf8: bool = False) -> bytes:
    values = {
        "MESSAGES": status.messages, "RECENT": status.recent, "UIDNEXT": status.uidnext,
        "UIDVALIDITY": status.uidvalidity, "UNSEEN": status.unseen,
        "HIGHESTMODSEQ": status.highest_modseq, "SIZE": status.size,
        "APPENDLIMIT": appendlimit,
    }
    body = " ".join(f"{item} {values[item]}" for item in items)
    return b"* STATUS " + wire.mailbox(name, utf8) + b" (" + body.encode() + b")\r\n"


async def status(session: Session, r: Reader) -> Reply | None:
    r.sp()
    name = checked_name(r.astring(), utf8=session.utf8)
    r.sp()
    items = _status_items(r)
    r.end()
    result = _store_call(session.account.folder_status, name, mailbox=name)
    if "HIGHESTMODSEQ" in items:
        session.condstore = True  # RFC 7162 3.1: a CONDSTORE-enabling command
    session.send(_status_line(name, result, items, session.settings.max_literal_size,
                              session.utf8))
    return None


# --- QUOTA (RFC 9208) -----------------------------------------------------------------------


def _quota_line(session: Session) -> bytes:
    usage = session.account.quota()
    parts = []
    if usage.bytes_limit is not None:
        parts.append(f"STORAGE {(usage.bytes_used + 1023) // 1024} {usage.bytes_limit // 1024}")
    if usage.messages_limit is not None:
        parts.append(f"MESSAGE {usage.messages_used} {usage.messages_limit}")
    return b'* QUOTA "" (' + " ".join(parts).encode() + b")\r\n"


async def getquotaroot(session: Session, r: Reader) -> Reply | None:
    r.sp()
    name = checked_name(r.astring(), utf8=session.utf8)
    r.end()
    _store_call(session.account.folder_status, name, mailbox=name)
    session.send(b"* QUOTAROOT " + wire.mailbox(name, session.utf8) + b' ""\r\n'
                 + _quota_line(session))
    return None


async def getquota(session: Session, r: Reader) -> Reply | None:
    r.sp()
    root = r.astring()
    r.end()
    if root != b"":
        raise no("No such quota root.", Code.NONEXISTENT)
    session.send(_quota_line(session))
    return None


async def setquota(session: Session, r: Reader) -> Reply | None:
    raise no("Quotas are set by the administrator.", Code.NOPERM)


HANDLERS: dict[str, tuple[Any, tuple[State, ...]]] = {
    "SELECT": (select, AUTHED),
    "EXAMINE": (examine, AUTHED),
    "CREATE": (create, AUTHED),
    "DELETE": (delete, AUTHED),
    "RENAME": (rename, AUTHED),
    "SUBSCRIBE": (subscribe, AUTHED),
    "UNSUBSCRIBE": (unsubscribe, AUTHED),
    "LIST": (list_, AUTHED),
    "LSUB": (lsub, AUTHED),
    "STATUS": (status, AUTHED),
    "NAMESPACE": (namespace, AUTHED),
    "GETQUOTAROOT": (getquotaroot, AUTHED),
    "GETQUOTA": (getquota, AUTHED),
    "SETQUOTA": (setquota, AUTHED),
}

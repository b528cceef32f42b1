"""Message commands other than FETCH and SEARCH: STORE, COPY, MOVE, EXPUNGE, CLOSE, UNSELECT,
CHECK and APPEND (RFC 3501 6.3.11, 6.4), with UIDPLUS (RFC 4315: APPENDUID, COPYUID,
UID EXPUNGE), MOVE (RFC 6851), UNSELECT (RFC 3691) and CONDSTORE's UNCHANGEDSINCE (RFC 7162
3.1.3).
"""

from __future__ import annotations

from typing import Any

from mailsuite.errors import FolderNotFound, MailsuiteError, StoreError
from mailsuite.imap import wire
from mailsuite.imap.folders import checked_name
from mailsuite.imap.parser import ParseError, Reader, compact_set
from mailsuite.imap.responses import Code, CommandFailed, Reply, bad, from_store_error, no, ok
from mailsuite.imap.session import SelectedView, Session, State
from mailsuite.interfaces import SYSTEM_FLAGS, FlagMode

SELECTED = (State.SELECTED,)
AUTHED = (State.AUTHENTICATED, State.SELECTED)
_MODES = {"FLAGS": FlagMode.REPLACE, "+FLAGS": FlagMode.ADD, "-FLAGS": FlagMode.REMOVE}


def _uids(view: SelectedView, ranges: list[range]) -> list[int]:
    uids = view.uids
    return [uids[i] for r in ranges for i in r]


def _writable(view: SelectedView) -> None:
    if view.readonly:
        raise no("Mailbox is read-only.", Code.READ_ONLY)


def _checked_flags(flags: list[str]) -> list[str]:
    out = []
    for flag in flags:
        if flag.startswith("\\"):
            if flag == "\\Recent":
                continue
            if flag not in SYSTEM_FLAGS:
                raise bad(f"Invalid system flag {flag}.")
        out.append(flag)
    return out


# --- STORE ----------------------------------------------------------------------------------


async def store(session: Session, r: Reader) -> Reply | None:
    return _store(session, r, uid_mode=False)


async def uid_store(session: Session, r: Reader) -> Reply | None:
    return _store(session, r, uid_mode=True)


def _store(session: Session, r: Reader, uid_mode: bool) -> Reply | None:
    view = session.require_selected()
    r.sp()
    seqset = r.seqset()
    r.sp()
    unchanged_since: int | None = None
    if r.peek() == 0x28:
        r.open_list()
        if r.keyword() != "UNCHANGEDSINCE":
            raise ParseError("Unknown STORE modifier")
        r.sp()
        unchanged_since = r.number64()
        if not r.close_list():
            raise ParseError("Expected )")
        r.sp()
        session.condstore = True
    action = r.atom().upper()
    silent = action.endswith(".SILENT")
    if silent:
        action = action[: -len(".SILENT")]
    mode = _MODES.get(action)
    if mode is None:
        raise ParseError(f"Invalid STORE action {action}")
    r.sp()
    flags = _checked_flags(r.flags_argument())
    r.end()
    _writable(view)
    ranges = view.resolve(seqset, uid_mode)
    uids = _uids(view, ranges)
    try:
        update = view.folder.store_flags(uids, flags, mode, unchanged_since, origin=session)
    except StoreError as e:
        if isinstance(e, MailsuiteError) and type(e) is not StoreError:
            raise
        raise bad(f"Invalid flags: {e}") from None
    failed = set(update.unchanged_since_failed)
    changed = {info.uid: info for info in update.changed}
    lines: list[bytes] = []
    messages = view.folder.messages()
    for index in SelectedView.iter_indexes(ranges):
        uid = view.uids[index]
        if uid in failed:
            continue
        info = changed.get(uid)
        if silent:
            if info is None or not session.condstore:
                continue
            lines.append(b"* %d FETCH (UID %d MODSEQ (%d))\r\n" % (index + 1, uid, info.modseq))
            continue
        if info is None:
            if unchanged_since is not None:
                continue
            info = view.info_at(index, messages)
            if info is None:
                continue
        items = [b"FLAGS " + wire.flag_list(info.flags)]
        if uid_mode or session.qresync:
            items.insert(0, b"UID %d" % uid)
        if session.condstore:
            items.append(b"MODSEQ (%d)" % info.modseq)
        lines.append(b"* %d FETCH (" % (index + 1) + b" ".join(items) + b")\r\n")
    session.send_lines(lines)
    if failed:
        if uid_mode:
            modified = compact_set(sorted(failed))
        else:
            modified = compact_set(sorted(i + 1 for i in (view.index_of(u) for u in failed)
                                          if i is not None))
        return ok("Conditional store failed.", f"MODIFIED {modified}")
    return None


# --- COPY / MOVE ----------------------------------------------------------------------------


async def copy(session: Session, r: Reader) -> Reply | None:
    return await _copy_or_move(session, r, uid_mode=False, move=False)


async def uid_copy(session: Session, r: Reader) -> Reply | None:
    return await _copy_or_move(session, r, uid_mode=True, move=False)


async def move(session: Session, r: Reader) -> Reply | None:
    return await _copy_or_move(session, r, uid_mode=False, move=True)


async def uid_move(session: Session, r: Reader) -> Reply | None:
    return await _copy_or_move(session, r, uid_mode=True, move=True)


async def _copy_or_move(session: Session, r: Reader, uid_mode: bool, move: bool) -> Reply | None:
    view = session.require_selected()
    r.sp()
    seqset = r.seqset()
    r.sp()
    destination = checked_name(r.astring(), utf8=session.utf8)
    r.end()
    if move:
        _writable(view)
    ranges = view.resolve(seqset, uid_mode)
    messages = view.folder.messages()
    uids = [view.uids[i] for i in SelectedView.iter_indexes(ranges)
            if view.info_at(i, messages) is not None]
    if not uids:
        return ok("No messages matched.")
    try:
        target = session.account.folder_status(destination)
        if move:
            pairs = await view.folder.move(uids, destination, origin=session)
        else:
            pairs = await view.folder.copy(uids, destination)
    except FolderNotFound:
        raise no("Mailbox doesn't exist: " + destination, Code.TRYCREATE) from None
    except MailsuiteError as e:
        raise CommandFailed(from_store_error(e, destination)) from None
    pairs = sorted(pairs)
    code = None
    if pairs:
        code = (f"COPYUID {target.uidvalidity} {compact_set_unsorted([p[0] for p in pairs])} "
                f"{compact_set_unsorted([p[1] for p in pairs])}")
    if move:
        if code:
            session.send(f"* OK [{code}] Moved UIDs.\r\n".encode())
        session.send_lines(view.expunged_now([p[0] for p in pairs]))
        return ok("Move completed.")
    return ok("Copy completed.", code)


def compact_set_unsorted(numbers: list[int]) -> str:
    """A uid-set in the given order (COPYUID pairs source and destination by position)."""
    parts: list[str] = []
    i = 0
    while i < len(numbers):
        j = i
        while j + 1 < len(numbers) and numbers[j + 1] == numbers[j] + 1:
            j += 1
        parts.append(str(numbers[i]) if i == j else f"{numbers[i]}:{numbers[j]}")
        i = j + 1
    return ",".join(parts)


# --- EXPUNGE / CLOSE / UNSELECT / CHECK ------------------------------------------------------


async def expunge(session: Session, r: Reader) -> Reply | None:
    r.end()
    view = session.require_selected()
    _writable(view)
    gone = view.folder.expunge(origin=session)
    session.send_lines(view.expunged_now(gone))
    return None


async def uid_expunge(session: Session, r: Reader) -> Reply | None:
    view = session.require_selected()
    r.sp()
    seqset = r.seqset()
    r.end()
    _writable(view)
    uids = _uids(view, view.resolve(seqset, uid_mode=True))
    gone = view.folder.expunge(uids, origin=session) if uids else []
    session.send_lines(view.expunged_now(gone))
    return None


async def close(session: Session, r: Reader) -> Reply | None:
    r.end()
    view = session.require_selected()
    if not view.readonly:
        try:
            view.folder.expunge(origin=session)
        except MailsuiteError:
            pass
    session.unselect()
    return ok("Close completed.")


async def unselect(session: Session, r: Reader) -> Reply | None:
    r.end()
    session.unselect()
    return ok("Unselect completed.")


async def check(session: Session, r: Reader) -> Reply | None:
    r.end()
    view = session.require_selected()
    view.refresh_wanted = True
    return None


# --- APPEND ---------------------------------------------------------------------------------


MAX_MULTIAPPEND = 100


def _append_message(session: Session, r: Reader) -> tuple[list[str], float | None, bytes]:
    """append-message: [SP flag-list] [SP date-time] SP (literal / UTF8 (literal8))."""
    flags: list[str] = []
    internal_date: float | None = None
    if r.peek() == 0x28:
        flags = _checked_flags(r.flag_list())
        r.sp()
    if r.peek() == 0x22:
        internal_date = r.date_time()
        r.sp()
    if r.peek() in (0x55, 0x75):  # RFC 6855 section 4: APPEND ... UTF8 (~{n}...)
        if r.keyword() != "UTF8":
            raise ParseError("Expected a literal or UTF8")
        if not session.utf8:
            raise bad("UTF8 APPEND needs ENABLE UTF8=ACCEPT.")
        r.sp()
        r.open_list()
        message = r.literal()
        if not r.close_list():
            raise ParseError("Expected )")
    else:
        message = r.literal()
    if not message:
        raise no("Can't save a zero byte message.")
    return flags, internal_date, message


async def append(session: Session, r: Reader) -> Reply | None:
    """APPEND, with MULTIAPPEND (RFC 3502): several messages, all or none."""
    r.sp()
    name = checked_name(r.astring(), utf8=session.utf8)
    r.sp()
    messages = [_append_message(session, r)]
    while r.maybe_sp():
        if len(messages) >= MAX_MULTIAPPEND:
            raise bad("Too many messages in one APPEND.")
        messages.append(_append_message(session, r))
    r.end()
    added: list[int] = []
    try:
        for flags, internal_date, message in messages:
            info = await session.account.deliver(message, name, flags, internal_date)
            added.append(info.uid)
        status = session.account.folder_status(name)
    except FolderNotFound:
        raise no("Mailbox doesn't exist: " + name, Code.TRYCREATE) from None
    except StoreError as e:
        _undo_append(session, name, added)
        if type(e) is StoreError:
            raise bad(f"Invalid flags: {e}") from None
        raise CommandFailed(from_store_error(e, name)) from None
    return ok("Append completed.", f"APPENDUID {status.uidvalidity} {compact_set(added)}")


def _undo_append(session: Session, name: str, uids: list[int]) -> None:
    """RFC 3502: a failed MULTIAPPEND leaves the mailbox as it was."""
    if not uids:
        return
    try:
        folder = session.account.open_folder(name)
        try:
            folder.store_flags(uids, ["\\Deleted"], FlagMode.ADD)
            folder.expunge(uids)
        finally:
            folder.close()
    except MailsuiteError:
        session.protocol.log.failure("could not undo a partial MULTIAPPEND")


HANDLERS: dict[str, tuple[Any, tuple[State, ...]]] = {
    "STORE": (store, SELECTED),
    "UID STORE": (uid_store, SELECTED),
    "COPY": (copy, SELECTED),
    "UID COPY": (uid_copy, SELECTED),
    "MOVE": (move, SELECTED),
    "UID MOVE": (uid_move, SELECTED),
    "EXPUNGE": (expunge, SELECTED),
    "UID EXPUNGE": (uid_expunge, SELECTED),
    "CLOSE": (close, SELECTED),
    "UNSELECT": (unselect, SELECTED),
    "CHECK": (check, SELECTED),
    "APPEND": (append, AUTHED),
}

"""SORT and UID SORT (RFC 5256 section 3) with DISPLAYFROM/DISPLAYTO (RFC 5957).

Sort keys come from the cached summary (Date header, first address, decoded subject) and the
message list (size, arrival), so sorting never reads message files unless the search keys do.
Equal messages keep their mailbox order, as the RFC demands.
"""

from __future__ import annotations

from typing import Any

from mailsuite.imap.cmd_search import Candidate, KeyParser, matching, read_charset
from mailsuite.imap.parser import ParseError, Reader
from mailsuite.imap.responses import Reply
from mailsuite.imap.session import Session, State
from mailsuite.imap.subjects import base_subject
from mailsuite.message.headers import decode_words

SELECTED = (State.SELECTED,)
KEYS = ("ARRIVAL", "CC", "DATE", "FROM", "SIZE", "SUBJECT", "TO", "DISPLAYFROM", "DISPLAYTO")
MAX_CRITERIA = 16


def _first_address(summary: dict[str, Any], field: str) -> list[Any] | None:
    addresses = summary.get("envelope", {}).get(field)
    for address in addresses or ():
        if address[2] is not None and address[3] is not None:  # skip group markers
            return address
    return None


def _mailbox_key(field: str) -> Any:
    def key(c: Candidate) -> str:
        address = _first_address(c.summary, field)
        return (address[2] or "").casefold() if address else ""
    return key


def _display_key(field: str) -> Any:
    def key(c: Candidate) -> str:
        address = _first_address(c.summary, field)
        if address is None:
            return ""
        name = decode_words(address[0].encode("latin-1", "replace")).strip().strip('"') if address[0] else ""
        return (name or f"{address[2]}@{address[3]}").casefold()
    return key


def sent_date(c: Candidate) -> float:
    """RFC 5256 section 2.2 sent date: the Date header in UTC, else the internal date."""
    epoch = c.summary.get("date_epoch")
    return float(epoch) if epoch is not None else c.info.internal_date


KEY_FUNCTIONS = {
    "ARRIVAL": lambda c: c.info.internal_date,
    "SIZE": lambda c: c.info.size,
    "DATE": sent_date,
    "SUBJECT": lambda c: base_subject(c.summary.get("decoded", {}).get("subject")),
    "FROM": _mailbox_key("from"),
    "TO": _mailbox_key("to"),
    "CC": _mailbox_key("cc"),
    "DISPLAYFROM": _display_key("from"),
    "DISPLAYTO": _display_key("to"),
}


def parse_criteria(r: Reader) -> list[tuple[str, bool]]:
    """``(REVERSE DATE SUBJECT)`` -> [("DATE", True), ("SUBJECT", False)]."""
    words = r.items(r.keyword)
    criteria: list[tuple[str, bool]] = []
    reverse = False
    for word in words:
        if word == "REVERSE":
            if reverse:
                raise ParseError("REVERSE twice")
            reverse = True
            continue
        if word not in KEYS:
            raise ParseError(f"Unknown sort key {word}")
        criteria.append((word, reverse))
        reverse = False
    if reverse or not criteria or len(criteria) > MAX_CRITERIA:
        raise ParseError("Invalid sort criteria")
    return criteria


async def sort(session: Session, r: Reader) -> Reply | None:
    return await _sort(session, r, uid_mode=False)


async def uid_sort(session: Session, r: Reader) -> Reply | None:
    return await _sort(session, r, uid_mode=True)


async def _sort(session: Session, r: Reader, uid_mode: bool) -> Reply | None:
    view = session.require_selected()
    r.sp()
    criteria = parse_criteria(r)
    r.sp()
    charset = read_charset(r)
    r.sp()
    root = KeyParser(r, view, charset).keys()
    r.end()
    found = await matching(session, view, root)
    for name, reverse in reversed(criteria):  # stable sorts, last criterion first
        found.sort(key=KEY_FUNCTIONS[name], reverse=reverse)
    numbers = (c.info.uid if uid_mode else c.index + 1 for c in found)
    session.send(b"* SORT" + b"".join(b" %d" % n for n in numbers) + b"\r\n")
    return None


HANDLERS: dict[str, tuple[Any, tuple[State, ...]]] = {
    "SORT": (sort, SELECTED),
    "UID SORT": (uid_sort, SELECTED),
}

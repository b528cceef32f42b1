"""The THREAD algorithms of RFC 5256: ORDEREDSUBJECT (section 3) and REFERENCES (section 3).

Pure functions over ``ThreadMessage`` values: no I/O, no IMAP session. The result is a list of
top-level ``ThreadNode`` trees in response order; a node without a message is a dummy (a
missing parent that groups its children). Every walk is iterative so that a reply chain
thousands of messages deep cannot exhaust Python's recursion limit.

Named ``threading_alg`` so that it is never mistaken for the standard library's ``threading``.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from itertools import groupby, pairwise

from mailsuite.imap.subjects import extract_base_subject

# A Message-ID (RFC 5322 3.6.4 msg-id): "<" id-left "@" id-right ">", no white space inside.
_MSG_ID = re.compile(r"<([^<>\s@]+@[^<>\s@]+)>")


@dataclass(frozen=True, slots=True)
class ThreadMessage:
    """What threading needs to know of one message."""

    number: int  # what the response shows: sequence number, or UID for UID THREAD
    seq: int  # mailbox order: breaks sent-date ties (RFC 5256 section 2.2)
    sent: float  # sent date, UTC epoch seconds (Date header, else internal date)
    subject: str | None = None  # decoded Subject
    message_id: str | None = None  # raw header values, as in the cached summary
    references: str | None = None
    in_reply_to: str | None = None


@dataclass(eq=False, slots=True)
class ThreadNode:
    """One place in a thread tree; ``message`` is None for a dummy."""

    message: ThreadMessage | None
    children: list[ThreadNode] = field(default_factory=list)
    parent: ThreadNode | None = None


ALGORITHMS = ("ORDEREDSUBJECT", "REFERENCES")


def thread(algorithm: str, messages: list[ThreadMessage]) -> list[ThreadNode]:
    """Thread ``messages`` (in mailbox order) with ``algorithm``, one of ``ALGORITHMS``."""
    if algorithm == "ORDEREDSUBJECT":
        return ordered_subject(messages)
    if algorithm == "REFERENCES":
        return references(messages)
    raise ValueError(f"unknown threading algorithm {algorithm}")


def message_ids(text: str | None) -> list[str]:
    """The valid Message-IDs in a header value, in order (brackets removed)."""
    return _MSG_ID.findall(text) if text else []


def _base(message: ThreadMessage) -> tuple[str, bool]:
    return extract_base_subject(message.subject)


def _date_key(message: ThreadMessage) -> tuple[float, int]:
    return (message.sent, message.seq)


# --- ORDEREDSUBJECT ----------------------------------------------------------------------------


def ordered_subject(messages: list[ThreadMessage]) -> list[ThreadNode]:
    """RFC 5256 section 3 ORDEREDSUBJECT ("poor man's threading").

    Sort by base subject, then sent date; each run of one base subject is a thread whose first
    message is the parent of all the others; threads are ordered by their first message's date.
    """
    keyed = sorted(((_base(m)[0], _date_key(m), m) for m in messages), key=lambda t: t[:2])
    threads = []
    for _, group in groupby(keyed, key=lambda t: t[0]):
        members = [m for _, _, m in group]
        root = ThreadNode(members[0])
        root.children = [ThreadNode(m, parent=root) for m in members[1:]]
        threads.append(root)
    threads.sort(key=lambda node: _date_key(node.message))  # type: ignore[arg-type]
    return threads


# --- REFERENCES --------------------------------------------------------------------------------


def references(messages: list[ThreadMessage]) -> list[ThreadNode]:
    """RFC 5256 section 3 REFERENCES: the steps are numbered as in the RFC."""
    nodes = _link(messages)  # step 1
    root = ThreadNode(None, [n for n in nodes if n.parent is None])  # step 2
    for child in root.children:
        child.parent = root
    _prune(root)  # step 3
    _sort_siblings(root)  # step 4 (sorting every level now changes nothing that step 5 sees)
    _merge_by_subject(root)  # step 5
    _sort_siblings(root)  # step 6
    return root.children


def _link(messages: list[ThreadMessage]) -> list[ThreadNode]:
    """Step 1: a node per Message-ID, parent/child links from References or In-Reply-To."""
    by_id: dict[str, ThreadNode] = {}
    nodes: list[ThreadNode] = []  # every node: messages and dummies
    own: list[ThreadNode] = []
    for message in messages:
        ids = message_ids(message.message_id)
        node = by_id.get(ids[0]) if ids else None
        if node is not None and node.message is None:
            node.message = message  # a dummy made for an earlier reference: fill it
        else:
            # No valid Message-ID, or a duplicate of an earlier message's: a unique ID, i.e.
            # a node nobody can reference.
            node = ThreadNode(message)
            nodes.append(node)
            if ids and ids[0] not in by_id:
                by_id[ids[0]] = node
        own.append(node)

    def node_for(message_id: str) -> ThreadNode:
        found = by_id.get(message_id)
        if found is None:
            found = by_id[message_id] = ThreadNode(None)  # a missing parent: a dummy
            nodes.append(found)
        return found

    for message, node in zip(messages, own):
        refs = message_ids(message.references)
        if not refs:
            refs = message_ids(message.in_reply_to)[:1]
        chain = [node_for(ref) for ref in refs]
        # (A) each reference is the parent of the next; existing links stay, loops are refused.
        for parent, child in pairwise(chain):
            if child.parent is None and not _would_loop(parent, child):
                _attach(parent, child)
        # (B) the message's own header wins over links guessed from others' References.
        if node.parent is not None:
            _detach(node)
        if chain and not _would_loop(chain[-1], node):
            _attach(chain[-1], node)
    return nodes


def _would_loop(parent: ThreadNode, child: ThreadNode) -> bool:
    """True if ``parent`` is ``child`` or one of its descendants."""
    walk: ThreadNode | None = parent
    while walk is not None:
        if walk is child:
            return True
        walk = walk.parent
    return False


def _attach(parent: ThreadNode, child: ThreadNode) -> None:
    child.parent = parent
    parent.children.append(child)


def _detach(child: ThreadNode) -> None:
    assert child.parent is not None
    child.parent.children.remove(child)
    child.parent = None


def _post_order(top: ThreadNode) -> list[ThreadNode]:
    """Every node under ``top`` (``top`` last), children before their parent."""
    out: list[ThreadNode] = []
    stack = [top]
    while stack:
        node = stack.pop()
        out.append(node)
        stack.extend(node.children)
    out.reverse()
    return out


def _prune(root: ThreadNode) -> None:
    """Step 3: drop childless dummies; replace other dummies by their children, except that a
    dummy under the root keeps its children unless it has only one."""
    for node in _post_order(root):  # children first, so they are already pruned
        kept: list[ThreadNode] = []
        for child in node.children:
            if child.message is not None:
                kept.append(child)
            elif child.children and (node is not root or len(child.children) == 1):
                kept.extend(child.children)
            elif child.children:
                kept.append(child)
        for child in kept:
            child.parent = node
        node.children = kept


def _sort_key(node: ThreadNode) -> tuple[float, int]:
    """Sent date, then mailbox order; a dummy sorts as its first (already sorted) child."""
    while node.message is None:
        node = node.children[0]
    return _date_key(node.message)


def _sort_siblings(root: ThreadNode) -> None:
    """Steps 4 and 6: sort every set of siblings, the deepest first."""
    for node in _post_order(root):
        node.children.sort(key=_sort_key)


def _thread_subject(node: ThreadNode) -> str:
    """Step 5.B.i: the base subject of a root, or of a dummy root's first child."""
    message = node.message if node.message is not None else node.children[0].message
    assert message is not None  # after pruning, a dummy's children are messages
    return _base(message)[0]


def _is_reply(node: ThreadNode) -> bool:
    return node.message is not None and _base(node.message)[1]


def _merge_by_subject(root: ThreadNode) -> None:
    """Step 5: gather the threads under the root that share a base subject."""
    roots = root.children
    subjects = [_thread_subject(node) for node in roots]
    # 5.B: one thread per subject; a dummy, else a non-reply, represents it.
    table: dict[str, ThreadNode] = {}
    for node, subject in zip(roots, subjects):
        if not subject:
            continue
        held = table.get(subject)
        # 5.B.iv: the first of a subject, or a better one than a non-dummy held so far.
        if held is None or (held.message is not None and (
            node.message is None or (_is_reply(held) and not _is_reply(node))
        )):
            table[subject] = node
    # 5.C: merge every other thread of that subject into the table's.
    gone: set[int] = set()  # ids of roots that became someone's children
    wrapped: dict[int, ThreadNode] = {}  # id of a root -> the new dummy standing in its place
    for node, subject in zip(roots, subjects):
        if not subject or table[subject] is node:
            continue
        held = table[subject]
        if held.message is None and node.message is None:
            for child in node.children:
                _attach(held, child)
            node.children = []
        elif held.message is None or (_is_reply(node) and not _is_reply(held)):
            _attach(held, node)
        else:
            dummy = ThreadNode(None, parent=root)
            _attach(dummy, held)
            _attach(dummy, node)
            wrapped[id(held)] = dummy
            table[subject] = dummy
        gone.add(id(node))
    root.children = [wrapped.get(id(n), n) for n in roots if id(n) not in gone]


# --- response syntax ---------------------------------------------------------------------------


def render(threads: list[ThreadNode]) -> str:
    """RFC 5256 section 4 thread-list syntax: ``(1)(2 3)((4)(5))``.

    A single child follows its parent after a space; two or more are each parenthesised;
    a dummy contributes no number.
    """
    out: list[str] = []
    for top in threads:
        out.append("(")
        stack: list[ThreadNode | str] = [top]
        while stack:
            item = stack.pop()
            if isinstance(item, str):
                out.append(item)
                continue
            parts: list[ThreadNode | str] = []
            if item.message is not None:
                parts.append(str(item.message.number))
                if item.children:
                    parts.append(" ")
            if len(item.children) == 1:
                parts.append(item.children[0])
            else:
                for child in item.children:
                    parts.extend(("(", child, ")"))
            stack.extend(reversed(parts))
        out.append(")")
    return "".join(out)

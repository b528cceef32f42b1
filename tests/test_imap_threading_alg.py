"""The RFC 5256 threading algorithms on hand-made message sets (no server)."""

from __future__ import annotations

from mailsuite.imap.threading_alg import (
    ThreadMessage,
    message_ids,
    ordered_subject,
    references,
    render,
)

DAY = 86400.0


def m(seq: int, subject: str = "topic", day: float | None = None, mid: str | None = "auto",
      refs: str | None = None, irt: str | None = None) -> ThreadMessage:
    """Message ``seq``, sent on ``day`` (default: its sequence number), Message-ID <seq@x>."""
    return ThreadMessage(
        number=seq, seq=seq, sent=(day if day is not None else seq) * DAY, subject=subject,
        message_id=f"<{seq}@x>" if mid == "auto" else mid, references=refs, in_reply_to=irt)


def refs_text(*seqs: int) -> str:
    return " ".join(f"<{s}@x>" for s in seqs)


def by_references(*messages: ThreadMessage) -> str:
    return render(references(list(messages)))


def by_subject(*messages: ThreadMessage) -> str:
    return render(ordered_subject(list(messages)))


# --- response syntax (RFC 5256 section 4) -------------------------------------------------


def test_render_syntax_chain_branches_and_dummy() -> None:
    # 1 alone; 2 -> 3 a chain; 4 with two replies; a missing parent of 6 and 7 (dummy).
    got = by_references(
        m(1, "a"), m(2, "b"), m(3, "b", refs=refs_text(2)), m(4, "c"),
        m(5, "c", refs=refs_text(4)), m(8, "c", refs=refs_text(4)),
        m(6, "d", refs="<gone@x>"), m(7, "e", refs="<gone@x>"))
    assert got == "(1)(2 3)(4 (5)(8))((6)(7))"


def test_empty_input() -> None:
    assert by_references() == ""
    assert by_subject() == ""


def test_message_ids_parsing() -> None:
    assert message_ids("<a@b> (comment) <c@d>") == ["a@b", "c@d"]
    assert message_ids("<no-at-sign> <a b@c> junk") == []
    assert message_ids(None) == []


# --- ORDEREDSUBJECT ---------------------------------------------------------------------


def test_ordered_subject_groups_re_and_fwd() -> None:
    got = by_subject(
        m(1, "Lunch"), m(2, "Budget"), m(3, "Re: lunch"), m(4, "Fwd: Budget"),
        m(5, "[list] Re: LUNCH (fwd)"), m(6, "other"))
    # Threads ordered by their first message's date; all later ones are children of it.
    assert got == "(1 (3)(5))(2 4)(6)"


def test_ordered_subject_ignores_references() -> None:
    got = by_subject(m(1, "alpha"), m(2, "beta", refs=refs_text(1)))
    assert got == "(1)(2)"


def test_ordered_subject_orders_by_sent_date_then_sequence() -> None:
    # Message 3 was sent first, so it heads the thread; 1 and 2 tie on date: sequence order.
    got = by_subject(m(1, "x", day=5), m(2, "Re: x", day=5), m(3, "re: x", day=1))
    assert got == "(3 (1)(2))"


# --- REFERENCES: linking (step 1) -------------------------------------------------------


def test_reply_chain_via_references() -> None:
    got = by_references(m(1, "q"), m(2, "Re: q", refs=refs_text(1)),
                        m(3, "Re: q", refs=refs_text(1, 2)), m(4, "Re: q", refs=refs_text(1, 2, 3)))
    assert got == "(1 2 3 4)"


def test_in_reply_to_only() -> None:
    got = by_references(m(1, "q"), m(2, "Re: q", irt="<1@x> (Alice's message)"),
                        m(3, "unrelated", irt="<2@x>"))
    assert got == "(1 2 3)"


def test_references_win_over_in_reply_to() -> None:
    got = by_references(m(1, "a"), m(2, "b"), m(3, "c", refs=refs_text(1), irt="<2@x>"))
    assert got == "(1 3)(2)"


def test_reply_arrives_before_its_parent() -> None:
    # Mailbox order does not matter: the reply (seq 1) is linked under its parent (seq 2).
    got = by_references(m(1, "Re: q", day=3, refs=refs_text(2)), m(2, "q", day=2))
    assert got == "(2 1)"


def test_missing_parents_become_dummies_and_are_pruned() -> None:
    # 2 and 3 reply to a message we do not have: a dummy root groups them.
    assert by_references(m(2, "x", refs="<lost@x>"), m(3, "y", refs="<lost@x>")) == "((2)(3))"
    # A dummy with a single child is replaced by it at the top level.
    assert by_references(m(2, "x", refs="<lost@x> <1@x>")) == "(2)"
    # Dummies below the top level are always replaced by their children.
    got = by_references(m(1, "p"), m(2, "q", refs="<1@x> <lost@x>"),
                        m(3, "r", refs="<1@x> <lost@x>"))
    assert got == "(1 (2)(3))"


def test_truncated_references_are_corrected_by_the_message_itself() -> None:
    # 3's References say 2 is its parent; 4's (truncated) chain claims 1 -> 3. 3's own header
    # wins: step 1.B breaks the link guessed from 4's References.
    got = by_references(m(1, "a"), m(2, "b"), m(4, "c", refs="<1@x> <3@x>"),
                        m(3, "d", refs="<2@x>"))
    assert got == "(1)(2 3 4)"


def test_duplicate_message_ids() -> None:
    # Message 2 reuses 1's Message-ID: it gets a unique one, so replies go to message 1.
    got = by_references(m(1, "a", mid="<same@x>"), m(2, "b", mid="<same@x>"),
                        m(3, "c", refs="<same@x>"))
    assert got == "(1 3)(2)"


def test_messages_without_message_id() -> None:
    got = by_references(m(1, "a", mid=None), m(2, "b", mid="garbage"),
                        m(3, "c", refs="<1@x>"))
    assert got == "(1)(2)(3)"


def test_loop_in_references_is_broken() -> None:
    # 1 says it follows 2, then 2 says it follows 1: that second link would close a loop and
    # is not made, so 2 stays the root.
    got = by_references(m(1, "a", refs=refs_text(2)), m(2, "b", refs=refs_text(1)))
    assert got == "(2 1)"


def test_loop_through_a_long_cycle_and_self_reference() -> None:
    got = by_references(m(1, "a", refs=refs_text(3)), m(2, "b", refs=refs_text(1)),
                        m(3, "c", refs=refs_text(2)), m(4, "d", refs=refs_text(4)))
    numbers = sorted(int(x) for x in got.replace("(", " ").replace(")", " ").split())
    assert numbers == [1, 2, 3, 4]
    assert "(4)" in got  # a message naming itself as parent stays a root


def test_loop_inside_one_references_header() -> None:
    got = by_references(m(1, "a"), m(2, "b", refs="<1@x> <2@x> <1@x>"))
    assert got == "(1 2)"


# --- REFERENCES: sorting and subject grouping (steps 4 to 6) ----------------------------


def test_siblings_sorted_by_sent_date_then_sequence() -> None:
    got = by_references(m(1, "q", day=1), m(2, "Re: q", day=9, refs=refs_text(1)),
                        m(3, "Re: q", day=5, refs=refs_text(1)),
                        m(4, "Re: q", day=5, refs=refs_text(1)))
    assert got == "(1 (3)(4)(2))"


def test_threads_sorted_by_date_of_root() -> None:
    got = by_references(m(1, "late", day=20), m(2, "early", day=2), m(3, "middle", day=10))
    assert got == "(2)(3)(1)"


def test_dummy_root_sorts_by_its_first_child() -> None:
    got = by_references(m(1, "a", day=5), m(2, "b", day=9, refs="<lost@x>"),
                        m(3, "c", day=1, refs="<lost@x>"))
    assert got == "((3)(2))(1)"


def test_roots_with_same_subject_reply_goes_under_original() -> None:
    # 2 is a reply (Re:) without any references: it joins 1's thread as a child.
    got = by_references(m(1, "Plans"), m(2, "Re: plans"), m(3, "other"))
    assert got == "(1 2)(3)"


def test_roots_with_same_subject_neither_reply_get_a_dummy() -> None:
    got = by_references(m(1, "Plans"), m(2, "plans"))
    assert got == "((1)(2))"


def test_non_reply_root_is_preferred_even_if_later() -> None:
    # The table keeps the non-reply (3) over the earlier reply (1); 1 goes under 3.
    got = by_references(m(1, "Re: Plans", day=1), m(2, "x", day=2), m(3, "Plans", day=3))
    assert got == "(2)(3 1)"


def test_fwd_subject_merges_like_re() -> None:
    got = by_references(m(1, "Report"), m(2, "Fwd: Report"), m(3, "Report (fwd)"))
    assert got == "(1 (2)(3))"


def test_subject_merge_into_dummy_thread() -> None:
    # 2 and 3 share a missing parent (a dummy root, subject "news" from its first child 2);
    # 4 has the same base subject: it becomes a sibling of 2 and 3.
    got = by_references(m(2, "News", refs="<lost@x>"), m(3, "Re: News", refs="<lost@x>"),
                        m(4, "Re: news"))
    assert got == "((2)(3)(4))"


def test_two_dummy_threads_with_same_subject_merge() -> None:
    got = by_references(m(1, "News", refs="<lost1@x>"), m(2, "News", refs="<lost1@x>"),
                        m(3, "Re: News", refs="<lost2@x>"), m(4, "Re: News", refs="<lost2@x>"))
    assert got == "((1)(2)(3)(4))"


def test_empty_subjects_are_not_grouped() -> None:
    assert by_references(m(1, ""), m(2, ""), m(3, None)) == "(1)(2)(3)"


def test_deep_chain_does_not_hit_recursion_limit() -> None:
    count = 3000
    messages = [m(1, "deep")] + [m(i, "Re: deep", refs=f"<{i - 1}@x>") for i in range(2, count + 1)]
    got = by_references(*messages)
    assert got == "(" + " ".join(str(i) for i in range(1, count + 1)) + ")"

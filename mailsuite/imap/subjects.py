"""Base subject extraction (RFC 5256 section 2.1), shared by SORT and THREAD.

THREAD=REFERENCES also needs to know whether a subject marks a reply or forward (section 3,
step 5): that is the case when a ``Re:``/``Fwd:`` leader, a ``(fwd)`` trailer or a
``[fwd: ...]`` wrapper was removed; a bare ``[blob]`` prefix does not count.
"""

from __future__ import annotations

import re

_TRAILER = re.compile(r"(\s*\(fwd\))+\s*$", re.IGNORECASE)
_LEADER = re.compile(r"^\s*((re|fwd?)\s*(\[[^\[\]]*\])?\s*:\s*|\[[^\[\]]*\]\s*)", re.IGNORECASE)
_FWD_WRAP = re.compile(r"^\[fwd:\s*(.*)\]$", re.IGNORECASE | re.DOTALL)


def extract_base_subject(subject: str | None) -> tuple[str, bool]:
    """(base subject, case-folded; True if the subject is a reply or forward)."""
    text = " ".join((subject or "").split("\n", 1)[0].split())
    refwd = False
    for _ in range(100):  # every pass removes something or stops
        before = text
        trimmed = _TRAILER.sub("", text)
        refwd = refwd or trimmed != text
        text = trimmed
        match = _LEADER.match(text)
        if match and text[match.end():].strip():
            refwd = refwd or match.group(2) is not None  # "re:"/"fwd:", not a bare [blob]
            text = text[match.end():]
        wrapped = _FWD_WRAP.match(text)
        if wrapped:
            refwd = True
            text = wrapped.group(1)
        text = text.strip()
        if text == before:
            break
    return text.casefold(), refwd


def base_subject(subject: str | None) -> str:
    """RFC 5256 section 2.1: the subject without reply/forward markers, case-folded."""
    return extract_base_subject(subject)[0]

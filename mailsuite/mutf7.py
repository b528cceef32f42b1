"""Modified UTF-7 for IMAP mailbox names (RFC 3501 section 5.1.3).

Printable US-ASCII (0x20-0x7E) stands for itself, except ``&`` which is written ``&-``. Every
other character is written as UTF-16BE, base64 encoded with ``,`` in place of ``/`` and without
padding, between ``&`` and ``-``.

``decode`` is strict: it raises ``ValueError`` for anything a conforming encoder would not
produce (raw 8-bit or control characters, an unterminated shift, base64 that encodes printable
ASCII, two adjacent shifted runs, nonzero padding bits, broken surrogate pairs), so one name has
exactly one encoding and a client cannot smuggle two spellings of the same folder past us.
"""

from __future__ import annotations

import binascii

__all__ = ["decode", "encode"]

_B64_ALPHABET = frozenset("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+,")


def _is_direct(ch: str) -> bool:
    """True if ``ch`` is written as itself (RFC 3501 5.1.3: 0x20-0x7E except '&')."""
    return "\x20" <= ch <= "\x7e"


def _encode_run(run: str) -> str:
    try:
        raw = run.encode("utf-16-be")
    except UnicodeEncodeError as exc:  # lone surrogates cannot be represented
        raise ValueError(f"cannot encode {run!r} as UTF-16") from exc
    b64 = binascii.b2a_base64(raw, newline=False).decode("ascii").rstrip("=")
    return "&" + b64.replace("/", ",") + "-"


def encode(text: str) -> str:
    """Encode a Unicode mailbox name into modified UTF-7."""
    out: list[str] = []
    run: list[str] = []
    for ch in text:
        if _is_direct(ch):
            if run:
                out.append(_encode_run("".join(run)))
                run = []
            out.append("&-" if ch == "&" else ch)
        else:
            run.append(ch)
    if run:
        out.append(_encode_run("".join(run)))
    return "".join(out)


def _decode_run(b64: str) -> str:
    if not b64:
        raise ValueError("empty shifted sequence")
    if any(c not in _B64_ALPHABET for c in b64):
        raise ValueError(f"invalid base64 in shifted sequence {b64!r}")
    # Only lengths that leave whole UTF-16 code units and zero padding bits are valid.
    bits = len(b64) * 6
    nbytes = bits // 8
    if nbytes % 2 or bits - nbytes * 8 >= 6:
        raise ValueError(f"shifted sequence {b64!r} has a bad length")
    padded = b64.replace(",", "/") + "=" * (-len(b64) % 4)
    try:
        raw = binascii.a2b_base64(padded.encode("ascii"), strict_mode=True)
    except binascii.Error as exc:
        raise ValueError(f"invalid base64 in shifted sequence {b64!r}") from exc
    # Reject nonzero padding bits: re-encoding must give the same text back.
    if binascii.b2a_base64(raw, newline=False).decode("ascii").rstrip("=").replace("/", ",") != b64:
        raise ValueError(f"nonzero padding bits in {b64!r}")
    try:
        text = raw.decode("utf-16-be", errors="strict")
    except UnicodeDecodeError as exc:
        raise ValueError(f"invalid UTF-16 in shifted sequence {b64!r}") from exc
    if any(_is_direct(ch) for ch in text):
        raise ValueError(f"shifted sequence {b64!r} encodes printable ASCII")
    return text


def decode(data: str) -> str:
    """Decode a modified UTF-7 mailbox name; raise ``ValueError`` if it is not valid."""
    out: list[str] = []
    i = 0
    n = len(data)
    previous_was_shift = False
    while i < n:
        ch = data[i]
        if not _is_direct(ch):
            raise ValueError(f"character {ch!r} at {i} must be encoded")
        if ch != "&":
            out.append(ch)
            i += 1
            previous_was_shift = False
            continue
        end = data.find("-", i + 1)
        if end < 0:
            raise ValueError(f"unterminated shift at {i}")
        if end == i + 1:
            out.append("&")
            previous_was_shift = False
        else:
            if previous_was_shift:
                raise ValueError(f"adjacent shifted sequences at {i}")
            out.append(_decode_run(data[i + 1 : end]))
            previous_was_shift = True
        i = end + 1
    return "".join(out)

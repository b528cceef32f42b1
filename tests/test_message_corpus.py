"""Real-world-shaped test messages for the message tests, built here from parts whose sizes
and line counts are known independently of the parser; plus checks of the corpus itself."""

from __future__ import annotations

from dataclasses import dataclass


def crlf(text: str) -> bytes:
    """Text with LF line ends as CRLF bytes (latin-1 for 8-bit test octets)."""
    return text.replace("\n", "\r\n").encode("latin-1")


@dataclass(frozen=True)
class Built:
    """A message and the exact bytes of some of its pieces, for independent checks."""

    raw: bytes
    header: bytes
    pieces: dict[str, bytes]


PLAIN_HEADER = crlf(
    "Return-Path: <alice@example.org>\n"
    "Date: Mon, 7 Feb 1994 21:52:25 -0800 (PST)\n"
    "From: Fred Foobar <foobar@Blurdybloop.example>\n"
    "Subject: afternoon meeting\n"
    "To: mooch@owatagu.siam.edu.example\n"
    "Message-Id: <B27397-0100000@Blurdybloop.example>\n"
    "MIME-Version: 1.0\n"
    "Content-Type: TEXT/PLAIN; CHARSET=US-ASCII\n"
    "\n"
)
PLAIN_BODY = crlf("Hello Joe, do you think we can meet at 3:30 tomorrow?\n")


def plain() -> Built:
    """RFC 3501's own example message (6.4.5 / 7.4.2)."""
    return Built(PLAIN_HEADER + PLAIN_BODY, PLAIN_HEADER, {"body": PLAIN_BODY})


def test_plain_is_header_then_body() -> None:
    built = plain()
    assert built.raw.index(b"\r\n\r\n") + 4 == len(built.header)

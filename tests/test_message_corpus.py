"""Real-world-shaped test messages for the message tests.

Each message is assembled here from pieces (headers, part bodies) whose bytes we keep, so
the tests can check sizes, line counts and sections against an independent computation
(``len`` and ``count`` on the pieces) instead of against the parser itself. The expected
IMAP renderings in the render tests were cross-checked with Dovecot 2.3 (see
``test_message_render.py``). This module also checks that the corpus is what it claims.
"""

from __future__ import annotations

import base64
from dataclasses import dataclass, field


def crlf(text: str) -> bytes:
    """Text with LF line ends as CRLF octets (latin-1, so 8-bit test octets survive)."""
    return text.replace("\n", "\r\n").encode("latin-1")


@dataclass(frozen=True)
class Built:
    """A message, its top header (with the empty line) and named pieces of it."""

    raw: bytes
    header: bytes
    pieces: dict[str, bytes] = field(default_factory=dict)

    @property
    def text(self) -> bytes:
        return self.raw[len(self.header) :]


def _multipart(
    boundary: str,
    parts: list[bytes],
    eol: bytes = b"\r\n",
    preamble: bytes = b"",
    epilogue: bytes = b"",
) -> bytes:
    """A multipart body: each part is its MIME header + empty line + body, as given."""
    out = preamble
    for part in parts:
        out += b"--" + boundary.encode() + eol + part + eol
    return out + b"--" + boundary.encode() + b"--" + eol + epilogue


# --- RFC 3501's example message -------------------------------------------------------------

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
    """RFC 3501's own example message (7.4.2)."""
    return Built(PLAIN_HEADER + PLAIN_BODY, PLAIN_HEADER, {"body": PLAIN_BODY})


# --- multipart/alternative ------------------------------------------------------------------

ALT_TEXT = crlf("Caf=C3=A9 au lait =\nfor everyone.\nSecond line.\n")
ALT_HTML = crlf(
    "<html><body><p>Caf&eacute; au lait for everyone.</p>\n<p>Second line.</p></body></html>\n"
)


def alternative() -> Built:
    """Text and HTML alternatives, quoted-printable UTF-8 text."""
    header = crlf(
        'From: "Doe, Jane" <jane@example.com>\n'
        "To: bob@example.net, Carol <carol@example.net>\n"
        "Cc: dave@example.net\n"
        "Subject: Lunch\n"
        "Date: Tue, 1 Feb 2022 10:00:00 +0100\n"
        "Message-ID: <alt-1@example.com>\n"
        "In-Reply-To: <orig@example.net>\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/alternative;\n boundary="=-alt-boundary-1"\n'
        "\n"
    )
    text_mime = crlf(
        "Content-Type: text/plain; charset=utf-8\nContent-Transfer-Encoding: quoted-printable\n\n"
    )
    html_mime = crlf('Content-Type: text/html; charset="us-ascii"\n\n')
    body = _multipart("=-alt-boundary-1", [text_mime + ALT_TEXT, html_mime + ALT_HTML])
    return Built(header + body, header, {
        "1": ALT_TEXT, "1.MIME": text_mime, "2": ALT_HTML, "2.MIME": html_mime,
    })  # fmt: skip


# --- multipart/mixed with attachments -------------------------------------------------------

PDF_BYTES = b"%PDF-1.4\n" + bytes(range(256)) * 3 + b"\n%%EOF\n"
PDF_B64 = base64.encodebytes(PDF_BYTES).replace(b"\n", b"\r\n")


def mixed() -> Built:
    """Text plus a base64 PDF and a text attachment, with every extension field set."""
    header = crlf(
        "From: sender@example.org\n"
        "To: rcpt@example.com\n"
        "Subject: report\n"
        "Date: Wed, 02 Mar 2022 08:09:10 -0500\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/mixed; boundary="MIX"\n'
        "Content-Language: en\n"
        "\n"
    )
    text = crlf("See attached.\n")
    text_mime = crlf("Content-Type: text/plain; charset=us-ascii; format=flowed\n\n")
    pdf_mime = crlf(
        'Content-Type: application/pdf; name="report.pdf"\n'
        "Content-Transfer-Encoding: base64\n"
        'Content-Disposition: attachment; filename="report.pdf"; size=777\n'
        "Content-ID: <part2@example.org>\n"
        "Content-Description: The report\n"
        "Content-MD5: Q2hlY2sgSW50ZWdyaXR5IQ==\n"
        "Content-Language: en, de\n"
        "Content-Location: http://example.org/report.pdf\n"
        "\n"
    )
    notes = crlf("line one\nline two\nline three")  # no final line break
    notes_mime = crlf(
        "Content-Type: text/plain\nContent-Disposition: inline; filename=notes.txt\n\n"
    )
    body = _multipart(
        "MIX",
        [text_mime + text, pdf_mime + PDF_B64, notes_mime + notes],
        preamble=crlf("This is a multi-part message in MIME format.\n"),
    )
    return Built(header + body, header, {
        "1": text, "2": PDF_B64, "2.MIME": pdf_mime, "3": notes, "3.MIME": notes_mime,
    })  # fmt: skip


# --- nested multiparts ----------------------------------------------------------------------


def nested() -> Built:
    """multipart/mixed holding multipart/alternative (holding multipart/related) and a file."""
    header = crlf(
        "From: a@example.org\nTo: b@example.org\nSubject: nested\nMIME-Version: 1.0\n"
        "Content-Type: multipart/mixed; boundary=outer\n\n"
    )
    plain_body = crlf("plain text\n")
    html_body = crlf('<p>html <img src="cid:img1"></p>\n')
    gif = base64.encodebytes(b"GIF89a" + b"\x00" * 40).replace(b"\n", b"\r\n")
    related_mime = crlf('Content-Type: multipart/related; boundary=rel; type="text/html"\n\n')
    related = _multipart("rel", [
        crlf("Content-Type: text/html; charset=utf-8\n\n") + html_body,
        crlf("Content-Type: image/gif\nContent-Transfer-Encoding: base64\nContent-ID: <img1>\n\n") + gif,
    ])  # fmt: skip
    alt_mime = crlf('Content-Type: multipart/alternative; boundary="alt"\n\n')
    alt = _multipart(
        "alt", [crlf("Content-Type: text/plain\n\n") + plain_body, related_mime + related]
    )
    zip_body = base64.encodebytes(b"PK\x03\x04" + b"z" * 30).replace(b"\n", b"\r\n")
    zip_mime = crlf(
        "Content-Type: application/zip\nContent-Transfer-Encoding: base64\n"
        'Content-Disposition: attachment; filename="a.zip"\n\n'
    )
    body = _multipart("outer", [alt_mime + alt, zip_mime + zip_body])
    return Built(header + body, header, {
        "1": alt, "1.MIME": alt_mime, "1.1": plain_body, "1.2": related, "1.2.1": html_body,
        "1.2.2": gif, "2": zip_body,
    })  # fmt: skip


# --- message/rfc822 attachment --------------------------------------------------------------


def forwarded() -> Built:
    """A forwarded message (message/rfc822) that is itself multipart."""
    inner_header = crlf(
        "From: Original <orig@example.net>\n"
        "To: someone@example.com\n"
        "Subject: the original\n"
        "Date: Thu, 3 Mar 2022 12:00:00 +0000\n"
        "Message-ID: <inner@example.net>\n"
        "MIME-Version: 1.0\n"
        'Content-Type: multipart/alternative; boundary="inner-b"\n'
        "\n"
    )
    inner_text = crlf("inner text\n")
    inner_html = crlf("<b>inner</b>\n")
    inner_body = _multipart("inner-b", [
        crlf("Content-Type: text/plain; charset=iso-8859-1\n\n") + inner_text,
        crlf("Content-Type: text/html\n\n") + inner_html,
    ])  # fmt: skip
    inner = inner_header + inner_body
    header = crlf(
        "From: fwd@example.com\nTo: you@example.com\nSubject: Fwd: the original\n"
        'MIME-Version: 1.0\nContent-Type: multipart/mixed; boundary="fwd-b"\n\n'
    )
    note = crlf("See below.\n")
    rfc_mime = crlf("Content-Type: message/rfc822\nContent-Disposition: attachment\n\n")
    body = _multipart("fwd-b", [crlf("Content-Type: text/plain\n\n") + note, rfc_mime + inner])
    return Built(header + body, header, {
        "1": note, "2": inner, "2.MIME": rfc_mime, "2.HEADER": inner_header, "2.TEXT": inner_body,
        "2.1": inner_text, "2.2": inner_html,
    })  # fmt: skip


# --- header oddities ------------------------------------------------------------------------


def encoded_words() -> Built:
    """Encoded words: UTF-8 B and Q, ISO-8859-1 Q, in subject and display names."""
    header = crlf(
        "From: =?UTF-8?B?SsO2cmcgTcO8bGxlcg==?= <joerg@example.de>\n"
        "To: =?ISO-8859-1?Q?Andr=E9?= Pirard <PIRARD@vm1.ulg.ac.be>\n"
        "Cc: =?utf-8?q?Ren=C3=A9_Z=C3=BCrcher?= <rene@example.ch>\n"
        "Subject: =?UTF-8?B?w5xiZXJncsO2w59lbg==?=\n =?ISO-8859-1?Q?_und_Gr=FC=DFe?=\n"
        "Date: Fri, 4 Mar 2022 09:30:00 +0100\n"
        "\n"
    )
    body = crlf("body\n")
    return Built(header + body, header, {"body": body})


def groups() -> Built:
    """Group syntax (RFC 5322 3.4): an empty group and one with members."""
    header = crlf(
        "From: boss@example.com\n"
        "To: undisclosed-recipients:;\n"
        'Cc: Team: alice@example.com, "Bob B." <bob@example.com>;, carol@example.com\n'
        "Subject: groups\n\n"
    )
    return Built(header + b"hi\r\n", header)


def no_date_from() -> Built:
    """Neither Date nor From; a Sender and Reply-To that must not be overridden."""
    header = crlf("Subject: orphan\nSender: Agent <agent@example.com>\n\n")
    return Built(header + b"text\r\n", header)


def bare_lf() -> Built:
    """A multipart message stored with bare LF line ends."""
    header = (
        b"From: lf@example.org\nSubject: bare LF\nMIME-Version: 1.0\n"
        b"Content-Type: multipart/mixed; boundary=lfb\n\n"
    )
    one = b"first part\nsecond line\n"
    two = b"other part\n"
    body = _multipart(
        "lfb",
        [b"Content-Type: text/plain\n\n" + one, b"Content-Type: text/x-other\n\n" + two],
        eol=b"\n",
    )
    return Built(header + body, header, {"1": one, "2": two})


def eight_bit_headers() -> Built:
    """Raw 8-bit UTF-8 (RFC 6532) and latin-1 octets in headers."""
    header = (
        "From: Jörg <jörg@bücher.example>\r\nSubject: Grüße aus Köln\r\n"
        "To: plain@example.com\r\n\r\n"
    ).encode() + b"X-Latin: caf\xe9\r\n\r\n"
    header = header.replace(b"\r\n\r\nX-Latin", b"\r\nX-Latin")
    return Built(header + b"ok\r\n", header)


def nul_bytes() -> Built:
    """NUL octets in a header and in the body."""
    header = b"From: nul@example.org\r\nSubject: has\x00nul\r\n\r\n"
    body = b"before\x00after\r\n"
    return Built(header + body, header, {"body": body})


def truncated_multipart() -> Built:
    """A multipart cut off in the middle of its second part (no close delimiter)."""
    header = crlf(
        "From: t@example.org\nSubject: cut\nContent-Type: multipart/mixed; boundary=cut\n\n"
    )
    first = crlf("complete part\n")
    second = crlf("incomplete par")
    body = (
        b"--cut\r\nContent-Type: text/plain\r\n\r\n" + first + b"\r\n--cut\r\n"
        b"Content-Type: text/plain\r\n\r\n" + second
    )
    return Built(header + body, header, {"1": first, "2": second})


def digest() -> Built:
    """multipart/digest: parts default to message/rfc822."""
    header = crlf(
        "From: list@example.org\nSubject: digest\nContent-Type: multipart/digest; boundary=d\n\n"
    )
    m1 = crlf("From: one@example.org\nSubject: first\n\nbody one\n")
    m2 = crlf("From: two@example.org\nSubject: second\n\nbody two\n")
    body = _multipart("d", [b"\r\n" + m1, b"\r\n" + m2])
    return Built(header + body, header, {"1": m1, "2": m2})


def reused_boundary() -> Built:
    """A multipart nested in one with the same boundary (Outlook Express for Mac did this)."""
    b = "MS_Mac_OE_3071477847_720252_MIME_Part"
    header = crlf(
        f'From: mac@example.org\nSubject: reused\nContent-Type: multipart/mixed;\n\tboundary="{b}"\n\n'
    )
    plain_body = crlf("plain\n")
    html_body = crlf("<p>html</p>\n")
    gif = crlf("R0lGODlhAQABAAAAACw=\n")
    body = (
        crlf(
            f'--{b}\nContent-Type: multipart/alternative; boundary="{b}"\n\n'
            f'--{b}\nContent-Type: text/plain; charset="ISO-8859-1"\n\n'
        )
        + plain_body
        + crlf(f"\n--{b}\nContent-Type: text/html\n\n")
        + html_body
        + crlf(
            f'\n--{b}--\n\n--{b}\nContent-Type: image/gif; name="xx.gif"\n'
            "Content-Transfer-Encoding: base64\nContent-Disposition: attachment\n\n"
        )
        + gif
        + crlf(f"\n--{b}--\n")
    )
    return Built(header + body, header, {"1.1": plain_body, "1.2": html_body, "2": gif})


def header_only_part() -> Built:
    """Parts whose only empty line is the delimiter's line break: all header, no body."""
    header = crlf("From: arthur@example.example\nContent-Type: multipart/mixed; boundary=foo\n\n")
    body = crlf(
        "--foo\nContent-Type: text/plain\nbar\n\n"
        "--foo\nContent-Type: text/html\n<html><body><p>baz</p></body></html>\n\n--foo--\n"
    )
    return Built(
        header + body, header, {"1": b"", "1.MIME": crlf("Content-Type: text/plain\nbar\n")}
    )


def deep_nesting(depth: int) -> bytes:
    """``depth`` multiparts nested inside each other, a text part at the bottom."""
    inner = b"Content-Type: text/plain\r\n\r\nbottom"
    for level in range(depth):
        boundary = b"b%d" % level
        inner = (
            b"Content-Type: multipart/mixed; boundary="
            + boundary
            + b"\r\n\r\n--"
            + boundary
            + b"\r\n"
            + inner
            + b"\r\n--"
            + boundary
            + b"--"
        )
    return b"Subject: deep\r\n" + inner


ALL = {
    "plain": plain, "alternative": alternative, "mixed": mixed, "nested": nested,
    "forwarded": forwarded, "encoded_words": encoded_words, "groups": groups,
    "no_date_from": no_date_from, "bare_lf": bare_lf, "eight_bit_headers": eight_bit_headers,
    "nul_bytes": nul_bytes, "truncated_multipart": truncated_multipart, "digest": digest,
    "reused_boundary": reused_boundary, "header_only_part": header_only_part,
}  # fmt: skip


def test_every_built_header_ends_with_an_empty_line() -> None:
    for name, build in ALL.items():
        built = build()
        assert built.raw.startswith(built.header), name
        assert built.header.endswith(b"\n\n") or built.header.endswith(b"\r\n\r\n"), name


def test_every_piece_occurs_in_its_message() -> None:
    for name, build in ALL.items():
        built = build()
        for key, piece in built.pieces.items():
            assert piece in built.raw, (name, key)


def test_bare_lf_message_has_no_cr() -> None:
    assert b"\r" not in bare_lf().raw

"""Hypothesis fuzzing: summarize, extract, search and render never raise on any bytes, and
their results keep their invariants (JSON-able, offsets inside the message)."""

from __future__ import annotations

import json
import os

from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from mailsuite.imap import render
from mailsuite.message import addresses, headers, summarize
from mailsuite.message.search_text import body_text, header_matches, text_matches
from mailsuite.message.sections import Section, extract
from mailsuite.message.summary import summarize_strict

# MESSAGE_FUZZ_EXAMPLES=20000 for a long run by hand (done before each commit of the parser).
EXAMPLES = int(os.environ.get("MESSAGE_FUZZ_EXAMPLES", "300"))
FUZZ = settings(max_examples=EXAMPLES, deadline=None, suppress_health_check=[HealthCheck.too_slow])

# Fragments that steer random messages into the interesting paths of the parser.
_FRAGMENTS = [
    b"\r\n",
    b"\n",
    b"\r",
    b"\r\n\r\n",
    b"\n\n",
    b" ",
    b"\t",
    b":",
    b";",
    b"=",
    b'"',
    b"\\",
    b"(",
    b")",
    b"<",
    b">",
    b"@",
    b",",
    b"\x00",
    b"\xff",
    b"\xc3\xa9",
    b"Content-Type: multipart/mixed; boundary=b",
    b"Content-Type: multipart/digest; boundary=b",
    b"Content-Type: message/rfc822",
    b"Content-Type: text/plain; charset=utf-8",
    b'Content-Type: multipart/alternative; boundary="b"',
    b"Content-Transfer-Encoding: base64",
    b"Content-Transfer-Encoding: quoted-printable",
    b"Content-Disposition: attachment; filename*0*=x",
    b"--b",
    b"--b--",
    b"--bb",
    b"From: ",
    b"To: a:b@c,d;",
    b"Subject: =?utf-8?B?w6k=?=",
    b"=?iso-8859-1?q?caf=E9?=",
    b"Date: Mon, 7 Feb 1994 21:52:25 -0800",
    b"x@y",
    b"name",
    b"Content-Language: en",
    b"Content-ID: <a@b>",
    b"abc",
    b"=C3=A9=\r\n",
]

messages = st.one_of(
    st.binary(max_size=2000),
    st.lists(st.sampled_from(_FRAGMENTS), max_size=120).map(b"".join),
)

sections = st.builds(
    Section,
    part=st.lists(st.integers(1, 4), max_size=5).map(tuple),
    text=st.sampled_from([None, "HEADER", "TEXT"]),
)


def _check_node(node: dict, size: int, depth: int = 0) -> None:
    assert 0 <= node["offset"] <= node["body_offset"] <= size
    assert node["body_offset"] + node["size"] <= size
    for part in node.get("parts", []):
        _check_node(part, size, depth + 1)
    if "message" in node:
        _check_node(node["message"]["body"], size, depth + 1)


@FUZZ
@given(messages)
def test_summarize_never_raises_and_is_json(raw: bytes) -> None:
    summary = summarize_strict(raw)  # without the fallback that would hide a bug
    assert summary == summarize(raw)
    assert json.loads(json.dumps(summary)) == summary
    assert summary["size"] == len(raw)
    _check_node(summary["body"], len(raw))


@FUZZ
@given(messages)
def test_render_never_raises(raw: bytes) -> None:
    summary = summarize(raw)
    assert render.envelope(summary).startswith(b"(")
    assert render.bodystructure(summary).startswith(b"(")
    assert render.bodystructure(summary, extensible=False).startswith(b"(")


@FUZZ
@given(messages, sections)
def test_extract_never_raises_and_is_a_slice(raw: bytes, section: Section) -> None:
    data = extract(raw, section)
    assert data in raw


_TEXTS = [None, "HEADER", "TEXT", "MIME", "HEADER.FIELDS", "HEADER.FIELDS.NOT"]


@st.composite
def _any_section(draw: st.DrawFn) -> Section:
    part = tuple(draw(st.lists(st.integers(1, 4), max_size=5)))
    text = draw(st.sampled_from(_TEXTS))
    if text == "MIME" and not part:
        text = None
    fields = ("From", "content-type") if text and text.startswith("HEADER.FIELDS") else ()
    return Section(part, text, fields)


@FUZZ
@given(messages, _any_section())
def test_extract_from_summary_offsets_equals_scanning(raw: bytes, section: Section) -> None:
    assert extract(raw, section, summarize_strict(raw)) == extract(raw, section)


@FUZZ
@given(messages)
def test_header_sections_never_raise(raw: bytes) -> None:
    extract(raw, "HEADER.FIELDS (From Subject)")
    extract(raw, "1.HEADER.FIELDS.NOT (From)")
    extract(raw, "1.MIME")


@FUZZ
@given(messages, st.text(max_size=5))
def test_search_never_raises(raw: bytes, needle: str) -> None:
    header_matches(raw, "subject", needle)
    text_matches(raw, needle)
    assert isinstance(body_text(raw), str)


# --- generated MIME trees with known layout ---------------------------------------------------

_line = st.text(alphabet="abcdefghij XYZ-.", min_size=0, max_size=30)


@st.composite
def _tree(draw: st.DrawFn, depth: int = 0, eol: bytes = b"\r\n") -> tuple[bytes, dict]:
    """(entity bytes, expected) for a random leaf, multipart or message/rfc822."""
    kinds = ["leaf"] if depth >= 4 else ["leaf", "leaf", "multipart", "rfc822"]
    kind = draw(st.sampled_from(kinds))
    if kind == "leaf":
        lines = draw(st.lists(_line, max_size=5))
        body = eol.join(line.encode() for line in lines)
        if lines and draw(st.booleans()):
            body += eol
        header = b"Content-Type: text/plain" + eol + eol
        return header + body, {"type": "text", "body": body, "lines": body.count(b"\n")}
    if kind == "multipart":
        boundary = b"=_b%d_%d" % (depth, draw(st.integers(0, 10**6)))
        children = draw(st.lists(_tree(depth + 1, eol), min_size=1, max_size=3))
        body = draw(st.sampled_from([b"", b"preamble" + eol]))
        for child, _ in children:
            body += b"--" + boundary + eol + child + eol
        body += b"--" + boundary + b"--" + eol
        header = b'Content-Type: multipart/mixed; boundary="' + boundary + b'"' + eol + eol
        return header + body, {"type": "multipart", "body": body, "parts": [e for _, e in children]}
    inner, inner_expected = draw(_tree(depth + 1, eol))
    inner = b"Subject: inner" + eol + inner  # the inner entity's header gains a Subject
    header = b"Content-Type: message/rfc822" + eol + eol
    return header + inner, {
        "type": "message",
        "body": inner,
        "lines": inner.count(b"\n"),
        "inner": inner_expected,
    }


@st.composite
def _built(draw: st.DrawFn) -> tuple[bytes, dict]:
    eol = draw(st.sampled_from([b"\r\n", b"\n"]))
    entity, expected = draw(_tree(0, eol))
    return b"From: gen@example.org" + eol + entity, expected


def _compare(raw: bytes, node: dict, expected: dict, path: tuple[int, ...]) -> None:
    assert node["type"] == expected["type"], path
    assert node["size"] == len(expected["body"]), path
    start = node["body_offset"]
    assert raw[start : start + node["size"]] == expected["body"], path
    if path:
        assert extract(raw, Section(path)) == expected["body"], path
    if expected["type"] == "text":
        assert node["lines"] == expected["lines"], path
    elif expected["type"] == "multipart":
        assert len(node["parts"]) == len(expected["parts"]), path
        for i, (child, want) in enumerate(zip(node["parts"], expected["parts"]), 1):
            _compare(raw, child, want, path + (i,))
    else:
        assert node["lines"] == expected["lines"], path
        assert node["message"]["envelope"]["subject"] == "inner", path
        inner = node["message"]["body"]
        want = expected["inner"]
        # A top-level message/rfc822 message is its own part 1 (RFC 3501 6.4.5).
        base = path if path else (1,)
        if want["type"] == "multipart":  # the parts of an encapsulated multipart are N.1, N.2
            assert inner["size"] == len(want["body"])
            for i, (child, sub) in enumerate(zip(inner["parts"], want["parts"]), 1):
                _compare(raw, child, sub, base + (i,))
        else:  # a single-part encapsulated message: N.1 is its body
            assert inner["size"] == len(want["body"]), path
            assert extract(raw, Section(base + (1,))) == want["body"], path


@FUZZ
@given(_built())
def test_generated_trees_have_exact_sizes_lines_and_sections(built: tuple[bytes, dict]) -> None:
    raw, expected = built
    _compare(raw, summarize_strict(raw)["body"], expected, ())


@FUZZ
@given(_built(), _any_section())
def test_extract_from_summary_on_generated_trees(
    built: tuple[bytes, dict], section: Section
) -> None:
    raw = built[0]
    assert extract(raw, section, summarize_strict(raw)) == extract(raw, section)


# --- the regex address tokenizer against the simple one it replaced --------------------------


def _reference_tokenize(s: str) -> list[tuple[int, str]]:
    """The first, character-by-character tokenizer: the oracle for the regex one."""
    tokens: list[tuple[int, str]] = []
    pos, n = 0, len(s)
    while pos < n:
        c = s[pos]
        if c in addresses._WSP:
            pos += 1
        elif c == '"':
            out = []
            pos += 1
            while pos < n and s[pos] != '"':
                if s[pos] == "\\" and pos + 1 < n:
                    pos += 1
                out.append(s[pos])
                pos += 1
            pos += 1
            tokens.append((addresses._QUOTED, "".join(out)))
        elif c == "(":
            depth, out = 0, []
            while pos < n:
                c = s[pos]
                if c == "\\" and pos + 1 < n:
                    out.append(s[pos + 1])
                    pos += 2
                    continue
                if c == "(":
                    depth += 1
                    if depth > 1:
                        out.append(c)
                elif c == ")":
                    depth -= 1
                    if depth == 0:
                        pos += 1
                        break
                    out.append(c)
                else:
                    out.append(c)
                pos += 1
            tokens.append((addresses._COMMENT, "".join(out)))
        elif c == "[":
            end = s.find("]", pos)
            end = n if end < 0 else end + 1
            tokens.append((addresses._LITERAL, s[pos:end]))
            pos = end
        elif c in addresses._SPECIALS:
            tokens.append((addresses._SPECIAL, c))
            pos += 1
        else:
            start = pos
            while pos < n and s[pos] not in addresses._SPECIALS and s[pos] not in addresses._WSP:
                pos += 1
            tokens.append((addresses._ATOM, s[start:pos]))
    return tokens


_address_text = st.one_of(
    st.text(alphabet=' \t"\\()<>@,;:[].abcXYZ\xa0\xe9', max_size=60),
    st.text(max_size=40),
)


@FUZZ
@given(_address_text)
def test_address_tokenizer_matches_reference(text: str) -> None:
    assert addresses._tokenize(text) == _reference_tokenize(text)


_ctype_text = st.one_of(
    st.text(alphabet=' \t;="\\()/abcXYZ-*0', max_size=60),
    st.builds(
        lambda t, s, rest: f"{t}/{s}{rest}",
        st.sampled_from(["text", "multipart", "x"]),
        st.sampled_from(["plain", "mixed", "a-b"]),
        st.text(alphabet=' \t;="\\()abc*0', max_size=40),
    ),
)


@FUZZ
@given(_ctype_text)
def test_content_type_fast_path_matches_general_parser(text: str) -> None:
    assert headers.parse_content_type(text) == headers.parse_content_type_general(text)


_simple_addresses = st.lists(
    st.tuples(
        st.sampled_from(["", "Fred", "Fred  Foobar", '"Doe, Jane"', '""', "a.b", "x\ty", '"q"']),
        st.sampled_from(["a@b", "x.y@ex.org", "u@h", "a@b@c", "@b", "a@"]),
        st.sampled_from(["", " ", "\t"]),
        st.booleans(),
    ).map(lambda t: f"{t[2]}{t[0]} <{t[1]}>{t[2]}" if t[3] else f"{t[2]}{t[1]}{t[2]}"),
    max_size=4,
).map(",".join)


@FUZZ
@given(st.one_of(_simple_addresses, _address_text))
def test_address_fast_path_matches_general_parser(text: str) -> None:
    assert addresses.parse_address_list(text) == addresses.parse_address_list_general(text)

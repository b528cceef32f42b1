"""Pure parts of the SMTP server: path parsing, the DATA reader, policy, replies, headers."""

from __future__ import annotations

import re
import unittest

from hypothesis import example, given, settings
from hypothesis import strategies as st

from mailsuite.accounts import MemoryAccounts
from mailsuite.policy import RecipientVerdict, check_recipient, sender_allowed
from mailsuite.smtp import replies
from mailsuite.smtp.auth import Credentials, SaslError, SaslExchange
from mailsuite.smtp.data import DotReader, MessageBody
from mailsuite.smtp.headers import TraceInfo, completion_headers, received_header
from mailsuite.smtp.paths import (
    Mailbox,
    PathError,
    decode_xtext,
    parse_mail_from,
    parse_rcpt_to,
)


class PathTests(unittest.TestCase):
    def test_plain_path(self) -> None:
        parsed = parse_rcpt_to("<Alice@Example.TEST>", utf8=False)
        self.assertEqual(parsed.mailbox, Mailbox("Alice", "example.test"))

    def test_null_reverse_path(self) -> None:
        self.assertIsNone(parse_mail_from("<>").mailbox)

    def test_parameters(self) -> None:
        parsed = parse_mail_from("<a@b.test> SIZE=100 body=8bitmime")
        self.assertEqual(parsed.params, {"SIZE": "100", "BODY": "8bitmime"})

    def test_quoted_local_part(self) -> None:
        mailbox = parse_rcpt_to('<"john \\"q\\" doe"@example.test>', utf8=False).mailbox
        assert mailbox is not None
        self.assertEqual((mailbox.local, mailbox.quoted), ('john "q" doe', True))
        self.assertEqual(mailbox.address, '"john \\"q\\" doe"@example.test')

    def test_source_route_is_recorded(self) -> None:
        mailbox = parse_rcpt_to("<@a.test,@b.test:u@c.test>", utf8=False).mailbox
        assert mailbox is not None
        self.assertEqual((mailbox.route, mailbox.domain), (("a.test", "b.test"), "c.test"))

    def test_trailing_dot_is_recorded(self) -> None:
        mailbox = parse_rcpt_to("<u@example.test.>", utf8=False).mailbox
        assert mailbox is not None
        self.assertEqual((mailbox.domain, mailbox.trailing_dot), ("example.test", True))

    def test_ipv6_literal(self) -> None:
        mailbox = parse_rcpt_to("<u@[IPv6:2001:DB8:0::1]>", utf8=False).mailbox
        assert mailbox is not None
        self.assertEqual((mailbox.domain, mailbox.literal), ("[IPv6:2001:db8::1]", True))

    def test_bad_ip_literal(self) -> None:
        with self.assertRaises(PathError):
            parse_rcpt_to("<u@[300.1.1.1]>", utf8=False)

    def test_local_part_over_64_octets(self) -> None:
        with self.assertRaises(PathError):
            parse_rcpt_to("<" + "a" * 65 + "@example.test>", utf8=False)

    def test_utf8_needs_smtputf8(self) -> None:
        with self.assertRaises(PathError) as caught:
            parse_rcpt_to("<jörg@example.test>", utf8=False)
        self.assertIs(caught.exception.reply, replies.UTF8_NOT_ENABLED)

    def test_utf8_with_smtputf8(self) -> None:
        mailbox = parse_rcpt_to("<jörg@bücher.test>", utf8=True).mailbox
        assert mailbox is not None
        self.assertEqual(mailbox.address, "jörg@bücher.test")

    def test_xtext(self) -> None:
        self.assertEqual(decode_xtext("a+2Bb+3Dc"), "a+b=c")
        with self.assertRaises(ValueError):
            decode_xtext("a+zz")

    @given(st.text(max_size=80))
    @settings(max_examples=300, deadline=None)
    def test_parser_never_crashes(self, text: str) -> None:
        try:
            parse_rcpt_to(text, utf8=True)
            parse_mail_from(text)
        except PathError:
            pass


def _read_data(pieces: list[bytes], **limits: int) -> tuple[MessageBody, bytes | None]:
    body = MessageBody(limits.get("size", 10_000), limits.get("line", 1000), 50)
    reader = DotReader(body)
    leftover = None
    for piece in pieces:
        leftover = reader.feed(piece)
        if leftover is not None:
            break
    return body, leftover


class DotReaderTests(unittest.TestCase):
    def test_end_and_leftover(self) -> None:
        body, leftover = _read_data([b"a\r\n.\r\nQUIT\r\n"])
        self.assertEqual((b"".join(body.chunks), leftover), (b"a\r\n", b"QUIT\r\n"))

    def test_empty_message(self) -> None:
        body, leftover = _read_data([b".\r\n"])
        self.assertEqual((body.chunks, leftover), ([], b""))

    def test_lf_dot_lf_does_not_end(self) -> None:
        _body, leftover = _read_data([b"a\n.\nb\r\n"])
        self.assertIsNone(leftover)

    @given(st.lists(st.integers(min_value=0, max_value=60), max_size=8))
    @settings(max_examples=200, deadline=None)
    def test_any_split_gives_the_same_message(self, cuts: list[int]) -> None:
        data = b"Subject: x\r\n\r\n..a\r\n.b\r\n" + b"c" * 30 + b"\r\n.\r\nNOOP\r\n"
        points = sorted({min(c, len(data)) for c in cuts})
        pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)]) if b > a]
        body, _leftover = _read_data(pieces)
        self.assertEqual(b"".join(body.chunks), b"Subject: x\r\n\r\n.a\r\nb\r\n" + b"c" * 30 + b"\r\n")
        self.assertIsNone(body.finish())

    @given(st.binary(max_size=200))
    @settings(max_examples=300, deadline=None)
    def test_accepted_content_has_only_crlf_line_ends(self, content: bytes) -> None:
        body, leftover = _read_data([content, b"\r\n.\r\n"])
        if leftover is not None and body.finish() is None:
            data = b"".join(body.chunks)
            self.assertEqual(data.count(b"\n"), data.count(b"\r\n"))
            self.assertEqual(data.count(b"\r"), data.count(b"\r\n"))

    def test_line_limit_counts_across_reads(self) -> None:
        body, _ = _read_data([b"x" * 600, b"x" * 600 + b"\r\n.\r\n"])
        refusal = body.finish()
        self.assertEqual((refusal.code, refusal.enhanced), (554, "5.6.0"))
        self.assertEqual(refusal.text, "Message refused: line longer than 998 octets")

    @given(
        st.lists(st.integers(min_value=0, max_value=40), min_size=1, max_size=6),
        st.lists(st.integers(min_value=0, max_value=120), max_size=6),
    )
    @settings(max_examples=300, deadline=None)
    def test_line_limit_verdict_does_not_depend_on_reads(
        self, lengths: list[int], cuts: list[int]
    ) -> None:
        # A 20-octet limit (CRLF included) against a plain per-line reference.
        data = b"".join(b"x" * n + b"\r\n" for n in lengths) + b".\r\n"
        points = sorted({min(c, len(data)) for c in cuts})
        pieces = [data[a:b] for a, b in zip([0, *points], [*points, len(data)]) if b > a]
        body, _ = _read_data(pieces, line=20)
        refusal = body.finish()
        if max(lengths) + 2 > 20:
            self.assertEqual(refusal, replies.DATA_LINE_TOO_LONG.with_text(
                "Message refused: line longer than 18 octets"))
        else:
            self.assertIsNone(refusal)


class _Collected:
    """A stand-in for MessageBody that keeps every octet DotReader passes on."""

    def __init__(self, max_line: int) -> None:
        self.max_line = max_line
        self.chunks: list[bytes] = []

    def add(self, data: bytes) -> None:
        self.chunks.append(data)


_DATA_PIECES = [b"a", b".", b"..", b"\r", b"\n", b"\r\n", b"\r\n.\r\n", b"\r\n.", b".\r\n",
                b"x" * 20]


class DotReaderReferenceTests(unittest.TestCase):
    """DotReader against a plain whole-stream reference: the message ends at the first CRLF "."
    CRLF (the DATA line's own CRLF counts), and every line starting with "." loses that "."."""

    @staticmethod
    def reference(stream: bytes) -> tuple[bytes, bytes] | None:
        content = b"\r\n" + stream
        end = content.find(b"\r\n.\r\n")
        if end < 0:
            return None
        message = content[2 : end + 2]
        return re.sub(rb"(^|\n)\.", rb"\1", message), content[end + 5 :]

    @given(
        st.lists(st.sampled_from(_DATA_PIECES), max_size=30),
        st.lists(st.integers(min_value=0, max_value=200), max_size=8),
        st.sampled_from([8, 998]),
    )
    @example(parts=[b"a", b"\r\n", b".", b"\r\n.\r\n"], cuts=[], max_line=998)  # stuffed, then end
    @example(parts=[b"\r\n.", b"a", b"\r\n.\r\n"], cuts=[2], max_line=998)  # "." starts a read
    @example(parts=[b"\r", b"\r\n.\r\n"], cuts=[1], max_line=998)  # the end after a lone CR
    @settings(max_examples=500, deadline=None)
    def test_any_reads_give_the_reference_message_and_leftover(
        self, parts: list[bytes], cuts: list[int], max_line: int
    ) -> None:
        stream = b"".join(parts)
        points = sorted({min(c, len(stream)) for c in cuts})
        pieces = [stream[a:b] for a, b in zip([0, *points], [*points, len(stream)]) if b > a]
        body = _Collected(max_line)
        reader = DotReader(body)  # type: ignore[arg-type]
        leftover = None
        for n, piece in enumerate(pieces):
            leftover = reader.feed(piece)
            if leftover is not None:
                leftover += b"".join(pieces[n + 1 :])
                break
        expected = self.reference(stream)
        if expected is None:
            self.assertIsNone(leftover)
        else:
            self.assertEqual((b"".join(body.chunks), leftover), expected)


class MessageBodyCheckTests(unittest.TestCase):
    """MessageBody's checks give the verdict of a plain whole-message reference, however the
    content is cut into reads."""

    @staticmethod
    def reference(content: bytes, max_line: int) -> set[str]:
        faults = set()
        if content.count(b"\r") != content.count(b"\r\n") or (
            content.count(b"\n") != content.count(b"\r\n")
        ):
            faults.add("bare")
        # Octets before each LF, the CR included; the last line as it stands.
        if any(len(line) > max_line for line in content.split(b"\n")):
            faults.add("long")
        return faults

    @given(
        st.lists(st.sampled_from([b"a", b"\r", b"\n", b"\r\n", b"aaaaa"]), max_size=40),
        st.lists(st.integers(min_value=0, max_value=80), max_size=6),
    )
    @example(parts=[b"aaaaa", b"aa", b"\r\n"], cuts=[8])  # 8 octets; read ends at the CR
    @example(parts=[b"a", b"\r\n", b"aaaaa", b"aa", b"\r\n"], cuts=[11])  # the same, 2nd line
    @example(parts=[b"aaaaa", b"a", b"\r\n"], cuts=[7])  # 7 octets: allowed
    @example(parts=[b"a", b"\r", b"a"], cuts=[2])  # bare CR at the end of a read
    @settings(max_examples=500, deadline=None)
    def test_verdict_matches_the_reference_for_any_reads(
        self, parts: list[bytes], cuts: list[int]
    ) -> None:
        content = b"".join(parts)
        points = sorted({min(c, len(content)) for c in cuts})
        pieces = [content[a:b] for a, b in zip([0, *points], [*points, len(content)]) if b > a]
        body = MessageBody(10_000, 8, 50)  # lines of at most 7 octets before the LF
        for piece in pieces:
            body.add(piece)
        refusal = body.finish()
        faults = self.reference(content, 7)
        if not faults:
            self.assertIsNone(refusal)
        elif faults == {"bare"}:
            self.assertIs(refusal, replies.BARE_NEWLINE_IN_DATA)
        elif faults == {"long"}:
            self.assertEqual(refusal, replies.DATA_LINE_TOO_LONG.with_text(
                "Message refused: line longer than 6 octets"))
        else:  # both: whichever was met first refuses it
            self.assertIn(refusal.code, (554,))
            self.assertEqual(refusal.enhanced, "5.6.0")


class HeaderBlockTests(unittest.TestCase):
    """MessageBody.header_block and received_count against the plain regular expressions they
    replace, for any content cut into any chunks."""

    @staticmethod
    def reference(content: bytes) -> tuple[bytes, int]:
        match = re.search(rb"\r?\n\r?\n", content)
        block = b"" if content.startswith(b"\r\n") else content[: match.end()] if match else content
        received = len(re.findall(rb"(?:^|\n)received[ \t]*:", block, re.IGNORECASE))
        return block, received

    @given(
        st.lists(st.sampled_from([b"a", b":", b" ", b"\r", b"\n", b"\r\n", b"Received:",
                                  b"rEcEiVeD \t:", b"Received-SPF:", b"x-received:"]),
                 max_size=40),
        st.lists(st.integers(min_value=0, max_value=120), max_size=6),
    )
    @example(parts=[b"a", b"\r\n", b"\r\n", b"b"], cuts=[2, 3])  # the blank line cut in two
    @example(parts=[b"a", b"\n", b"\r\n"], cuts=[2])  # LF CR LF over two chunks
    @example(parts=[b"\r\n", b"Received:"], cuts=[])  # no header section at all
    @settings(max_examples=500, deadline=None)
    def test_matches_the_regular_expressions(self, parts: list[bytes], cuts: list[int]) -> None:
        content = b"".join(parts)
        points = sorted({min(c, len(content)) for c in cuts})
        body = MessageBody(10_000, 1000, 50)
        body.chunks = [content[a:b] for a, b in zip([0, *points], [*points, len(content)]) if b > a]
        block, received = self.reference(content)
        self.assertEqual(body.header_block(), block)
        self.assertEqual(body.received_count(), received)


class PolicyTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        cls.accounts = MemoryAccounts(["example.test"])
        cls.accounts.add_user("alice@example.test", "pw")
        cls.accounts.add_alias("sales@example.test", ["alice@example.test"])

    def verdict(self, address: str, user: str | None = None) -> RecipientVerdict:
        mailbox = parse_rcpt_to(f"<{address}>", utf8=True).mailbox
        assert mailbox is not None
        return check_recipient(self.accounts, mailbox, authenticated_user=user).verdict

    def test_local_user(self) -> None:
        self.assertIs(self.verdict("Alice@EXAMPLE.test"), RecipientVerdict.LOCAL)

    def test_remote_without_auth(self) -> None:
        self.assertIs(self.verdict("x@remote.test"), RecipientVerdict.RELAY_DENIED)

    def test_remote_with_auth(self) -> None:
        self.assertIs(self.verdict("x@remote.test", "alice@example.test"), RecipientVerdict.REMOTE)

    def test_source_route_to_local_mailbox_is_local(self) -> None:
        # RFC 5321 Appendix C: the route is ignored; the mailbox is ours.
        self.assertIs(self.verdict("@remote.test:alice@example.test"), RecipientVerdict.LOCAL)

    def test_unknown(self) -> None:
        self.assertIs(self.verdict("nobody@example.test"), RecipientVerdict.UNKNOWN_USER)

    def sender(self, address: str) -> bool:
        mailbox = parse_mail_from(f"<{address}>").mailbox
        return sender_allowed(self.accounts, mailbox, authenticated_user="alice@example.test")

    def test_sender_own_alias_and_tag(self) -> None:
        self.assertEqual(
            [self.sender(a) for a in ("alice@example.test", "Sales@example.test", "alice+x@example.test")],
            [True, True, True],
        )

    def test_sender_with_routing_characters(self) -> None:
        self.assertFalse(self.sender("alice%evil.test@example.test"))


class SaslTests(unittest.TestCase):
    def test_plain(self) -> None:
        step = SaslExchange("PLAIN").start("AGFsaWNlAHB3")
        self.assertEqual(step, Credentials("alice", "pw", ""))

    def test_password_never_in_repr(self) -> None:
        self.assertNotIn("pw", repr(Credentials("alice", "pw")))

    def test_bad_base64(self) -> None:
        with self.assertRaises(SaslError) as caught:
            SaslExchange("PLAIN").start("***")
        self.assertTrue(caught.exception.is_failure)


class HeaderTests(unittest.TestCase):
    def info(self, **changes: object) -> TraceInfo:
        values: dict[str, object] = {
            "helo": "c.test", "peer_ip": "192.0.2.1", "hostname": "mx.test", "queue_id": "Q1",
            "esmtp": True, "tls_version": None, "tls_cipher": None, "tls_bits": None,
            "user": None, "smtputf8": False, "single_recipient": None,
        }
        values.update(changes)
        return TraceInfo(**values)  # type: ignore[arg-type]

    def test_received_with_tls_and_auth(self) -> None:
        raw = received_header(
            self.info(tls_version="TLSv1.3", tls_cipher="TLS_AES_256_GCM_SHA384", tls_bits=256,
                      user="a@x.test", single_recipient="b@y.test"),
            "Mon, 23 Nov 2026 19:00:00 +0000",
        )
        self.assertEqual(
            raw,
            b"Received: from c.test (unknown [192.0.2.1])\r\n"
            b"\t(using TLSv1.3 with cipher TLS_AES_256_GCM_SHA384 (256/256 bits))\r\n"
            b"\t(Authenticated sender: a@x.test)\r\n"
            b"\tby mx.test (mailsuite) with ESMTPSA id Q1\r\n"
            b"\tfor <b@y.test>; Mon, 23 Nov 2026 19:00:00 +0000\r\n",
        )

    def test_helo_cannot_inject_header_syntax(self) -> None:
        raw = received_header(self.info(helo="x)\r\nBcc: evil"), "date")
        self.assertEqual(raw.count(b"\r\n"), 2)

    def test_completion_adds_only_missing_fields(self) -> None:
        added = completion_headers(b"Date: x\r\n\r\n", hostname="h", queue_id="Q", date="d")
        self.assertEqual(added, b"Message-ID: <Q@h>\r\n")


_REPLY_LINE = __import__("re").compile(r"\A\d{3}[ -][^\r\n]*\Z")
_FRAGMENTS = [
    b"EHLO x.test\r\n", b"HELO x\r\n", b"MAIL FROM:<a@remote.test>\r\n", b"RCPT TO:<alice@example.test>\r\n",
    b"RCPT TO:<a%b@example.test>\r\n", b"DATA\r\n", b"BDAT 5\r\n", b"BDAT 3 LAST\r\n", b".\r\n",
    b"\r\n.\r\n", b"\n.\n", b"\r", b"\n", b"\x00", b"RSET\r\n", b"AUTH PLAIN\r\n", b"STARTTLS\r\n",
    b"x" * 1100, b"NOOP\r\n", b"Subject: x\r\n\r\n", b"..\r\n", b"\xff\xfe",
]


class ProtocolFuzzTests(unittest.TestCase):
    @classmethod
    def setUpClass(cls) -> None:
        from test_smtp_support import make_context, make_factory
        from twisted.internet import task

        cls.clock = task.Clock()
        cls.factory = make_factory(make_context(cls.clock))

    @given(st.lists(st.one_of(st.sampled_from(_FRAGMENTS), st.binary(max_size=40)), max_size=30))
    @settings(max_examples=300, deadline=None)
    def test_any_input_gives_only_well_formed_replies(self, pieces: list[bytes]) -> None:
        from test_smtp_support import connect

        client = connect(self.factory)
        for piece in pieces:
            if client.closed:
                break
            client.protocol.dataReceived(piece)
        self.clock.advance(5)
        client.protocol.connectionLost(None)
        lines = client.transport.value().decode("utf-8").split("\r\n")
        self.assertEqual(lines[-1], "")
        for line in lines[:-1]:
            self.assertRegex(line, _REPLY_LINE)


def test_queue_ids_are_unique_and_time_ordered() -> None:
    from mailsuite.smtp.headers import QueueIds

    ids = QueueIds()
    same_ms = [ids.make(1_700_000_000.5) for _ in range(1000)]
    later = ids.make(1_700_000_001.0)
    other = QueueIds().make(1_700_000_000.5)
    assert len(set(same_ms)) == 1000 and other not in same_ms
    assert later[:7] > same_ms[0][:7]

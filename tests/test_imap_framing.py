"""Framing and bad input: literal limits (sync and LITERAL+), long lines, pipelining, server
bugs turned into NO [SERVERBUG], connection limits."""

from __future__ import annotations

from test_imap_helpers import ALICE, Client, deliver, make_ctx, message
from twisted.internet.address import IPv4Address

from mailsuite.imap.service import ImapFactory
from mailsuite.imap.settings import ImapSettings


def logged_in(settings: ImapSettings | None = None) -> Client:
    ctx = make_ctx(settings=settings)
    deliver(ctx, ALICE, message(1))
    c = Client(ctx)
    c.login()
    return c


def test_huge_synchronising_literal_refused_without_continuation() -> None:
    c = logged_in()
    out = c.send(b"a APPEND INBOX {4294967295}\r\n")
    assert out == b"a NO [TOOBIG] Literal too large.\r\n"
    c.ok("NOOP")


def test_huge_non_synchronising_literal_closes() -> None:
    c = logged_in()
    out = c.send(b"a APPEND INBOX {4294967295+}\r\n")
    assert out.startswith(b"a BAD [TOOBIG]") and b"* BYE" in out
    assert c.transport.disconnecting


def test_literal_for_non_append_command_limited_to_line_length() -> None:
    c = logged_in(ImapSettings(max_line_length=1000))
    assert c.send(b"a LOGIN {5000}\r\n").startswith(b"a NO [TOOBIG]")


def test_long_line_is_bad_and_session_continues() -> None:
    c = logged_in(ImapSettings(max_line_length=1000))
    out = c.send(b"a NOOP " + b"x" * 5000 + b"\r\n")
    assert out == b"a BAD [TOOBIG] Command line too long.\r\n"
    c.ok("NOOP")


def test_long_line_in_pieces_is_discarded() -> None:
    c = logged_in(ImapSettings(max_line_length=1000))
    c.send(b"a NOOP " + b"x" * 3000)
    out = c.send(b"x" * 3000 + b"\r\n")
    assert b"a BAD [TOOBIG]" in out
    c.ok("NOOP")


def test_pipelined_commands_answered_in_order() -> None:
    c = logged_in()
    out = c.send(b"a NOOP\r\nb SELECT INBOX\r\nc FETCH 1 UID\r\n")
    assert out.index(b"a OK") < out.index(b"b OK") < out.index(b"c OK")


def test_literal_in_pieces() -> None:
    c = logged_in()
    c.send(b"a APPEND INBOX {10}\r\n")
    c.send(b"01234")
    out = c.send(b"56789\r\n")
    assert b"a OK [APPENDUID" in out


def test_unexpected_exception_becomes_serverbug() -> None:
    c = logged_in()
    c.select()
    folder = c.proto.session.selected.folder

    def broken(*a, **kw):  # type: ignore[no-untyped-def]
        raise RuntimeError("boom")

    folder.summary = broken
    assert c.status(c.cmd("FETCH 1 ENVELOPE")).startswith(b"NO [SERVERBUG]")
    c.ok("NOOP")


def test_connection_limit_per_address() -> None:
    ctx = make_ctx()
    factory = ImapFactory(ctx, True, ImapSettings(max_connections_per_ip=1))
    addr = IPv4Address("TCP", "192.0.2.9", 1)
    first = factory.buildProtocol(addr)
    second = factory.buildProtocol(addr)
    assert first is not second and not hasattr(second, "session")


def test_imap_and_imaps_listeners_share_the_connection_limit() -> None:
    ctx = make_ctx()
    settings = ImapSettings(max_connections=2)
    plain, implicit = ImapFactory(ctx, False, settings), ImapFactory(ctx, True, settings)
    first = plain.buildProtocol(IPv4Address("TCP", "192.0.2.1", 1))
    second = implicit.buildProtocol(IPv4Address("TCP", "192.0.2.2", 1))
    third = implicit.buildProtocol(IPv4Address("TCP", "192.0.2.3", 1))
    assert hasattr(first, "session") and hasattr(second, "session")
    assert not hasattr(third, "session")  # refused: 143 and 993 together hold the maximum
    implicit.connection_closed(second)
    assert hasattr(plain.buildProtocol(IPv4Address("TCP", "192.0.2.3", 1)), "session")


def test_tcp_nodelay_set() -> None:
    c = logged_in()
    assert c.transport.nodelay


def test_disconnect_releases_avatar() -> None:
    c = logged_in()
    c.select()
    c.drop()
    assert c.ctx.portal.realm.logouts == 1


def test_large_fetch_waits_while_the_reader_is_slow() -> None:
    ctx = make_ctx()
    big = message(1, body="x" * 200_000)
    for _ in range(4):
        deliver(ctx, ALICE, big)
    c = Client(ctx)
    c.login()
    c.select()
    c.transport.producer = None
    original = c.proto.begin_streaming

    def begin_and_pause() -> None:
        original()
        c.proto.pauseProducing()  # the transport's buffer is full

    c.proto.begin_streaming = begin_and_pause  # type: ignore[method-assign]
    out = c.cmd("FETCH 1:4 BODY.PEEK[]")
    assert out.count(b"FETCH (") == 2 and b"OK" not in out.split(b"\r\n")[-2]
    c.proto.begin_streaming = original  # type: ignore[method-assign]
    c.proto.resumeProducing()
    out = c.take()
    assert out.count(b"FETCH (") == 2 and c.status(out).startswith(b"OK")
    assert c.transport.producer is None


def test_uidvalidity_change_ends_the_session() -> None:
    c = logged_in()
    c.select()
    account = c.ctx.store.account(ALICE)
    account._folder("INBOX").uidvalidity += 1
    out = c.cmd("NOOP")
    assert b"* BYE" in out and c.transport.disconnecting


def test_pre_auth_literals_are_small() -> None:
    c = Client(make_ctx())
    assert c.send(b"a LOGIN {9000}\r\n").startswith(b"a NO [TOOBIG]")
    assert c.send(b"b LOGIN {100}\r\n") == b"+ Ready for literal data\r\n"


def test_shutdown_says_bye() -> None:
    c = logged_in()
    c.factory.doStart()
    c.factory.doStop()
    assert c.take() == b"* BYE Server shutting down.\r\n" and c.transport.disconnecting


def test_literals_of_one_command_are_bounded_together() -> None:
    c = logged_in(ImapSettings(max_literal_size=1000))
    assert c.send(b"a APPEND INBOX {600}\r\n") == b"+ Ready for literal data\r\n"
    out = c.send(b"x" * 600 + b" {600}\r\n")
    assert out == b"a NO [TOOBIG] Literal too large.\r\n"
    c.ok("NOOP")

"""Connection-level IMAP commands over a StringTransport: greeting, CAPABILITY, STARTTLS,
LOGIN, AUTHENTICATE PLAIN (SASL-IR), throttling, ID, ENABLE, COMPRESS, LOGOUT, wrong state."""

from __future__ import annotations

import base64
import zlib

from test_imap_helpers import ALICE, PASSWORD, Client, FakeThrottle, make_ctx

PRIVACY = b"NO [PRIVACYREQUIRED]"
AUTH_FAILED = b"NO [AUTHENTICATIONFAILED] Authentication failed."


def plain(user: str, password: str, authzid: str = "") -> str:
    return base64.b64encode(f"{authzid}\0{user}\0{password}".encode()).decode()


def test_greeting_advertises_capabilities() -> None:
    c = Client(make_ctx())
    assert c.greeting.startswith(b"* OK [CAPABILITY IMAP4rev1 ")


def test_cleartext_port_advertises_logindisabled_and_starttls() -> None:
    c = Client(make_ctx(), tls=False)
    assert b"LOGINDISABLED" in c.greeting and b"STARTTLS" in c.greeting
    assert b"AUTH=PLAIN" not in c.greeting


def test_login_refused_before_starttls() -> None:
    c = Client(make_ctx(), tls=False)
    assert c.status(c.cmd(f"LOGIN {ALICE} \"{PASSWORD}\"")).startswith(PRIVACY)


def test_authenticate_refused_before_starttls() -> None:
    c = Client(make_ctx(), tls=False)
    assert c.status(c.cmd("AUTHENTICATE PLAIN " + plain(ALICE, PASSWORD))).startswith(PRIVACY)


def test_starttls_starts_tls_and_then_login_works() -> None:
    c = Client(make_ctx(), tls=False)
    assert c.status(c.cmd("STARTTLS")).startswith(b"OK")
    assert c.transport.tls_started_with == "server-options"
    caps = c.cmd("CAPABILITY")
    assert b"AUTH=PLAIN" in caps and b"STARTTLS" not in caps
    c.login()


def test_starttls_discards_pipelined_plaintext() -> None:
    c = Client(make_ctx(), tls=False)
    out = c.send(b"a STARTTLS\r\nb NOOP\r\n")
    assert b"a OK" in out and b"b OK" not in out


def test_login_succeeds_with_capabilities() -> None:
    c = Client(make_ctx())
    out = c.login()
    assert b"OK [CAPABILITY IMAP4rev1" in out and b"IDLE" in out


def test_login_failure_is_the_same_for_unknown_user_and_bad_password() -> None:
    c = Client(make_ctx())
    bad_password = c.status(c.cmd(f'LOGIN {ALICE} "wrong"'))
    unknown_user = c.status(c.cmd(f'LOGIN nobody@example.test "{PASSWORD}"'))
    assert bad_password == unknown_user == AUTH_FAILED


def test_ten_failures_block_the_address() -> None:
    throttle = FakeThrottle(block_after=10)
    c = Client(make_ctx(throttle=throttle))
    for _ in range(10):
        c.cmd(f'LOGIN {ALICE} "wrong"')
    assert c.status(c.cmd(f'LOGIN {ALICE} "{PASSWORD}"')) == AUTH_FAILED


def test_failure_is_delayed_by_the_throttle() -> None:
    throttle = FakeThrottle(delay=2.0)
    c = Client(make_ctx(throttle=throttle))
    c.cmd(f'LOGIN {ALICE} "wrong"')
    out = c.cmd(f'LOGIN {ALICE} "wrong"')
    assert out == b""
    c.clock.advance(2.0)
    assert c.status(c.take()) == AUTH_FAILED


def test_authenticate_plain_with_initial_response() -> None:
    c = Client(make_ctx())
    assert c.status(c.cmd("AUTHENTICATE PLAIN " + plain(ALICE, PASSWORD))).startswith(b"OK")


def test_authenticate_plain_with_continuation() -> None:
    c = Client(make_ctx())
    assert c.cmd("AUTHENTICATE PLAIN") == b"+ \r\n"
    out = c.raw(plain(ALICE, PASSWORD))
    assert c.status(out).startswith(b"OK")


def test_authenticate_cancelled_by_star() -> None:
    c = Client(make_ctx())
    c.cmd("AUTHENTICATE PLAIN")
    assert c.status(c.raw("*")).startswith(b"BAD")


def test_authenticate_rejects_other_authzid() -> None:
    c = Client(make_ctx())
    out = c.cmd("AUTHENTICATE PLAIN " + plain(ALICE, PASSWORD, authzid="bob@example.test"))
    assert c.status(out) == AUTH_FAILED


def test_unknown_mechanism() -> None:
    c = Client(make_ctx())
    assert c.status(c.cmd("AUTHENTICATE CRAM-MD5")).startswith(b"NO")


def test_select_before_login_is_bad() -> None:
    c = Client(make_ctx())
    assert c.status(c.cmd("SELECT INBOX")).startswith(b"BAD")


def test_unknown_command_is_bad() -> None:
    c = Client(make_ctx())
    assert c.status(c.cmd("XYZZY")).startswith(b"BAD")


def test_garbage_line_is_bad_and_session_continues() -> None:
    c = Client(make_ctx())
    assert c.raw(b"\x00\x01\x02").startswith(b"* BAD")
    c.ok("NOOP")


def test_id_answers_name() -> None:
    c = Client(make_ctx())
    out = c.ok('ID ("name" "test" "version" "1")')
    assert b'* ID ("name" "mailsuite"' in out


def test_enable_qresync_enables_condstore_too() -> None:
    c = Client(make_ctx())
    c.login()
    assert b"* ENABLED QRESYNC" in c.ok("ENABLE QRESYNC")
    assert c.proto.session.condstore


def test_logout_says_bye_and_closes() -> None:
    c = Client(make_ctx())
    out = c.ok("LOGOUT")
    assert out.startswith(b"* BYE")
    assert c.transport.disconnecting


def test_login_timeout_disconnects() -> None:
    c = Client(make_ctx())
    c.clock.advance(c.proto.settings.login_timeout + 1)
    assert b"* BYE" in c.take() and c.transport.disconnecting


def test_compress_deflate_compresses_both_ways() -> None:
    c = Client(make_ctx())
    c.login()
    assert c.status(c.cmd("COMPRESS DEFLATE")).startswith(b"OK")
    deflate = zlib.compressobj(6, zlib.DEFLATED, -15)
    inflate = zlib.decompressobj(-15)
    c.take()
    c.proto.dataReceived(deflate.compress(b"z1 NOOP\r\n") + deflate.flush(zlib.Z_SYNC_FLUSH))
    assert inflate.decompress(c.take()) == b"z1 OK Noop completed.\r\n"


def test_real_throttle_blocks_after_ten_failures_with_same_reply() -> None:
    from mailsuite.auth import LoginThrottle

    ctx = make_ctx()
    ctx.throttle = LoginThrottle(ctx.reactor)
    c = Client(ctx)
    replies = []
    for n in range(10):
        user = ALICE if n % 2 else "nobody@example.test"
        out = c.cmd(f'LOGIN {user} "wrong"')
        for _ in range(20):  # the throttle delays each failure a little longer
            if out:
                break
            c.clock.advance(1)
            out = c.take()
        replies.append(c.status(out))
    assert ctx.throttle.is_blocked("192.0.2.1")
    out = c.cmd(f'LOGIN {ALICE} "{PASSWORD}"')
    for _ in range(20):
        if out:
            break
        c.clock.advance(1)
        out = c.take()
    assert c.status(out) == AUTH_FAILED
    assert set(replies) == {AUTH_FAILED}


def test_login_with_literals() -> None:
    c = Client(make_ctx())
    assert c.send(b"a LOGIN {18}\r\n") == b"+ Ready for literal data\r\n"
    assert c.send(ALICE.encode() + b" {13}\r\n") == b"+ Ready for literal data\r\n"
    assert c.send(PASSWORD.encode() + b"\r\n").startswith(b"a OK")


def test_login_with_non_synchronising_literals() -> None:
    c = Client(make_ctx())
    out = c.send(b"a LOGIN {18+}\r\n" + ALICE.encode() + b" {13+}\r\n" + PASSWORD.encode()
                 + b"\r\n")
    assert out.startswith(b"a OK")


def test_mail_log_records_logins_without_passwords() -> None:
    lines: list[tuple[str, dict]] = []

    class Log:
        def log(self, event: str, **fields: object) -> None:
            lines.append((event, fields))

    ctx = make_ctx()
    ctx.maillog = Log()
    c = Client(ctx)
    c.cmd(f'LOGIN {ALICE} "wrong"')
    c.login()
    assert [(e, f["result"], f["service"]) for e, f in lines] == [
        ("auth", "failed", "imap"), ("auth", "ok", "imap")]
    assert PASSWORD not in repr(lines) and "wrong" not in repr(lines)

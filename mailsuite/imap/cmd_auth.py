"""Connection-level commands: CAPABILITY, NOOP, LOGOUT, STARTTLS, LOGIN, AUTHENTICATE (RFC 3501
6.1-6.2, SASL-IR RFC 4959, PLAIN RFC 4616), ID (RFC 2971), ENABLE (RFC 5161), COMPRESS (RFC 4978).

Authentication rules: no plaintext credentials before TLS unless the operator allows it
(``LOGINDISABLED``, ``[PRIVACYREQUIRED]``); every failure gets the same reply whether or not
the user exists; failures are counted per client address by the shared ``LoginThrottle``,
which delays and finally blocks further attempts.
"""

from __future__ import annotations

import base64
import binascii
from typing import Any

from twisted.cred.credentials import UsernamePassword
from twisted.cred.error import LoginFailed, UnauthorizedLogin
from twisted.internet.task import deferLater

from mailsuite.imap.parser import ParseError, Reader
from mailsuite.imap.responses import (
    AUTH_FAILED,
    PLAINTEXT_DISABLED,
    Code,
    CommandFailed,
    Reply,
    bad,
    no,
    ok,
)
from mailsuite.imap.session import Session, State
from mailsuite.imap.wire import quote
from mailsuite.interfaces import IAccountStore

ANY = (State.NOT_AUTHENTICATED, State.AUTHENTICATED, State.SELECTED)
NOT_AUTH = (State.NOT_AUTHENTICATED,)
AUTHED = (State.AUTHENTICATED, State.SELECTED)
MAX_ID_PAIRS = 30


def _caps(session: Session) -> str:
    from mailsuite.imap import commands

    return commands.capabilities(session)


async def capability(session: Session, r: Reader) -> Reply | None:
    r.end()
    session.send(b"* CAPABILITY " + _caps(session).encode() + b"\r\n")
    return None


async def noop(session: Session, r: Reader) -> Reply | None:
    """NOOP (and CHECK) let pending updates out: the protocol flushes them before the reply."""
    r.end()
    if session.selected is not None:
        session.selected.refresh_wanted = True  # re-read the disk: other processes' changes
    return None


async def logout(session: Session, r: Reader) -> Reply | None:
    r.end()
    session.send(b"* BYE Logging out\r\n")
    session.unselect()
    session.state = State.LOGOUT
    session.after_reply = session.protocol.close_after_reply
    return ok("Logout completed.")


async def starttls(session: Session, r: Reader) -> Reply | None:
    r.end()
    if session.tls:
        raise bad("TLS is already active.")
    if session.ctx.tls is None:
        raise bad("TLS is not available.")
    if session.compressed:
        raise bad("Cannot start TLS after compression.")
    session.after_reply = session.protocol.start_tls
    return ok("Begin TLS negotiation now.")


def _plaintext_allowed(session: Session) -> bool:
    return session.tls or bool(session.settings.allow_plaintext_auth)


async def login(session: Session, r: Reader) -> Reply | None:
    r.sp()
    user = r.astring()
    r.sp()
    password = r.astring()
    r.end()
    if not _plaintext_allowed(session):
        raise CommandFailed(PLAINTEXT_DISABLED)
    return await authenticate_user(session, user, password)


async def authenticate(session: Session, r: Reader) -> Reply | None:
    r.sp()
    mechanism = r.keyword()
    initial: bytes | None = None
    if r.maybe_sp():
        initial = r.astring()  # SASL-IR (RFC 4959): "=" is an empty response
    r.end()
    if mechanism != "PLAIN":
        raise no("Unsupported authentication mechanism.", Code.CANNOT)
    if not _plaintext_allowed(session):
        raise CommandFailed(PLAINTEXT_DISABLED)
    if initial is None:
        session.send(b"+ \r\n")
        initial = await session.protocol.read_line()
    if initial == b"*":
        raise bad("Authentication aborted by client.")
    if initial == b"=":
        initial = b""
    try:
        decoded = base64.b64decode(initial, validate=True)
    except (binascii.Error, ValueError):
        raise bad("Invalid base64 data in continued response.") from None
    parts = decoded.split(b"\0")
    if len(parts) != 3:
        raise bad("Invalid PLAIN response.")
    authzid, authcid, password = parts
    if authzid and authzid != authcid:
        return await _fail(session, authcid)
    return await authenticate_user(session, authcid, password)


async def _fail(session: Session, user: bytes) -> Reply:
    throttle = session.ctx.throttle
    if throttle is not None:
        throttle.record_failure(session.peer_ip)
    _log_auth(session, "failed", user)
    raise CommandFailed(AUTH_FAILED)


def _log_auth(session: Session, result: str, user: bytes | str) -> None:
    """One ``auth`` line in the operators' mail log, like SMTP and POP3 (never a password)."""
    maillog = session.ctx.maillog
    if maillog is None:
        return
    if isinstance(user, bytes):
        user = user.decode("utf-8", "replace")
    try:
        maillog.log("auth", service="imap", client=session.peer_ip, user=user[:200],
                    result=result)
    except Exception:  # noqa: BLE001 - a mail log failure must not fail the login
        session.protocol.log.failure("maillog failed")


async def authenticate_user(session: Session, user: bytes, password: bytes) -> Reply:
    """Check credentials through the portal; same reply for unknown users and bad passwords."""
    ctx = session.ctx
    throttle = ctx.throttle
    ip = session.peer_ip
    if throttle is not None:
        delay = throttle.delay_for(ip)
        if delay > 0:
            await deferLater(ctx.reactor, delay)
        if throttle.is_blocked(ip):
            _log_auth(session, "blocked", user)
            raise CommandFailed(AUTH_FAILED)
    try:
        user.decode("utf-8")
        password.decode("utf-8")
    except UnicodeDecodeError:
        return await _fail(session, user)
    credentials = UsernamePassword(user, password)
    try:
        _iface, avatar, avatar_logout = await ctx.portal.login(credentials, None, IAccountStore)
    except (UnauthorizedLogin, LoginFailed):
        return await _fail(session, user)
    if session.protocol.closed:
        avatar_logout()
        return ok("Logged in")
    if throttle is not None:
        throttle.record_success(ip)
    session.account = avatar
    session.user = avatar.user
    session.logout_avatar = avatar_logout
    session.state = State.AUTHENTICATED
    session.protocol.set_authenticated_timeout()
    _log_auth(session, "ok", session.user or "")
    return ok("Logged in", "CAPABILITY " + _caps(session))


async def id_(session: Session, r: Reader) -> Reply | None:
    """RFC 2971: accept the client's parameters (bounded), tell our name and version."""
    from mailsuite import __version__

    r.sp()
    if r.peek() == 0x28:
        values = r.items(r.nstring)
        if len(values) % 2 or len(values) > 2 * MAX_ID_PAIRS:
            raise bad("Invalid ID parameters.")
    else:
        if r.nstring() is not None:
            raise ParseError("Expected a list or NIL")
    r.end()
    session.send(b'* ID ("name" "mailsuite" "version" ' + quote(__version__) + b")\r\n")
    return None


async def enable(session: Session, r: Reader) -> Reply | None:
    """RFC 5161 ENABLE: CONDSTORE, QRESYNC (implies CONDSTORE, RFC 7162 3.2.3), UTF8=ACCEPT."""
    names = []
    while r.maybe_sp():
        names.append(r.keyword())
    r.end()
    if not names:
        raise bad("Missing capability names.")
    enabled = []
    for name in names:
        if name == "CONDSTORE" and not session.condstore:
            session.condstore = True
            enabled.append(name)
        elif name == "UTF8=ACCEPT" and not session.utf8:
            session.utf8 = True
            enabled.append(name)
        elif name == "QRESYNC" and not session.qresync:
            session.qresync = True
            if not session.condstore:
                session.condstore = True
            enabled.append(name)
    session.send(b"* ENABLED" + b"".join(b" " + n.encode() for n in enabled) + b"\r\n")
    return None


async def compress(session: Session, r: Reader) -> Reply | None:
    """RFC 4978 COMPRESS DEFLATE."""
    r.sp()
    mechanism = r.keyword()
    r.end()
    if session.compressed:
        raise no("Compression already active.", Code.COMPRESSIONACTIVE)
    if mechanism != "DEFLATE":
        raise no("Unsupported compression mechanism.", Code.CANNOT)
    session.compressed = True
    session.after_reply = session.protocol.start_compression
    return ok("DEFLATE active")


HANDLERS: dict[str, tuple[Any, tuple[State, ...]]] = {
    "CAPABILITY": (capability, ANY),
    "NOOP": (noop, ANY),
    "LOGOUT": (logout, ANY),
    "ID": (id_, ANY),
    "STARTTLS": (starttls, NOT_AUTH),
    "LOGIN": (login, NOT_AUTH),
    "AUTHENTICATE": (authenticate, NOT_AUTH),
    "ENABLE": (enable, AUTHED),
    "COMPRESS": (compress, AUTHED),
}

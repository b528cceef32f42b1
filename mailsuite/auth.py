"""Authentication shared by SMTP AUTH, POP3 and IMAP: one twisted.cred portal and a throttle.

- ``make_portal(accounts, store)``: a ``Portal`` with one checker (``IUsernamePassword``,
  verified by ``IAccounts.check_password``) and one realm that hands out the user's
  ``IAccountStore`` (``avatar.user`` is the canonical address).
- ``LoginThrottle(clock, settings)``: every failed login from an address costs a growing delay
  before the failure is answered; ``failures_to_block`` failures within ``failure_window`` seconds
  block the address for ``block_duration`` seconds (the ``[auth]`` table, ``AuthSettings``).
  IPv6 clients are counted per /64; ``exempt_networks`` are never counted. Memory is bounded.
- ``login(...)``: the two together, as a protocol uses them.
"""

from __future__ import annotations

import ipaddress
from collections import OrderedDict
from dataclasses import dataclass, field
from typing import Any

from twisted.cred import credentials, error, portal
from twisted.cred.checkers import ICredentialsChecker
from twisted.internet import defer, task
from zope.interface import implementer

from mailsuite.config import AuthSettings
from mailsuite.interfaces import IAccounts, IAccountStore, IMailStore
from mailsuite.networks import client_address, parse_networks

__all__ = ["AccountsChecker", "LoginBlocked", "LoginThrottle", "MailRealm", "login", "make_portal"]


@implementer(ICredentialsChecker)
class AccountsChecker:
    """Checks ``IUsernamePassword`` against ``IAccounts.check_password`` (off the reactor)."""

    credentialInterfaces = (credentials.IUsernamePassword,)

    def __init__(self, accounts: IAccounts) -> None:
        self._accounts = accounts

    # Our avatar ids are the account's canonical address as text; Twisted's annotation says
    # bytes, but the portal passes the id through to our own realm untouched.
    def requestAvatarId(self, creds: Any) -> defer.Deferred[str]:  # type: ignore[override]
        try:
            username = _text(creds.username)
            password = _text(creds.password)
        except UnicodeDecodeError:
            return defer.fail(error.UnauthorizedLogin("credentials are not UTF-8"))

        def decide(user: str | None) -> str:
            if user is None:
                raise error.UnauthorizedLogin("bad username or password")
            return user

        return self._accounts.check_password(username, password).addCallback(decide)


def _text(value: str | bytes) -> str:
    return value.decode("utf-8") if isinstance(value, bytes) else value


@implementer(portal.IRealm)
class MailRealm:
    """Hands out ``IAccountStore`` avatars: the user's mail in the store."""

    def __init__(self, store: IMailStore) -> None:
        self._store = store

    def requestAvatar(self, avatarId: Any, mind: Any, *interfaces: Any) -> tuple:
        if IAccountStore not in interfaces:
            raise NotImplementedError("this realm only provides IAccountStore")
        user = _text(avatarId)
        avatar = self._store.account(user)
        return IAccountStore, avatar, lambda: None


def make_portal(accounts: IAccounts, store: IMailStore) -> portal.Portal:
    """The portal every protocol logs in through."""
    return portal.Portal(MailRealm(store), [AccountsChecker(accounts)])


# --- throttling --------------------------------------------------------------------------


@dataclass
class _Record:
    failures: list[float] = field(default_factory=list)
    blocked_until: float = 0.0


class LoginThrottle:
    """Per-client-address cost of failed logins.

    A protocol calls ``is_blocked(ip)`` before trying a login (answer as for a failure, without
    checking the password), ``record_failure(ip)`` then waits ``delay_for(ip)`` seconds before
    answering a failure, and ``record_success(ip)`` after a good login. The numbers are those of
    ``settings`` (the ``[auth]`` table; its defaults without one).
    """

    def __init__(self, clock: Any, settings: AuthSettings | None = None) -> None:
        self._clock = clock
        self.settings = settings if settings is not None else AuthSettings()
        self._exempt = parse_networks(self.settings.exempt_networks)
        self._records: OrderedDict[str, _Record] = OrderedDict()

    def _is_exempt(self, ip: str) -> bool:
        addr = client_address(ip)
        return addr is not None and any(addr in network for network in self._exempt)

    @staticmethod
    def _key(ip: str) -> str:
        addr = client_address(ip)
        if addr is None:
            return ip
        if isinstance(addr, ipaddress.IPv6Address):
            return str(ipaddress.IPv6Network((addr, 64), strict=False))
        return str(addr)

    def _get(self, ip: str, create: bool) -> _Record | None:
        key = self._key(ip)
        record = self._records.get(key)
        now = self._clock.seconds()
        if record is not None:
            window = self.settings.failure_window
            record.failures = [t for t in record.failures if now - t < window]
            if not record.failures and record.blocked_until <= now:
                del self._records[key]
                record = None
        if record is None and create:
            record = self._records[key] = _Record()
            while len(self._records) > self.settings.tracked_addresses:
                self._records.popitem(last=False)
        if record is not None:
            self._records.move_to_end(key)
        return record

    def delay_for(self, ip: str) -> float:
        """Seconds to wait before answering the latest failure (0.0 without failures)."""
        record = self._get(ip, create=False)
        if record is None or not record.failures:
            return 0.0
        doublings = min(len(record.failures) - 1, 1000)  # 2.0 ** 1024 would overflow
        return min(self.settings.max_failure_delay, self.settings.failure_delay * 2**doublings)

    def record_failure(self, ip: str) -> None:
        """Count a failed login from ``ip``; block it after too many (unless it is exempt)."""
        if self._is_exempt(ip):
            return
        record = self._get(ip, create=True)
        assert record is not None
        now = self._clock.seconds()
        record.failures.append(now)
        if len(record.failures) >= self.settings.failures_to_block:
            record.blocked_until = now + self.settings.block_duration
            record.failures.clear()

    def record_success(self, ip: str) -> None:
        """A good login clears the failure count (not an active block)."""
        record = self._get(ip, create=False)
        if record is not None:
            record.failures.clear()

    def is_blocked(self, ip: str) -> bool:
        """True while ``ip`` may not even try."""
        record = self._get(ip, create=False)
        return record is not None and record.blocked_until > self._clock.seconds()


class LoginBlocked(error.UnauthorizedLogin):
    """The client address is blocked after too many failures (no password was checked)."""


async def _login(
    auth_portal: portal.Portal,
    throttle: LoginThrottle,
    clock: Any,
    ip: str,
    username: str | bytes,
    password: str | bytes,
) -> tuple[Any, Any, Any]:
    if throttle.is_blocked(ip):
        raise LoginBlocked("too many failed logins from this address")
    creds = credentials.UsernamePassword(
        username.encode("utf-8") if isinstance(username, str) else username,
        password.encode("utf-8") if isinstance(password, str) else password,
    )
    try:
        result = await auth_portal.login(creds, None, IAccountStore)
    except error.UnauthorizedLogin:
        throttle.record_failure(ip)
        await task.deferLater(clock, throttle.delay_for(ip), lambda: None)
        raise
    throttle.record_success(ip)
    return result


def login(
    auth_portal: portal.Portal,
    throttle: LoginThrottle,
    clock: Any,
    ip: str,
    username: str | bytes,
    password: str | bytes,
) -> defer.Deferred[tuple[Any, Any, Any]]:
    """Deferred[(IAccountStore, avatar, logout)]: a throttled login.

    Fails with ``LoginBlocked`` at once for a blocked address, or with ``UnauthorizedLogin``
    after the throttle's delay for a wrong password.
    """
    return defer.Deferred.fromCoroutine(
        _login(auth_portal, throttle, clock, ip, username, password)
    )

"""mailsuite.auth: the shared portal and the login throttle."""

from twisted.cred import credentials, error
from twisted.internet import defer, task
from twisted.trial import unittest
from zope.interface import implementer

from mailsuite.accounts import MemoryAccounts
from mailsuite.auth import LoginBlocked, LoginThrottle, login, make_portal
from mailsuite.interfaces import IAccountStore


@implementer(IAccountStore)
class FakeAccountStore:
    def __init__(self, user):
        self.user = user


class FakeStore:
    def account(self, user):
        return FakeAccountStore(user)


class PortalTests(unittest.TestCase):
    def setUp(self):
        accounts = MemoryAccounts(domains=["example.test"])
        accounts.add_user("alice@example.test", "pw")
        self.portal = make_portal(accounts, FakeStore())

    @defer.inlineCallbacks
    def test_login_gives_account_store_avatar(self):
        iface, avatar, logout = yield self.portal.login(
            credentials.UsernamePassword(b"Alice@example.test", b"pw"), None, IAccountStore)
        self.assertIs(iface, IAccountStore)
        self.assertEqual(avatar.user, "alice@example.test")

    def test_wrong_password_is_unauthorized(self):
        d = self.portal.login(credentials.UsernamePassword("alice@example.test", "x"),
                              None, IAccountStore)
        return self.assertFailure(d, error.UnauthorizedLogin)

    def test_non_utf8_password_is_unauthorized(self):
        d = self.portal.login(credentials.UsernamePassword(b"alice@example.test", b"\xff"),
                              None, IAccountStore)
        return self.assertFailure(d, error.UnauthorizedLogin)


class ThrottleTests(unittest.TestCase):
    def setUp(self):
        self.clock = task.Clock()
        self.throttle = LoginThrottle(self.clock)

    def test_no_failures_no_delay(self):
        self.assertEqual(self.throttle.delay_for("192.0.2.1"), 0.0)

    def test_delay_grows(self):
        self.throttle.record_failure("192.0.2.1")
        first = self.throttle.delay_for("192.0.2.1")
        self.throttle.record_failure("192.0.2.1")
        self.assertGreater(self.throttle.delay_for("192.0.2.1"), first)
        self.assertGreater(first, 0)

    def test_ten_failures_block(self):
        for _ in range(9):
            self.throttle.record_failure("192.0.2.1")
        self.assertFalse(self.throttle.is_blocked("192.0.2.1"))
        self.throttle.record_failure("192.0.2.1")
        self.assertTrue(self.throttle.is_blocked("192.0.2.1"))
        self.assertFalse(self.throttle.is_blocked("192.0.2.2"))

    def test_block_expires(self):
        for _ in range(10):
            self.throttle.record_failure("192.0.2.1")
        self.clock.advance(LoginThrottle.BLOCK_FOR + 1)
        self.assertFalse(self.throttle.is_blocked("192.0.2.1"))

    def test_failures_outside_window_forgotten(self):
        for _ in range(9):
            self.throttle.record_failure("192.0.2.1")
        self.clock.advance(LoginThrottle.WINDOW + 1)
        self.throttle.record_failure("192.0.2.1")
        self.assertFalse(self.throttle.is_blocked("192.0.2.1"))

    def test_success_clears_delay(self):
        self.throttle.record_failure("192.0.2.1")
        self.throttle.record_success("192.0.2.1")
        self.assertEqual(self.throttle.delay_for("192.0.2.1"), 0.0)

    def test_ipv6_counted_per_slash64(self):
        for i in range(10):
            self.throttle.record_failure(f"2001:db8::{i + 1}")
        self.assertTrue(self.throttle.is_blocked("2001:db8::ffff"))

    def test_memory_bounded(self):
        self.throttle.MAX_TRACKED = 100
        for i in range(1000):
            self.throttle.record_failure(f"10.0.{i // 256}.{i % 256}")
        self.assertLessEqual(len(self.throttle._records), 100)


class LoginTests(unittest.TestCase):
    def setUp(self):
        accounts = MemoryAccounts(domains=["example.test"])
        accounts.add_user("alice@example.test", "pw")
        self.portal = make_portal(accounts, FakeStore())
        self.clock = task.Clock()
        self.throttle = LoginThrottle(self.clock)

    @defer.inlineCallbacks
    def test_good_login(self):
        _, avatar, _ = yield login(self.portal, self.throttle, self.clock, "192.0.2.1",
                                   "alice@example.test", "pw")
        self.assertEqual(avatar.user, "alice@example.test")

    @defer.inlineCallbacks
    def test_failed_login_waits_for_delay(self):
        from twisted.internet import reactor
        from twisted.internet.threads import deferToThreadPool  # noqa: F401

        d = login(self.portal, self.throttle, self.clock, "192.0.2.1", "alice@example.test", "no")
        # The password check runs in a thread; wait until the failure is recorded.
        for _ in range(200):
            if self.throttle.delay_for("192.0.2.1"):
                break
            yield task.deferLater(reactor, 0.01, lambda: None)
        self.assertFalse(d.called)
        self.clock.advance(self.throttle.delay_for("192.0.2.1"))
        yield self.assertFailure(d, error.UnauthorizedLogin)

    def test_blocked_address_refused_without_check(self):
        for _ in range(10):
            self.throttle.record_failure("192.0.2.9")
        d = login(self.portal, self.throttle, self.clock, "192.0.2.9", "alice@example.test", "pw")
        return self.assertFailure(d, LoginBlocked)

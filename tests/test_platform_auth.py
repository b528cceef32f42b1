"""mailsuite.auth: the shared portal and the login throttle."""

from twisted.cred import credentials, error
from twisted.internet import defer, task
from twisted.trial import unittest
from zope.interface import implementer

from mailsuite.accounts import MemoryAccounts
from mailsuite.auth import LoginBlocked, LoginThrottle, login, make_portal
from mailsuite.config import AuthSettings
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
        iface, avatar, _logout = yield self.portal.login(
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
        self.clock.advance(self.throttle.settings.block_duration + 1)
        self.assertFalse(self.throttle.is_blocked("192.0.2.1"))

    def test_failures_outside_window_forgotten(self):
        for _ in range(9):
            self.throttle.record_failure("192.0.2.1")
        self.clock.advance(self.throttle.settings.failure_window + 1)
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
        self.throttle = LoginThrottle(self.clock, AuthSettings(tracked_addresses=100))
        for i in range(1000):
            self.throttle.record_failure(f"10.0.{i // 256}.{i % 256}")
        self.assertLessEqual(len(self.throttle._records), 100)


class ConfiguredThrottleTests(unittest.TestCase):
    """The ``[auth]`` numbers, on a fake clock."""

    def setUp(self):
        self.clock = task.Clock()

    def throttle(self, **settings):
        return LoginThrottle(self.clock, AuthSettings(**settings))

    def fail(self, throttle, times, ip="192.0.2.1"):
        for _ in range(times):
            throttle.record_failure(ip)

    def test_defaults_are_the_documented_values(self):
        throttle = LoginThrottle(self.clock)
        delays = []
        for _ in range(6):
            throttle.record_failure("192.0.2.1")
            delays.append(throttle.delay_for("192.0.2.1"))
        self.assertEqual(delays, [1.0, 2.0, 4.0, 8.0, 16.0, 16.0])
        self.assertEqual(AuthSettings(), AuthSettings(
            failure_delay=1.0, max_failure_delay=16.0, failures_to_block=10,
            failure_window=600.0, block_duration=900.0, tracked_addresses=10_000,
            exempt_networks=[]))

    def test_configured_count_blocks(self):
        throttle = self.throttle(failures_to_block=3)
        self.fail(throttle, 2)
        self.assertFalse(throttle.is_blocked("192.0.2.1"))
        self.fail(throttle, 1)
        self.assertTrue(throttle.is_blocked("192.0.2.1"))
        self.assertFalse(throttle.is_blocked("192.0.2.2"))

    def test_block_lifted_after_configured_duration(self):
        throttle = self.throttle(failures_to_block=3, block_duration=30.0)
        self.fail(throttle, 3)
        self.clock.advance(29.5)
        self.assertTrue(throttle.is_blocked("192.0.2.1"))
        self.clock.advance(0.5)
        self.assertFalse(throttle.is_blocked("192.0.2.1"))
        self.fail(throttle, 2)  # the count starts again after a block
        self.assertFalse(throttle.is_blocked("192.0.2.1"))

    def test_configured_window(self):
        throttle = self.throttle(failures_to_block=3, failure_window=60.0)
        self.fail(throttle, 2, "192.0.2.1")
        self.fail(throttle, 2, "192.0.2.2")
        self.clock.advance(59.0)
        self.fail(throttle, 1, "192.0.2.1")  # three within 60 s
        self.assertTrue(throttle.is_blocked("192.0.2.1"))
        self.clock.advance(1.0)
        self.fail(throttle, 1, "192.0.2.2")  # the first two are 60 s old: forgotten
        self.assertFalse(throttle.is_blocked("192.0.2.2"))

    def test_configured_delay_schedule(self):
        throttle = self.throttle(failure_delay=0.5, max_failure_delay=3.0)
        delays = []
        for _ in range(5):
            throttle.record_failure("192.0.2.1")
            delays.append(throttle.delay_for("192.0.2.1"))
        self.assertEqual(delays, [0.5, 1.0, 2.0, 3.0, 3.0])

    def test_no_delay(self):
        throttle = self.throttle(failure_delay=0.0, max_failure_delay=0.0)
        self.fail(throttle, 5)
        self.assertEqual(throttle.delay_for("192.0.2.1"), 0.0)

    def test_many_failures_keep_the_longest_delay(self):
        throttle = self.throttle(failures_to_block=5000)
        self.fail(throttle, 1100)
        self.assertEqual(throttle.delay_for("192.0.2.1"), 16.0)

    def test_exempt_networks_are_never_counted(self):
        throttle = self.throttle(failures_to_block=3, exempt_networks=["127.0.0.0/8", "::1/128"])
        for ip in ("127.0.0.1", "::ffff:127.0.0.2", "::1"):
            self.fail(throttle, 20, ip)
            self.assertFalse(throttle.is_blocked(ip))
            self.assertEqual(throttle.delay_for(ip), 0.0)
        self.fail(throttle, 3, "192.0.2.1")
        self.assertTrue(throttle.is_blocked("192.0.2.1"))


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


def test_peer_text_shows_ipv4_clients_of_dual_stack_listeners_as_ipv4():
    from mailsuite.networks import peer_text

    assert peer_text("::ffff:192.0.2.1") == "192.0.2.1"
    assert peer_text("::FFFF:7f00:1") == "127.0.0.1"
    assert peer_text("fe80::1%eth0") == "fe80::1"
    assert peer_text("2001:db8::1") == "2001:db8::1"
    assert peer_text("192.0.2.1") == "192.0.2.1"
    assert peer_text("unix-socket") == "unix-socket"

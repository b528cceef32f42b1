"""MX routing against a real DNS server on loopback (tests/dnsserver.py)."""

from __future__ import annotations

import random
import sys
from pathlib import Path

from twisted.internet import defer, reactor, task
from twisted.names import dns
from twisted.trial import unittest

sys.path.insert(0, str(Path(__file__).parent))
from dnsserver import DNSServer, TestZone

from mailsuite.relay.routing import Router, RoutingError, make_resolver
from mailsuite.relay.settings import RelaySettings


def _zone() -> TestZone:
    zone = TestZone()
    zone.add_mx("b.test", [(20, "backup.b.test"), (10, "mx1.b.test"), (10, "mx2.b.test")])
    zone.add_a("mx1.b.test", "127.0.0.2")
    zone.add_a("mx2.b.test", "127.0.0.3")
    zone.add_a("backup.b.test", "127.0.0.4")
    zone.add_a("onlya.test", "127.0.0.5")
    zone.add_aaaa("onlya.test", "::1")
    zone.add_null_mx("nomail.test")
    zone.add_mx("loop.test", [(10, "mail.a.test")])
    zone.add_a("mail.a.test", "127.0.0.9")
    zone.add_mx("dangling.test", [(10, "missing.test")])
    zone.add_mx("looped-ip.test", [(10, "mx.looped-ip.test")])
    zone.add_a("mx.looped-ip.test", "127.0.0.77")
    zone.servfail("broken.test")
    zone.silent("slow.test")
    return zone


class RoutingTests(unittest.TestCase):
    def setUp(self) -> None:
        self.zone = _zone()
        self.server = DNSServer(self.zone)
        self.server.start(reactor)
        self.settings = RelaySettings(
            nameservers=[self.server.nameserver], dns_timeouts=[0.3], own_addresses=["127.0.0.77"]
        )
        self.resolver = make_resolver(self.settings, reactor)

    def tearDown(self) -> defer.Deferred:
        return self.server.stop()

    def route(self, domain: str, seed: int = 1) -> defer.Deferred:
        router = Router(self.settings, self.resolver, "mail.a.test", random.Random(seed))
        return defer.Deferred.fromCoroutine(router.route(domain))

    async def _error(self, domain: str) -> RoutingError:
        try:
            await self.route(domain)
        except RoutingError as e:
            return e
        raise AssertionError(f"{domain} routed without error")

    @defer.inlineCallbacks
    def test_mx_hosts_ordered_by_preference(self):
        route = yield self.route("b.test")
        names = [h.name for h in route.hosts]
        self.assertEqual(sorted(names[:2]), ["mx1.b.test", "mx2.b.test"])
        self.assertEqual(names[2], "backup.b.test")
        self.assertEqual(route.hosts[2].addresses, ("127.0.0.4",))

    @defer.inlineCallbacks
    def test_equal_preferences_in_random_order(self):
        firsts = set()
        for seed in range(12):
            route = yield self.route("b.test", seed)
            firsts.add(route.hosts[0].name)
        self.assertEqual(firsts, {"mx1.b.test", "mx2.b.test"})

    @defer.inlineCallbacks
    def test_no_mx_falls_back_to_address_records(self):
        route = yield self.route("onlya.test")
        self.assertEqual(route.hosts[0].name, "onlya.test")
        self.assertEqual(route.hosts[0].addresses, ("127.0.0.5", "::1"))

    @defer.inlineCallbacks
    def test_null_mx_is_permanent(self):
        e = yield defer.Deferred.fromCoroutine(self._error("nomail.test"))
        self.assertTrue(e.permanent)
        self.assertEqual(e.status, "5.1.10")

    @defer.inlineCallbacks
    def test_nxdomain_is_permanent(self):
        e = yield defer.Deferred.fromCoroutine(self._error("nosuchdomain.test"))
        self.assertTrue(e.permanent)
        self.assertIn("NXDOMAIN", e.text)

    @defer.inlineCallbacks
    def test_servfail_is_temporary(self):
        e = yield defer.Deferred.fromCoroutine(self._error("broken.test"))
        self.assertFalse(e.permanent)
        self.assertIn("SERVFAIL", e.text)

    @defer.inlineCallbacks
    def test_dns_timeout_is_temporary(self):
        e = yield defer.Deferred.fromCoroutine(self._error("slow.test"))
        self.assertFalse(e.permanent)
        self.assertIn("timed out", e.text)

    @defer.inlineCallbacks
    def test_mx_naming_ourselves_is_a_permanent_loop(self):
        e = yield defer.Deferred.fromCoroutine(self._error("loop.test"))
        self.assertTrue(e.permanent)
        self.assertEqual(e.status, "5.4.6")

    @defer.inlineCallbacks
    def test_mx_at_our_own_address_is_a_permanent_loop(self):
        e = yield defer.Deferred.fromCoroutine(self._error("looped-ip.test"))
        self.assertTrue(e.permanent)
        self.assertEqual(e.status, "5.4.6")

    @defer.inlineCallbacks
    def test_mx_without_address_is_permanent(self):
        e = yield defer.Deferred.fromCoroutine(self._error("dangling.test"))
        self.assertTrue(e.permanent)

    @defer.inlineCallbacks
    def test_smarthost_overrides_mx(self):
        self.settings = RelaySettings(
            nameservers=[self.server.nameserver], smarthost="mx1.b.test:2525",
            smarthost_user="u", smarthost_password="p",
        )
        route = yield self.route("anything.example")
        self.assertEqual((route.hosts[0].addresses, route.port), (("127.0.0.2",), 2525))
        self.assertTrue(route.require_tls)
        self.assertEqual(route.auth, ("u", "p"))


class CacheTests(unittest.TestCase):
    """Answers are kept for their TTL (60 s in the test zone), on an injected clock."""

    def setUp(self) -> None:
        self.zone = _zone()
        self.server = DNSServer(self.zone)
        self.server.start(reactor)
        self.clock = task.Clock()
        self.settings = RelaySettings(nameservers=[self.server.nameserver], dns_timeouts=[0.3])
        self.router = Router(self.settings, make_resolver(self.settings, reactor, self.clock),
                             "mail.a.test", random.Random(1))

    def tearDown(self) -> defer.Deferred:
        return self.server.stop()

    def route(self, domain: str) -> defer.Deferred:
        return defer.Deferred.fromCoroutine(self.router.route(domain))

    @defer.inlineCallbacks
    def test_a_second_route_within_the_ttl_asks_nothing(self):
        first = yield self.route("b.test")
        asked = len(self.zone.queries)
        self.clock.advance(59)
        second = yield self.route("b.test")
        # MX and A answers are kept; the AAAA questions got empty answers (no records, no SOA
        # to say for how long), so they are asked again.
        again = self.zone.queries[asked:]
        self.assertEqual({t for _, t in again}, {dns.AAAA})
        self.assertEqual({h.name for h in first.hosts}, {h.name for h in second.hosts})

    @defer.inlineCallbacks
    def test_after_the_ttl_the_server_is_asked_again(self):
        yield self.route("b.test")
        asked = len(self.zone.queries)
        self.clock.advance(61)
        yield self.route("b.test")
        self.assertGreater(len(self.zone.queries), asked)
        self.assertIn(("b.test", dns.MX), self.zone.queries[asked:])

    @defer.inlineCallbacks
    def test_concurrent_questions_share_one_query(self):
        yield defer.gatherResults([self.route("b.test"), self.route("b.test")])
        self.assertEqual(self.zone.queries.count(("b.test", dns.MX)), 1)

    @defer.inlineCallbacks
    def test_errors_are_not_kept(self):
        for _ in range(2):
            with self.assertRaises(RoutingError):
                yield self.route("broken.test")
        self.assertEqual(self.zone.queries.count(("broken.test", dns.MX)), 2)

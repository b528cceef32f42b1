"""mailsuite.accounts: the embedded accounts (memory and JSON file share one class)."""

import json
import os

import pytest
from twisted.internet import defer
from twisted.trial import unittest
from zope.interface.verify import verifyObject

from mailsuite.accounts import FileAccounts, MemoryAccounts
from mailsuite.errors import AccountsError, NoSuchDomain, NoSuchUser, UserExists
from mailsuite.interfaces import IAccounts, Quota, Resolution

D = "example.test"


@pytest.fixture
def accounts():
    a = MemoryAccounts(domains=[D])
    a.add_user("alice@example.test", "pw-alice")
    a.add_user("bob@example.test", "pw-bob")
    return a


def test_memory_accounts_provide_iaccounts(accounts):
    assert verifyObject(IAccounts, accounts)


def test_file_accounts_provide_iaccounts(tmp_path):
    assert verifyObject(IAccounts, FileAccounts(tmp_path / "accounts.json", [D]))


def test_resolve_user(accounts):
    assert accounts.resolve("Alice@Example.test") == Resolution(("alice@example.test",), ())


def test_resolve_plus_address(accounts):
    assert accounts.resolve("alice+news@example.test").local_users == ("alice@example.test",)


def test_resolve_unknown_is_none(accounts):
    assert accounts.resolve("nobody@example.test") is None


def test_resolve_remote_domain_is_none(accounts):
    assert accounts.resolve("alice@elsewhere.test") is None


def test_alias_to_local_and_remote(accounts):
    accounts.add_alias("team@example.test", ["alice@example.test", "carol@remote.test"])
    r = accounts.resolve("team@example.test")
    assert r.local_users == ("alice@example.test",)
    assert r.remote_addresses == ("carol@remote.test",)


def test_alias_recursive(accounts):
    accounts.add_alias("a@example.test", ["b@example.test"])
    accounts.add_alias("b@example.test", ["bob@example.test"])
    assert accounts.resolve("a@example.test").local_users == ("bob@example.test",)


def test_alias_loop_is_safe(accounts):
    accounts.add_alias("x@example.test", ["y@example.test"])
    accounts.add_alias("y@example.test", ["x@example.test"])
    assert accounts.resolve("x@example.test") is None


def test_alias_keeping_a_copy(accounts):
    accounts.add_alias("alice@example.test", ["alice@example.test", "bob@example.test"])
    assert set(accounts.resolve("alice@example.test").local_users) == {
        "alice@example.test", "bob@example.test"}


def test_alias_depth_bounded(accounts):
    for i in range(30):
        accounts.add_alias(f"l{i}@example.test", [f"l{i + 1}@example.test"])
    accounts.add_alias("l30@example.test", ["alice@example.test"])
    assert accounts.resolve("l0@example.test") is None
    assert accounts.resolve("l25@example.test").local_users == ("alice@example.test",)


def test_catch_all(accounts):
    accounts.set_catch_all(D, "bob@example.test")
    assert accounts.resolve("whatever@example.test").local_users == ("bob@example.test",)
    assert accounts.resolve("alice@example.test").local_users == ("alice@example.test",)


def test_catch_all_removed(accounts):
    accounts.set_catch_all(D, "bob@example.test")
    accounts.set_catch_all(D, None)
    assert accounts.resolve("whatever@example.test") is None


def test_sender_addresses_include_aliases(accounts):
    accounts.add_alias("sales@example.test", ["alice@example.test"])
    accounts.add_alias("info@example.test", ["bob@example.test"])
    assert accounts.sender_addresses("alice@example.test") == {
        "alice@example.test", "sales@example.test"}


def test_add_user_twice_fails(accounts):
    with pytest.raises(UserExists):
        accounts.add_user("ALICE@example.test", "x")


def test_add_user_unknown_domain_fails(accounts):
    with pytest.raises(NoSuchDomain):
        accounts.add_user("zed@other.test", "x")


def test_remove_user(accounts):
    accounts.remove_user("bob@example.test")
    assert not accounts.user_exists("bob@example.test")
    with pytest.raises(NoSuchUser):
        accounts.remove_user("bob@example.test")


def test_remove_domain_in_use_fails(accounts):
    with pytest.raises(AccountsError):
        accounts.remove_domain(D)


def test_static_domain_cannot_be_removed(tmp_path):
    a = FileAccounts(tmp_path / "accounts.json", ["static.test"])
    assert a.is_local_domain("STATIC.test")
    with pytest.raises(AccountsError):
        a.remove_domain("static.test")


def test_quota(accounts):
    assert accounts.quota_of("alice@example.test") == Quota(None, None)
    accounts.set_quota("alice@example.test", Quota(1000, 10))
    assert accounts.quota_of("alice@example.test") == Quota(1000, 10)


def test_file_changes_seen_by_another_instance(tmp_path):
    path = tmp_path / ".mailsuite" / "accounts.json"
    server = FileAccounts(path, [D])
    cli = FileAccounts(path, [D])
    assert not server.user_exists("new@example.test")
    cli.add_user("new@example.test", "pw")
    assert server.user_exists("new@example.test")


def test_file_has_no_plaintext_and_mode_0600(tmp_path):
    path = tmp_path / "accounts.json"
    FileAccounts(path, [D]).add_user("alice@example.test", "Plain-Text-Secret")
    text = path.read_text()
    assert "Plain-Text-Secret" not in text
    assert json.loads(text)["users"]["alice@example.test"]["password"].startswith("$argon2id$")
    assert os.stat(path).st_mode & 0o777 == 0o600


def test_corrupt_file_at_start_is_an_error(tmp_path):
    path = tmp_path / "accounts.json"
    path.write_text("{not json")
    with pytest.raises(AccountsError, match="accounts.json"):
        FileAccounts(path, [D])


def test_corrupt_file_later_keeps_last_good(tmp_path):
    path = tmp_path / "accounts.json"
    a = FileAccounts(path, [D])
    a.add_user("alice@example.test", "pw")
    path.write_text("{broken")
    assert a.user_exists("alice@example.test")


class PasswordTests(unittest.TestCase):
    def setUp(self):
        self.accounts = MemoryAccounts(domains=[D])
        self.accounts.add_user("alice@example.test", "pw-alice")

    @defer.inlineCallbacks
    def test_right_password(self):
        user = yield self.accounts.check_password("Alice@example.test", "pw-alice")
        self.assertEqual(user, "alice@example.test")

    @defer.inlineCallbacks
    def test_wrong_password(self):
        user = yield self.accounts.check_password("alice@example.test", "nope")
        self.assertIsNone(user)

    @defer.inlineCallbacks
    def test_unknown_user(self):
        user = yield self.accounts.check_password("ghost@example.test", "pw-alice")
        self.assertIsNone(user)

    @defer.inlineCallbacks
    def test_bare_local_part_with_one_domain(self):
        user = yield self.accounts.check_password("alice", "pw-alice")
        self.assertEqual(user, "alice@example.test")


def test_quota_of_unknown_user_is_unlimited(accounts):
    assert accounts.quota_of("ghost@example.test") == Quota(None, None)


def test_concurrent_writers_lose_nothing(tmp_path):
    """Two writers (as two CLI runs would be) serialise on the lock file."""
    import threading

    path = tmp_path / "accounts.json"
    FileAccounts(path, [D])
    errors = []

    def writer(prefix):
        accounts = FileAccounts(path, [D])
        try:
            for i in range(5):
                accounts.add_alias(f"{prefix}{i}@example.test", ["x@remote.test"])
        except Exception as exc:  # noqa: BLE001  # pragma: no cover - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(p,)) for p in ("a", "b")]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    assert len(FileAccounts(path, [D]).list_aliases()) == 10


class UnknownUserCostTests(unittest.TestCase):
    """An unknown user is checked against a real hash, so the answer takes as long."""

    @defer.inlineCallbacks
    def test_unknown_user_verifies_against_dummy_hash(self):
        from mailsuite import passwords

        seen = []
        real = passwords.verify_password

        def spy(hashed, password):
            seen.append(hashed)
            return real(hashed, password)

        self.patch(passwords, "verify_password", spy)
        accounts = MemoryAccounts(domains=[D])
        result = yield accounts.check_password("ghost@example.test", "whatever")
        self.assertIsNone(result)
        self.assertEqual(seen, [passwords.DUMMY_HASH])


def test_sender_addresses_follow_changes(accounts):
    assert accounts.sender_addresses("bob@example.test") == {"bob@example.test"}
    accounts.add_alias("help@example.test", ["bob@example.test"])
    assert accounts.sender_addresses("bob@example.test") == {"bob@example.test",
                                                             "help@example.test"}


def test_sender_addresses_of_unknown_user_empty(accounts):
    assert accounts.sender_addresses("ghost@example.test") == frozenset()


class RehashTests(unittest.TestCase):
    @defer.inlineCallbacks
    def test_weak_hash_replaced_on_good_login(self):
        from argon2 import PasswordHasher

        accounts = MemoryAccounts(domains=[D])
        accounts.add_user("old@example.test", "pw")
        weak = PasswordHasher(time_cost=1, memory_cost=8, parallelism=1).hash("pw")

        def set_weak(data):
            data["users"]["old@example.test"]["password"] = weak

        accounts._persistence.update(set_weak)
        user = yield accounts.check_password("old@example.test", "pw")
        self.assertEqual(user, "old@example.test")
        stored = accounts._data["users"]["old@example.test"]["password"]
        self.assertNotEqual(stored, weak)
        self.assertTrue(stored.startswith("$argon2id$v=19$m=65536"))
        self.assertEqual((yield accounts.check_password("old@example.test", "pw")),
                         "old@example.test")


def test_server_looks_at_the_file_once_per_reactor_turn(tmp_path, monkeypatch):
    from twisted.internet import task

    path = tmp_path / ".mailsuite" / "accounts.json"
    clock = task.Clock()
    server = FileAccounts(path, [D], reactor=clock)
    cli = FileAccounts(path, [D])
    looks = []
    real_stat = os.stat

    def counting_stat(p, *args, **kwargs):
        if p == path:
            looks.append(p)
        return real_stat(p, *args, **kwargs)

    monkeypatch.setattr(os, "stat", counting_stat)
    for _ in range(3):
        server.resolve("alice@example.test")
        server.quota_of("alice@example.test")
    assert len(looks) == 1  # every lookup of this turn shares one look
    cli.add_user("new@example.test", "pw")
    looks.clear()
    clock.advance(0)  # a later reactor turn looks again and sees the change
    assert server.user_exists("new@example.test")
    assert len(looks) == 1

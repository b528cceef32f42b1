"""The embedded accounts store: domains, users, aliases, catch-all addresses, password hashes.

One class, ``Accounts``, holds the logic; where the data lives is a pluggable persistence:

- ``MemoryAccounts()`` keeps everything in memory (protocol unit tests).
- ``FileAccounts(path)`` keeps it in one JSON file (``data_dir/.mailsuite/accounts.json``),
  written tmp -> fsync -> rename under a lock file, and re-read whenever the file changes on
  disk (mtime, size or inode), so changes made by the ``mailsuite`` command show in a running
  server without a restart.

The JSON document::

    {"version": 1,
     "domains": {"example.test": {"catch_all": null}},
     "users": {"alice@example.test": {"password": "$argon2id$...",
                                       "quota_bytes": null, "quota_messages": null}},
     "aliases": {"postmaster@example.test": ["alice@example.test"]}}

Resolution of a recipient (``resolve``), in order: an alias of that exact address (its
targets are expanded recursively; a target equal to a user address delivers to that user), a
user of that exact address, the same two for the address without its ``+tag``, and finally the
catch-all of the domain. Expansion is loop-safe and bounded (``MAX_ALIAS_DEPTH`` levels,
``MAX_EXPANSION`` addresses).
"""

from __future__ import annotations

import copy
import fcntl
import json
import os
import tempfile
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from twisted.internet import defer, threads
from twisted.logger import Logger
from zope.interface import implementer

from mailsuite import passwords
from mailsuite.address import base_address, canonical, canonical_domain, split
from mailsuite.errors import (
    AccountsError,
    InvalidAddress,
    NoSuchDomain,
    NoSuchUser,
    UserExists,
)
from mailsuite.interfaces import INBOX, IAccounts, Quota, Resolution

__all__ = ["MAX_ALIAS_DEPTH", "MAX_EXPANSION", "Accounts", "FileAccounts", "MemoryAccounts"]

MAX_ALIAS_DEPTH = 10  # alias -> alias -> ... levels followed
MAX_EXPANSION = 1000  # addresses one recipient may expand to
# Password checks running at once, each using 64 MiB: one per CPU (up to 4). More add memory,
# not speed: on 2 CPUs, 2 at once verified 8.9 logins/s and 4 at once 8.8, with 256 MiB held.
MAX_CONCURRENT_HASHES = max(1, min(4, os.cpu_count() or 1))
FORMAT_VERSION = 1

Data = dict[str, Any]


def _empty() -> Data:
    return {"version": FORMAT_VERSION, "domains": {}, "users": {}, "aliases": {}}


# --- persistence -------------------------------------------------------------------------


class MemoryPersistence:
    """Keeps the document in memory only."""

    def __init__(self) -> None:
        self._data = _empty()

    def current(self) -> Data:
        """The current document."""
        return self._data

    def update(self, change: Callable[[Data], None]) -> None:
        """Apply ``change`` to a copy of the document and keep the result (all or nothing)."""
        data = copy.deepcopy(self._data)
        change(data)
        self._data = data


@contextmanager
def _exclusive_lock(lock_path: Path) -> Iterator[None]:
    """Hold an exclusive flock on ``lock_path`` (writers of the accounts file take turns)."""
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


class FilePersistence:
    """Keeps the document in a JSON file; re-reads it when the file changes on disk.

    With a ``reactor`` (a running server) the file is looked at (one ``stat``) at most once
    per reactor turn: the several lookups made for one command (domain, alias, user, quota)
    share that look, and anything that happens in a later turn sees a change made meanwhile.
    Without one (the CLI, tests) every lookup looks at the file.
    """

    log = Logger()

    def __init__(self, path: Path, reactor: Any = None) -> None:
        self.path = Path(path)
        self._lock_path = self.path.with_name(self.path.name + ".lock")
        self._stamp: tuple[int, int, int] | None = None
        self._data = _empty()
        self._reactor = reactor
        self._looked = False  # the file was looked at in this reactor turn
        self._load(strict=True)

    def _stat(self) -> tuple[int, int, int] | None:
        try:
            st = os.stat(self.path)
        except FileNotFoundError:
            return None
        return (st.st_mtime_ns, st.st_size, st.st_ino)

    def _read(self) -> Data:
        with open(self.path, encoding="utf-8") as f:
            data = json.load(f)
        if not isinstance(data, dict) or data.get("version") != FORMAT_VERSION:
            raise AccountsError(f"{self.path}: not a mailsuite accounts file (version 1)")
        for key in ("domains", "users", "aliases"):
            if not isinstance(data.get(key), dict):
                raise AccountsError(f"{self.path}: {key!r} must be an object")
        return data

    def _load(self, strict: bool) -> None:
        stamp = self._stat()
        if stamp == self._stamp:
            return
        if stamp is None:
            self._data, self._stamp = _empty(), None
            return
        try:
            data = self._read()
        except (OSError, ValueError, AccountsError) as exc:
            if strict:
                raise AccountsError(f"cannot read accounts file {self.path}: {exc}") from None
            # A running server keeps the last good copy rather than locking everyone out.
            self.log.error("cannot re-read {path}: {error}; keeping the previous accounts",
                           path=str(self.path), error=str(exc))
            self._stamp = stamp
            return
        if not strict:  # a change noticed while running (not the first load, not our write)
            self.log.info("accounts re-read from {path}: {users} users, {aliases} aliases",
                          path=str(self.path), users=len(data["users"]),
                          aliases=len(data["aliases"]))
        self._data, self._stamp = data, stamp

    def current(self) -> Data:
        """The document, re-read first if the file changed since the last look."""
        if self._reactor is None:
            self._load(strict=False)
        elif not self._looked:
            self._looked = True
            self._reactor.callLater(0, self._forget_look)
            self._load(strict=False)
        return self._data

    def _forget_look(self) -> None:
        self._looked = False

    def update(self, change: Callable[[Data], None]) -> None:
        """Re-read, apply ``change`` and write the result durably, under the lock file."""
        self.path.parent.mkdir(parents=True, exist_ok=True, mode=0o750)
        with _exclusive_lock(self._lock_path):
            self._stamp = None
            self._load(strict=True)
            data = copy.deepcopy(self._data)
            change(data)
            self._write(data)
            self._stamp = None
            self._load(strict=True)

    def _write(self, data: Data) -> None:
        directory = self.path.parent
        fd, tmp = tempfile.mkstemp(prefix=".accounts.", suffix=".tmp", dir=directory)
        try:
            with os.fdopen(fd, "w", encoding="utf-8") as f:
                json.dump(data, f, indent=1, sort_keys=True, ensure_ascii=False)
                f.write("\n")
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o600)
            if os.geteuid() == 0:
                # Root (the CLI) writes for a server that may run as another user: the file
                # belongs to whoever owns the state directory.
                st = os.stat(directory)
                os.chown(tmp, st.st_uid, st.st_gid)
            os.replace(tmp, self.path)
        except BaseException:
            try:
                os.unlink(tmp)
            except FileNotFoundError:
                pass
            raise
        dfd = os.open(directory, os.O_RDONLY)
        try:
            os.fsync(dfd)
        finally:
            os.close(dfd)


# --- the accounts logic ------------------------------------------------------------------


@implementer(IAccounts)
class Accounts:
    """``IAccounts`` plus the administration methods, over a persistence.

    ``static_domains`` are local domains named in the configuration; they are local in
    addition to those added with ``add_domain`` and cannot be removed here.
    ``reactor`` runs password checks in its thread pool (the global reactor when omitted).
    """

    def __init__(
        self,
        persistence: MemoryPersistence | FilePersistence,
        static_domains: Iterable[str] = (),
        reactor: Any = None,
    ) -> None:
        self._persistence = persistence
        self._static = frozenset(canonical_domain(d) for d in static_domains)
        self._reactor = reactor
        self._domains: frozenset[str] = self._static
        self._domains_of: Data | None = None
        self._senders: dict[str, frozenset[str]] = {}
        self._senders_of: Data | None = None
        # argon2id takes 64 MiB per check: bound how many run at once (a login flood must not
        # exhaust memory; the throttle handles single sources).
        self._hash_slots = defer.DeferredSemaphore(MAX_CONCURRENT_HASHES)

    # -- reading --------------------------------------------------------------------------

    @property
    def _data(self) -> Data:
        return self._persistence.current()

    def local_domains(self) -> frozenset[str]:
        data = self._data
        if self._domains_of is not data:  # recomputed only when the document changed
            self._domains = self._static | frozenset(data["domains"])
            self._domains_of = data
        return self._domains

    def static_domains(self) -> frozenset[str]:
        """The domains from the configuration."""
        return self._static

    def is_local_domain(self, domain: str) -> bool:
        try:
            return canonical_domain(domain) in self.local_domains()
        except InvalidAddress:
            return False

    def user_exists(self, user: str) -> bool:
        try:
            return canonical(user) in self._data["users"]
        except InvalidAddress:
            return False

    def list_users(self) -> list[str]:
        return sorted(self._data["users"])

    def list_aliases(self) -> dict[str, list[str]]:
        """Every alias with its targets."""
        return {k: list(v) for k, v in sorted(self._data["aliases"].items())}

    def catch_alls(self) -> dict[str, str]:
        """Domain -> catch-all target, for the domains that have one."""
        return {
            d: info["catch_all"]
            for d, info in sorted(self._data["domains"].items())
            if info.get("catch_all")
        }

    def quota_of(self, user: str) -> Quota:
        """Per-user limits; None means no per-user limit (the store's defaults apply).

        An unknown user (e.g. deleted while a session is open) has no per-user limit.
        """
        try:
            record = self._data["users"].get(canonical(user))
        except InvalidAddress:
            record = None
        if record is None:
            return Quota()
        return Quota(record.get("quota_bytes"), record.get("quota_messages"))

    def resolve(self, address: str) -> Resolution | None:
        try:
            addr = canonical(address)
        except InvalidAddress:
            return None
        if not self.is_local_domain(split(addr)[1]):
            return None
        data = self._data
        local: list[str] = []
        remote: list[str] = []
        self._expand(data, addr, 0, set(), local, remote)
        if not local and not remote:
            return None
        return Resolution(tuple(local), tuple(remote), INBOX)

    def _expand(
        self,
        data: Data,
        addr: str,
        depth: int,
        seen: set[str],
        local: list[str],
        remote: list[str],
    ) -> None:
        """Append where ``addr`` goes to ``local``/``remote``; bounded and loop-safe."""
        if depth > MAX_ALIAS_DEPTH or len(local) + len(remote) >= MAX_EXPANSION:
            return
        users, aliases = data["users"], data["aliases"]
        domain = addr.rpartition("@")[2]
        if addr in seen:
            # "alice -> alice, bob": an alias naming its own (user) address keeps a copy.
            if addr in users and addr not in local:
                local.append(addr)
            return
        seen.add(addr)
        if domain not in self.local_domains():
            if addr not in remote:
                remote.append(addr)
            return
        for candidate in dict.fromkeys((addr, base_address(addr))):
            if candidate in aliases:
                seen.add(candidate)
                for target in aliases[candidate]:
                    self._expand(data, target, depth + 1, seen, local, remote)
                return
            if candidate in users:
                if candidate not in local:
                    local.append(candidate)
                return
        catch_all = data["domains"].get(domain, {}).get("catch_all")
        if catch_all:
            self._expand(data, catch_all, depth + 1, seen, local, remote)

    def sender_addresses(self, user: str) -> frozenset[str]:
        """The user's own address and every alias that delivers to them.

        Sub-addresses (``alice+tag@d``) are not listed; policy compares ``base_address``.
        """
        user = canonical(user)
        data = self._data
        if user not in data["users"]:
            return frozenset()
        if self._senders_of is not data:  # one pass over the aliases per accounts version
            index: dict[str, set[str]] = {}
            for alias in data["aliases"]:
                resolution = self.resolve(alias)
                for target in resolution.local_users if resolution else ():
                    index.setdefault(target, set()).add(alias)
            self._senders = {k: frozenset(v) for k, v in index.items()}
            self._senders_of = data
        return frozenset({user}) | self._senders.get(user, frozenset())

    def _login_name(self, user: str) -> str:
        """The account a login name means: a bare local part works when one domain exists."""
        if "@" not in user:
            domains = self.local_domains()
            if len(domains) == 1:
                user = f"{user}@{next(iter(domains))}"
        return canonical(user)

    def check_password(self, user: str, password: str) -> defer.Deferred[str | None]:
        """Deferred[str | None]: the canonical user if the password is right, else None."""
        try:
            name = self._login_name(user)
        except InvalidAddress:
            name = None
        record = self._data["users"].get(name) if name else None
        hashed = record["password"] if record else passwords.DUMMY_HASH
        known = record is not None

        def check() -> tuple[str | None, str | None]:
            ok = passwords.verify_password(hashed, password)
            if not (ok and known):
                return None, None
            # A hash made with weaker parameters than today's is replaced on a good login.
            fresh = passwords.hash_password(password) if passwords.needs_rehash(hashed) else None
            return name, fresh

        def done(result: tuple[str | None, str | None]) -> str | None:
            found, fresh = result
            if found is not None and fresh is not None:
                self._replace_hash(found, hashed, fresh)
            return found

        reactor = self._reactor
        if reactor is None:
            from twisted.internet import reactor  # type: ignore[no-redef]
        d = self._hash_slots.run(
            threads.deferToThreadPool, reactor, reactor.getThreadPool(), check
        )
        return d.addCallback(done)

    def _replace_hash(self, user: str, old: str, new: str) -> None:
        """Store a re-made hash unless the password was changed meanwhile."""

        def change(data: Data) -> None:
            record = data["users"].get(user)
            if record is not None and record["password"] == old:
                record["password"] = new

        try:
            self._persistence.update(change)
        except (OSError, AccountsError) as exc:  # keep working with the old hash
            FilePersistence.log.warn("cannot store the re-made hash of {user}: {error}",
                                     user=user, error=str(exc))

    # -- administration -------------------------------------------------------------------

    def add_domain(self, domain: str) -> None:
        """Make ``domain`` local; raises UserExists if it already is."""
        domain = canonical_domain(domain)
        if domain in self.local_domains():
            raise UserExists(f"domain {domain} already exists")

        def change(data: Data) -> None:
            data["domains"][domain] = {"catch_all": None}

        self._persistence.update(change)

    def remove_domain(self, domain: str) -> None:
        """Remove a domain that has no users and no aliases left."""
        domain = canonical_domain(domain)
        if domain in self._static:
            raise AccountsError(f"domain {domain} is set in the configuration file (domains)")

        def change(data: Data) -> None:
            if domain not in data["domains"]:
                raise NoSuchDomain(f"no domain {domain}")
            in_use = [a for a in (*data["users"], *data["aliases"]) if a.endswith("@" + domain)]
            if in_use:
                raise AccountsError(
                    f"domain {domain} still has {len(in_use)} users or aliases "
                    f"(first: {in_use[0]}); delete them first"
                )
            del data["domains"][domain]

        self._persistence.update(change)

    def _require_domain(self, data: Data, domain: str) -> None:
        if domain not in self._static and domain not in data["domains"]:
            raise NoSuchDomain(f"{domain} is not a local domain (add it with: domain add {domain})")

    def add_user(self, address: str, password: str, quota: Quota | None = None) -> str:
        """Create an account; return its canonical address. Raises UserExists, NoSuchDomain."""
        user = canonical(address)
        if "+" in user.partition("@")[0][1:]:
            raise InvalidAddress(f"{user}: '+' is the sub-address separator")
        hashed = passwords.hash_password(password)

        def change(data: Data) -> None:
            self._require_domain(data, split(user)[1])
            if user in data["users"]:
                raise UserExists(f"user {user} already exists")
            data["users"][user] = {
                "password": hashed,
                "quota_bytes": quota.bytes_limit if quota else None,
                "quota_messages": quota.messages_limit if quota else None,
            }

        self._persistence.update(change)
        return user

    def set_password(self, address: str, password: str) -> None:
        """Replace a user's password hash."""
        user = canonical(address)
        hashed = passwords.hash_password(password)

        def change(data: Data) -> None:
            if user not in data["users"]:
                raise NoSuchUser(f"no user {user}")
            data["users"][user]["password"] = hashed

        self._persistence.update(change)

    def set_quota(self, address: str, quota: Quota) -> None:
        """Set a user's limits (None: no per-user limit)."""
        user = canonical(address)

        def change(data: Data) -> None:
            if user not in data["users"]:
                raise NoSuchUser(f"no user {user}")
            data["users"][user]["quota_bytes"] = quota.bytes_limit
            data["users"][user]["quota_messages"] = quota.messages_limit

        self._persistence.update(change)

    def remove_user(self, address: str) -> None:
        """Delete an account (its Maildir is left on disk for the administrator)."""
        user = canonical(address)

        def change(data: Data) -> None:
            if user not in data["users"]:
                raise NoSuchUser(f"no user {user}")
            del data["users"][user]

        self._persistence.update(change)

    def add_alias(self, alias: str, targets: Iterable[str]) -> None:
        """Make ``alias`` deliver to ``targets`` (local or remote); adds to existing targets."""
        name = canonical(alias)
        new = [canonical(t) for t in targets]
        if not new:
            raise AccountsError("an alias needs at least one target")

        def change(data: Data) -> None:
            self._require_domain(data, split(name)[1])
            current = data["aliases"].setdefault(name, [])
            for target in new:
                if target not in current:
                    current.append(target)

        self._persistence.update(change)

    def remove_alias(self, alias: str, targets: Iterable[str] = ()) -> None:
        """Remove some targets of an alias, or the whole alias when none are given."""
        name = canonical(alias)
        drop = {canonical(t) for t in targets}

        def change(data: Data) -> None:
            if name not in data["aliases"]:
                raise NoSuchUser(f"no alias {name}")
            if drop:
                missing = drop - set(data["aliases"][name])
                if missing:
                    raise NoSuchUser(f"alias {name} has no target {min(missing)}")
                data["aliases"][name] = [t for t in data["aliases"][name] if t not in drop]
            if not drop or not data["aliases"][name]:
                del data["aliases"][name]

        self._persistence.update(change)

    def set_catch_all(self, domain: str, target: str | None) -> None:
        """Deliver mail for unknown addresses at ``domain`` to ``target`` (None: bounce)."""
        dom = canonical_domain(domain)
        tgt = canonical(target) if target else None

        def change(data: Data) -> None:
            self._require_domain(data, dom)
            data["domains"].setdefault(dom, {"catch_all": None})["catch_all"] = tgt

        self._persistence.update(change)


class MemoryAccounts(Accounts):
    """In-memory accounts for tests: ``MemoryAccounts(domains=("example.test",))``."""

    def __init__(self, domains: Iterable[str] = (), reactor: Any = None) -> None:
        super().__init__(MemoryPersistence(), (), reactor)
        for domain in domains:
            self.add_domain(domain)


class FileAccounts(Accounts):
    """The embedded accounts of a server: ``data_dir/.mailsuite/accounts.json``."""

    def __init__(self, path: Path, static_domains: Iterable[str] = (), reactor: Any = None):
        self.path = Path(path)
        super().__init__(FilePersistence(self.path, reactor), static_domains, reactor)

    @classmethod
    def in_data_dir(
        cls, data_dir: Path, static_domains: Iterable[str] = (), reactor: Any = None
    ) -> FileAccounts:
        """The accounts file of a data directory."""
        return cls(Path(data_dir) / ".mailsuite" / "accounts.json", static_domains, reactor)

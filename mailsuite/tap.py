"""``twistd mailsuite``: build the whole server from the configuration.

Start-up order (``twistd -n mailsuite [--config FILE] [--uid mail --gid mail]``; twistd's own
``twistd -n --uid mail --gid mail mailsuite`` works too):

1. ``makeService``: read the configuration, open the accounts, make or load the certificate,
   build the store, the relay and one protocol factory per listener. Any problem stops here
   with one message (``mailsuite: <file>: <key>: <problem>``) and exit code 1.
2. ``privilegedStartService`` (still root when started as root): give the state under
   ``data_dir`` to the ``--uid``/``--gid`` user, then bind *every* listener. If one cannot be
   bound (port in use, permission), the ones already bound are closed and the start stops with
   exit code 1: nothing half-starts.
3. twistd drops privileges, then ``startService`` starts the relay and logs
   ``mailsuite ready``. SIGHUP reloads the TLS certificate and reopens the mail log.
"""

from __future__ import annotations

import os
import signal
import sys
from pathlib import Path
from typing import Any, ClassVar

from twisted.application import service
from twisted.internet import defer, endpoints
from twisted.logger import Logger
from twisted.python import usage, util

from mailsuite import reactor as mailsuite_reactor
from mailsuite import twistd_log
from mailsuite.config import IMPLICIT_TLS, SERVICES, Config, load_config
from mailsuite.errors import ConfigError, MailsuiteError

__all__ = ["MailsuiteService", "Options", "StartupError", "makeService"]

log = Logger(namespace="mailsuite")


class StartupError(SystemExit, Exception):
    """The server cannot start; the message says why (exit code 1, no traceback).

    It is a SystemExit so that twistd prints only the message, and an Exception so that twistd
    in daemon mode reports it to the waiting parent process.
    """

    def __init__(self, message: str) -> None:
        text = f"mailsuite: {message}"
        SystemExit.__init__(self, text)
        # twistd has redirected sys.stderr into its log by now; say it on the real stderr too.
        if sys.__stderr__ is not None and sys.stderr is not sys.__stderr__:
            print(text, file=sys.__stderr__, flush=True)


class Options(usage.Options):
    """Command line of ``twistd mailsuite``."""

    synopsis = "[--config FILE] [--uid USER --gid GROUP]"
    longdesc = (
        "Runs the mailsuite mail server (SMTP, submission, relay, POP3, IMAP). Without --config, "
        "./mailsuite.toml is read when present, else the embedded defaults run every listener "
        "on 127.0.0.1 at unprivileged ports."
    )
    optParameters: ClassVar[list[list[Any]]] = [
        ["config", "c", None, "the TOML configuration file"],
        ["uid", None, None, ("started as root: the user (name or number) to run as once every "
                             "port is bound (the same as twistd's own --uid)")],
        ["gid", None, None, "started as root: the group (name or number) to run as"],
    ]

    def postOptions(self) -> None:
        # Accepted after the plugin name too, because that is where an administrator types
        # them; they are handed to twistd, which does the switch (see _hand_ids_to_twistd).
        for name, convert in (("uid", util.uidFromString), ("gid", util.gidFromString)):
            if self[name] is not None:
                try:
                    self[name] = convert(self[name])
                except (KeyError, ValueError):
                    raise usage.UsageError(f"--{name}: no such {'user' if name == 'uid' else 'group'}"
                                           f" {self[name]!r}") from None


def _hand_ids_to_twistd(options: Any) -> None:
    """Put ``mailsuite --uid/--gid`` into twistd's own options, which it reads to drop privileges
    after ``makeService`` (twistd's own flags, before the plugin name, win when both are given)."""
    parent = getattr(options, "parent", None)
    if parent is None:
        return
    for name in ("uid", "gid"):
        if options.get(name) is not None and parent.get(name) is None:
            parent[name] = options[name]


def _target_ids(options: Any) -> tuple[int | None, int | None]:
    """The uid/gid twistd will switch to (only meaningful when started as root)."""
    parent = getattr(options, "parent", None) or {}
    uid = parent.get("uid") if hasattr(parent, "get") else None
    gid = parent.get("gid") if hasattr(parent, "get") else None
    if os.getuid() != 0 or (uid is None and gid is None):
        return None, None
    return uid, gid


def _chown_tree(root: Path, uid: int | None, gid: int | None) -> None:
    """Give ``root`` and everything under it to uid/gid, touching only what differs."""
    want_uid = -1 if uid is None else uid
    want_gid = -1 if gid is None else gid

    def fix(path: str, st: os.stat_result) -> None:
        if (uid is not None and st.st_uid != uid) or (gid is not None and st.st_gid != gid):
            try:
                os.lchown(path, want_uid, want_gid)
            except FileNotFoundError:  # removed meanwhile (a delivery moved it)
                pass

    if not root.exists():
        return
    fix(str(root), os.lstat(root))
    stack = [str(root)]
    while stack:
        directory = stack.pop()
        try:
            with os.scandir(directory) as entries:
                for entry in entries:
                    try:
                        st = entry.stat(follow_symlinks=False)
                    except FileNotFoundError:
                        continue
                    fix(entry.path, st)
                    if entry.is_dir(follow_symlinks=False):
                        stack.append(entry.path)
        except FileNotFoundError:
            continue


def _unreachable_parent(path: Path, uid: int | None, gid: int | None) -> Path | None:
    """The first directory on the way to ``path`` that uid/gid may not enter, if any."""
    import pwd
    import stat as st_mod

    if uid is None:
        return None
    try:
        user = pwd.getpwuid(uid)
        groups = set(os.getgrouplist(user.pw_name, gid if gid is not None else user.pw_gid))
    except KeyError:
        groups = {gid} if gid is not None else set()
    if gid is not None:
        groups.add(gid)
    for directory in reversed([path, *path.parents]):
        try:
            st = os.stat(directory)
        except FileNotFoundError:
            return None  # created later by the server itself, under a reachable parent
        if st.st_uid == uid:
            bit = st_mod.S_IXUSR
        elif st.st_gid in groups:
            bit = st_mod.S_IXGRP
        else:
            bit = st_mod.S_IXOTH
        if not st.st_mode & bit:
            return directory
    return None


class MailsuiteService(service.MultiService):
    """The listeners of one server plus its child services (the relay)."""

    def __init__(self, ctx: Any, listeners: list[tuple[str, str, Any]],
                 uid: int | None = None, gid: int | None = None) -> None:
        super().__init__()
        self.ctx = ctx
        self.listeners = listeners  # (service name, endpoint string, factory)
        self.ports: dict[str, list[Any]] = {}
        self._uid, self._gid = uid, gid
        self._bound = False
        self.twistd_options: Any = None  # twistd's own options, when twistd runs us

    def setServiceParent(self, parent: Any) -> None:
        super().setServiceParent(parent)
        # twistd has made the application and starts its log next: show it from [log] level.
        twistd_log.install(parent, self.twistd_options, self.ctx.config.log.level)

    def privilegedStartService(self) -> None:
        if self._uid is not None or self._gid is not None:
            data_dir = Path(self.ctx.config.data_dir).resolve()
            closed = _unreachable_parent(data_dir, self._uid, self._gid)
            if closed is not None:
                raise StartupError(
                    f"{self.ctx.config.source}: data_dir: {data_dir} is out of reach of uid "
                    f"{self._uid} (--uid): the directory {closed} does not let it in"
                )
            _chown_tree(data_dir, self._uid, self._gid)
        self._bind_all()
        super().privilegedStartService()

    def _bind_all(self) -> None:
        reactor = self.ctx.reactor
        bound: list[Any] = []
        for name, description, factory in self.listeners:
            endpoint = endpoints.serverFromString(reactor, description)
            result: list[Any] = []
            endpoint.listen(factory).addBoth(result.append)
            if not result:  # an endpoint that does not bind at once: not supported at start-up
                self._unbind(bound)
                raise StartupError(f"listen.{name}: {description!r} did not bind immediately")
            outcome = result[0]
            if isinstance(outcome, Exception) or hasattr(outcome, "getErrorMessage"):
                error = outcome.getErrorMessage() if hasattr(outcome, "getErrorMessage") else outcome
                self._unbind(bound)
                raise StartupError(
                    f"{self.ctx.config.source}: listen.{name}: cannot listen on "
                    f"{description!r}: {error}"
                )
            bound.append(outcome)
            self.ports.setdefault(name, []).append(outcome)
        self._bound = True

    def _unbind(self, ports: list[Any]) -> None:
        for port in ports:
            port.stopListening()
        self.ports = {}

    def startService(self) -> None:
        if not self._bound:  # started without twistd's privileged phase (tests)
            self._bind_all()
        super().startService()
        for name, ports in self.ports.items():
            for port in ports:
                host = port.getHost()
                where = f"{getattr(host, 'host', '')}:{getattr(host, 'port', '')}"
                tls = " (implicit TLS)" if name in IMPLICIT_TLS else ""
                log.info("mailsuite: {service} listening on {address}{tls}",
                         service=name, address=where, tls=tls)
        self._install_sighup()
        if os.geteuid() == 0:
            log.warn("mailsuite: running as root; start as root only to bind ports 25/465/587/"
                     "110/995/143/993 and pass --uid/--gid so twistd drops privileges")
        accounts = self.ctx.accounts
        if not accounts.list_users():
            first = sorted(accounts.local_domains())
            example = f"you@{first[0]}" if first else "you@example.org"
            config = self.ctx.config
            flag = "" if config.source == "<embedded defaults>" else f" --config {config.source}"
            log.info("mailsuite: no accounts yet; add one with: "
                     "mailsuite{flag} user add {example}", flag=flag, example=example)
        else:
            for domain in sorted(accounts.local_domains()):
                if accounts.resolve(f"postmaster@{domain}") is None:
                    log.warn("mailsuite: postmaster@{domain} reaches nobody (RFC 5321 4.5.1 "
                             "requires it); add: mailsuite alias add postmaster@{domain} "
                             "you@{domain}", domain=domain)
        log.info("mailsuite ready: hostname {hostname}, data in {data_dir}, domains {domains}",
                 hostname=self.ctx.config.hostname, data_dir=str(self.ctx.config.data_dir),
                 domains=",".join(sorted(self.ctx.accounts.local_domains())) or "(none)")

    def _install_sighup(self) -> None:
        reactor = self.ctx.reactor
        try:
            signal.signal(signal.SIGHUP, lambda *_: reactor.callFromThread(self.reload))
        except ValueError:  # not the main thread (tests)
            pass

    def reload(self) -> None:
        """SIGHUP: reload the certificate, reopen the mail log."""
        log.info("mailsuite: SIGHUP received, reloading the TLS certificate")
        self.ctx.tls.reload()
        self.ctx.maillog.reopen()

    @defer.inlineCallbacks
    def stopService(self) -> Any:
        ports = [p for group in self.ports.values() for p in group]
        self.ports = {}
        self._bound = False
        yield defer.gatherResults([defer.maybeDeferred(p.stopListening) for p in ports])
        yield defer.maybeDeferred(super().stopService)
        self.ctx.store.close()
        self.ctx.maillog.close()


def _tls_settings(config: Config, cert: Path, key: Path) -> Any:
    """The TLS settings, with any certificate problem reported against the config file."""
    from mailsuite.tls import TLSSettings

    try:
        return TLSSettings(cert, key)
    except ConfigError as exc:
        raise ConfigError(f"{config.source}: {exc}") from None


def _dkim_signer(config: Config, domains: Any) -> Any:
    """The DKIM signer, with a key for every local domain made now: still as root, before
    privileges drop, so that the state directory's hand-over covers them."""
    if not config.dkim.enabled:
        return None
    from mailsuite.dkim import DkimSigner

    signer = DkimSigner(config.state_dir / "dkim", config.dkim)
    try:
        for domain in sorted(domains):
            signer.key(domain)
    except (OSError, ValueError) as exc:
        raise ConfigError(f"{config.source}: dkim: {exc}") from None
    return signer


def _sender_authenticator(config: Config, reactor: Any) -> Any:
    """SPF/DKIM/DMARC checks of mail arriving on the MX, asking the relay's nameservers."""
    if not config.smtp.check_sender:
        return None
    from mailsuite.sender_auth import SenderAuthenticator

    return SenderAuthenticator(config.hostname, reactor, config.relay.nameservers,
                               config.smtp.trusted_networks)


def build(config: Config, reactor: Any, uid: int | None = None,
          gid: int | None = None) -> MailsuiteService:
    """The whole server for ``config`` (not started)."""
    from twisted.protocols.tls import TLSMemoryBIOFactory

    from mailsuite.accounts import FileAccounts
    from mailsuite.auth import LoginThrottle, make_portal
    from mailsuite.context import ServerContext
    from mailsuite.maillog import MailLog
    from mailsuite.tls import ensure_certificate

    data_dir = Path(config.data_dir)
    tls = None
    if config.cert_path is not None and config.key_path is not None:
        # Checked first: a bad certificate stops the start before anything is created on disk.
        tls = _tls_settings(config, config.cert_path, config.key_path)
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        config.state_dir.mkdir(mode=0o750, exist_ok=True)
    except OSError as exc:
        raise ConfigError(f"{config.source}: data_dir: cannot create {data_dir}: "
                          f"{exc.strerror}") from None
    accounts = FileAccounts.in_data_dir(data_dir, config.domains, reactor)
    if tls is None:
        cert, key = ensure_certificate(config.state_dir / "tls", config.hostname)
        tls = _tls_settings(config, cert, key)

    from mailsuite.imap.service import imap_factory
    from mailsuite.pop3.service import pop3_factory
    from mailsuite.relay.service import make_relay
    from mailsuite.smtp.service import smtp_factory
    from mailsuite.store.maildir import MaildirStore

    store = MaildirStore(data_dir, config.store, accounts, reactor)

    ctx = ServerContext(
        config=config, accounts=accounts, store=store, spool=None,
        portal=make_portal(accounts, store), tls=tls,
        throttle=LoginThrottle(reactor, config.auth),
        maillog=MailLog(config.mail_log_path, reactor), reactor=reactor,
        dkim=_dkim_signer(config, accounts.local_domains()),
        sender_auth=_sender_authenticator(config, reactor),
    )
    ctx.spool, relay_service = make_relay(ctx)

    makers = {
        "smtp": lambda: smtp_factory(ctx, "mx"),
        "submission": lambda: smtp_factory(ctx, "submission"),
        "submissions": lambda: smtp_factory(ctx, "submissions"),
        "pop3": lambda: pop3_factory(ctx, False),
        "pop3s": lambda: pop3_factory(ctx, True),
        "imap": lambda: imap_factory(ctx, False),
        "imaps": lambda: imap_factory(ctx, True),
    }
    listeners = []
    for name in SERVICES:
        descriptions = getattr(config.listen, name)
        for i, description in enumerate(descriptions):
            if description.split(":", 1)[0].lower() in ("ssl", "tls"):
                raise ConfigError(f"{config.source}: listen.{name}[{i}]: use a plain endpoint "
                                  f"(tcp:...); mailsuite applies TLS itself from [tls]")
            try:
                endpoints.serverFromString(reactor, description)
            except (ValueError, TypeError, KeyError, OSError) as exc:
                raise ConfigError(f"{config.source}: listen.{name}[{i}]: bad endpoint "
                                  f"{description!r}: {exc}") from None
            factory: Any = makers[name]()
            if name in IMPLICIT_TLS:
                factory = TLSMemoryBIOFactory(tls.server_options(), False, factory)
            listeners.append((name, description, factory))

    top = MailsuiteService(ctx, listeners, uid, gid)
    relay_service.setServiceParent(top)
    return top


def makeService(options: Options) -> service.IService:
    """Called by twistd: the server for ``--config`` (or ./mailsuite.toml, or defaults)."""
    mailsuite_reactor.install()  # unless twistd was given -r (mailsuite/reactor.py says why)
    from twisted.internet import reactor

    _hand_ids_to_twistd(options)
    uid, gid = _target_ids(options)
    try:
        config = load_config(options["config"])
        top = build(config, reactor, uid, gid)
    except (MailsuiteError, OSError) as exc:
        raise StartupError(str(exc)) from None
    top.twistd_options = getattr(options, "parent", None)
    return top

"""The configuration: one TOML file parsed into frozen dataclasses, validated in one place.

With no file at all the embedded defaults run a complete server on 127.0.0.1 at unprivileged
ports. Without ``--config``, ``./mailsuite.toml`` is read when it exists. Relative paths in a
file (``data_dir``, ``[tls] cert/key``) are relative to the directory of that file; the
embedded default ``data_dir`` is ``./maildirs`` (relative to the working directory).

The ``[smtp]``, ``[relay]``, ``[imap]``, ``[pop3]`` and ``[store]`` tables map 1:1 onto the
dataclasses in ``mailsuite/<part>/settings.py``: each TOML key is a field name, and its type is
checked against the field's annotation. Every problem raises one ``ConfigError`` whose message
names the file, the key and the problem.
"""

from __future__ import annotations

import dataclasses
import difflib
import os
import socket
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from mailsuite.address import canonical_domain
from mailsuite.errors import ConfigError, InvalidAddress
from mailsuite.imap.settings import ImapSettings
from mailsuite.networks import parse_networks
from mailsuite.pop3.settings import Pop3Settings
from mailsuite.relay.settings import RelaySettings
from mailsuite.smtp.settings import SmtpSettings
from mailsuite.store.settings import StoreSettings

__all__ = [
    "DEFAULT_CONFIG_NAME",
    "EMBEDDED",
    "SERVICES",
    "AuthSettings",
    "Config",
    "ListenSettings",
    "LogSettings",
    "TlsConfig",
    "load_config",
]

DEFAULT_CONFIG_NAME = "mailsuite.toml"
EMBEDDED = "<embedded defaults>"

# Listener name -> (default endpoint, the standard port, what it is).
SERVICES: dict[str, tuple[str, int, str]] = {
    "smtp": ("tcp:port=8025:interface=127.0.0.1", 25, "SMTP (MX, receives mail for local domains)"),
    "submission": ("tcp:port=8587:interface=127.0.0.1", 587, "submission (STARTTLS, AUTH)"),
    "submissions": ("tcp:port=8465:interface=127.0.0.1", 465, "submission (implicit TLS, AUTH)"),
    "pop3": ("tcp:port=8110:interface=127.0.0.1", 110, "POP3 (STLS)"),
    "pop3s": ("tcp:port=8995:interface=127.0.0.1", 995, "POP3 (implicit TLS)"),
    "imap": ("tcp:port=8143:interface=127.0.0.1", 143, "IMAP (STARTTLS)"),
    "imaps": ("tcp:port=8993:interface=127.0.0.1", 993, "IMAP (implicit TLS)"),
}
IMPLICIT_TLS = frozenset({"submissions", "pop3s", "imaps"})


def _default(name: str) -> Any:
    return field(default_factory=lambda: [SERVICES[name][0]])


@dataclass(frozen=True)
class ListenSettings:
    """``[listen]``: Twisted server endpoint strings per service; ``[]`` disables a service."""

    smtp: list[str] = _default("smtp")
    submission: list[str] = _default("submission")
    submissions: list[str] = _default("submissions")
    pop3: list[str] = _default("pop3")
    pop3s: list[str] = _default("pop3s")
    imap: list[str] = _default("imap")
    imaps: list[str] = _default("imaps")


@dataclass(frozen=True)
class TlsConfig:
    """``[tls]``: certificate chain and key (PEM). Both empty: a self-signed pair is made."""

    cert: str = ""
    key: str = ""


@dataclass(frozen=True)
class LogSettings:
    """``[log]``: the mail log (one line per mail event) and what twistd's log shows."""

    mail_log: str = ".mailsuite/mail.log"  # relative to data_dir; "" turns it off
    # The lowest level twistd's log shows. The mail events are debug events while the mail
    # log keeps them (info when there is no mail log), so by default they are written once.
    level: Literal["debug", "info", "warn", "error", "critical"] = "info"


@dataclass(frozen=True)
class DkimSettings:
    """``[dkim]``: DKIM signing of mail our users submit, for their own domains (mailsuite.dkim)."""

    enabled: bool = True
    selector: str = "mailsuite"  # the key is published at <selector>._domainkey.<domain>
    key_bits: int = 2048  # RSA size of new keys (RFC 8301: 1024 at least, 2048 advised)

    def __post_init__(self) -> None:
        label = self.selector
        if not (0 < len(label) <= 63 and label.replace("-", "").isalnum() and label.isascii()
                and not label.startswith("-") and not label.endswith("-")):
            raise ValueError(f"selector: {label!r} is not a DNS label (letters, digits, -)")
        if not 1024 <= self.key_bits <= 4096:
            raise ValueError(f"key_bits: {self.key_bits} is outside 1024..4096 (RFC 8301)")


@dataclass(frozen=True)
class AuthSettings:
    """``[auth]``: the login throttle shared by SMTP AUTH, IMAP and POP3 (mailsuite.auth).

    Failed logins are counted per client address (per /64 for IPv6).
    """

    failure_delay: float = 1.0  # seconds before answering the first failure; doubles each time
    max_failure_delay: float = 16.0
    failures_to_block: int = 10  # this many failures within failure_window block the address
    failure_window: float = 600.0  # seconds a failure is remembered
    block_duration: float = 900.0  # seconds an address stays blocked
    tracked_addresses: int = 10_000  # memory bound: least recently seen addresses are dropped
    # Clients never counted, delayed or blocked (e.g. a webmail on 127.0.0.1 that throttles
    # its own users).
    exempt_networks: list[str] = field(default_factory=list)

    def __post_init__(self) -> None:
        for name in ("failures_to_block", "tracked_addresses"):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: at least 1")
        for name in ("failure_window", "block_duration"):
            if not getattr(self, name) > 0:
                raise ValueError(f"{name}: more than 0 seconds")
        if not self.failure_delay >= 0:
            raise ValueError("failure_delay: 0 or more seconds")
        if not self.max_failure_delay >= self.failure_delay:
            raise ValueError("max_failure_delay: at least failure_delay")
        try:
            parse_networks(self.exempt_networks)
        except ValueError as exc:
            raise ValueError(f"exempt_networks: {exc}") from None


@dataclass(frozen=True)
class Config:
    """The whole configuration of one server."""

    source: str = EMBEDDED  # the file read, or EMBEDDED
    hostname: str = ""
    data_dir: Path = Path("maildirs")
    domains: tuple[str, ...] = ("localhost",)
    listen: ListenSettings = field(default_factory=ListenSettings)
    tls: TlsConfig = field(default_factory=TlsConfig)
    log: LogSettings = field(default_factory=LogSettings)
    smtp: SmtpSettings = field(default_factory=SmtpSettings)
    relay: RelaySettings = field(default_factory=RelaySettings)
    imap: ImapSettings = field(default_factory=ImapSettings)
    pop3: Pop3Settings = field(default_factory=Pop3Settings)
    store: StoreSettings = field(default_factory=StoreSettings)
    dkim: DkimSettings = field(default_factory=DkimSettings)
    auth: AuthSettings = field(default_factory=AuthSettings)

    @property
    def state_dir(self) -> Path:
        """``data_dir/.mailsuite``: accounts, TLS, spool, control socket, mail log."""
        return self.data_dir / ".mailsuite"

    @property
    def cert_path(self) -> Path | None:
        """The configured certificate, or None for the generated one."""
        return Path(self.tls.cert) if self.tls.cert else None

    @property
    def key_path(self) -> Path | None:
        """The configured key, or None for the generated one."""
        return Path(self.tls.key) if self.tls.key else None

    @property
    def mail_log_path(self) -> Path | None:
        """Where the mail log goes (None: only to the twistd log)."""
        return self.data_dir / self.log.mail_log if self.log.mail_log else None


# Tables parsed generically from their dataclass annotations.
TABLES: dict[str, type] = {
    "listen": ListenSettings,
    "tls": TlsConfig,
    "log": LogSettings,
    "smtp": SmtpSettings,
    "relay": RelaySettings,
    "imap": ImapSettings,
    "pop3": Pop3Settings,
    "dkim": DkimSettings,
    "auth": AuthSettings,
    "store": StoreSettings,
}
TOP_LEVEL = ("hostname", "data_dir", "domains")


def _unknown(source: str, key: str, known: typing.Iterable[str]) -> ConfigError:
    known = sorted(known)
    hint = difflib.get_close_matches(key.rpartition(".")[2], known, n=1)
    extra = f" (did you mean {hint[0]!r}?)" if hint else f" (known keys: {', '.join(known)})"
    return ConfigError(f"{source}: {key}: unknown key{extra}")


def _type_name(tp: Any) -> str:
    if isinstance(tp, type):
        return {"str": "a string", "int": "an integer", "float": "a number",
                "bool": "true or false", "list": "a list"}.get(tp.__name__, tp.__name__)
    origin = typing.get_origin(tp)
    if origin in (list, tuple):
        args = typing.get_args(tp)
        return f"a list of {_type_name(args[0]).split(' ', 1)[-1]}s" if args else "a list"
    return str(tp).replace("typing.", "")


def _check(value: Any, tp: Any, source: str, key: str) -> Any:
    """``value`` converted to ``tp`` (an annotation), or a ConfigError naming ``key``."""
    origin = typing.get_origin(tp)
    if origin in (typing.Union, types.UnionType):
        options = typing.get_args(tp)
        errors = []
        for option in options:
            if option is type(None):
                continue
            try:
                return _check(value, option, source, key)
            except ConfigError as exc:
                errors.append(exc)
        if errors:
            raise errors[0]
    if origin in (list, tuple):
        if not isinstance(value, list):
            raise ConfigError(f"{source}: {key}: expected {_type_name(tp)}, got {value!r}")
        args = typing.get_args(tp)
        item_tp = args[0] if args else Any
        items = [_check(v, item_tp, source, f"{key}[{i}]") for i, v in enumerate(value)]
        return tuple(items) if origin is tuple else items
    if origin is dict:
        if not isinstance(value, dict):
            raise ConfigError(f"{source}: {key}: expected a table, got {value!r}")
        key_tp, value_tp = typing.get_args(tp) or (str, Any)
        return {_check(k, key_tp, source, key): _check(v, value_tp, source, f"{key}.{k}")
                for k, v in value.items()}
    if origin is typing.Literal:
        choices = typing.get_args(tp)
        if value in choices and type(value) in {type(c) for c in choices}:
            return value
        raise ConfigError(f"{source}: {key}: expected one of "
                          f"{', '.join(repr(c) for c in choices)}, got {value!r}")
    if tp is Any:
        return value
    if tp is bool:
        if isinstance(value, bool):
            return value
    elif tp is int:
        if isinstance(value, int) and not isinstance(value, bool):
            return value
    elif tp is float:
        if isinstance(value, (int, float)) and not isinstance(value, bool):
            return float(value)
    elif tp is str:
        if isinstance(value, str):
            return value
    elif tp is Path:
        if isinstance(value, str) and value:
            return Path(value)
    elif isinstance(tp, type) and isinstance(value, tp):
        return value
    raise ConfigError(f"{source}: {key}: expected {_type_name(tp)}, got {value!r}")


def parse_table(cls: type, table: Any, source: str, name: str) -> Any:
    """An instance of dataclass ``cls`` from a TOML table, checked against its annotations."""
    if not isinstance(table, dict):
        raise ConfigError(f"{source}: {name}: expected a table [{name}], got {table!r}")
    hints = typing.get_type_hints(cls)
    fields = {f.name for f in dataclasses.fields(cls) if f.init}
    values = {}
    for key, value in table.items():
        if key not in fields:
            raise _unknown(source, f"{name}.{key}", fields)
        values[key] = _check(value, hints[key], source, f"{name}.{key}")
    try:
        return cls(**values)
    except (TypeError, ValueError) as exc:  # a settings class's own __post_init__ check
        raise ConfigError(f"{source}: [{name}]: {exc}") from None


def default_hostname() -> str:
    """The machine's fully qualified name (``localhost`` if it has none usable)."""
    name = socket.getfqdn()
    try:
        return canonical_domain(name)
    except InvalidAddress:
        return "localhost"


def find_config(path: str | os.PathLike[str] | None, cwd: Path | None = None) -> Path | None:
    """The file to read: ``path``, else ``./mailsuite.toml`` if present, else None."""
    if path is not None:
        return Path(path)
    candidate = (cwd or Path.cwd()) / DEFAULT_CONFIG_NAME
    return candidate if candidate.is_file() else None


def load_config(path: str | os.PathLike[str] | None = None, cwd: Path | None = None) -> Config:
    """Read and validate the configuration (see the module docstring); raise ConfigError."""
    found = find_config(path, cwd)
    if found is None:
        return Config(hostname=default_hostname(), data_dir=(cwd or Path.cwd()) / "maildirs")
    source = str(found)
    try:
        raw = tomllib.loads(found.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"{source}: cannot read: no such file") from None
    except OSError as exc:
        raise ConfigError(f"{source}: cannot read: {exc.strerror}") from None
    except UnicodeDecodeError:
        raise ConfigError(f"{source}: cannot read: not UTF-8 text") from None
    except tomllib.TOMLDecodeError as exc:
        raise ConfigError(f"{source}: TOML syntax error: {exc}") from None
    return parse_document(raw, source, found.resolve().parent)


def parse_document(raw: dict[str, Any], source: str, base: Path) -> Config:
    """A Config from a parsed TOML document; relative paths are taken from ``base``."""
    for key in raw:
        if key not in TOP_LEVEL and key not in TABLES:
            raise _unknown(source, key, (*TOP_LEVEL, *TABLES))
    values: dict[str, Any] = {"source": source}

    hostname = raw.get("hostname")
    if hostname is None:
        values["hostname"] = default_hostname()
    else:
        _check(hostname, str, source, "hostname")
        try:
            values["hostname"] = canonical_domain(hostname)
        except InvalidAddress as exc:
            raise ConfigError(f"{source}: hostname: {exc}") from None

    data_dir = _check(raw.get("data_dir", "maildirs"), str, source, "data_dir")
    if not data_dir:
        raise ConfigError(f"{source}: data_dir: must not be empty")
    values["data_dir"] = base / Path(data_dir).expanduser()

    domains = _check(raw.get("domains", ["localhost"]), list[str], source, "domains")
    canon = []
    for i, domain in enumerate(domains):
        try:
            canon.append(canonical_domain(domain))
        except InvalidAddress as exc:
            raise ConfigError(f"{source}: domains[{i}]: {exc}") from None
    values["domains"] = tuple(dict.fromkeys(canon))

    for name, cls in TABLES.items():
        if name in raw:
            values[name] = parse_table(cls, raw[name], source, name)

    tls = values.get("tls")
    if tls is not None:
        if bool(tls.cert) != bool(tls.key):
            missing = "tls.key" if tls.cert else "tls.cert"
            raise ConfigError(f"{source}: {missing}: cert and key must be given together")
        if tls.cert:
            values["tls"] = TlsConfig(str(base / Path(tls.cert).expanduser()),
                                      str(base / Path(tls.key).expanduser()))
    return Config(**values)

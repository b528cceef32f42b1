"""The relay as a Twisted service: spool, runner, agents, and the operator's control socket.

``make_relay(ctx)`` builds everything from the server context; the platform's tap puts the
returned spool into ``ctx.spool`` and the service into its ``MultiService``.

The control channel is a UNIX socket (``data_dir/.mailsuite/control.sock``, mode 0600) speaking
one JSON object per line each way::

    -> {"op": "flush", "id": null}          <- {"ok": true, "count": 3}
    -> {"op": "hold", "id": "0005f3..."}    <- {"ok": true}
    -> {"op": "bogus"}                      <- {"ok": false, "error": "unknown op 'bogus'"}

Operations: ``flush`` (``id`` optional), ``hold``, ``release``, ``delete``, ``list``. An ``id``
may be any unique prefix of a queue id.
"""

from __future__ import annotations

import hashlib
import json
import os
import socket
import tempfile
from pathlib import Path
from typing import Any

from twisted.application.service import MultiService
from twisted.internet import defer
from twisted.internet.protocol import Factory
from twisted.logger import Logger
from twisted.protocols.basic import LineOnlyReceiver

from mailsuite.relay.local import LocalAgent
from mailsuite.relay.remote import RemoteAgent
from mailsuite.relay.routing import Router, make_resolver, parse_host_port
from mailsuite.relay.runner import QueueRunner
from mailsuite.relay.spool import Spool

log = Logger()

MAX_CONTROL_LINE = 4096
MAX_SOCKET_PATH = 100  # sun_path is 108 bytes on Linux, 104 on the BSDs


def spool_directory(data_dir: Path | str) -> Path:
    """Where the spool of a data directory lives."""
    return Path(data_dir) / ".mailsuite" / "spool"


def control_path(data_dir: Path | str) -> Path:
    """The control socket of a data directory.

    ``data_dir/.mailsuite/control.sock``, unless that path is too long for a UNIX socket
    name (about 104 bytes): then a name in the temporary directory derived from the data
    directory's absolute path, so the server and the CLI still agree on it.
    """
    path = Path(data_dir).absolute() / ".mailsuite" / "control.sock"
    if len(os.fsencode(path)) < MAX_SOCKET_PATH:
        return path
    digest = hashlib.sha256(os.fsencode(Path(data_dir).absolute())).hexdigest()[:20]
    return Path(tempfile.gettempdir()) / f"mailsuite-{digest}.sock"


class ControlProtocol(LineOnlyReceiver):
    """One operator connection: JSON request line in, JSON reply line out."""

    delimiter = b"\n"
    MAX_LENGTH = MAX_CONTROL_LINE

    def __init__(self, runner: QueueRunner) -> None:
        self.runner = runner

    def lineReceived(self, line: bytes) -> None:
        d = defer.Deferred.fromCoroutine(self._answer(line))
        d.addCallback(lambda reply: self.sendLine(json.dumps(reply).encode()))

    def lineLengthExceeded(self, line: bytes) -> None:
        self.sendLine(json.dumps({"ok": False, "error": "request too long"}).encode())
        self.transport.loseConnection()  # type: ignore[misc, union-attr]

    async def _answer(self, line: bytes) -> dict[str, Any]:
        try:
            request = json.loads(line)
            op = request["op"]
        except (ValueError, KeyError, TypeError):
            return {"ok": False, "error": "bad request"}
        try:
            return await self._dispatch(op, request.get("id"))
        except LookupError as e:
            return {"ok": False, "error": str(e.args[0])}
        except Exception:  # noqa: BLE001 - the operator gets an answer, the log the details
            log.failure("control request {op} failed", op=op)
            return {"ok": False, "error": "internal error (see the server log)"}

    def _resolve(self, prefix: Any) -> str:
        if not isinstance(prefix, str) or not prefix:
            raise LookupError("a queue id is required")
        matches = [i for i in self.runner.spool.items if i.startswith(prefix)]
        if len(matches) != 1:
            raise LookupError(f"no such queue id: {prefix}" if not matches else f"ambiguous id: {prefix}")
        return matches[0]

    async def _dispatch(self, op: str, queue_id: Any) -> dict[str, Any]:
        runner = self.runner
        if op == "flush":
            target = self._resolve(queue_id) if queue_id else None
            return {"ok": True, "count": runner.flush(target)}
        if op == "hold":
            return {"ok": await runner.hold(self._resolve(queue_id))}
        if op == "release":
            return {"ok": await runner.release(self._resolve(queue_id))}
        if op == "delete":
            return {"ok": await runner.delete(self._resolve(queue_id))}
        if op == "list":
            return {"ok": True, "ids": sorted(runner.spool.items)}
        return {"ok": False, "error": f"unknown op {op!r}"}


class ControlFactory(Factory):
    def __init__(self, runner: QueueRunner) -> None:
        self.runner = runner

    def buildProtocol(self, addr: Any) -> ControlProtocol:
        return ControlProtocol(self.runner)


class RelayService(MultiService):
    """Starts the runner and the control socket; stops them cleanly."""

    def __init__(self, spool: Spool, runner: QueueRunner, reactor: Any, control: Path | None) -> None:
        super().__init__()
        self.setName("relay")
        self.spool = spool
        self.runner = runner
        self.reactor = reactor
        self.control = control
        self._port: Any = None

    def startService(self) -> None:
        super().startService()
        self.runner.start()
        if self.control is not None:
            self._listen_control(self.control)

    def _listen_control(self, path: Path) -> None:
        if path.exists():
            probe = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            try:
                probe.connect(os.fspath(path))
            except OSError:
                path.unlink()  # stale, from a server that died
            else:
                log.warn("another server owns {path}; control socket not started", path=path)
                return
            finally:
                probe.close()
        old_umask = os.umask(0o177)
        try:
            self._port = self.reactor.listenUNIX(os.fspath(path), ControlFactory(self.runner), mode=0o600)
        except Exception as e:  # noqa: BLE001 - the relay runs without it
            log.error("cannot listen on control socket {path}: {err}", path=path, err=str(e))
        finally:
            os.umask(old_umask)

    def stopService(self) -> defer.Deferred[None]:
        super().stopService()
        waits = [self.runner.stop()]
        if self._port is not None:
            waits.append(defer.maybeDeferred(self._port.stopListening))
            self._port = None
        waits.append(self.spool.flush_writes())
        return defer.gatherResults(waits).addCallback(lambda _: None)


def check_settings(settings: Any) -> None:
    """Reject ``[relay]`` values that would only fail at delivery time (``ConfigError``)."""
    import ipaddress

    from mailsuite.errors import ConfigError

    def host_port(key: str, text: str, default: int) -> tuple[str, int]:
        try:
            host, port = parse_host_port(text, default)
        except ValueError:
            raise ConfigError(f"[relay] {key}: {text!r} is not host:port") from None
        if not host or not 0 < port < 65536:
            raise ConfigError(f"[relay] {key}: {text!r} is not host:port")
        return host, port

    for server in settings.nameservers:
        host, _ = host_port("nameservers", server, 53)
        try:
            ipaddress.ip_address(host)
        except ValueError:
            raise ConfigError(f"[relay] nameservers: {server!r} must be an IP address") from None
    if settings.smarthost:
        host_port("smarthost", settings.smarthost, 587)
        if settings.smarthost_cafile and not Path(settings.smarthost_cafile).is_file():
            raise ConfigError(f"[relay] smarthost_cafile: {settings.smarthost_cafile} not found")
    if not 0 < settings.port < 65536:
        raise ConfigError(f"[relay] port: {settings.port} is not a TCP port")
    for key in ("retry_initial", "retry_max", "max_per_destination", "max_connections"):
        if getattr(settings, key) <= 0:
            raise ConfigError(f"[relay] {key} must be positive")


def make_relay(ctx: Any) -> tuple[Spool, RelayService]:
    """Build the spool and the relay service from the server context (see the module doc)."""
    from mailsuite.delivery import LocalDelivery

    config = ctx.config
    settings = config.relay
    check_settings(settings)
    reactor = ctx.reactor
    spool = Spool(spool_directory(config.data_dir), reactor, reactor)
    spool.load()
    router = Router(settings, make_resolver(settings, reactor), config.hostname)
    remote = RemoteAgent(router, settings, reactor, reactor, config.hostname, ctx.maillog)
    local = LocalAgent(LocalDelivery(ctx.store, ctx.accounts), ctx.accounts, spool, ctx.maillog)
    runner = QueueRunner(
        spool,
        local_agent=local,
        remote_agent=remote,
        is_local=ctx.accounts.is_local_domain,
        clock=reactor,
        settings=settings,
        hostname=config.hostname,
        maillog=ctx.maillog,
    )
    return spool, RelayService(spool, runner, reactor, control_path(config.data_dir))

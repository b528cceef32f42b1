"""twistd's log, shown from ``[log] level`` up.

twistd writes every ``twisted.logger`` event to its log whatever its level; it has no level
option (``twist`` has ``--log-level``). The mail events are debug events while the mail log
keeps them, so without a filter every one was written twice, once per log: about a tenth of
the CPU the SMTP benchmark's server spent per message went to the second copy.

twistd's documented hook for this is an ``ILogObserver`` component on the application, which
it uses instead of building its own observer. ``install`` puts there the observer twistd
would have built (same ``--logfile``, ``--syslog`` or standard output), behind a level filter.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from twisted.logger import (
    FilteringLogObserver,
    ILogObserver,
    LegacyLogObserverWrapper,
    Logger,
    LogLevel,
    LogLevelFilterPredicate,
)
from twisted.python import components

log = Logger()


def level_named(name: str) -> LogLevel:
    """``"info"`` -> ``LogLevel.info`` (ValueError for a name twisted.logger does not know)."""
    return LogLevel.levelWithName(name)


def filtered(observer: Any, level: LogLevel) -> ILogObserver:
    """``observer`` (new or legacy style) seeing only events at ``level`` or above."""
    if not ILogObserver.providedBy(observer):
        observer = LegacyLogObserverWrapper(observer)
    return FilteringLogObserver(observer, [LogLevelFilterPredicate(defaultLogLevel=level)])


def _twistd_destination(twistd_options: Mapping[str, Any]) -> Any:
    """The observer twistd builds from its own options (log file, syslog or stdout)."""
    from twisted.scripts.twistd import _SomeApplicationRunner

    return _SomeApplicationRunner.loggerFactory(twistd_options)._getLogObserver()


def install(application: Any, twistd_options: Mapping[str, Any] | None, level: str) -> bool:
    """Give ``application`` twistd's log observer filtered at ``level``; False when it cannot
    (not under twistd, a custom ``--logger``, or an observer already set), and twistd then
    logs as it always does."""
    if twistd_options is None or twistd_options.get("logger"):
        return False
    if not isinstance(application, components.Componentized):
        return False
    if application.getComponent(ILogObserver, None) is not None:
        return False
    try:
        destination = _twistd_destination(twistd_options)
    except Exception:  # noqa: BLE001 - a Twisted without these internals: log as before
        log.failure("cannot filter twistd's log by level; it shows every event")
        return False
    application.setComponent(ILogObserver, filtered(destination, level_named(level)))
    return True

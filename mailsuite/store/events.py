"""The per-process change hub: every live view of a folder hears every change to it."""

from __future__ import annotations

from collections.abc import Callable

from twisted.logger import Logger

from mailsuite.interfaces import FolderChange, Unsubscribe

Listener = Callable[[FolderChange], None]


class ChangeHub:
    """Listeners keyed by (user, folder); one hub per store instance (i.e. per process).

    Listener exceptions are logged and do not stop delivery of the change to the others.
    """

    log = Logger()

    def __init__(self) -> None:
        self._listeners: dict[tuple[str, str], list[Listener]] = {}

    def subscribe(self, user: str, folder: str, listener: Listener) -> Unsubscribe:
        """Register ``listener``; the returned callable removes it (idempotent)."""
        key = (user, folder)
        self._listeners.setdefault(key, []).append(listener)

        def unsubscribe() -> None:
            listeners = self._listeners.get(key)
            if listeners is None:
                return
            try:
                listeners.remove(listener)
            except ValueError:
                return
            if not listeners:
                del self._listeners[key]

        return unsubscribe

    def has_listeners(self, user: str, folder: str) -> bool:
        """True if someone listens to this folder."""
        return (user, folder) in self._listeners

    def watched(self) -> list[tuple[str, str]]:
        """The (user, folder) keys that have listeners."""
        return list(self._listeners)

    def publish(self, change: FolderChange) -> None:
        """Call every listener of the change's folder."""
        for listener in list(self._listeners.get((change.user, change.folder), ())):
            try:
                listener(change)
            except Exception:  # noqa: BLE001 -- one broken session must not starve the others
                self.log.failure(
                    "change listener failed for {user} {folder}",
                    user=change.user,
                    folder=change.folder,
                )

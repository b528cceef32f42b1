"""Account-level helpers shared by the store implementations: listing, quota arithmetic."""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence

from mailsuite.errors import QuotaExceeded, SpecialUseNotSupported
from mailsuite.interfaces import (
    ASSIGNABLE_SPECIAL_USES,
    INBOX,
    SPECIAL_USE_FOLDERS,
    FolderInfo,
    Quota,
    QuotaUsage,
)
from mailsuite.store.settings import StoreSettings


def build_listing(
    names: Iterable[str], subscribed: set[str], assigned: Mapping[str, str] | None = None
) -> list[FolderInfo]:
    """FolderInfo for every existing folder, INBOX first, then in name order.

    Special use (RFC 6154) is given to the top-level folders named in ``SPECIAL_USE_FOLDERS``
    and to the folders a user created with one (``assigned``: name -> attribute).
    """
    assigned = assigned or {}
    existing = set(names)
    existing.add(INBOX)
    parents: set[str] = set()
    for name in existing:
        parts = name.split("/")
        for i in range(1, len(parts)):
            parents.add("/".join(parts[:i]))
    ordered = [INBOX] + sorted(n for n in existing if n != INBOX)
    return [
        FolderInfo(
            name=name,
            special_use=assigned.get(name) or SPECIAL_USE_FOLDERS.get(name),
            subscribed=name in subscribed,
            has_children=name in parents,
            selectable=True,
        )
        for name in ordered
    ]


def check_special_use(special_use: str | None) -> None:
    """SpecialUseNotSupported unless ``special_use`` is None or one a folder can be given."""
    if special_use is not None and special_use not in ASSIGNABLE_SPECIAL_USES:
        raise SpecialUseNotSupported(f"special use {special_use!r} cannot be assigned")


def moved_names(names: Mapping[str, str], source: str, target: str) -> dict[str, str]:
    """``names`` with ``source`` and the folders below it renamed to ``target``."""
    out = {}
    for name, value in names.items():
        if name == source or name.startswith(source + "/"):
            name = target + name[len(source) :]
        out[name] = value
    return out


def effective_quota(quota: Quota | None, settings: StoreSettings) -> Quota:
    """The user's limits, falling back to the store defaults (0 there means unlimited)."""
    bytes_limit = quota.bytes_limit if quota is not None else None
    messages_limit = quota.messages_limit if quota is not None else None
    if bytes_limit is None and settings.default_quota_bytes:
        bytes_limit = settings.default_quota_bytes
    if messages_limit is None and settings.default_quota_messages:
        messages_limit = settings.default_quota_messages
    return Quota(bytes_limit=bytes_limit, messages_limit=messages_limit)


def check_quota(usage: QuotaUsage, size: int, count: int = 1) -> None:
    """Raise ``QuotaExceeded`` if adding ``count`` messages of ``size`` bytes would not fit.

    Permanent when the addition alone exceeds the whole limit (it can never fit).
    """
    if usage.bytes_limit is not None:
        if size > usage.bytes_limit:
            raise QuotaExceeded(
                f"message of {size} bytes is larger than the quota of {usage.bytes_limit} bytes",
                permanent=True,
            )
        if usage.bytes_used + size > usage.bytes_limit:
            raise QuotaExceeded(
                f"mailbox full: {usage.bytes_used} of {usage.bytes_limit} bytes used"
            )
    if usage.messages_limit is not None:
        if count > usage.messages_limit:
            raise QuotaExceeded("more messages than the quota allows", permanent=True)
        if usage.messages_used + count > usage.messages_limit:
            raise QuotaExceeded(
                f"mailbox full: {usage.messages_used} of {usage.messages_limit} messages"
            )


def join_source(source: bytes | bytearray | memoryview | Sequence[bytes]) -> bytes:
    """The message bytes from ``bytes`` or a sequence of chunks."""
    if isinstance(source, (bytes, bytearray, memoryview)):
        return bytes(source)
    return b"".join(source)

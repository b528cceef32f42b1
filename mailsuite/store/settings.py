"""Settings of the Maildir store, read from the ``[store]`` table of the configuration."""

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True, slots=True)
class StoreSettings:
    """``[store]``: durability and default quotas."""

    fsync: bool = True  # never turn off in production: a 250 means the message is on disk
    # "auto": no fsync of new/ where the file's own fsync makes its new name durable (ext4, XFS,
    # Btrfs; mailsuite.store.name_durability); "always": fsync it on every file system.
    directory_fsync: Literal["auto", "always"] = "auto"
    default_quota_bytes: int = 0  # 0 = unlimited
    default_quota_messages: int = 0  # 0 = unlimited
    tmp_max_age: float = 36 * 3600.0  # leftover tmp/ files older than this are removed
    poll_interval: float = (
        5.0  # seconds between checks for other processes' changes to watched folders
    )
    quota_rescan_interval: float = 60.0  # seconds a computed quota usage is trusted before a rescan

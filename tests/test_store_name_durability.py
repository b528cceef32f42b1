"""Which file systems make a linked file's name durable with the file's own fsync."""

from __future__ import annotations

import os
from types import SimpleNamespace

from mailsuite.store.name_durability import NameDurability, file_system_type, recent_linux

MOUNTINFO = """\
22 27 0:21 / /proc rw,relatime - proc proc rw
27 1 254:0 / / rw,relatime - ext4 /dev/vda rw
40 27 8:17 / /var/mail rw,noatime shared:5 - xfs /dev/sdb1 rw,attr2
41 27 0:45 / /srv/my\\040mail rw,relatime - btrfs /dev/sdc rw,subvol=/mail
42 27 0:46 / /var/spool rw,relatime - nfs4 server:/spool rw
43 42 0:47 / /var/spool rw,relatime - tmpfs tmpfs rw
44 27 8:33 / /mnt/old rw - ext2 /dev/sdd rw
a line that is not a mount
"""


def _type(path: str) -> str | None:
    return file_system_type(path, MOUNTINFO.splitlines())


def test_the_longest_mount_point_above_the_path_decides():
    assert _type("/home/alice/Maildir/new") == "ext4"
    assert _type("/var/mail/alice/new") == "xfs"
    assert _type("/var/mail") == "xfs"
    assert _type("/var/mailer/x") == "ext4"  # a mount point is a whole path component
    assert _type("/") == "ext4"


def test_escaped_mount_points_and_mounts_over_mounts():
    assert _type("/srv/my mail/alice/new") == "btrfs"
    assert _type("/var/spool/x") == "tmpfs"  # mounted over the NFS mount, listed after it


def test_no_mount_applies():
    assert file_system_type("/var/mail", []) is None
    assert file_system_type("/var/mail", ["27 1 254:0 / /srv rw - ext4 /dev/vda rw"]) is None


LINUX_6 = SimpleNamespace(sysname="Linux", release="6.1.0-13-amd64")


def _durability(tmp_path, mode="auto", text=MOUNTINFO, uname=LINUX_6):
    path = tmp_path / "mountinfo"
    path.write_text(text)
    return NameDurability(mode, str(path), uname)


def test_auto_skips_the_directory_fsync_only_where_the_file_fsync_covers_the_name(tmp_path):
    durability = _durability(tmp_path)
    assert durability.covers("/home/alice/Maildir/new")  # ext4
    assert durability.covers("/var/mail/alice/new")  # xfs
    assert durability.covers("/srv/my mail/alice/new")  # btrfs
    assert not durability.covers("/var/spool/alice/new")  # tmpfs
    assert not durability.covers("/mnt/old/alice/new")  # ext2 (maybe without ext4's fsync)
    assert not durability.covers("/proc/x")


def test_always_fsyncs_every_directory(tmp_path):
    durability = _durability(tmp_path, mode="always")
    assert not durability.covers("/home/alice/Maildir/new")
    assert not durability.covers("/var/mail/alice/new")


def test_without_a_mount_table_the_directory_is_fsynced(tmp_path):
    assert not NameDurability("auto", str(tmp_path / "missing"), LINUX_6).covers("/home/alice/new")


def test_older_kernels_and_other_systems_fsync_every_directory(tmp_path):
    """Before Linux 5.0 not all four file systems make the name durable with the file."""
    old = SimpleNamespace(sysname="Linux", release="4.19.0-26-amd64")
    assert not _durability(tmp_path, uname=old).covers("/home/alice/Maildir/new")
    bsd = SimpleNamespace(sysname="FreeBSD", release="14.1-RELEASE")
    assert not _durability(tmp_path, uname=bsd).covers("/home/alice/Maildir/new")
    assert [recent_linux("Linux", r) for r in ("5.0.0", "5.10.0-30", "10.2", "4.20.17", "x")] == [
        True, True, True, False, False]


def test_symlinks_are_resolved_before_the_mount_table_is_read(tmp_path):
    real = tmp_path / "real"
    real.mkdir()
    link = tmp_path / "link"
    link.symlink_to(real)
    resolved = os.path.realpath(real)
    text = f"27 1 254:0 / / rw - tmpfs tmpfs rw\n40 27 8:17 / {resolved} rw - xfs /dev/sdb1 rw\n"
    assert _durability(tmp_path, text=text).covers(str(link))


def test_answers_are_remembered_per_directory(tmp_path):
    """Read once per directory: the commit thread asks for every batch."""
    durability = _durability(tmp_path)
    assert durability.covers("/var/mail/alice/new")
    (tmp_path / "mountinfo").write_text("27 1 254:0 / / rw - tmpfs tmpfs rw\n")
    assert durability.covers("/var/mail/alice/new")
    assert not durability.covers("/var/mail/bob/new")

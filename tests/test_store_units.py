"""Unit tests of the store's pure helpers: names, flags, file names, uidlist parsing, locks."""

from __future__ import annotations

import os
import socket

import pytest

from mailsuite.errors import InvalidFolderName, StoreError, TemporaryStoreError
from mailsuite.interfaces import FlagMode
from mailsuite.store import filenames, layout
from mailsuite.store.flags import apply_mode, normalize_flags
from mailsuite.store.locking import DotLock
from mailsuite.store.names import canonical_name, split_name
from mailsuite.store.uidlist import UidList


def test_inbox_children_are_canonicalised():
    assert canonical_name("inbox/Sub") == "INBOX/Sub"


def test_other_names_keep_their_case():
    assert canonical_name("Projects/Q1") == "Projects/Q1"


def test_inbox_splits_to_nothing():
    assert split_name("InBoX") == ()


@pytest.mark.parametrize("name", ["a" * 300, "/".join(["x"] * 20), "\u0085next-line", "tab\there"])
def test_unstorable_names_are_refused(name):
    with pytest.raises(InvalidFolderName):
        split_name(name)


def test_folder_dir_is_inside_user_dir():
    assert layout.folder_dir("/m/d/u", "a/b") == "/m/d/u/.a.b"


def test_dir_name_decodes_back():
    assert layout.name_of_dir(".Entw&APw-rfe.sub") == "Entw\u00fcrfe/sub"


def test_dir_name_with_invalid_utf7_is_ignored():
    assert layout.name_of_dir(".&Jjo") is None


@pytest.mark.parametrize(
    "user", ["../x@example.test", "x@..", "noat", ".hidden@example.test", "a/b@example.test"]
)
def test_unsafe_users_are_refused(user):
    with pytest.raises(StoreError):
        layout.user_dir("/m", user)


def test_recent_cannot_be_stored():
    assert normalize_flags(["\\Recent", "\\SEEN"]) == frozenset({"\\Seen"})


def test_unknown_system_flag_is_refused():
    with pytest.raises(StoreError):
        normalize_flags(["\\Bogus"])


@pytest.mark.parametrize("keyword", ["has space", "paren(", "", "x" * 101, "caf\u00e9"])
def test_keyword_must_be_an_atom(keyword):
    with pytest.raises(StoreError):
        normalize_flags([keyword])


def test_apply_modes():
    current = frozenset({"\\Seen", "a"})
    assert (
        apply_mode(current, frozenset({"b"}), FlagMode.ADD),
        apply_mode(current, frozenset({"a"}), FlagMode.REMOVE),
        apply_mode(current, frozenset({"c"}), FlagMode.REPLACE),
    ) == (frozenset({"\\Seen", "a", "b"}), frozenset({"\\Seen"}), frozenset({"c"}))


def test_size_and_time_from_dovecot_name():
    base = "1700000000.M1P2Q3.host,S=1234,W=1260"
    assert (filenames.size_from_base(base), filenames.time_from_base(base)) == (1234, 1700000000)


def test_split_name_without_info():
    assert filenames.split_name("123.x.host") == ("123.x.host", None)


def test_long_base_gets_digest_pop_id():
    pop_id = filenames.pop_id_for("1." + "h" * 100)
    assert (len(pop_id), pop_id.isalnum()) == (40, True)


def test_made_names_are_unique():
    maker = filenames.NameMaker("host")
    assert len({maker.make(1.5, 10) for _ in range(1000)}) == 1000


def test_host_with_slash_and_colon_is_escaped():
    name = filenames.NameMaker("a/b:c").make(1.0, 1)
    assert "/" not in name and ":" not in name


def test_uidlist_reads_version_1(tmp_path):
    (tmp_path / "dovecot-uidlist").write_text("1 1234 5\n3 123.a.host\n")
    uidlist = UidList(str(tmp_path), str(tmp_path), fsync=False)
    uidlist.reload()
    assert (uidlist.uidvalidity, uidlist.next_uid) == (1234, 5)


def test_uidlist_ignores_partial_last_line(tmp_path):
    (tmp_path / "dovecot-uidlist").write_text("3 V7 N1 Gx\n1 :a\n2 :b")
    uidlist = UidList(str(tmp_path), str(tmp_path), fsync=False)
    uidlist.reload()
    assert uidlist.uid_of == {"a": 1}


def test_uidlist_ignores_descending_records(tmp_path):
    (tmp_path / "dovecot-uidlist").write_text("3 V7 N1 Gx\n5 :a\n3 :b\n6 :c\n")
    uidlist = UidList(str(tmp_path), str(tmp_path), fsync=False)
    uidlist.reload()
    assert (uidlist.uid_of, uidlist.next_uid) == ({"a": 5, "c": 6}, 7)


def test_uidlist_reads_appended_tail(tmp_path):
    path = tmp_path / "dovecot-uidlist"
    path.write_text("3 V7 N1 Gx\n1 :a\n")
    uidlist = UidList(str(tmp_path), str(tmp_path), fsync=False)
    uidlist.reload()
    with open(path, "a") as f:
        f.write("2 :b\n")
    uidlist.reload()
    assert uidlist.uid_of == {"a": 1, "b": 2}


def test_assign_keeps_known_uids(tmp_path):
    uidlist = UidList(str(tmp_path), str(tmp_path), fsync=False)
    uidlist.ensure(1_700_000_000)
    first = uidlist.assign(["a", "b"], 0)
    assert uidlist.assign(["b", "c"], 0) == [first[1], first[1] + 1]


def test_busy_lock_times_out(tmp_path):
    path = str(tmp_path / "x.lock")
    with open(path, "w") as f:
        f.write(f"{os.getpid()}:{socket.gethostname()}\n")
    with pytest.raises(TemporaryStoreError):
        DotLock(path).acquire(0.05)


def test_old_lock_is_stale(tmp_path):
    path = str(tmp_path / "x.lock")
    with open(path, "w") as f:
        f.write("1:some-other-host\n")
    os.utime(path, (1_000_000_000, 1_000_000_000))
    lock = DotLock(path)
    lock.acquire(0.05)
    lock.release()
    assert not os.path.exists(path)


def test_arrival_key_orders_names_as_they_were_made():
    maker = filenames.NameMaker("host.test")
    made = [maker.make(1_700_000_000 + n * 0.000013, 10) for n in range(200)]
    assert sorted(made) != made  # unpadded numbers: plain string order is wrong
    shuffled = made[100:] + made[:100]
    assert sorted(shuffled, key=filenames.arrival_key) == made


def test_arrival_key_takes_names_of_other_shapes():
    names = ["junk", "1700000001.123_4.host", "1700000000.M5P1Q2.host"]
    assert sorted(names, key=filenames.arrival_key) == [
        "junk",
        "1700000000.M5P1Q2.host",
        "1700000001.123_4.host",
    ]


def _folder(tmp_path):
    for sub in ("tmp", "new", "cur"):
        (tmp_path / sub).mkdir()
    return str(tmp_path)


def test_writer_gives_an_unnamed_file_its_name_when_complete(tmp_path):
    from mailsuite.store.writer import MessageWriter

    writer = MessageWriter()
    writer.deliver(_folder(tmp_path), [b"a\r\n", b"b\r\n"], "1.M1P1Q1.h,S=6", "new", True, 1e9)
    if writer._unnamed is not True:
        pytest.skip("this file system has no O_TMPFILE")
    assert (tmp_path / "new" / "1.M1P1Q1.h,S=6").read_bytes() == b"a\r\nb\r\n"
    assert (tmp_path / "new" / "1.M1P1Q1.h,S=6").stat().st_mtime == 1e9
    assert os.listdir(tmp_path / "tmp") == []


@pytest.mark.parametrize("failing", ["open", "link"])
def test_writer_falls_back_to_tmp_names(tmp_path, monkeypatch, failing):
    import errno

    from mailsuite.store import writer as writer_module

    real_open, real_link = os.open, os.link
    renames = []

    def no_tmpfile_open(path, flags, *args, **kwargs):
        if failing == "open" and flags & getattr(os, "O_TMPFILE", 0) == getattr(os, "O_TMPFILE", -1):
            raise OSError(errno.EOPNOTSUPP, "Operation not supported")
        return real_open(path, flags, *args, **kwargs)

    def no_proc_link(src, dst, *args, **kwargs):
        if failing == "link" and str(src).startswith("/proc/self/fd/"):
            raise OSError(errno.ENOENT, "No such file or directory")
        return real_link(src, dst, *args, **kwargs)

    monkeypatch.setattr(os, "open", no_tmpfile_open)
    monkeypatch.setattr(os, "link", no_proc_link)
    monkeypatch.setattr(os, "rename", lambda a, b: (renames.append(a), os.replace(a, b))[1])
    writer = writer_module.MessageWriter()
    for n in range(2):
        writer.deliver(_folder(tmp_path) if n == 0 else str(tmp_path), [b"x\r\n"], f"{n}.M1", "new",
                       True, None)
    assert sorted(os.listdir(tmp_path / "new")) == ["0.M1", "1.M1"]
    assert os.listdir(tmp_path / "tmp") == []
    assert len(renames) == 2 and writer._unnamed is False  # tried once, then tmp/ names only


def _record_durability_calls(monkeypatch, writer_module, calls=None):
    """Patch the writer's view of write_out/fdatasync/link/fsync to log their order."""
    calls = [] if calls is None else calls
    real = {"write_out": writer_module.writeout.write_out, "fdatasync": os.fdatasync,
            "link": os.link, "fsync": os.fsync}

    def logged(name):
        def call(*args, **kwargs):
            calls.append(name)
            return real[name](*args, **kwargs)
        return call

    monkeypatch.setattr(writer_module.writeout, "write_out", logged("write_out"))
    for name in ("fdatasync", "link", "fsync"):
        monkeypatch.setattr(os, name, logged(name))
    return calls


def test_writer_writes_data_out_before_the_link_and_fsyncs_once_after(tmp_path, monkeypatch):
    from mailsuite.store import writer as writer_module

    calls = _record_durability_calls(monkeypatch, writer_module)
    writer = writer_module.MessageWriter()
    writer.deliver(_folder(tmp_path), [b"a\r\n"], "1.M1", "new", True, None, False)
    if writer._unnamed is not True or not writer_module.writeout._sync_file_range:
        pytest.skip("no O_TMPFILE or no sync_file_range here")
    assert calls == ["write_out", "link", "fsync"]
    assert (tmp_path / "new" / "1.M1").read_bytes() == b"a\r\n"


def test_writer_without_sync_file_range_fdatasyncs_before_the_link(tmp_path, monkeypatch):
    from mailsuite.store import writer as writer_module

    monkeypatch.setattr(writer_module.writeout, "_sync_file_range", None)
    calls = _record_durability_calls(monkeypatch, writer_module)
    writer = writer_module.MessageWriter()
    writer.deliver(_folder(tmp_path), [b"a\r\n"], "1.M1", "new", True, None, False)
    if writer._unnamed is not True:
        pytest.skip("this file system has no O_TMPFILE")
    assert calls == ["write_out", "fdatasync", "link"]
    assert (tmp_path / "new" / "1.M1").read_bytes() == b"a\r\n"


def test_writer_takes_the_name_back_when_the_fsync_after_the_link_fails(tmp_path, monkeypatch):
    import errno

    from mailsuite.errors import TemporaryStoreError
    from mailsuite.store import writer as writer_module

    if not writer_module.writeout._sync_file_range:
        pytest.skip("no sync_file_range here")

    def failing_fsync(fd):
        raise OSError(errno.EIO, "Input/output error")

    monkeypatch.setattr(os, "fsync", failing_fsync)
    writer = writer_module.MessageWriter()
    with pytest.raises(TemporaryStoreError):
        writer.deliver(_folder(tmp_path), [b"a\r\n"], "1.M1", "new", True, None, False)
    assert os.listdir(tmp_path / "new") == []
    assert os.listdir(tmp_path / "tmp") == []


def test_write_out_reports_io_errors_and_unsupported_files(tmp_path):
    from mailsuite.store import writeout

    if writeout._sync_file_range is None:
        pytest.skip("no sync_file_range here")
    path = tmp_path / "f"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        os.write(fd, b"data")
        assert writeout.write_out(fd) is True
    finally:
        os.close(fd)
    with pytest.raises(OSError):
        writeout.write_out(fd)  # closed: EBADF is an error, not "unsupported"
    assert writeout._sync_file_range is not None


def test_batch_writes_all_then_links_all_then_fsyncs_all(tmp_path, monkeypatch):
    """One journal commit for the batch: no fsync before every file is named, the directory
    (one fsync for the batch) before the files; a failing item (disk full while writing it)
    leaves the others alone."""
    import errno

    from mailsuite.store import writer as writer_module

    calls: list[str] = []

    class PoisonWriter(writer_module.MessageWriter):
        def write_chunks(self, fd, chunks):
            calls.append("write")
            if b"poison" in b"".join(chunks):
                raise OSError(errno.ENOSPC, "No space left on device")
            super().write_chunks(fd, chunks)

    folder = _folder(tmp_path)
    writer = PoisonWriter()
    writer.deliver(folder, [b"probe\r\n"], "0.M0", "new", True, None, False)  # finds O_TMPFILE
    if writer._unnamed is not True or not writer_module.writeout._sync_file_range:
        pytest.skip("no O_TMPFILE or no sync_file_range here")
    calls.clear()
    _record_durability_calls(monkeypatch, writer_module, calls)
    items = [(folder, [b"m%d poison\r\n" % n if n == 1 else b"m%d\r\n" % n], f"{n + 1}.M1", "new")
             for n in range(3)]
    results = writer.deliver_batch(items, True, lambda path: calls.append(f"sync {path}"))
    assert [r is None for r in results] == [True, False, True]
    assert "disk full" in str(results[1])
    new_dir = os.path.join(folder, "new")
    assert calls == ["write", "write", "write", "write_out", "link", "write_out", "link",
                     f"sync {new_dir}", "fsync", "fsync"]
    assert sorted(os.listdir(tmp_path / "new")) == ["0.M0", "1.M1", "3.M1"]
    assert os.listdir(tmp_path / "tmp") == []


def _probed_writer(writer_module, folder):
    """A writer that has found O_TMPFILE working (the batch path), or a skip."""
    writer = writer_module.MessageWriter()
    writer.deliver(folder, [b"probe\r\n"], "0.M0", "new", True, None, False)
    if writer._unnamed is not True:
        pytest.skip("no O_TMPFILE here")
    return writer


def test_batch_into_a_directory_the_file_fsync_covers_fsyncs_only_the_files(
    tmp_path, monkeypatch
):
    """Where a file's fsync makes its new name durable (NameDurability), the directory is not
    fsynced; every file still is, after its link."""
    from mailsuite.store import writer as writer_module

    folder = _folder(tmp_path)
    writer = _probed_writer(writer_module, folder)
    if not writer_module.writeout._sync_file_range:
        pytest.skip("no sync_file_range here")
    calls = _record_durability_calls(monkeypatch, writer_module)
    new_dir = os.path.join(folder, "new")
    asked = []
    items = [(folder, [b"m%d\r\n" % n], f"{n + 1}.M1", "new") for n in range(2)]
    results = writer.deliver_batch(
        items, True, lambda path: calls.append(f"sync {path}"),
        file_fsync_covers_name=lambda path: asked.append(path) or True)
    assert results == [None, None]
    assert asked == [new_dir]
    assert calls == ["write_out", "link", "write_out", "link", "fsync", "fsync"]
    assert sorted(os.listdir(new_dir)) == ["0.M0", "1.M1", "2.M1"]


def test_batch_without_sync_file_range_fsyncs_after_the_link_where_the_directory_is_skipped(
    tmp_path, monkeypatch
):
    """fdatasync before the link made the data durable, not the name: with no fsync of the
    directory, the file is fsynced after its link as well."""
    from mailsuite.store import writer as writer_module

    folder = _folder(tmp_path)
    writer = _probed_writer(writer_module, folder)
    monkeypatch.setattr(writer_module.writeout, "_sync_file_range", None)
    calls = _record_durability_calls(monkeypatch, writer_module)
    results = writer.deliver_batch([(folder, [b"m\r\n"], "1.M1", "new")], True,
                                   lambda path: calls.append("sync"),
                                   file_fsync_covers_name=lambda path: True)
    assert results == [None]
    assert calls == ["write_out", "fdatasync", "link", "fsync"]


def test_batch_keeps_the_directory_fsync_for_a_file_delivered_the_classic_way(tmp_path):
    """The first delivery of a writer finds out whether O_TMPFILE works, through ``deliver``,
    which may rename a named tmp/ file after its fsync: its directory is fsynced whatever the
    file system."""
    from mailsuite.store import writer as writer_module

    folder = _folder(tmp_path)
    synced = []
    results = writer_module.MessageWriter().deliver_batch(
        [(folder, [b"m%d\r\n" % n], f"{n}.M1", "new") for n in range(2)], True,
        synced.append, file_fsync_covers_name=lambda path: True)
    assert results == [None, None]
    assert synced == [os.path.join(folder, "new")]


def test_write_chunks_writes_every_byte_in_order_through_short_writes(tmp_path, monkeypatch):
    """writev may take less than it is given; what it leaves is written next, in order, and
    more chunks than one writev takes (IOV_MAX) are fine."""
    from mailsuite.store.writer import MessageWriter

    real_writev = os.writev
    calls = []

    def at_most_1000(fd, buffers):
        calls.append(len(buffers))
        taken, out = 0, []
        for buffer in buffers:
            part = bytes(buffer[: 1000 - taken])
            out.append(part)
            taken += len(part)
            if taken == 1000:
                break
        return real_writev(fd, out)

    monkeypatch.setattr(os, "writev", at_most_1000)
    chunks = [bytes([n % 251]) * (n % 7) for n in range(3000)] + [b"x" * 50_000, b"", b"end"]
    path = tmp_path / "f"
    fd = os.open(path, os.O_WRONLY | os.O_CREAT, 0o600)
    try:
        MessageWriter().write_chunks(fd, chunks)
    finally:
        os.close(fd)
    assert path.read_bytes() == b"".join(chunks)
    assert max(calls) == 1024

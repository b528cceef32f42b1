"""Spare unnamed files (mailsuite.store.spares) and the committer that makes them."""

from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from mailsuite.store import spares as spares_module
from mailsuite.store.committer import DeliveryCommitter
from mailsuite.store.dirsync import SharedDirectoryFsync
from mailsuite.store.settings import StoreSettings
from mailsuite.store.spares import SpareFiles
from mailsuite.store.writer import MessageWriter, fsync_dir


def _folder(path):
    for sub in ("tmp", "new", "cur"):
        (path / sub).mkdir(parents=True)
    return str(path)


def _needs_tmpfile(folder):
    try:
        os.close(spares_module.open_unnamed(folder))
    except OSError:
        pytest.skip("this file system has no O_TMPFILE")


def _counting_opens(monkeypatch):
    opened = []
    real = spares_module.open_unnamed

    def counted(folder_dir):
        opened.append(folder_dir)
        return real(folder_dir)

    monkeypatch.setattr(spares_module, "open_unnamed", counted)
    return opened


def test_take_hands_out_the_prepared_spare_once(tmp_path, monkeypatch):
    folder = _folder(tmp_path / "a")
    _needs_tmpfile(folder)
    opened = _counting_opens(monkeypatch)
    spares = SpareFiles()
    spares.prepare([folder])
    assert (len(spares), opened) == (1, [folder])
    first = spares.take(folder)
    assert (len(spares), opened) == (0, [folder])  # the spare, not a new file
    second = spares.take(folder)  # none left: made on demand
    assert opened == [folder, folder] and first != second
    for fd in (first, second):
        os.close(fd)
    assert os.listdir(os.path.join(folder, "tmp")) == []  # unnamed: nothing to see or clean


def test_prepare_keeps_one_per_folder_and_gives_up_the_least_recently_used(tmp_path, monkeypatch):
    folders = [_folder(tmp_path / name) for name in "abc"]
    _needs_tmpfile(folders[0])
    closed = []
    real_close = os.close
    spares = SpareFiles(limit=2)
    spares.prepare(folders[:2])
    spares.prepare(folders[:1])  # a already has one: kept, now the most recent
    monkeypatch.setattr(os, "close", lambda fd: (closed.append(fd), real_close(fd))[1])
    spares.prepare(folders[2:])  # over the limit: b's spare goes
    assert len(spares) == 2 and len(closed) == 1
    opened = _counting_opens(monkeypatch)
    for folder in (folders[0], folders[2]):
        real_close(spares.take(folder))
    assert opened == []  # both were spares
    real_close(spares.take(folders[1]))
    assert opened == [folders[1]]


def test_prepare_skips_a_folder_that_cannot_have_one(tmp_path):
    folder = _folder(tmp_path / "a")
    _needs_tmpfile(folder)
    spares = SpareFiles()
    spares.prepare([str(tmp_path / "gone"), folder])
    assert len(spares) == 1
    with pytest.raises(OSError):
        spares.take(str(tmp_path / "gone"))
    spares.close()
    assert len(spares) == 0


class _Synchronous:
    """A thread pool and reactor that run everything at once, in this thread; ``order``
    records when the reactor is handed the results."""

    def __init__(self, order):
        self.order = order

    def callInThread(self, f, *args):
        f(*args)

    def callFromThread(self, f, *args):
        self.order.append("answered")
        f(*args)


def test_committer_prepares_a_spare_after_answering_and_the_next_delivery_uses_it(
    tmp_path, monkeypatch
):
    folder = _folder(tmp_path / "inbox")
    _needs_tmpfile(folder)
    order = []
    store = SimpleNamespace(reactor=_Synchronous(order), writer=MessageWriter(),
                            dir_fsync=SharedDirectoryFsync(fsync_dir), settings=StoreSettings())
    store.writer._unnamed = True  # found out by _needs_tmpfile
    committer = DeliveryCommitter(store, runner=_Synchronous(order))
    real_open = spares_module.open_unnamed
    monkeypatch.setattr(spares_module, "open_unnamed",
                        lambda path: (order.append("open"), real_open(path))[1])
    first = committer.deliver(folder, [b"Subject: 1\r\n\r\none\r\n"], "1.M1")
    assert first.called
    assert order == ["open", "answered", "open"]  # the spare is made after the answer
    order.clear()
    second = committer.deliver(folder, [b"Subject: 2\r\n\r\ntwo\r\n"], "2.M1")
    assert second.called
    assert order == ["answered", "open"]  # took the spare; made the next one
    assert sorted(os.listdir(os.path.join(folder, "new"))) == ["1.M1", "2.M1"]
    with open(os.path.join(folder, "new", "2.M1"), "rb") as f:
        assert f.read() == b"Subject: 2\r\n\r\ntwo\r\n"
    assert os.listdir(os.path.join(folder, "tmp")) == []
    committer.close()
    assert len(committer.spares) == 0

"""The committer's own thread (mailsuite.store.committer.CommitThread), and the committer
going on after a bug in its thread."""

from __future__ import annotations

import os
import threading
from types import SimpleNamespace

import pytest
from twisted.logger import globalLogPublisher

from mailsuite.errors import TemporaryStoreError
from mailsuite.store.committer import CommitThread, DeliveryCommitter
from mailsuite.store.dirsync import SharedDirectoryFsync
from mailsuite.store.name_durability import NameDurability
from mailsuite.store.settings import StoreSettings
from mailsuite.store.spares import open_unnamed
from mailsuite.store.writer import MessageWriter, fsync_dir


def test_calls_run_in_order_in_one_other_thread() -> None:
    runner = CommitThread()
    seen: list[tuple[int, int]] = []
    done = threading.Event()
    for n in range(5):
        runner.callInThread(lambda n=n: seen.append((n, threading.get_ident())))
    runner.callInThread(done.set)
    assert done.wait(30)
    runner.stop()
    assert [n for n, _ in seen] == [0, 1, 2, 3, 4]
    assert len({ident for _, ident in seen}) == 1
    assert seen[0][1] != threading.get_ident()


def test_stop_lets_the_call_in_progress_and_those_given_before_finish() -> None:
    runner = CommitThread()
    started, release = threading.Event(), threading.Event()
    finished: list[str] = []

    def slow() -> None:
        started.set()
        release.wait(30)
        finished.append("slow")

    runner.callInThread(slow)
    runner.callInThread(lambda: finished.append("next"))
    assert started.wait(30)
    stopper = threading.Thread(target=runner.stop)
    stopper.start()
    assert stopper.is_alive()  # still waiting for the call in progress
    release.set()
    stopper.join(30)
    assert not stopper.is_alive()
    assert finished == ["slow", "next"]


def test_a_failing_call_is_logged_and_the_thread_goes_on() -> None:
    runner = CommitThread()
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    try:
        done = threading.Event()
        runner.callInThread(lambda: 1 / 0)
        runner.callInThread(done.set)
        assert done.wait(30)
    finally:
        globalLogPublisher.removeObserver(events.append)
        runner.stop()
    failures = [e for e in events if e.get("log_format") == "commit thread call failed"]
    assert len(failures) == 1
    assert failures[0]["log_failure"].check(ZeroDivisionError)


def test_a_stopped_runner_starts_again_when_given_work() -> None:
    runner = CommitThread()
    runner.stop()  # never started: nothing to wait for
    done = threading.Event()
    runner.callInThread(done.set)
    assert done.wait(30)
    runner.stop()


def _committer(
    tmp_path, settings: StoreSettings | None = None, dir_fsync=fsync_dir
) -> tuple[DeliveryCommitter, str, list[dict]]:
    """A committer on a real folder with its own thread; results come back in that thread."""
    folder = tmp_path / "inbox"
    for sub in ("tmp", "new", "cur"):
        (folder / sub).mkdir(parents=True)
    store = SimpleNamespace(reactor=SimpleNamespace(callFromThread=lambda f, *a: f(*a)),
                            writer=MessageWriter(), dir_fsync=SharedDirectoryFsync(dir_fsync),
                            settings=settings or StoreSettings())
    events: list[dict] = []
    globalLogPublisher.addObserver(events.append)
    return DeliveryCommitter(store), str(folder), events


def _outcome(d) -> object:
    """Wait (bounded) for the Deferred ``d`` fired from the commit thread; its result."""
    done = threading.Event()
    results: list[object] = []
    d.addBoth(lambda r: (results.append(r), done.set()))
    assert done.wait(30), "the delivery was never answered"
    return results[0]


def test_a_bug_while_making_spares_does_not_stop_later_deliveries(tmp_path) -> None:
    committer, folder, events = _committer(tmp_path)
    real_prepare, calls = committer.spares.prepare, []

    def prepare_once_broken(folders) -> None:
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("bug")
        real_prepare(folders)

    committer.spares.prepare = prepare_once_broken  # type: ignore[method-assign]
    try:
        try:  # spares are made only where unnamed files exist
            os.close(open_unnamed(folder))
        except OSError:
            pytest.skip("this file system has no O_TMPFILE")
        committer._store.writer._unnamed = True  # as a first delivery would find out
        assert _outcome(committer.deliver(folder, [b"Subject: 1\r\n\r\n1\r\n"], "1.M1")) is None
        # The broken spare-making happens right after; the next delivery must still be written.
        assert _outcome(committer.deliver(folder, [b"Subject: 2\r\n\r\n2\r\n"], "2.M1")) is None
    finally:
        committer.close()
        globalLogPublisher.removeObserver(events.append)
    assert sorted(os.listdir(os.path.join(folder, "new"))) == ["1.M1", "2.M1"]


def test_a_bug_while_committing_fails_the_batch_and_the_next_one_is_written(tmp_path) -> None:
    committer, folder, events = _committer(tmp_path)
    real_commit, calls = committer._commit, []

    def commit_once_broken(batch):
        calls.append(1)
        if len(calls) == 1:
            raise RuntimeError("bug")
        return real_commit(batch)

    committer._commit = commit_once_broken  # type: ignore[method-assign]
    try:
        first = _outcome(committer.deliver(folder, [b"Subject: 1\r\n\r\n1\r\n"], "1.M1"))
        assert first.check(TemporaryStoreError)  # type: ignore[attr-defined]  # the client retries
        assert _outcome(committer.deliver(folder, [b"Subject: 2\r\n\r\n2\r\n"], "2.M1")) is None
    finally:
        committer.close()
        globalLogPublisher.removeObserver(events.append)
    assert os.listdir(os.path.join(folder, "new")) == ["2.M1"]
    assert any(e.get("log_format") == "commit thread call failed" for e in events)


@pytest.mark.parametrize(("mode", "file_system", "fsyncs_new"), [
    ("auto", "ext4", False), ("auto", "tmpfs", True), ("always", "ext4", True)])
def test_the_directory_fsync_follows_the_setting_and_the_file_system(
    tmp_path, mode, file_system, fsyncs_new
) -> None:
    """``[store] directory_fsync``: "auto" leaves out the fsync of ``new/`` on a file system whose
    file fsync covers the new name, "always" never does."""
    synced: list[str] = []

    def recorded_fsync_dir(path: str) -> None:
        synced.append(path)
        fsync_dir(path)

    committer, folder, events = _committer(
        tmp_path, StoreSettings(directory_fsync=mode), recorded_fsync_dir)
    mountinfo = tmp_path / "mountinfo"
    mountinfo.write_text(f"27 1 254:0 / / rw - {file_system} /dev/vda rw\n")
    linux = SimpleNamespace(sysname="Linux", release="6.1.0")
    committer.name_durability = NameDurability(mode, str(mountinfo), linux)
    try:
        for n in range(3):  # the first finds out about O_TMPFILE and syncs new/ in any case
            assert _outcome(committer.deliver(folder, [b"Subject: %d\r\n\r\n" % n], f"{n}.M1")) \
                is None
    finally:
        committer.close()
        globalLogPublisher.removeObserver(events.append)
    if not committer._store.writer.uses_unnamed_files:
        pytest.skip("this file system has no O_TMPFILE: every delivery renames")
    new_dir = os.path.join(folder, "new")
    assert synced == [new_dir] * (3 if fsyncs_new else 1)
    assert sorted(os.listdir(new_dir)) == ["0.M1", "1.M1", "2.M1"]

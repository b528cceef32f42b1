"""The committer's own thread (mailsuite.store.committer.CommitThread)."""

from __future__ import annotations

import threading

from twisted.logger import globalLogPublisher

from mailsuite.store.committer import CommitThread


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

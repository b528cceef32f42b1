"""Shared pytest fixtures: a real mailsuite server in a subprocess (see tests/harness.py).

- ``mail_server``: a started server (hostname mail.example.test, domain example.test, every
  listener on a free loopback port), stopped after the test.
- ``mail_server_factory``: ``mail_server_factory(extra_toml="...", **kwargs)`` builds and starts
  one with more configuration; every server it made is stopped after the test.
"""

from __future__ import annotations

import atexit
import shutil
import sys
import tempfile
from pathlib import Path

import pytest
from twisted.trial import unittest as trial_unittest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import MailServer

# One scratch directory per test process, removed when the process ends: trial runs a test's
# cleanups *before* its tearDown, so a per-test cleanup would pull the directory from under
# tearDown code that still flushes files into it.
_SCRATCH = Path(tempfile.mkdtemp(prefix="mailsuite-tests-"))
atexit.register(shutil.rmtree, _SCRATCH, True)


def _mktemp_outside_checkout(self: trial_unittest.TestCase) -> str:
    """trial's mktemp() names a fresh path under the working directory, i.e. in the checkout.

    Under pytest nothing gathers those into _trial_temp, so hand out a fresh path in the
    process's scratch directory instead; as with trial, the path itself is not created.
    """
    return str(Path(tempfile.mkdtemp(prefix=f"{type(self).__name__}-", dir=_SCRATCH)) / "t")


trial_unittest.TestCase.mktemp = _mktemp_outside_checkout  # type: ignore[method-assign]


@pytest.fixture
def mail_server_factory(tmp_path):
    servers: list[MailServer] = []

    def make(extra_toml: str = "", start: bool = True, **kwargs) -> MailServer:
        server = MailServer(tmp_path / f"server{len(servers)}", extra_toml, **kwargs)
        servers.append(server)
        return server.start() if start else server

    yield make
    for server in servers:
        server.stop()


@pytest.fixture
def mail_server(mail_server_factory) -> MailServer:
    return mail_server_factory()

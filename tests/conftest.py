"""Shared pytest fixtures: a real mailsuite server in a subprocess (see tests/harness.py).

- ``mail_server``: a started server (hostname mail.example.test, domain example.test, every
  listener on a free loopback port), stopped after the test.
- ``mail_server_factory``: ``mail_server_factory(extra_toml="...", **kwargs)`` builds and starts
  one with more configuration; every server it made is stopped after the test.
"""

from __future__ import annotations

import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent))

from harness import MailServer


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

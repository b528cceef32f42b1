"""twistd's log shows events from ``[log] level`` up (mailsuite.twistd_log).

End to end against ``twistd -n mailsuite``: the mail events are written once, to the mail log,
unless ``level = "debug"`` asks for them in twistd's log too, or there is no mail log. A SIGHUP
makes the server log an info line after the SMTP session, so that line's arrival proves that
everything logged before it has been printed.
"""

from __future__ import annotations

import os
import signal
import smtplib
import time

from twisted.logger import ILogObserver, LogLevel, globalLogPublisher
from twisted.python import components

from mailsuite import twistd_log

HUP_LINE = "SIGHUP received"


def _smtp_session_then_hup(server) -> str:
    with smtplib.SMTP("127.0.0.1", server.ports["smtp"], timeout=30) as smtp:
        smtp.ehlo("client.example.test")
    os.kill(server.process.pid, signal.SIGHUP)
    assert server.wait_for_log(HUP_LINE)
    return server.log_text()


def test_mail_events_are_written_once_by_default(mail_server_factory):
    server = mail_server_factory()
    text = _smtp_session_then_hup(server)
    assert "mailsuite: smtp listening on" in text  # info lines are shown
    assert "connect client=127.0.0.1" not in text
    mail_log = (server.data_dir / ".mailsuite" / "mail.log").read_text()
    assert "connect client=127.0.0.1 role=mx" in mail_log


def test_debug_level_shows_mail_events_in_twistd_log(mail_server_factory):
    server = mail_server_factory('[log]\nlevel = "debug"\n')
    text = _smtp_session_then_hup(server)
    assert "connect client=127.0.0.1 role=mx" in text


def test_without_a_mail_log_twistd_log_has_the_mail_events(mail_server_factory):
    server = mail_server_factory('[log]\nmail_log = ""\n')
    text = _smtp_session_then_hup(server)
    assert "connect client=127.0.0.1 role=mx" in text
    assert not (server.data_dir / ".mailsuite" / "mail.log").exists()


def test_filtered_observer_drops_events_below_the_level():
    """A legacy observer (twistd --syslog gives one) is wrapped and filtered too."""
    seen: list[dict] = []
    observer = twistd_log.filtered(seen.append, LogLevel.info)
    for level in (LogLevel.debug, LogLevel.info):
        observer({"log_level": level, "log_format": level.name, "log_namespace": "t",
                  "log_time": time.time()})
    assert [e.get("log_format") for e in seen] == ["info"]


def test_install_leaves_custom_loggers_and_non_twistd_runs_alone():
    application = components.Componentized()
    assert not twistd_log.install(application, None, "info")
    assert not twistd_log.install(application, {"logger": "my.observer"}, "info")
    assert application.getComponent(ILogObserver, None) is None
    mine = globalLogPublisher  # any observer already set by the application's author
    application.setComponent(ILogObserver, mine)
    assert not twistd_log.install(application, {"logger": None, "nodaemon": True}, "info")
    assert application.getComponent(ILogObserver, None) is mine

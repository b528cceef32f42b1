"""mailsuite.maillog: one line per event, secrets redacted."""

from twisted.internet import task

from mailsuite.maillog import REDACTED, MailLog, format_line


def test_line_format():
    line = format_line("delivered", {"id": "1a", "to": "alice@example.test"}, 0)
    assert line == "1970-01-01T00:00:00Z delivered id=1a to=alice@example.test"


def test_values_with_spaces_and_newlines_are_quoted():
    line = format_line("rejected", {"reason": "bad thing\r\nX: y"}, 0)
    assert "\n" not in line and 'reason="bad thing\\r\\nX: y"' in line


def test_secrets_redacted():
    line = format_line("auth", {"user": "alice", "password": "hunter2", "auth_data": "AGFsaWNl"}, 0)
    assert "hunter2" not in line and "AGFsaWNl" not in line
    assert f"password={REDACTED}" in line


def test_writes_file(tmp_path):
    log = MailLog(tmp_path / "mail.log", clock=task.Clock())
    log.log("received", id="q1", size=10)
    log.log("event", event="nested")
    log.close()
    lines = (tmp_path / "mail.log").read_text().splitlines()
    assert lines == ["1970-01-01T00:00:00Z received id=q1 size=10",
                     "1970-01-01T00:00:00Z event event=nested"]

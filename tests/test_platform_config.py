"""mailsuite.config: TOML into frozen dataclasses; one clear ConfigError per problem."""

from pathlib import Path

import pytest

from mailsuite.config import SERVICES, Config, load_config
from mailsuite.errors import ConfigError

DEFAULT_PORTS = {"smtp": 8025, "submission": 8587, "submissions": 8465, "pop3": 8110,
                 "pop3s": 8995, "imap": 8143, "imaps": 8993}


def write(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "mailsuite.toml"
    path.write_text(text)
    return path


def test_embedded_defaults(tmp_path):
    config = load_config(None, cwd=tmp_path)
    assert config.source == "<embedded defaults>"
    assert config.data_dir == tmp_path / "maildirs"
    assert config.domains == ("localhost",)
    assert config.hostname
    for name, port in DEFAULT_PORTS.items():
        assert getattr(config.listen, name) == [f"tcp:port={port}:interface=127.0.0.1"]


def test_default_ports_documented_for_every_service():
    assert set(SERVICES) == set(DEFAULT_PORTS)


def test_mailsuite_toml_in_cwd_is_used(tmp_path):
    write(tmp_path, 'hostname = "mx.example.test"\n')
    assert load_config(None, cwd=tmp_path).hostname == "mx.example.test"


def test_full_file(tmp_path):
    path = write(tmp_path, """
hostname = "Mail.Example.TEST"
data_dir = "state"
domains = ["Example.test", "other.test"]
[listen]
smtp = ["tcp:port=25"]
imaps = []
[tls]
cert = "fullchain.pem"
key = "/etc/ssl/privkey.pem"
[smtp]
max_recipients = 50
idle_timeout = 60
[relay]
nameservers = ["127.0.0.1:5353"]
[pop3]
allow_plaintext_auth = true
[store]
fsync = false
""")
    config = load_config(path)
    assert config.hostname == "mail.example.test"
    assert config.data_dir == tmp_path / "state"
    assert config.domains == ("example.test", "other.test")
    assert config.listen.smtp == ["tcp:port=25"] and config.listen.imaps == []
    assert config.listen.pop3 == ["tcp:port=8110:interface=127.0.0.1"]
    assert config.cert_path == tmp_path / "fullchain.pem"
    assert config.key_path == Path("/etc/ssl/privkey.pem")
    assert config.smtp.max_recipients == 50
    assert config.smtp.idle_timeout == 60.0 and isinstance(config.smtp.idle_timeout, float)
    assert config.relay.nameservers == ["127.0.0.1:5353"]
    assert config.pop3.allow_plaintext_auth is True
    assert config.store.fsync is False


def test_config_is_frozen(tmp_path):
    config = load_config(None, cwd=tmp_path)
    with pytest.raises(AttributeError):
        config.hostname = "x"  # type: ignore[misc]


@pytest.mark.parametrize("text, pattern", [
    ('hostnam = "x"\n', r"mailsuite.toml: hostnam: unknown key \(did you mean 'hostname'\?\)"),
    ('[smtp]\nmax_recipient = 5\n', r"mailsuite.toml: smtp.max_recipient: unknown key"),
    ('[smtp]\nmax_recipients = "5"\n', r"mailsuite.toml: smtp.max_recipients: expected an integer"),
    ('[smtp]\nmax_recipients = true\n', r"smtp.max_recipients: expected an integer"),
    ('[smtp]\nmax_message_memory = 1000000\n',
     r"mailsuite.toml: \[smtp\]: max_message_memory: at least max_message_size"),
    ('[store]\nfsync = 1\n', r"mailsuite.toml: store.fsync: expected true or false"),
    ('domains = "example.test"\n', r"mailsuite.toml: domains: expected a list of strings"),
    ('domains = ["ok.test", "bad domain"]\n', r"mailsuite.toml: domains\[1\]: "),
    ('[listen]\nsmtp = "tcp:port=25"\n', r"mailsuite.toml: listen.smtp: expected a list"),
    ('[listen]\nlmtp = []\n', r"mailsuite.toml: listen.lmtp: unknown key"),
    ('[tls]\ncert = "c.pem"\n', r"mailsuite.toml: tls.key: cert and key must be given together"),
    ('smtp = 5\n', r"mailsuite.toml: smtp: expected a table"),
    ('hostname = "a b"\n', r"mailsuite.toml: hostname: "),
    ('hostname = \n', r"mailsuite.toml: TOML syntax error"),
    ('[dkim]\nselector = "a.b"\n', r"mailsuite.toml: \[dkim\]: selector: 'a.b' is not a DNS label"),
    ('[dkim]\nkey_bits = 512\n', r"mailsuite.toml: \[dkim\]: key_bits: 512 is outside"),
    ('[auth]\nmax_failures = 3\n', r"mailsuite.toml: auth.max_failures: unknown key"),
    ('[auth]\nfailures_to_block = 2.5\n',
     r"mailsuite.toml: auth.failures_to_block: expected an integer, got 2.5"),
    ('[auth]\nfailures_to_block = 0\n', r"mailsuite.toml: \[auth\]: failures_to_block: at least 1"),
    ('[auth]\ntracked_addresses = -1\n', r"mailsuite.toml: \[auth\]: tracked_addresses: at least 1"),
    ('[auth]\nfailure_window = 0\n', r"mailsuite.toml: \[auth\]: failure_window: more than 0"),
    ('[auth]\nblock_duration = -5\n', r"mailsuite.toml: \[auth\]: block_duration: more than 0"),
    ('[auth]\nblock_duration = nan\n', r"mailsuite.toml: \[auth\]: block_duration: more than 0"),
    ('[auth]\nblock_duration = "15m"\n', r"mailsuite.toml: auth.block_duration: expected a number"),
    ('[auth]\nfailure_delay = -1\n', r"mailsuite.toml: \[auth\]: failure_delay: 0 or more"),
    ('[auth]\nmax_failure_delay = 0.5\n',
     r"mailsuite.toml: \[auth\]: max_failure_delay: at least failure_delay"),
    ('[auth]\nexempt_networks = "127.0.0.1"\n',
     r"mailsuite.toml: auth.exempt_networks: expected a list of strings"),
    ('[auth]\nexempt_networks = ["127.0.0.0/33"]\n',
     r"mailsuite.toml: \[auth\]: exempt_networks: '127.0.0.0/33' is not an IP network"),
])
def test_bad_config_names_file_key_and_problem(tmp_path, text, pattern):
    with pytest.raises(ConfigError, match=pattern):
        load_config(write(tmp_path, text))


def test_auth_table(tmp_path):
    config = load_config(write(tmp_path, """
[auth]
failures_to_block = 3
failure_window = 60
block_duration = 120
failure_delay = 0.25
max_failure_delay = 2
tracked_addresses = 500
exempt_networks = ["127.0.0.1/32", "::1"]
"""))
    auth = config.auth
    assert (auth.failures_to_block, auth.tracked_addresses) == (3, 500)
    assert (auth.failure_window, auth.block_duration) == (60.0, 120.0)
    assert isinstance(auth.block_duration, float)
    assert (auth.failure_delay, auth.max_failure_delay) == (0.25, 2.0)
    assert auth.exempt_networks == ["127.0.0.1/32", "::1"]


def test_auth_defaults_without_the_table(tmp_path):
    auth = load_config(write(tmp_path, 'hostname = "mx.example.test"\n')).auth
    assert (auth.failures_to_block, auth.failure_window, auth.block_duration) == (10, 600.0, 900.0)
    assert (auth.failure_delay, auth.max_failure_delay) == (1.0, 16.0)
    assert auth.exempt_networks == []


def test_missing_file(tmp_path):
    with pytest.raises(ConfigError, match="nothere.toml: cannot read"):
        load_config(tmp_path / "nothere.toml")


def test_state_paths(tmp_path):
    config = load_config(write(tmp_path, 'data_dir = "/srv/mail"\n'))
    assert config.state_dir == Path("/srv/mail/.mailsuite")
    assert config.mail_log_path == Path("/srv/mail/.mailsuite/mail.log")


def test_mail_log_can_be_disabled(tmp_path):
    assert load_config(write(tmp_path, '[log]\nmail_log = ""\n')).mail_log_path is None


def test_every_settings_field_is_accepted(tmp_path):
    """Each field of each part's settings can be set from TOML with its own default value."""
    import dataclasses

    from harness import toml_value

    defaults = Config()
    lines = []
    for table in ("smtp", "relay", "imap", "pop3", "store", "auth"):
        lines.append(f"[{table}]")
        for f in dataclasses.fields(getattr(defaults, table)):
            value = getattr(getattr(defaults, table), f.name)
            if value is None:  # TOML has no null: leaving the key out means the default
                continue
            lines.append(f"{f.name} = {toml_value(value)}")
    config = load_config(write(tmp_path, "\n".join(lines) + "\n"))
    for table in ("smtp", "relay", "imap", "pop3", "store", "auth"):
        assert getattr(config, table) == getattr(defaults, table)


def test_generic_types_dict_literal_optional(tmp_path):
    """Fields parts may add later: tables, choices and optional values are checked too."""
    import dataclasses
    from typing import Literal

    from mailsuite.config import parse_table

    @dataclasses.dataclass(frozen=True)
    class Example:
        routes: dict[str, str] = dataclasses.field(default_factory=dict)
        mode: Literal["fast", "safe"] = "safe"
        limit: int | None = None

    parsed = parse_table(Example, {"routes": {"a.test": "mx.a.test:25"}, "mode": "fast",
                                   "limit": 3}, "f.toml", "x")
    assert parsed == Example({"a.test": "mx.a.test:25"}, "fast", 3)
    with pytest.raises(ConfigError, match=r"f.toml: x.mode: expected one of 'fast', 'safe'"):
        parse_table(Example, {"mode": "slow"}, "f.toml", "x")
    with pytest.raises(ConfigError, match=r"f.toml: x.routes.a.test: expected a string"):
        parse_table(Example, {"routes": {"a.test": 25}}, "f.toml", "x")
    with pytest.raises(ConfigError, match=r"f.toml: x.limit: expected an integer"):
        parse_table(Example, {"limit": "3"}, "f.toml", "x")

"""The ``mailsuite`` command: accounts, aliases, domains, catch-all, DNS records, exit codes."""

import io
import json

import pytest

from mailsuite import cli
from mailsuite.accounts import FileAccounts


@pytest.fixture
def config(tmp_path):
    path = tmp_path / "mailsuite.toml"
    path.write_text('hostname = "mail.example.test"\ndomains = ["example.test"]\n'
                    'data_dir = "data"\n[listen]\nsmtp = ["tcp:port=25"]\n'
                    'submission = ["tcp:587"]\npop3 = []\n')
    return path


def run(config, *args, stdin=""):
    """Run the CLI in-process; return (exit code, stdout, stderr)."""
    import contextlib
    import sys

    out, err = io.StringIO(), io.StringIO()
    old = sys.stdin
    sys.stdin = io.StringIO(stdin)
    try:
        with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
            try:
                code = cli.main(["--config", str(config), *args])
            except SystemExit as exc:
                code = exc.code
    finally:
        sys.stdin = old
    return code, out.getvalue(), err.getvalue()


def accounts(config):
    return FileAccounts.in_data_dir(config.parent / "data", ["example.test"])


def test_user_add_with_password_stdin(config):
    code, out, _ = run(config, "user", "add", "Alice@Example.test", "--password-stdin",
                       stdin="secret one\n")
    assert code == 0 and "alice@example.test added" in out
    assert accounts(config).user_exists("alice@example.test")


def test_user_add_without_terminal_refuses(config):
    code, _, err = run(config, "user", "add", "alice@example.test")
    assert code == 1 and "--password-stdin" in err


def test_user_add_twice_fails(config):
    run(config, "user", "add", "alice@example.test", "--password-stdin", stdin="pw\n")
    code, _, err = run(config, "user", "add", "alice@example.test", "--password-stdin",
                       stdin="pw\n")
    assert code == 1 and "already exists" in err


def test_user_add_unknown_domain_fails_with_hint(config):
    code, _, err = run(config, "user", "add", "a@nowhere.test", "--password-stdin", stdin="pw\n")
    assert code == 1 and "domain add nowhere.test" in err


def test_user_add_invalid_address(config):
    code, _, err = run(config, "user", "add", "no-at-sign", "--password-stdin", stdin="pw\n")
    assert code == 1 and "no @" in err


def test_user_list_and_del(config):
    run(config, "user", "add", "bob@example.test", "--password-stdin", stdin="pw\n")
    assert run(config, "user", "list")[1] == "bob@example.test\n"
    assert run(config, "user", "del", "bob@example.test")[0] == 0
    assert run(config, "user", "list")[1] == ""
    assert run(config, "user", "del", "bob@example.test")[0] == 1


def test_user_passwd(config):
    run(config, "user", "add", "bob@example.test", "--password-stdin", stdin="old\n")
    before = json.loads((config.parent / "data/.mailsuite/accounts.json").read_text())
    assert run(config, "user", "passwd", "bob@example.test", "--password-stdin",
               stdin="new\n")[0] == 0
    after = json.loads((config.parent / "data/.mailsuite/accounts.json").read_text())
    assert before["users"] != after["users"]


def test_user_quota(config):
    run(config, "user", "add", "bob@example.test", "--password-stdin", stdin="pw\n")
    run(config, "user", "quota", "bob@example.test", "--bytes", "1000", "--messages", "5")
    quota = accounts(config).quota_of("bob@example.test")
    assert (quota.bytes_limit, quota.messages_limit) == (1000, 5)
    # A limit left out stays; "default" returns one limit to the [store] default.
    assert run(config, "user", "quota", "bob@example.test", "--messages", "7")[0] == 0
    quota = accounts(config).quota_of("bob@example.test")
    assert (quota.bytes_limit, quota.messages_limit) == (1000, 7)
    code, out, _ = run(config, "user", "quota", "bob@example.test", "--bytes", "default")
    assert code == 0 and out == "quota of bob@example.test: bytes=default messages=7\n"
    quota = accounts(config).quota_of("bob@example.test")
    assert (quota.bytes_limit, quota.messages_limit) == (None, 7)
    assert run(config, "user", "quota", "bob@example.test", "--bytes", "-1")[0] != 0


def test_alias_add_list_del(config):
    assert run(config, "alias", "add", "team@example.test", "a@example.test",
               "x@remote.test")[0] == 0
    assert run(config, "alias", "list")[1] == "team@example.test -> a@example.test, x@remote.test\n"
    assert run(config, "alias", "del", "team@example.test", "x@remote.test")[0] == 0
    assert run(config, "alias", "list")[1] == "team@example.test -> a@example.test\n"
    assert run(config, "alias", "del", "team@example.test")[0] == 0
    assert run(config, "alias", "list")[1] == ""


def test_alias_del_unknown(config):
    code, _, err = run(config, "alias", "del", "nope@example.test")
    assert code == 1 and "no alias" in err


def test_domain_add_list_del(config):
    assert run(config, "domain", "add", "Other.test")[0] == 0
    assert run(config, "domain", "list")[1] == "example.test (config file)\nother.test\n"
    assert run(config, "domain", "del", "other.test")[0] == 0
    assert run(config, "domain", "list")[1] == "example.test (config file)\n"


def test_domain_from_config_cannot_be_deleted(config):
    code, _, err = run(config, "domain", "del", "example.test")
    assert code == 1 and "configuration file" in err


def test_catchall(config):
    run(config, "user", "add", "bob@example.test", "--password-stdin", stdin="pw\n")
    assert run(config, "catchall", "set", "example.test", "bob@example.test")[0] == 0
    assert accounts(config).resolve("anything@example.test").local_users == ("bob@example.test",)
    assert run(config, "catchall", "del", "example.test")[0] == 0
    assert accounts(config).resolve("anything@example.test") is None


def test_dns_records(config):
    code, out, _ = run(config, "dns")
    assert code == 0
    assert "example.test.\tIN MX\t10 mail.example.test." in out
    assert '"v=spf1 mx -all"' in out
    assert "_dmarc.example.test.\tIN TXT\t\"v=DMARC1;" in out
    assert "_submission._tcp.example.test.\tIN SRV\t0 1 587 mail.example.test." in out
    assert "_pop3._tcp.example.test.\tIN SRV\t0 0 0 ." in out  # disabled: RFC 6186 "not offered"
    assert "_imaps._tcp.example.test.\tIN SRV\t0 1 8993 mail.example.test." in out
    assert "p=none" in out  # DMARC starts in monitoring mode
    # DKIM: the key is made on first use and its public half printed; the same on a second run.
    assert 'mailsuite._domainkey.example.test.\tIN TXT\t( "v=DKIM1; k=rsa; " "p=MII' in out
    assert (config.parent / "data" / ".mailsuite" / "dkim" / "example.test.mailsuite.pem").exists()
    assert run(config, "dns")[1] == out


def test_dns_records_without_dkim(tmp_path, config):
    off = tmp_path / "nodkim.toml"
    off.write_text(config.read_text() + "\n[dkim]\nenabled = false\n")
    code, out, _ = run(off, "dns")
    assert code == 0 and "_domainkey" not in out and "[dkim] is off" in out


def test_dns_records_with_a_smarthost_name_the_provider_in_spf(tmp_path, config):
    with_smarthost = tmp_path / "smarthost.toml"
    with_smarthost.write_text(config.read_text() + '\n[relay]\nsmarthost = "smtp.provider.test:587"\n')
    code, out, _ = run(with_smarthost, "dns")
    assert code == 0
    assert '"v=spf1 mx -all"' not in out
    assert "include:<your provider's SPF domain>" in out and "smtp.provider.test" in out


def test_bad_config_exit_code(tmp_path):
    bad = tmp_path / "bad.toml"
    bad.write_text("nope = 1\n")
    code, _, err = run(bad, "user", "list")
    assert code == 1 and "bad.toml: nope: unknown key" in err


def test_unknown_command_is_usage_error(config):
    assert run(config, "frobnicate")[0] == 2


def test_queue_list_empty(config):
    code, out, _ = run(config, "queue", "list")
    assert code == 0 and "empty" in out.lower()


def test_queue_show_unknown_id_fails(config):
    code, _, err = run(config, "queue", "show", "NOSUCHID")
    assert code == 1 and "no such queue id" in err


def test_config_prints_effective_settings(config):
    code, out, _ = run(config, "config")
    data = json.loads(out)
    assert code == 0
    assert data["hostname"] == "mail.example.test"
    assert data["listen"]["pop3"] == []
    assert data["smtp"]["max_recipients"] == 100

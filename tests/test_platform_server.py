"""End-to-end: the real ``twistd -n mailsuite`` process, its listeners, TLS and accounts."""

import imaplib
import os
import poplib
import shutil
import signal
import smtplib
import socket
import ssl
import subprocess
import sys

import pytest
from harness import TWISTD, MailServer, ServerFailed, environment, run_cli

from mailsuite.tls import ensure_certificate

IMPLICIT_TLS = ("submissions", "pop3s", "imaps")
PLAIN_GREETING = {"smtp": b"220", "submission": b"220", "pop3": b"+OK", "imap": b"* OK"}


def client_context(server):
    """Verifies the server's generated certificate and its host name."""
    return ssl.create_default_context(cafile=server.cafile)


def tls_peer_cert(server, service):
    """Handshake on an implicit-TLS port with hostname verification; the server's cert (DER)."""
    with (socket.create_connection(("127.0.0.1", server.ports[service]), timeout=10) as raw,
          client_context(server).wrap_socket(raw, server_hostname=server.hostname) as s):
        assert s.version() in ("TLSv1.2", "TLSv1.3")
        return s.getpeercert(binary_form=True)


def greeting(port):
    with socket.create_connection(("127.0.0.1", port), timeout=10) as s:
        return s.recv(100)


def test_twistd_lists_the_plugin():
    result = subprocess.run([sys.executable, "-c", TWISTD, "--help"], capture_output=True,
                            text=True, env=environment(), timeout=60, check=False)
    assert result.returncode == 0
    assert "mailsuite" in result.stdout


def test_every_listener_answers(mail_server):
    assert set(mail_server.ports) == {"smtp", "submission", "submissions", "pop3", "pop3s",
                                      "imap", "imaps"}
    for service, expected in PLAIN_GREETING.items():
        assert greeting(mail_server.ports[service]).startswith(expected), service


def test_implicit_tls_listeners_verify_with_generated_cert(mail_server):
    for service in IMPLICIT_TLS:
        assert tls_peer_cert(mail_server, service)


def test_tls_1_1_refused(mail_server):
    ctx = client_context(mail_server)
    ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
    ctx.maximum_version = ssl.TLSVersion.TLSv1_1
    with (socket.create_connection(("127.0.0.1", mail_server.ports["imaps"]), timeout=10) as raw,
          pytest.raises((ssl.SSLError, OSError))):
        ctx.wrap_socket(raw, server_hostname=mail_server.hostname)


def test_logs_one_line_per_listener_and_accounts_hint(mail_server):
    text = mail_server.log_text()
    for service, port in mail_server.ports.items():
        assert f"mailsuite: {service} listening on 127.0.0.1:{port}" in text
    assert "no accounts yet; add one with: mailsuite --config" in text


def test_disabled_listener(mail_server_factory):
    server = mail_server_factory('[listen]\npop3 = []\nimaps = []\n')
    assert "pop3" not in server.ports and "imaps" not in server.ports
    assert "imap" in server.ports


def test_user_added_by_cli_logs_in_without_restart(mail_server):
    mail_server.add_user("carol@example.test", "carol pass 1")
    ctx = client_context(mail_server)
    ctx.check_hostname = False  # imaplib/poplib check the literal IP; the chain is still verified
    imap = imaplib.IMAP4_SSL("127.0.0.1", mail_server.ports["imaps"], ssl_context=ctx,
                             timeout=30)
    try:
        assert imap.login("carol@example.test", "carol pass 1")[0] == "OK"
    finally:
        imap.logout()
    pop = poplib.POP3_SSL("127.0.0.1", mail_server.ports["pop3s"], context=ctx, timeout=30)
    try:
        pop.user("carol@example.test")
        assert pop.pass_("carol pass 1").startswith(b"+OK")
    finally:
        pop.quit()


def test_wrong_password_refused(mail_server):
    mail_server.add_user("dave@example.test", "right")
    ctx = client_context(mail_server)
    ctx.check_hostname = False
    imap = imaplib.IMAP4_SSL("127.0.0.1", mail_server.ports["imaps"], ssl_context=ctx,
                             timeout=30)
    with pytest.raises(imaplib.IMAP4.error):
        imap.login("dave@example.test", "wrong")
    imap.shutdown()


NO_LOGIN_DELAY = "failure_delay = 0.0\nmax_failure_delay = 0.0\n"


def imap_login(server, password, user="erin@example.test"):
    """"OK" or "NO" for one IMAPS login on a fresh connection."""
    ctx = client_context(server)
    ctx.check_hostname = False
    imap = imaplib.IMAP4_SSL("127.0.0.1", server.ports["imaps"], ssl_context=ctx, timeout=30)
    try:
        return imap.login(user, password)[0]
    except imaplib.IMAP4.error:
        return "NO"
    finally:
        imap.shutdown()


def test_auth_table_sets_when_the_login_throttle_blocks(mail_server_factory):
    """[auth] failures_to_block = 3: two failures do not block, the third blocks the address
    for IMAP and POP3 alike (one throttle), even with the right password."""
    server = mail_server_factory("[auth]\nfailures_to_block = 3\n" + NO_LOGIN_DELAY)
    server.add_user("erin@example.test", "right")
    assert [imap_login(server, "wrong") for _ in range(2)] == ["NO", "NO"]
    assert imap_login(server, "right") == "OK"  # not blocked after two; success clears the count
    assert [imap_login(server, "wrong") for _ in range(3)] == ["NO", "NO", "NO"]
    assert imap_login(server, "right") == "NO"
    ctx = client_context(server)
    ctx.check_hostname = False
    pop = poplib.POP3_SSL("127.0.0.1", server.ports["pop3s"], context=ctx, timeout=30)
    try:
        pop.user("erin@example.test")
        with pytest.raises(poplib.error_proto, match="SYS/TEMP"):
            pop.pass_("right")
    finally:
        pop.close()


def test_auth_exempt_networks_are_never_blocked(mail_server_factory):
    server = mail_server_factory(
        '[auth]\nfailures_to_block = 2\nexempt_networks = ["127.0.0.0/8"]\n' + NO_LOGIN_DELAY)
    server.add_user("erin@example.test", "right")
    assert [imap_login(server, "wrong") for _ in range(4)] == ["NO"] * 4
    assert imap_login(server, "right") == "OK"


def test_password_not_in_data_dir_or_logs(mail_server):
    secret = "Zebra-Unique-Secret-4711"
    mail_server.add_user("erin@example.test", secret)
    ctx = client_context(mail_server)
    ctx.check_hostname = False
    imap = imaplib.IMAP4_SSL("127.0.0.1", mail_server.ports["imaps"], ssl_context=ctx,
                             timeout=30)
    imap.login("erin@example.test", secret)
    imap.logout()
    imap2 = imaplib.IMAP4_SSL("127.0.0.1", mail_server.ports["imaps"], ssl_context=ctx,
                              timeout=30)
    with pytest.raises(imaplib.IMAP4.error):
        imap2.login("erin@example.test", secret + "-wrong")
    imap2.shutdown()
    smtp = smtplib.SMTP_SSL("127.0.0.1", mail_server.ports["submissions"], context=ctx,
                            timeout=30)
    assert smtp.login("erin@example.test", secret)[0] == 235
    smtp.quit()
    mail_server.stop()
    mail_log = (mail_server.data_dir / ".mailsuite" / "mail.log").read_text()
    assert "auth" in mail_log and secret not in mail_log
    assert secret not in mail_server.log_text()
    for root, _dirs, files in os.walk(mail_server.data_dir):
        for name in files:
            path = os.path.join(root, name)
            if os.path.isfile(path):
                with open(path, "rb") as f:
                    assert secret.encode() not in f.read(), path
    accounts = (mail_server.data_dir / ".mailsuite" / "accounts.json").read_text()
    assert '"password": "$argon2id$' in accounts


def test_certificate_reused_across_restarts(tmp_path):
    first = MailServer(tmp_path).start()
    cert_before = first.data_dir.joinpath(".mailsuite/tls/cert.pem").read_bytes()
    served_before = tls_peer_cert(first, "imaps")
    first.stop()
    second = MailServer(tmp_path).start()
    try:
        assert second.data_dir.joinpath(".mailsuite/tls/cert.pem").read_bytes() == cert_before
        assert tls_peer_cert(second, "imaps") == served_before
    finally:
        second.stop()


def test_sighup_reloads_certificate(tmp_path):
    tls_dir = tmp_path / "certs"
    cert, key = ensure_certificate(tls_dir, "mail.example.test")
    server = MailServer(tmp_path / "srv", f'[tls]\ncert = "{cert}"\nkey = "{key}"\n')
    server.cafile = str(cert)
    server.start()
    try:
        before = tls_peer_cert(server, "pop3s")
        held = socket.create_connection(("127.0.0.1", server.ports["imaps"]), timeout=10)
        held_tls = client_context(server).wrap_socket(held, server_hostname=server.hostname)
        shutil.rmtree(tls_dir)
        ensure_certificate(tls_dir, "mail.example.test")
        server.signal(signal.SIGHUP)
        assert server.wait_for_log("TLS certificate reloaded")
        after = tls_peer_cert(server, "pop3s")
        assert after != before
        # The connection made before the reload still works.
        held_tls.sendall(b"a NOOP\r\n")
        reply = b""
        for _ in range(20):  # greeting, then the tagged reply; bounded
            chunk = held_tls.recv(4096)
            reply += chunk
            if not chunk or b"a OK" in reply:
                break
        assert b"a OK" in reply
        held_tls.close()
    finally:
        server.stop()


def run_expecting_failure(server):
    with pytest.raises(ServerFailed):
        server.start(timeout=60)
    return server.process.returncode, server.log_text()


def test_unknown_key_stops_start(tmp_path):
    server = MailServer(tmp_path, "[smtp]\nmax_recipientz = 5\n")
    code, output = run_expecting_failure(server)
    assert code != 0
    assert f"mailsuite: {server.config_path}: smtp.max_recipientz: unknown key" in output
    assert "Traceback" not in output


def test_wrong_type_stops_start(tmp_path):
    server = MailServer(tmp_path, '[imap]\nidle_timeout = "long"\n')
    code, output = run_expecting_failure(server)
    assert code != 0 and "imap.idle_timeout: expected a number" in output


def test_unreadable_certificate_stops_start(tmp_path):
    server = MailServer(tmp_path, '[tls]\ncert = "/nonexistent/cert.pem"\n'
                                  'key = "/nonexistent/key.pem"\n')
    code, output = run_expecting_failure(server)
    assert code != 0
    assert f"mailsuite: {server.config_path}: tls.cert: cannot read /nonexistent/cert.pem" in output
    assert not server.data_dir.exists()  # nothing half-starts: not even the store is created


def test_port_in_use_stops_start_and_binds_nothing(tmp_path):
    blocker = socket.socket()
    blocker.bind(("127.0.0.1", 0))
    blocker.listen()
    busy = blocker.getsockname()[1]
    try:
        server = MailServer(tmp_path, f'[listen]\nimaps = ["tcp:port={busy}:interface=127.0.0.1"]\n')
        code, output = run_expecting_failure(server)
    finally:
        blocker.close()
    assert code == 1
    assert f"listen.imaps: cannot listen on 'tcp:port={busy}:interface=127.0.0.1'" in output
    assert "Address already in use" in output
    assert "mailsuite ready" not in output


def test_cli_and_server_share_accounts_file(mail_server):
    mail_server.add_user("frank@example.test", "pw")
    result = run_cli(mail_server.config_path, "user", "list")
    assert result.stdout == "frank@example.test\n"


def _port_free(port):
    with socket.socket() as s:
        try:
            s.bind(("127.0.0.1", port))
        except OSError:
            return False
    return True


def test_embedded_defaults_listen_on_documented_ports(tmp_path):
    ports = {"smtp": 8025, "submission": 8587, "submissions": 8465, "pop3": 8110,
             "pop3s": 8995, "imap": 8143, "imaps": 8993}
    if not all(_port_free(p) for p in ports.values()):
        pytest.skip("a default port is in use on this machine")
    proc = subprocess.Popen([sys.executable, "-c", TWISTD, "-n", "--pidfile=", "mailsuite"],
                            cwd=tmp_path, env=environment(), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        for line in proc.stdout:  # bounded: the server prints "ready" or exits
            lines.append(line)
            if "mailsuite ready" in line or len(lines) > 500:
                break
        text = "".join(lines)
        assert "mailsuite ready" in text, text
        for service, port in ports.items():
            assert f"mailsuite: {service} listening on 127.0.0.1:{port}" in text
        assert greeting(8025).startswith(b"220")
        assert (tmp_path / "maildirs" / ".mailsuite" / "tls" / "cert.pem").exists()
    finally:
        proc.terminate()
        proc.wait(30)


@pytest.mark.skipif(os.geteuid() != 0, reason="privilege drop needs root")
@pytest.mark.parametrize("after_plugin_name", [False, True], ids=["twistd-flags", "mailsuite-flags"])
def test_privilege_drop_as_root(after_plugin_name):
    import pwd
    import tempfile

    mail = pwd.getpwnam("mail")
    # pytest's tmp_path lives under a root-only (0700) directory the mail user cannot traverse.
    top = tempfile.mkdtemp(prefix="mailsuite-priv-")
    os.chmod(top, 0o755)
    ids = ("--uid", "mail", "--gid", "mail")
    # Both spellings: twistd's own flags before the plugin name, and after it (mailsuite's).
    server = MailServer(os.path.join(top, "srv"), twistd_args=() if after_plugin_name else ids,
                        mailsuite_args=ids if after_plugin_name else ())
    server.directory.chmod(0o755)
    try:
        server.start()
    except BaseException:
        shutil.rmtree(top, ignore_errors=True)
        raise
    try:
        with open(f"/proc/{server.process.pid}/status") as f:
            status = dict(line.split(":", 1) for line in f if ":" in line)
        assert status["Uid"].split() == [str(mail.pw_uid)] * 4
        assert status["Gid"].split() == [str(mail.pw_gid)] * 4
        state = server.data_dir / ".mailsuite"
        for path in (server.data_dir, state, state / "tls" / "key.pem"):
            assert path.stat().st_uid == mail.pw_uid, path
        # The CLI (run as root) writes an accounts file the unprivileged server can read.
        server.add_user("gina@example.test", "pw-gina")
        assert (state / "accounts.json").stat().st_uid == mail.pw_uid
        ctx = client_context(server)
        ctx.check_hostname = False
        imap = imaplib.IMAP4_SSL("127.0.0.1", server.ports["imaps"], ssl_context=ctx, timeout=30)
        assert imap.login("gina@example.test", "pw-gina")[0] == "OK"
        imap.logout()
    finally:
        server.stop()
        shutil.rmtree(top, ignore_errors=True)


def test_unknown_uid_stops_start(tmp_path):
    server = MailServer(tmp_path, mailsuite_args=("--uid", "no-such-user-here"))
    code, output = run_expecting_failure(server)
    assert code != 0 and "--uid: no such user 'no-such-user-here'" in output


def test_bad_endpoint_string_stops_start(tmp_path):
    server = MailServer(tmp_path, '[listen]\nsmtp = ["bogus:25"]\n')
    code, output = run_expecting_failure(server)
    assert code != 0 and "listen.smtp[0]: bad endpoint 'bogus:25'" in output


@pytest.mark.skipif(os.geteuid() != 0, reason="privilege drop needs root")
def test_data_dir_out_of_reach_of_uid_stops_start(tmp_path):
    closed = tmp_path / "closed"
    closed.mkdir(mode=0o700)
    server = MailServer(closed / "srv", twistd_args=("--uid", "mail", "--gid", "mail"))
    code, output = run_expecting_failure(server)
    assert code == 1
    assert f"is out of reach of uid {__import__('pwd').getpwnam('mail').pw_uid}" in output
    assert "does not let it in" in output


def test_missing_postmaster_is_reported(tmp_path):
    server = MailServer(tmp_path)
    server.add_user("alice@example.test", "pw")
    with server:
        assert "postmaster@example.test reaches nobody" in server.log_text()
    server.add_alias("postmaster@example.test", "alice@example.test")
    with server:
        assert "reaches nobody" not in server.log_text()


def test_ssl_endpoint_refused_with_hint(tmp_path):
    server = MailServer(tmp_path, '[listen]\nimaps = ["ssl:port=0:privateKey=k.pem"]\n')
    code, output = run_expecting_failure(server)
    assert code != 0 and "listen.imaps[0]: use a plain endpoint (tcp:...)" in output


def test_corrupt_accounts_file_stops_start(tmp_path):
    server = MailServer(tmp_path)
    state = server.data_dir / ".mailsuite"
    state.mkdir(parents=True)
    (state / "accounts.json").write_text("{oops")
    code, output = run_expecting_failure(server)
    assert code != 0 and f"cannot read accounts file {state / 'accounts.json'}" in output

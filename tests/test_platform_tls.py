"""mailsuite.tls: generated certificate, TLS >= 1.2, reload without dropping connections."""

import os
import shutil
import socket
import ssl
import tempfile

import pytest
from twisted.internet import defer, endpoints, protocol, threads
from twisted.protocols.tls import TLSMemoryBIOFactory
from twisted.trial import unittest

from mailsuite.errors import ConfigError
from mailsuite.tls import TLSSettings, ensure_certificate


def test_generated_key_is_private(tmp_path):
    cert, key = ensure_certificate(tmp_path, "mail.example.test")
    assert os.stat(key).st_mode & 0o777 == 0o600
    assert cert.read_bytes().startswith(b"-----BEGIN CERTIFICATE-----")


def test_certificate_reused(tmp_path):
    cert, _ = ensure_certificate(tmp_path, "mail.example.test")
    first = cert.read_bytes()
    cert2, _ = ensure_certificate(tmp_path, "mail.example.test")
    assert cert2.read_bytes() == first


def test_new_certificate_for_new_hostname(tmp_path):
    cert, _ = ensure_certificate(tmp_path, "a.example.test")
    first = cert.read_bytes()
    ensure_certificate(tmp_path, "b.example.test")
    assert cert.read_bytes() != first


def test_unreadable_cert_is_config_error(tmp_path):
    with pytest.raises(ConfigError, match="tls.cert.*missing.pem"):
        TLSSettings(tmp_path / "missing.pem", tmp_path / "key.pem")


def test_mismatched_key_is_config_error(tmp_path):
    cert, _ = ensure_certificate(tmp_path / "a", "a.example.test")
    _, key = ensure_certificate(tmp_path / "b", "a.example.test")
    with pytest.raises(ConfigError, match="tls.key"):
        TLSSettings(cert, key)


class Echo(protocol.Protocol):
    def dataReceived(self, data):
        self.transport.write(data)


def _handshake(port, cafile, hostname, maximum=None, ciphers=None):
    ctx = ssl.create_default_context(cafile=str(cafile))
    if ciphers is not None:
        ctx.set_ciphers(ciphers)
    if maximum is not None:
        ctx.minimum_version = ssl.TLSVersion.MINIMUM_SUPPORTED
        ctx.maximum_version = maximum
    with socket.create_connection(("127.0.0.1", port), timeout=10) as raw, \
            ctx.wrap_socket(raw, server_hostname=hostname) as s:
        s.sendall(b"ping")
        return s.version(), s.recv(4), s.getpeercert(binary_form=True)


class ServerTests(unittest.TestCase):
    @defer.inlineCallbacks
    def setUp(self):
        from twisted.internet import reactor

        tmp = tempfile.mkdtemp()
        self.addCleanup(shutil.rmtree, tmp, True)
        self.cert, self.key = ensure_certificate(tmp, "mail.example.test")
        self.tls = TLSSettings(self.cert, self.key)
        factory = TLSMemoryBIOFactory(self.tls.server_options(), False,
                                      protocol.Factory.forProtocol(Echo))
        self.port = yield endpoints.serverFromString(reactor, "tcp:0:interface=127.0.0.1").listen(
            factory)
        self.addCleanup(self.port.stopListening)
        self.portnum = self.port.getHost().port

    @defer.inlineCallbacks
    def test_verified_handshake_with_generated_cert(self):
        version, echoed, _ = yield threads.deferToThread(
            _handshake, self.portnum, self.cert, "mail.example.test")
        self.assertEqual(echoed, b"ping")
        self.assertIn(version, ("TLSv1.2", "TLSv1.3"))

    @defer.inlineCallbacks
    def test_tls11_refused(self):
        d = threads.deferToThread(_handshake, self.portnum, self.cert, "mail.example.test",
                                  ssl.TLSVersion.TLSv1_1)
        yield self.assertFailure(d, ssl.SSLError, OSError)

    @defer.inlineCallbacks
    def test_cbc_only_tls12_client_refused(self):
        d = threads.deferToThread(_handshake, self.portnum, self.cert, "mail.example.test",
                                  ssl.TLSVersion.TLSv1_2, "ECDHE-ECDSA-AES128-SHA")
        yield self.assertFailure(d, ssl.SSLError, OSError)

    @defer.inlineCallbacks
    def test_tls12_uses_aead(self):
        from twisted.internet import threads as t

        def cipher():
            ctx = ssl.create_default_context(cafile=str(self.cert))
            ctx.maximum_version = ssl.TLSVersion.TLSv1_2
            with socket.create_connection(("127.0.0.1", self.portnum), timeout=10) as raw, \
                    ctx.wrap_socket(raw, server_hostname="mail.example.test") as s:
                return s.cipher()[0]

        name = yield t.deferToThread(cipher)
        self.assertTrue("GCM" in name or "CHACHA20" in name, name)

    @defer.inlineCallbacks
    def test_reload_serves_new_certificate(self):
        _, _, before = yield threads.deferToThread(
            _handshake, self.portnum, self.cert, "mail.example.test")
        os.unlink(self.cert)
        os.unlink(self.key)
        ensure_certificate(os.path.dirname(self.cert), "mail.example.test")
        self.assertTrue(self.tls.reload())
        _, _, after = yield threads.deferToThread(
            _handshake, self.portnum, self.cert, "mail.example.test")
        self.assertNotEqual(before, after)

    def test_failed_reload_keeps_old(self):
        old = self.tls.current
        os.unlink(self.cert)
        self.assertFalse(self.tls.reload())
        self.assertIs(self.tls.current, old)

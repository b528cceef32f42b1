"""One TLS configuration for every listener, and a certificate that works out of the box.

- ``ensure_certificate(directory, hostname)`` makes a self-signed certificate for ``hostname``
  (ECDSA P-256, SAN = hostname, key file mode 0600) the first time and reuses it afterwards
  (a new one is made only if the files are missing, unreadable, expired, or for another name).
- ``TLSSettings(cert_path, key_path)`` loads a certificate (a full chain: leaf first, then
  intermediates) and its key. ``server_options()`` returns one object, for STARTTLS and for
  implicit-TLS listeners, that provides ``IOpenSSLServerConnectionCreator`` (and
  ``getContext()`` for code wanting a context factory). ``reload()`` re-reads the files:
  handshakes after it use the new certificate, established connections are left alone.

Protocol floor: TLS 1.2 (RFC 8996 deprecates 1.0/1.1; RFC 8314 for implicit TLS mail ports).
Ciphers for TLS 1.2: forward-secret AEAD suites only (ECDHE with AES-GCM or ChaCha20-Poly1305,
the "intermediate" profile common to Mozilla's and BetterCrypto's guides); TLS 1.3 uses
OpenSSL's own (all AEAD). No CBC, RC4, 3DES, static RSA key exchange, export or NULL suites.
"""

from __future__ import annotations

import datetime
import os
import tempfile
from pathlib import Path
from typing import Any

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID
from OpenSSL import SSL
from twisted.internet import ssl as tssl
from twisted.internet.interfaces import IOpenSSLServerConnectionCreator
from twisted.logger import Logger
from zope.interface import implementer

from mailsuite.errors import ConfigError

__all__ = ["CERT_FILE", "KEY_FILE", "TLSSettings", "ensure_certificate"]

CERT_FILE = "cert.pem"
KEY_FILE = "key.pem"
VALIDITY_DAYS = 3650
RENEW_BEFORE_DAYS = 30
TLS12_CIPHERS = (
    "ECDHE-ECDSA-AES128-GCM-SHA256:ECDHE-RSA-AES128-GCM-SHA256:"
    "ECDHE-ECDSA-AES256-GCM-SHA384:ECDHE-RSA-AES256-GCM-SHA384:"
    "ECDHE-ECDSA-CHACHA20-POLY1305:ECDHE-RSA-CHACHA20-POLY1305"
)


def atomic_write(path: Path, data: bytes, mode: int) -> None:
    """Write a small file durably: tmp file with ``mode``, fsync, rename over ``path``."""
    fd, tmp = tempfile.mkstemp(prefix="." + path.name, dir=path.parent)
    try:
        os.fchmod(fd, mode)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _usable(cert_path: Path, key_path: Path, hostname: str) -> bool:
    """True if the existing pair is readable, matches, names ``hostname`` and is not expiring."""
    try:
        cert = x509.load_pem_x509_certificate(cert_path.read_bytes())
        key = serialization.load_pem_private_key(key_path.read_bytes(), password=None)
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except (OSError, ValueError, x509.ExtensionNotFound):
        return False
    pub = serialization.PublicFormat.SubjectPublicKeyInfo
    enc = serialization.Encoding.DER
    if cert.public_key().public_bytes(enc, pub) != key.public_key().public_bytes(enc, pub):
        return False
    if hostname.lower() not in [n.lower() for n in san.get_values_for_type(x509.DNSName)]:
        return False
    left = cert.not_valid_after_utc - datetime.datetime.now(datetime.UTC)
    return left > datetime.timedelta(days=RENEW_BEFORE_DAYS)


def ensure_certificate(directory: Path | str, hostname: str) -> tuple[Path, Path]:
    """(cert_path, key_path) of a self-signed certificate for ``hostname`` in ``directory``."""
    directory = Path(directory)
    cert_path, key_path = directory / CERT_FILE, directory / KEY_FILE
    if _usable(cert_path, key_path, hostname):
        return cert_path, key_path
    directory.mkdir(parents=True, exist_ok=True, mode=0o700)
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, hostname[:64])])
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(hours=1))
        .not_valid_after(now + datetime.timedelta(days=VALIDITY_DAYS))
        .add_extension(x509.SubjectAlternativeName([x509.DNSName(hostname)]), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(
                digital_signature=True, content_commitment=False, key_encipherment=False,
                data_encipherment=False, key_agreement=False, key_cert_sign=False,
                crl_sign=False, encipher_only=False, decipher_only=False,
            ),
            critical=True,
        )
        .add_extension(x509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    key_pem = key.private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.PKCS8,
        serialization.NoEncryption(),
    )
    atomic_write(key_path, key_pem, 0o600)
    atomic_write(cert_path, cert.public_bytes(serialization.Encoding.PEM), 0o644)
    return cert_path, key_path


def load_options(cert_path: Path, key_path: Path) -> tssl.CertificateOptions:
    """CertificateOptions for a PEM chain and key; raises ConfigError naming the problem."""
    try:
        chain_pem = Path(cert_path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"tls.cert: cannot read {cert_path}: {exc.strerror}") from None
    try:
        key_pem = Path(key_path).read_bytes()
    except OSError as exc:
        raise ConfigError(f"tls.key: cannot read {key_path}: {exc.strerror}") from None
    try:
        chain = x509.load_pem_x509_certificates(chain_pem)
    except ValueError as exc:
        raise ConfigError(f"tls.cert: {cert_path} holds no PEM certificate ({exc})") from None
    try:
        key = serialization.load_pem_private_key(key_pem, password=None)
    except (ValueError, TypeError) as exc:
        raise ConfigError(
            f"tls.key: {key_path} is not an unencrypted PEM private key ({exc})"
        ) from None
    # pyOpenSSL >= 25 takes cryptography objects directly (its own X509/PKey are deprecated).
    options = tssl.CertificateOptions(
        privateKey=key,  # type: ignore[arg-type]
        certificate=chain[0],  # type: ignore[arg-type]
        extraCertChain=chain[1:],  # type: ignore[arg-type]
        raiseMinimumTo=tssl.TLSVersion.TLSv1_2,
        acceptableCiphers=tssl.AcceptableCiphers.fromOpenSSLCipherString(TLS12_CIPHERS),
        fixBrokenPeers=False,
    )
    try:
        options.getContext()  # checks that the key matches the certificate
    except SSL.Error as exc:
        raise ConfigError(
            f"tls.key: {key_path} does not match the certificate {cert_path} ({exc})"
        ) from None
    return options


@implementer(IOpenSSLServerConnectionCreator)
class _CurrentServerOptions:
    """Creates server connections from whatever options the settings hold right now."""

    def __init__(self, settings: TLSSettings) -> None:
        self._settings = settings

    def serverConnectionForTLS(self, tlsProtocol: Any) -> SSL.Connection:
        return SSL.Connection(self.getContext(), None)

    def getContext(self) -> SSL.Context:
        return self._settings.current.getContext()


class TLSSettings:
    """The server certificate and TLS policy shared by every listener."""

    log = Logger()

    def __init__(self, cert_path: Path | str, key_path: Path | str) -> None:
        self.cert_path = Path(cert_path)
        self.key_path = Path(key_path)
        self.current = load_options(self.cert_path, self.key_path)
        self._creator = _CurrentServerOptions(self)

    def server_options(self) -> _CurrentServerOptions:
        """The ``IOpenSSLServerConnectionCreator`` to pass to startTLS / TLSMemoryBIOFactory."""
        return self._creator

    def reload(self) -> bool:
        """Re-read the certificate and key; keep the old ones (and log why) if that fails."""
        try:
            options = load_options(self.cert_path, self.key_path)
        except ConfigError as exc:
            self.log.error("TLS certificate not reloaded, keeping the old one: {error}",
                           error=str(exc))
            return False
        self.current = options
        self.log.info("TLS certificate reloaded from {cert}", cert=str(self.cert_path))
        return True

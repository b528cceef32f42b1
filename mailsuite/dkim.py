"""DKIM signing of the mail our users submit (RFC 6376, rsa-sha256, relaxed/relaxed).

Receivers (Gmail, Microsoft, ...) weigh a valid DKIM signature heavily, and DMARC passes on it
even when a forwarder breaks SPF. Each local domain gets its own RSA-2048 key, made on first
use in ``data_dir/.mailsuite/dkim/<domain>.<selector>.pem`` (mode 0600); ``mailsuite dns``
prints the TXT record that publishes its public half.

The signer is written on ``cryptography`` rather than with dkimpy: dkimpy does the RSA
operation in pure Python (about 14 ms per message on this class of machine, holding the GIL),
``cryptography`` does it in OpenSSL in well under a millisecond. dkimpy is still used by the
tests, as an independent verifier of every signature made here.
"""

from __future__ import annotations

import base64
import hashlib
import os
import re
from email.utils import getaddresses
from pathlib import Path
from typing import Any

from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from mailsuite.config import DkimSettings
from mailsuite.tls import atomic_write

__all__ = ["DkimSettings", "DkimSigner", "body_hash", "signature_header"]

# Signed when present (RFC 6376 5.4.1's list, trimmed to what a client writes); From is also
# signed once more than present ("oversigned") so that nobody can add a second From later.
SIGNED_FIELDS = (
    "from", "reply-to", "subject", "date", "to", "cc", "message-id", "in-reply-to",
    "references", "mime-version", "content-type", "content-transfer-encoding",
    "content-disposition", "list-unsubscribe",
)
_WSP_RUN = re.compile(rb"[ \t]+")
_TRAILING_WSP = re.compile(rb"[ \t]+(?=\r\n)")
_FIELD_NAME = re.compile(rb"^([!-9;-~]+)[ \t]*:")


# --- canonicalization (RFC 6376 3.4) ---------------------------------------------------------

def split_header(message: bytes) -> tuple[list[bytes], bytes]:
    """The header fields (each with its folded continuation lines and final CRLF) and the body."""
    end = message.find(b"\r\n\r\n")
    if end < 0:
        head, body = message, b""
        if not head.endswith(b"\r\n"):
            head += b"\r\n"
    else:
        head, body = message[: end + 2], message[end + 4 :]
    fields: list[bytes] = []
    for line in head.split(b"\r\n")[:-1]:
        if line[:1] in (b" ", b"\t") and fields:
            fields[-1] += line + b"\r\n"
        else:
            fields.append(line + b"\r\n")
    return fields, body


def relaxed_header(field: bytes) -> bytes:
    """``name:value`` with the name lowercased, the value unfolded and its white space squeezed."""
    name, _, value = field.partition(b":")
    value = value.replace(b"\r\n", b"")
    value = _WSP_RUN.sub(b" ", value).strip(b" ")
    return name.rstrip(b" \t").lower() + b":" + value + b"\r\n"


def relaxed_body(body: bytes) -> bytes:
    """White space runs squeezed, trailing white space and trailing empty lines removed."""
    if body and not body.endswith(b"\r\n"):
        body += b"\r\n"
    body = _TRAILING_WSP.sub(b"", _WSP_RUN.sub(b" ", body))
    while body.endswith(b"\r\n\r\n"):
        body = body[:-2]
    return b"" if body == b"\r\n" else body


def body_hash(body: bytes) -> str:
    """The ``bh=`` value: base64 of SHA-256 over the relaxed body."""
    return base64.b64encode(hashlib.sha256(relaxed_body(body)).digest()).decode("ascii")


def _field_name(field: bytes) -> str:
    match = _FIELD_NAME.match(field)
    return match.group(1).decode("ascii").lower() if match else ""


def _select(fields: list[bytes], names: list[str]) -> list[bytes]:
    """The header fields ``names`` designates, each name taking instances from the bottom up
    (RFC 6376 5.4.2); a name listed more often than present selects nothing."""
    remaining: dict[str, list[bytes]] = {}
    for field in fields:
        remaining.setdefault(_field_name(field), []).append(field)
    chosen = []
    for name in names:
        stack = remaining.get(name)
        if stack:
            chosen.append(stack.pop())
    return chosen


def signature_header(message: bytes, domain: str, selector: str, key: rsa.RSAPrivateKey,
                     timestamp: int) -> bytes:
    """The ``DKIM-Signature:`` field (folded, ending in CRLF) to put on top of ``message``."""
    fields, body = split_header(message)
    present = [_field_name(f) for f in fields]
    names = [name for name in SIGNED_FIELDS for _ in range(present.count(name))]
    names.append("from")  # oversigned
    tags = [
        "v=1", "a=rsa-sha256", "c=relaxed/relaxed", f"d={domain}", f"s={selector}",
        f"t={timestamp}", "h=" + ":".join(names), "bh=" + body_hash(body), "b=",
    ]
    unsigned = ("DKIM-Signature: " + "; ".join(tags)).encode("ascii")
    data = b"".join(relaxed_header(f) for f in _select(fields, names))
    data += relaxed_header(unsigned + b"\r\n")[:-2]  # the signature field itself, without CRLF
    signature = key.sign(data, padding.PKCS1v15(), hashes.SHA256())
    b64 = base64.b64encode(signature).decode("ascii")
    # Fold after each "; " and every 72 characters of b=: relaxed canonicalization turns the
    # folding back into exactly the single spaces that were signed.
    folded_b = "\r\n\t".join(b64[i : i + 72] for i in range(0, len(b64), 72))
    return ("DKIM-Signature: " + ";\r\n\t".join(tags[:-1]) + ";\r\n\tb=" + folded_b
            + "\r\n").encode("ascii")


# --- keys and the signer -----------------------------------------------------------------------

class DkimSigner:
    """Signs messages for our domains with per-domain keys kept under ``key_dir``."""

    def __init__(self, key_dir: Path | str, settings: DkimSettings | None = None) -> None:
        self.key_dir = Path(key_dir)
        self.settings = settings or DkimSettings()
        self._keys: dict[str, rsa.RSAPrivateKey] = {}

    def key_path(self, domain: str) -> Path:
        return self.key_dir / f"{domain.lower()}.{self.settings.selector}.pem"

    def key(self, domain: str) -> rsa.RSAPrivateKey:
        """The domain's key, made (and written with mode 0600) the first time it is needed."""
        domain = domain.lower()
        key = self._keys.get(domain)
        if key is None:
            path = self.key_path(domain)
            try:
                loaded = serialization.load_pem_private_key(path.read_bytes(), password=None)
            except FileNotFoundError:
                loaded = rsa.generate_private_key(65537, self.settings.key_bits)
                self._write_key(path, loaded.private_bytes(
                    serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8,
                    serialization.NoEncryption()))
            if not isinstance(loaded, rsa.RSAPrivateKey):
                raise ValueError(f"{path}: not an RSA key")
            key = self._keys[domain] = loaded
        return key

    def _write_key(self, path: Path, pem: bytes) -> None:
        """Write a new key; made by root (``mailsuite dns``), it goes to the owner of the
        state directory, i.e. the user the server runs as, who must read it."""
        made_dir = not path.parent.exists()
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        atomic_write(path, pem, 0o600)
        if os.geteuid() == 0:
            owner = path.parent.parent.stat()
            for made in ([path.parent] if made_dir else []) + [path]:
                os.chown(made, owner.st_uid, owner.st_gid)

    def dns_record(self, domain: str) -> str:
        """The zone-file line that publishes ``domain``'s public key."""
        public = self.key(domain).public_key().public_bytes(
            serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        p = "p=" + base64.b64encode(public).decode("ascii")
        # TXT strings hold at most 255 characters each; resolvers join them back together.
        parts = ['"v=DKIM1; k=rsa; "'] + [f'"{p[i:i + 250]}"' for i in range(0, len(p), 250)]
        return (f"{self.settings.selector}._domainkey.{domain}.\tIN TXT\t( "
                + " ".join(parts) + " )")

    def signing_domain(self, message: bytes, local_domains: Any) -> str | None:
        """The domain to sign as: the From address's, when it is one of ours (DMARC alignment)."""
        fields, _ = split_header(message[:65536])
        for field in fields:
            if _field_name(field) == "from":
                value = field.partition(b":")[2].decode("utf-8", "replace")
                addresses = [a for _, a in getaddresses([value]) if "@" in a]
                if len(addresses) == 1:
                    domain = addresses[0].rsplit("@", 1)[1].strip().lower()
                    return domain if domain in local_domains else None
                return None
        return None

    def sign(self, message: bytes, domain: str, timestamp: int) -> bytes:
        """The DKIM-Signature field for ``message`` as ``domain``."""
        return signature_header(message, domain, self.settings.selector, self.key(domain),
                                timestamp)

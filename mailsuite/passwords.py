"""Password hashing: argon2id (memory-hard) through argon2-cffi.

Only hashes are ever stored. ``verify`` is constant in cost whether or not the user exists:
callers pass ``DUMMY_HASH`` for unknown users so that the answer time does not reveal which
accounts exist. Both functions are CPU-heavy (tens of milliseconds) and must run off the reactor
thread (``IAccounts.check_password`` does that).
"""

from __future__ import annotations

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

__all__ = ["DUMMY_HASH", "HASH_PREFIX", "hash_password", "needs_rehash", "verify_password"]

# RFC 9106 second recommended option (64 MiB, 3 passes, 4 lanes): argon2-cffi's defaults.
_HASHER = PasswordHasher()

HASH_PREFIX = "$argon2id$"
MAX_PASSWORD_LENGTH = 4096  # longer input is refused before hashing (a cheap DoS otherwise)

# A real hash of a random secret: verifying against it costs as much as a real check.
DUMMY_HASH = _HASHER.hash("mailsuite-dummy-password-for-unknown-users")


def hash_password(password: str) -> str:
    """The argon2id hash (PHC string ``$argon2id$v=19$m=...``) of ``password``."""
    if not password:
        raise ValueError("empty password")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValueError("password too long")
    return _HASHER.hash(password)


def verify_password(hashed: str, password: str) -> bool:
    """True if ``password`` matches ``hashed``. Never raises for a wrong or malformed input."""
    if len(password) > MAX_PASSWORD_LENGTH:
        password = password[:MAX_PASSWORD_LENGTH]
        hashed = DUMMY_HASH
    try:
        return _HASHER.verify(hashed, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


def needs_rehash(hashed: str) -> bool:
    """True if ``hashed`` was made with weaker parameters than the current ones."""
    try:
        return _HASHER.check_needs_rehash(hashed)
    except (InvalidHashError, ValueError):
        return True

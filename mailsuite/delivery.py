"""Final delivery into a local user's Maildir (RFC 5321 4.4: Return-Path at final delivery).

Used by the SMTP receiver for local recipients and by the relay for bounces and retried local
recipients. The store does the durable part (tmp, fsync, rename) and the quota check.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from twisted.internet import defer
from twisted.logger import Logger
from twisted.python.failure import Failure

from mailsuite.errors import FolderNotFound
from mailsuite.interfaces import INBOX, IAccounts, IMailStore


def _header_safe(text: str) -> str:
    """Keep a header value on one line whatever the envelope contained."""
    return text.replace("\r", "").replace("\n", "").replace("\x00", "")


def delivery_headers(return_path: str, delivered_to: str) -> bytes:
    """``Return-Path`` (RFC 5321 4.4) and ``Delivered-To`` (Postfix convention) header lines."""
    return (
        f"Return-Path: <{_header_safe(return_path)}>\r\n"
        f"Delivered-To: {_header_safe(delivered_to)}\r\n"
    ).encode()


class LocalDelivery:
    """Deliver a message to one local user, adding Return-Path and Delivered-To.

    ``deliver`` returns a Deferred that fires (with None) once the message is durable, or fails
    with ``QuotaExceeded`` / ``TemporaryStoreError`` from the store. It uses the store's
    ``deliver_incoming``: the UID is assigned by the next reader of the folder. A folder named
    by an alias rule that does not exist falls back to INBOX.
    """

    log = Logger()

    def __init__(self, store: IMailStore, accounts: IAccounts | None = None) -> None:
        self._store = store
        self._accounts = accounts

    def deliver(
        self,
        user: str,
        message: bytes | Sequence[bytes],
        *,
        return_path: str,
        delivered_to: str,
        folder: str = INBOX,
    ) -> defer.Deferred[None]:
        """Deliver durably; see the class docstring."""
        chunks: list[bytes] = [delivery_headers(return_path, delivered_to)]
        if isinstance(message, (bytes, bytearray, memoryview)):
            chunks.append(bytes(message))
        else:
            chunks.extend(message)
        try:
            account = self._store.account(user)
            delivered = defer.maybeDeferred(account.deliver_incoming, chunks, folder)
        except Exception:  # noqa: BLE001 - every error reaches the caller as a failed Deferred
            return defer.fail()
        if folder.upper() != INBOX:
            delivered.addErrback(self._into_inbox, account, user, chunks, folder)
        return delivered

    def _into_inbox(
        self, failure: Failure, account: Any, user: str, chunks: list[bytes], folder: str
    ) -> defer.Deferred[None]:
        """The alias named a folder that does not exist: INBOX instead."""
        failure.trap(FolderNotFound)
        self.log.warn(
            "folder {folder} of {user} does not exist; delivering to INBOX",
            folder=folder,
            user=user,
        )
        return defer.maybeDeferred(account.deliver_incoming, chunks, INBOX)

"""Protocol-neutral errors raised by storage, accounts and policy.

Each protocol (SMTP, POP3, IMAP) maps these to its own replies; nothing here knows about
reply codes, so POP3 and IMAP can share one store without sharing reply text.
"""


class MailsuiteError(Exception):
    """Base of every error mailsuite raises on purpose."""


# --- store -------------------------------------------------------------------------------


class StoreError(MailsuiteError):
    """A store operation failed."""


class TemporaryStoreError(StoreError):
    """The operation may succeed later (disk full, lock held, I/O error)."""


class FolderNotFound(StoreError):
    """The named folder does not exist."""


class FolderExists(StoreError):
    """A folder of that name already exists."""


class InvalidFolderName(StoreError):
    """The folder name is not allowed (escapes the Maildir, control characters, bad UTF-7)."""


class FolderNotEmpty(StoreError):
    """The folder has children or messages and cannot be removed as asked."""


class SpecialUseNotSupported(StoreError):
    """The store cannot give a folder that special use (RFC 6154: unknown, or virtual)."""


class MessageNotFound(StoreError):
    """No message with that UID (it may have been expunged by another session)."""


class QuotaExceeded(StoreError):
    """Delivery would exceed the user's quota.

    ``permanent`` is True when the message alone is larger than the whole quota (it can never
    fit); otherwise the failure is temporary (the user may delete mail).
    """

    def __init__(self, message: str, permanent: bool = False) -> None:
        super().__init__(message)
        self.permanent = permanent


class ReadOnlyFolder(StoreError):
    """The folder was opened read-only (IMAP EXAMINE)."""


# --- accounts ----------------------------------------------------------------------------


class AccountsError(MailsuiteError):
    """An accounts operation failed."""


class NoSuchUser(AccountsError):
    """The address is not a local user."""


class UserExists(AccountsError):
    """A user, alias or domain of that name already exists."""


class NoSuchDomain(AccountsError):
    """The domain is not a local domain."""


class InvalidAddress(MailsuiteError):
    """The text is not an acceptable mail address."""


# --- configuration -----------------------------------------------------------------------


class ConfigError(MailsuiteError):
    """The configuration is invalid. The message names the file, the key and the problem."""

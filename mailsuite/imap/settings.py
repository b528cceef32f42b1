"""Settings of the IMAP listeners, read from the ``[imap]`` table of the configuration."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class ImapSettings:
    """``[imap]``: limits and timeouts of the IMAP listeners."""

    max_line_length: int = 64 * 1024  # a command line without its literals
    max_literal_size: int = 50 * 1024 * 1024  # largest literal (APPENDLIMIT)
    idle_timeout: float = 30 * 60.0  # RFC 3501 5.4: at least 30 minutes when authenticated
    max_connections: int = 1000
    max_connections_per_ip: int = 50
    login_timeout: float = 120.0  # seconds a client may stay connected without logging in
    allow_plaintext_auth: bool = False  # LOGIN / AUTHENTICATE PLAIN without TLS (tests, loopback)
    idle_poll_interval: float = 5.0  # seconds between re-reads of the disk while a client IDLEs
    greeting: str = "mailsuite IMAP ready."

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

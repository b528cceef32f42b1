"""Settings of the POP3 listeners, read from the ``[pop3]`` table of the configuration."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Pop3Settings:
    """``[pop3]``: policy and limits of the POP3 listeners."""

    allow_plaintext_auth: bool = False  # USER/PASS before STLS on port 110
    max_line_length: int = 512  # RFC 2449: 255 octets per argument, we allow a little more
    idle_timeout: float = 600.0  # RFC 1939: at least 10 minutes
    max_connections: int = 200
    max_connections_per_ip: int = 20  # open connections from one client address
    # Failed logins in one connection before it is closed (the shared LoginThrottle also
    # delays every failure and blocks an address after repeated failures).
    max_auth_failures: int = 3
    # Unknown or malformed commands in a row before the connection is closed.
    max_bad_commands: int = 20
    # RETR/TOP read the message file in chunks of this size; a message no larger than one
    # chunk goes out in a single write with its status line.
    chunk_size: int = 65536
    # RFC 2449 LOGIN-DELAY: minimum seconds between two logins of one user; 0 = not enforced
    # and not advertised.
    login_delay: int = 0
    # RFC 2449 EXPIRE: the retention policy advertised in CAPA ("NEVER" or a number of days);
    # "" = not advertised. mailsuite does not delete old mail itself: a site that advertises a
    # number of days must expire mail by its own means.
    expire: str = ""

    def __post_init__(self) -> None:
        """Reject values that cannot work (the config loader reports them as ConfigError)."""
        if self.max_line_length < 255:
            raise ValueError("max_line_length: at least 255 (RFC 2449 section 4)")
        if self.idle_timeout < 600:
            raise ValueError("idle_timeout: at least 600 seconds (RFC 1939 section 3)")
        for name in (
            "max_connections",
            "max_connections_per_ip",
            "max_auth_failures",
            "max_bad_commands",
        ):
            if getattr(self, name) < 1:
                raise ValueError(f"{name}: at least 1")
        if not 1 <= self.chunk_size <= 16 * 1024 * 1024:
            raise ValueError("chunk_size: between 1 and 16777216 bytes")
        if self.login_delay < 0:
            raise ValueError("login_delay: 0 or more seconds")
        if self.expire and self.expire != "NEVER" and not self.expire.isdigit():
            raise ValueError('expire: "", "NEVER" or a number of days')

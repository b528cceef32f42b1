"""Settings of the POP3 listeners, read from the ``[pop3]`` table of the configuration."""

from dataclasses import dataclass


@dataclass(frozen=True, slots=True)
class Pop3Settings:
    """``[pop3]``: policy and limits of the POP3 listeners."""

    allow_plaintext_auth: bool = False  # USER/PASS before STLS on port 110
    max_line_length: int = 512  # RFC 2449: 255 octets per argument, we allow a little more
    idle_timeout: float = 600.0  # RFC 1939: at least 10 minutes
    max_connections: int = 200

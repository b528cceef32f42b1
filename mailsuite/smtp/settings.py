"""Settings of the SMTP listeners, read from the ``[smtp]`` table of the configuration."""

from dataclasses import dataclass, field

from mailsuite.networks import parse_networks


@dataclass(frozen=True, slots=True)
class SmtpSettings:
    """``[smtp]``: limits and timeouts of the MX and submission listeners."""

    max_message_size: int = 50 * 1024 * 1024  # SIZE advertised and enforced (bytes)
    # Message content all SMTP sessions together may hold in memory (bytes); past it a new
    # message gets 452 4.3.1 and the client tries again later (mailsuite.smtp.budget).
    max_message_memory: int = 256 * 1024 * 1024
    max_recipients: int = 100  # per transaction; more get 452 4.5.3
    max_line_length: int = 1000  # command line (RFC 5321 4.5.3.1.4) and text line limit
    max_errors: int = 10  # bad commands before the connection is closed
    max_received_headers: int = 50  # loop detection: more gives 554 5.4.6
    idle_timeout: float = 300.0  # seconds without a complete command
    session_timeout: float = 3600.0  # seconds a whole session may last
    max_connections: int = 500  # global limit across SMTP listeners
    max_connections_per_ip: int = 20
    auth_failure_delay: float = 1.0  # minimum seconds before a 535 (the throttle may add more)
    # SPF/DKIM/DMARC of mail arriving on the MX, recorded in Authentication-Results (RFC 8601)
    check_sender: bool = True
    # Clients not checked (local software handing mail over)
    trusted_networks: list[str] = field(default_factory=lambda: ["127.0.0.0/8", "::1/128"])

    def __post_init__(self) -> None:
        parse_networks(self.trusted_networks)  # ValueError names a bad entry
        if self.max_message_memory < self.max_message_size:
            raise ValueError("max_message_memory: at least max_message_size, or a message of "
                             "the advertised SIZE could never be received")

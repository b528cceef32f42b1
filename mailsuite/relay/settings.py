"""Settings of the outbound relay, read from the ``[relay]`` table of the configuration."""

from dataclasses import dataclass, field


@dataclass(frozen=True, slots=True)
class RelaySettings:
    """``[relay]``: routing, retries and bounces of outbound mail."""

    nameservers: list[str] = field(default_factory=list)  # "ip:port"; [] = the system's resolver
    port: int = 25  # destination port of MX hosts
    smarthost: str = ""  # "host:port": send everything through this provider
    smarthost_user: str = ""
    smarthost_password: str = ""
    retry_initial: float = 300.0  # seconds before the first retry; doubles each time
    retry_max: float = 4 * 3600.0  # longest wait between two tries
    delay_notice_after: float = 4 * 3600.0  # a delay DSN to the sender after this long
    bounce_after: float = 5 * 86400.0  # give up and bounce after this long
    max_per_destination: int = 4  # concurrent connections to one destination
    max_connections: int = 50  # concurrent outbound connections in total
    smarthost_implicit_tls: bool = False  # TLS from the first byte (port 465) instead of STARTTLS
    smarthost_cafile: str = ""  # PEM trust anchors for the smarthost certificate; "" = the system's
    own_addresses: list[str] = field(default_factory=list)  # our MX addresses: an MX there is a loop
    dns_timeouts: list[float] = field(default_factory=lambda: [1.0, 3.0, 11.0])  # per-try DNS timeouts
    connect_timeout: float = 30.0  # seconds to establish a TCP connection
    greeting_timeout: float = 300.0  # RFC 5321 4.5.3.2.1: initial 220
    command_timeout: float = 300.0  # EHLO, STARTTLS, AUTH, MAIL (4.5.3.2.2), RCPT (4.5.3.2.3), RSET
    data_init_timeout: float = 120.0  # RFC 5321 4.5.3.2.4: the 354 after DATA
    data_block_timeout: float = 180.0  # RFC 5321 4.5.3.2.5: longest wait to send each body block
    data_end_timeout: float = 600.0  # RFC 5321 4.5.3.2.6: the reply after the final dot
    max_messages_per_connection: int = 100  # reuse one connection for up to this many messages
    connection_cache_time: float = 2.0  # keep an idle connection open this long for more mail
    max_recipients_per_transaction: int = 50  # more recipients of one domain: more transactions
    suspend_after_failure: float = 60.0  # an unreachable destination is not tried for this long
    stop_grace: float = 10.0  # at shutdown, transactions in flight get this long to finish

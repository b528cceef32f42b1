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

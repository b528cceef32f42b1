"""Pure acceptance decisions for the SMTP envelope: who may send, and to whom.

No protocol here: the SMTP layer passes a parsed ``Mailbox`` (``mailsuite.smtp.paths``) and maps
each verdict to a reply. The rules follow Postfix's defaults where the issue is silent:

- A client that is not authenticated (MX) may only reach recipients in local domains that
  resolve to somebody. Anything else is relaying and is refused (5.7.1), in every disguise:
  ``user%foreign@local``, ``user!foreign@local``, ``"user@foreign"@local`` (sender-specified
  routing, RFC 5321 3.6 / Postfix ``allow_untrusted_routing = no``), source routes whose final
  mailbox is foreign (RFC 5321 Appendix C: the route is ignored, the mailbox decides), trailing
  dots (``user@local.``) and address literals (``user@[192.0.2.1]``).
- An authenticated user may send anywhere except to address literals; in local domains the
  same routing rules apply so that nobody can bounce mail through ``%``.
- An authenticated user may only use their own addresses as the envelope sender: the account,
  the aliases reaching it (``IAccounts.sender_addresses``) and ``+tag`` forms of those.
"""

from __future__ import annotations

import enum
from dataclasses import dataclass

from mailsuite.address import base_address, canonical
from mailsuite.errors import InvalidAddress
from mailsuite.interfaces import IAccounts, Resolution
from mailsuite.smtp.paths import Mailbox

_ROUTING_CHARACTERS = ("%", "!", "@")


class RecipientVerdict(enum.Enum):
    """What to do with one RCPT TO."""

    LOCAL = "local"  # accepted; ``resolution`` says who gets it
    REMOTE = "remote"  # accepted for the outbound queue (authenticated senders only)
    RELAY_DENIED = "relay-denied"  # 5.7.1
    UNKNOWN_USER = "unknown-user"  # 5.1.1


@dataclass(frozen=True, slots=True)
class RecipientDecision:
    """The verdict for one recipient, with the address as it will be used."""

    verdict: RecipientVerdict
    address: str
    resolution: Resolution | None = None
    reason: str = ""


def check_recipient(
    accounts: IAccounts, mailbox: Mailbox, *, authenticated_user: str | None
) -> RecipientDecision:
    """Decide on one forward-path (RFC 5321 3.6 relaying; RFC 5321 3.9 aliases)."""
    if mailbox.literal:
        return RecipientDecision(
            RecipientVerdict.RELAY_DENIED, mailbox.address, reason="address literal"
        )
    if mailbox.trailing_dot:
        return RecipientDecision(
            RecipientVerdict.RELAY_DENIED, mailbox.address, reason="trailing dot in domain"
        )
    domain = mailbox.domain
    if not domain:
        # <postmaster> without a domain (RFC 5321 4.1.1.3): the postmaster of our first domain.
        domains = sorted(accounts.local_domains())
        if not domains:
            return RecipientDecision(RecipientVerdict.UNKNOWN_USER, "postmaster")
        domain = domains[0]
    local_domain = accounts.is_local_domain(domain)
    if not local_domain:
        if authenticated_user is None:
            return RecipientDecision(
                RecipientVerdict.RELAY_DENIED, mailbox.address, reason="foreign domain"
            )
        return RecipientDecision(RecipientVerdict.REMOTE, mailbox.address)
    if any(c in mailbox.local for c in _ROUTING_CHARACTERS):
        return RecipientDecision(
            RecipientVerdict.RELAY_DENIED,
            mailbox.address,
            reason="sender-specified routing in local part",
        )
    address = f"{mailbox.local}@{domain}"
    resolution = accounts.resolve(address)
    if resolution is None or not (resolution.local_users or resolution.remote_addresses):
        return RecipientDecision(RecipientVerdict.UNKNOWN_USER, address, reason="user unknown")
    return RecipientDecision(RecipientVerdict.LOCAL, address, resolution)


def sender_allowed(
    accounts: IAccounts, mailbox: Mailbox | None, *, authenticated_user: str | None
) -> bool:
    """May this client use this reverse-path?

    Unauthenticated clients (MX) may use any sender. An authenticated user may use their own
    address, their aliases and ``+tag`` forms of those; never the null reverse-path, never an
    address literal.
    """
    if authenticated_user is None:
        return True
    if mailbox is None or mailbox.literal or mailbox.trailing_dot or not mailbox.domain:
        return False
    if any(c in mailbox.local for c in _ROUTING_CHARACTERS):
        return False
    try:
        address = canonical(f"{mailbox.local}@{mailbox.domain}")
        base = base_address(address)
        user = canonical(authenticated_user)
    except InvalidAddress:
        return False
    owned = accounts.sender_addresses(user) | {user}
    return address in owned or base in owned

"""What every service of one running server shares, built once by ``mailsuite.tap``.

Services receive this object instead of importing globals, so tests can build a context with
in-memory fakes and a fake clock and drive a protocol over a string transport.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from mailsuite.interfaces import IAccounts, IMailStore, ISpool


@dataclass
class ServerContext:
    """The shared parts of one mailsuite process.

    - ``config``: the frozen ``mailsuite.config.Config``.
    - ``accounts``: an ``IAccounts`` (domains, users, aliases, passwords).
    - ``store``: the ``IMailStore`` (Maildir tree).
    - ``spool``: the outbound ``ISpool`` (None when the relay is not running).
    - ``portal``: a ``twisted.cred.portal.Portal`` whose checker verifies
      ``IUsernamePassword`` and whose realm hands out ``IAccountStore`` avatars.
    - ``tls``: a ``mailsuite.tls.TLSSettings``; ``tls.server_options()`` returns the current
      ``IOpenSSLServerConnectionCreator`` (for STARTTLS and implicit-TLS listeners; SIGHUP
      swaps the certificate underneath).
    - ``throttle``: a ``mailsuite.auth.LoginThrottle`` shared by SMTP AUTH, POP3 and IMAP.
    - ``maillog``: a ``mailsuite.maillog.MailLog``, one line per mail event.
    - ``reactor``: the reactor (also the clock for timeouts).
    - ``dkim``: a ``mailsuite.dkim.DkimSigner`` for submitted mail, or None (``[dkim]`` off).
    - ``sender_auth``: a ``mailsuite.sender_auth.SenderAuthenticator`` for mail arriving on the
      MX, or None (``[smtp] check_sender = false``).
    """

    config: Any
    accounts: IAccounts
    store: IMailStore
    spool: ISpool | None
    portal: Any
    tls: Any
    throttle: Any
    maillog: Any
    reactor: Any
    # The POP3 session registry (maildrop locks, RFC 2449 IN-USE) shared by the 110 and 995
    # listeners of this process; created by ``mailsuite.pop3.service.pop3_factory``.
    pop3_sessions: Any = None
    dkim: Any = None
    sender_auth: Any = None

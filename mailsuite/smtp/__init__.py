"""SMTP server side: MX (port 25) and submission (587 STARTTLS, 465 implicit TLS).

Modules, one concern each:

- ``replies``: the ``Reply`` value and a named constant for every reply the server sends.
- ``paths``: pure RFC 5321 / 6531 / 3461 parsing of MAIL FROM / RCPT TO arguments.
- ``session``: connection state (``Session``) apart from the transaction (``Envelope``).
- ``data``: streaming DATA (dot framing) and BDAT content checks: bare CR/LF, line length, SIZE,
  mail loops.
- ``auth``: SASL PLAIN / LOGIN exchanges and the throttled credential check.
- ``protocol``, ``cmd_auth``, ``cmd_mail``: the Twisted protocol, by command family.
- ``headers``, ``intake``: trace headers, RFC 6409 completion, delivery and spooling after DATA.
- ``service``: ``smtp_factory(ctx, role)`` with connection limits.
- ``testing``: small recording fakes (spool, mail log, TLS settings) for tests.

Acceptance rules are in ``mailsuite.policy``; final delivery in ``mailsuite.delivery``.
"""

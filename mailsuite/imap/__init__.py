"""IMAP4rev1 server (RFC 3501) with the extensions desktop clients use.

Modules, by concern:

- ``parser``: a pure, bounded reader of command syntax (atoms, strings, literals, lists,
  sequence sets, dates); every violation is a ``ParseError`` (tagged ``BAD``).
- ``protocol``: the Twisted protocol: line/literal framing with limits checked before any
  literal byte is buffered, the one-command-at-a-time queue, output flow control, COMPRESS.
- ``session``: connection state and the *selected view* (sequence number <-> UID map that
  changes only when the client is told; RFC 3501 7.4.1).
- ``commands``: per-state dispatch tables and the CAPABILITY list.
- Command families: ``cmd_auth`` (CAPABILITY NOOP LOGOUT STARTTLS LOGIN AUTHENTICATE ID ENABLE
  COMPRESS), ``cmd_mailbox`` (SELECT EXAMINE CREATE DELETE RENAME SUBSCRIBE UNSUBSCRIBE LIST
  LSUB STATUS NAMESPACE GETQUOTA GETQUOTAROOT), ``cmd_fetch`` (FETCH), ``cmd_message`` (STORE
  COPY MOVE EXPUNGE CLOSE UNSELECT CHECK APPEND), ``cmd_search`` (SEARCH/ESEARCH), ``cmd_idle``.
- ``folders`` (name checks, LIST patterns), ``wire`` (mailbox names, flags, dates on the wire),
  ``responses`` (typed replies and response codes), ``render`` (ENVELOPE/BODYSTRUCTURE, owned
  by the message part), ``service`` (``imap_factory(ctx, implicit_tls)``, connection limits),
  ``settings`` (the ``[imap]`` table).
"""

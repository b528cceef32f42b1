"""POP3 server (RFC 1939, 2449, 2595, 3206, 5034), a view over the shared Maildir store.

- ``service.pop3_factory(ctx, implicit_tls)``: the listener factory (ports 110 and 995);
- ``protocol.Pop3Protocol``: one connection (``connection``, ``authorization``, ``transaction``);
- ``maildrop.Maildrop``: the INBOX snapshot taken at login, DELE applied only at QUIT;
- ``stream``: byte-stuffed, chunked RETR/TOP from the message file;
- ``replies``: every status line, with RFC 2449/3206 response codes;
- ``sessions.SessionRegistry``: per-process maildrop locks ([IN-USE]) and connection counts.
"""

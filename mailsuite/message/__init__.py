"""Pure RFC 5322 / MIME parsing: envelopes, body structure, sections, search text.

Nothing in this package does I/O or raises on bad input: empty, truncated, NUL-laden,
8-bit or absurdly nested messages all give a sensible result. Offsets and sizes always refer to
the message bytes exactly as stored (CRLF or bare LF); nothing is re-serialised.

Public surface
--------------
- ``summarize(raw: bytes) -> dict``: the cacheable summary (format below).
- ``mailsuite.message.sections``: ``Section``, ``parse_section(text)``,
  ``extract(raw, section, summary=None)``, ``partial(data, start, count)`` (RFC 3501 6.4.5).
- ``mailsuite.message.search_text``: header/body/text matching with decoding, IMAP date
  parsing (RFC 3501 6.4.4).
- ``mailsuite.imap.render``: the summary in IMAP syntax (ENVELOPE, BODY, BODYSTRUCTURE) and
  string/nstring/astring/literal helpers.

Summary format (``SUMMARY_VERSION`` = 2)
-----------------------------------------
Only ``str``, ``int``, ``None``, ``list`` and ``dict``: ``json.dumps`` works on it as is.
Every "raw" string is the original header octets decoded with **latin-1** (lossless:
``s.encode("latin-1")`` gives the bytes back), with folding line breaks removed and the
surrounding white space trimmed (a line break and the blanks after it become one space);
encoded words are *not* decoded (IMAP sends them as they are). Absent fields are ``None``;
a field present but empty is ``""``. When a field is repeated, the last one counts (address
lists: all are merged), as in Dovecot.

::

    {
      "version": 2,                 # bump => caches rebuild
      "size": int,                  # len(raw)  (RFC822.SIZE)
      "header_size": int,           # bytes of the top header incl. the empty line (BODY[HEADER])
      "date_epoch": int | None,     # Date header as UTC epoch seconds (None: absent/unparsable)
      "sent_date": "YYYY-MM-DD" | None,  # calendar date of Date in its own zone (SENTON/...)
      "envelope": ENVELOPE,
      "references": str | None,     # raw References header (THREAD=REFERENCES, RFC 5256 3)
      "body": NODE,                 # the BODYSTRUCTURE tree of the whole message
      "decoded": {                  # decoded text (RFC 2047, 8-bit as UTF-8/cp1252) for SEARCH;
        "subject": str | None,      # all occurrences joined with "\\n"; None if absent
        "from": str | None, "to": str | None, "cc": str | None, "bcc": str | None,
      },
    }

    ENVELOPE = {                    # RFC 3501 7.4.2, in this key order
      "date": str | None, "subject": str | None,
      "from": ADDRS, "sender": ADDRS, "reply_to": ADDRS,   # sender/reply_to default to from
      "to": ADDRS, "cc": ADDRS, "bcc": ADDRS,
      "in_reply_to": str | None, "message_id": str | None,
    }
    ADDRS = None | [[name, adl, mailbox, host], ...]      # each str | None
        # a group "team: a@x;" is [None, None, "team", None], the members, [None]*4
        # a mailbox without a domain gets host "MISSING_DOMAIN", "<>" gets mailbox
        # "MISSING_MAILBOX" (a None host would mean a group), as Dovecot does

    NODE = {
      "type": "text", "subtype": "plain",     # lower case; defaults per RFC 2045 5.2
      "params": [[name, value], ...],         # names lower case, values unquoted; RFC 2231
                                              # continuations merged ("name*" stays extended);
                                              # text/* without charset gets charset us-ascii
      "id": str | None, "description": str | None,
      "encoding": "7bit",                     # lower case Content-Transfer-Encoding
      "size": int,                            # octets of the body (for multipart too)
      "lines": int | None,                    # text/* and message/rfc822 only: the number
                                              # of LFs (a last line without one is not counted)
      "md5": str | None,
      "disposition": None | {"type": "attachment", "params": [[name, value], ...]},
      "language": None | [str, ...],
      "location": str | None,
      "offset": int,                          # where this part's MIME header starts in raw
      "body_offset": int,                     # where its body starts; body = raw[body_offset:
                                              #                      body_offset + size]
      # multipart/* only (never empty: a part-less multipart gets one empty text/plain):
      "parts": [NODE, ...],
      # message/rfc822 only (message/global is a plain leaf: IMAP4rev1's grammar knows
      # only MESSAGE/RFC822 as an encapsulation, and Dovecot does the same):
      "message": {"envelope": ENVELOPE, "body": NODE, "header_size": int,
                  "opaque": True},            # "opaque" only when not scanned (see below)
    }

A multipart that cannot be scanned (no boundary, or nested deeper than ``MAX_DEPTH``) is
reported as an ``application/octet-stream`` leaf. A message/rfc822 part that is not in an
identity encoding (e.g. base64) gets an all-NIL envelope and an empty text/plain body.

Text encoding for rendering: the IMAP layer turns raw strings back into octets with
``s.encode("latin-1")`` (``mailsuite.imap.render`` does this).

How the bytes are read (``scan``): the header ends at the first empty line; MIME parts are
found in one pass with a stack of enclosing boundaries (longest match, then innermost, so
nested multiparts that reuse or extend a boundary work); text after ``--boundary`` on a
delimiter line is tolerated; a truncated multipart keeps its partial last part. Bounds:
``MAX_DEPTH`` (100) nesting levels, ``MAX_PARTS`` (10,000) parts, 10,000 header fields per
header, 200,000 delimiter tests and 256 KiB of address text per field. The results were
compared with Dovecot 2.3 (``tests/test_message_dovecot.py``); deliberate differences:
sizes count stored octets (Dovecot counts bare LF as CRLF), and an invalid Content-Type gets
the RFC 2045 default ``text/plain`` (Dovecot echoes the invalid text).
"""

from mailsuite.message.scan import MAX_DEPTH, MAX_PARTS
from mailsuite.message.summary import SUMMARY_VERSION, summarize

__all__ = ["MAX_DEPTH", "MAX_PARTS", "SUMMARY_VERSION", "summarize"]

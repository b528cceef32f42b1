"""twistd plugin: ``twistd mailsuite`` runs the mail server (loads mailsuite.tap lazily)."""

from twisted.application.service import ServiceMaker

mailsuite = ServiceMaker(
    "mailsuite",
    "mailsuite.tap",
    "Self-hosted mail server: SMTP, submission, relay, POP3 and IMAP over one Maildir store",
    "mailsuite",
)

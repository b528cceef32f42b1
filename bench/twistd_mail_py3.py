"""Run Twisted's own ``twistd mail`` with the fixes it needs to work on Python 3 at all.

On Python 3 (checked with Twisted 26.10) ``twistd mail --maildirdbmdomain=D=PATH`` cannot deliver
or authenticate: the domain is registered under a ``str`` key while SMTP and POP3 look it up with
``bytes``; ``--user`` passes ``str`` to a DirDBM that wants ``bytes``; and the Maildir delivery
mixes ``bytes`` and ``str`` paths and writes ``bytes`` to a file opened in text mode, and POP3 reads messages in text mode.  This
script repairs exactly those type mismatches (no change to how or when data is written: still one
write per line, no fsync, rename into ``new/``) and then runs ``twistd`` with the given arguments:

    python bench/twistd_mail_py3.py -n --pidfile P mail --maildirdbmdomain=bench.test=DIR \
        --user=alice=secret --smtp=tcp:PORT:interface=127.0.0.1 ...
"""

from __future__ import annotations

import os


def patch() -> None:
    from twisted.mail import mail, maildir

    original_add_domain = mail.MailService.addDomain

    def add_domain(self, name, domain):
        # SMTP and POP3 look domains up by bytes; the command line gives str.
        original_add_domain(self, name, domain)
        if isinstance(name, str):
            original_add_domain(self, name.encode("idna"), domain)

    mail.MailService.addDomain = add_domain

    original_add_user = maildir.MaildirDirdbmDomain.addUser

    def add_user(self, user, password):
        if isinstance(user, str):
            user = user.encode()
        if isinstance(password, str):
            password = password.encode()
        original_add_user(self, user, password)

    maildir.MaildirDirdbmDomain.addUser = add_user

    def start_message(self, user):
        # Same naming and file moves as AbstractMaildirDomain.startMessage, with consistent types.
        if isinstance(user, (str, bytes)):
            text = os.fsencode(user)
            name, domain = text.split(b"@", 1)
        else:
            name, domain = user.dest.local, user.dest.domain
        directory = os.fsdecode(self.userDirectory(name))
        unique = os.fsdecode(maildir._generateMaildirName())
        tmp = os.path.join(directory, "tmp", unique)
        fp = open(tmp, "wb")  # noqa: SIM115 - MaildirMessage closes it
        return maildir.MaildirMessage(b"%s@%s" % (name, domain), fp, tmp,
                                      os.path.join(directory, "new", unique))

    maildir.AbstractMaildirDomain.startMessage = start_message

    def get_message(self, i):
        # POP3 sends bytes; the stock method opens the file in text mode.
        return open(self.list[i], "rb")

    maildir.MaildirMailbox.getMessage = get_message


if __name__ == "__main__":
    patch()
    from twisted.scripts.twistd import run

    run()

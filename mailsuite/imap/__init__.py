"""IMAP4rev1 server with the extensions desktop clients use."""

"""The Maildir store shared by every service."""

"""mailsuite: a complete self-hosted mail server on Twisted."""

__version__ = "0.1.0"

"""Outbound relay: durable spool, queue runner, MX routing, ESMTP client, bounces."""

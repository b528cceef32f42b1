"""Pure RFC 5322 / MIME parsing: envelopes, body structure, sections, search text."""

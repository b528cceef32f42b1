"""Build the JSON-serialisable summary of a message (format documented in the package)."""

from __future__ import annotations

from typing import Any

from mailsuite.message import headers as hdr
from mailsuite.message.addresses import parse_address_list
from mailsuite.message.scan import Entity, parse_message

SUMMARY_VERSION = 2  # 2: "references" (RFC 5256 THREAD=REFERENCES)

# Fields whose decoded text the summary keeps for SEARCH (RFC 3501 6.4.4 FROM/TO/CC/BCC/SUBJECT).
DECODED_FIELDS = ("subject", "from", "to", "cc", "bcc")

_ADDRESS_FIELDS = (
    ("from", b"from"),
    ("sender", b"sender"),
    ("reply_to", b"reply-to"),
    ("to", b"to"),
    ("cc", b"cc"),
    ("bcc", b"bcc"),
)


def _text(value: bytes | None) -> str | None:
    if value is None or value == b"":
        return None
    return value.decode("latin-1")


def _last(raw: bytes, entity: Entity, name: bytes) -> str | None:
    """The unfolded value of the last field called ``name`` ("" when empty), None if absent.

    A repeated field (invalid per RFC 5322 3.6) counts by its last occurrence, as in Dovecot.
    """
    found = entity.named(name)
    if not found:
        return None
    f = found[-1]
    return hdr.unfold(raw[f.value_start : f.end]).decode("latin-1")


def _addresses(raw: bytes, entity: Entity, name: bytes) -> list[list[str | None]] | None:
    """Every address in every field called ``name`` (repeated fields are merged)."""
    out: list[list[str | None]] = []
    for f in entity.named(name):
        found = parse_address_list(hdr.unfold(raw[f.value_start : f.end]).decode("latin-1"))
        if found:
            out.extend(found)
    return out or None


def envelope_of(raw: bytes, entity: Entity) -> dict[str, Any]:
    """The RFC 3501 7.4.2 ENVELOPE fields of the message whose header is ``entity``'s."""
    env: dict[str, Any] = {
        "date": _last(raw, entity, b"date"),
        "subject": _last(raw, entity, b"subject"),
    }
    for key, name in _ADDRESS_FIELDS:
        env[key] = _addresses(raw, entity, name)
    # RFC 3501 7.4.2: "If the Sender or Reply-To lines are absent in the [RFC-2822]
    # header, or are present but empty, the server sets the corresponding member of the
    # envelope to be the same value as the from member".
    if env["sender"] is None:
        env["sender"] = env["from"]
    if env["reply_to"] is None:
        env["reply_to"] = env["from"]
    env["in_reply_to"] = _last(raw, entity, b"in-reply-to")
    env["message_id"] = _last(raw, entity, b"message-id")
    return env


def empty_envelope() -> dict[str, Any]:
    """An envelope with every member NIL."""
    keys = ("date", "subject", "from", "sender", "reply_to", "to", "cc", "bcc")
    env: dict[str, Any] = {key: None for key in keys}
    env["in_reply_to"] = None
    env["message_id"] = None
    return env


def _lines(raw: bytes, start: int, end: int) -> int:
    """Lines of ``raw[start:end]``: its line breaks, so a last line without one does not count
    (as Dovecot counts; RFC 3501 only says "size of the body in text lines")."""
    if end <= start:
        return 0
    return raw.count(b"\n", start, end)


def _leaf_text(raw: bytes, entity: Entity, name: bytes) -> str | None:
    return _text(entity.field_value(raw, name))


def _empty_text_node(offset: int) -> dict[str, Any]:
    return {
        "type": "text", "subtype": "plain", "params": [["charset", "us-ascii"]],
        "id": None, "description": None, "encoding": "7bit", "size": 0, "lines": 0,
        "md5": None, "disposition": None, "language": None, "location": None,
        "offset": offset, "body_offset": offset,
    }  # fmt: skip


def body_node(raw: bytes, entity: Entity) -> dict[str, Any]:
    """The BODYSTRUCTURE node of one entity (recursively)."""
    cte = entity.field_value(raw, b"content-transfer-encoding")
    encoding = hdr.first_token(cte.decode("latin-1")) if cte else ""
    disposition = None
    value = entity.field_value(raw, b"content-disposition")
    if value:
        parsed = hdr.parse_disposition(value.decode("latin-1"))
        if parsed is not None:
            disposition = {"type": parsed[0], "params": [[k, v] for k, v in parsed[1]]}
    language = None
    value = entity.field_value(raw, b"content-language")
    if value:
        language = hdr.parse_language(value.decode("latin-1"))
    maintype, subtype, params = entity.maintype, entity.subtype, entity.params
    if maintype == "text" and not any(k == "charset" for k, _ in params):
        params = [*params, ("charset", "us-ascii")]  # RFC 2045 5.2 default, as Dovecot shows it
    if maintype == "multipart" and not entity.is_multipart:
        # Nested deeper than MAX_DEPTH: an opaque leaf (as Dovecot does past its limit).
        maintype, subtype = "application", "octet-stream"
    node: dict[str, Any] = {
        "type": maintype,
        "subtype": subtype,
        "params": [[k, v] for k, v in params],
        "id": _leaf_text(raw, entity, b"content-id"),
        "description": _leaf_text(raw, entity, b"content-description"),
        "encoding": encoding or "7bit",
        "size": entity.end - entity.body_start,
        "lines": None,
        "md5": _leaf_text(raw, entity, b"content-md5"),
        "disposition": disposition,
        "language": language,
        "location": _leaf_text(raw, entity, b"content-location"),
        "offset": entity.start,
        "body_offset": entity.body_start,
    }
    if entity.is_multipart:
        node["parts"] = [body_node(raw, child) for child in entity.children]
    elif maintype == "message" and subtype == "rfc822":
        inner = entity.message
        if inner is not None:
            node["message"] = {
                "envelope": envelope_of(raw, inner),
                "body": body_node(raw, inner),
                "header_size": inner.body_start - inner.start,
            }
        else:  # encoded or too deep: not scanned
            node["message"] = {
                "envelope": empty_envelope(),
                "body": _empty_text_node(entity.body_start),
                "header_size": 0,
                "opaque": True,
            }
        node["lines"] = _lines(raw, entity.body_start, entity.end)
    elif maintype == "text":
        node["lines"] = _lines(raw, entity.body_start, entity.end)
    return node


def _decoded(raw: bytes, entity: Entity) -> dict[str, str | None]:
    out: dict[str, str | None] = {}
    for name in DECODED_FIELDS:
        key = name.encode()
        values = [hdr.unfold(raw[f.value_start : f.end]) for f in entity.named(key)]
        out[name] = "\n".join(hdr.decode_words(v) for v in values) if values else None
    return out


def _summarize(raw: bytes) -> dict[str, Any]:
    root = parse_message(raw)
    envelope = envelope_of(raw, root)
    date = hdr.parse_date(envelope["date"]) if envelope["date"] else None
    return {
        "version": SUMMARY_VERSION,
        "size": len(raw),
        "header_size": root.body_start - root.start,
        "date_epoch": date[0] if date else None,
        "sent_date": date[1] if date else None,
        "envelope": envelope,
        "references": _last(raw, root, b"references"),
        "body": body_node(raw, root),
        "decoded": _decoded(raw, root),
    }


def _fallback(raw: bytes) -> dict[str, Any]:
    """The summary of last resort: the whole message as one text/plain body."""
    node = _empty_text_node(0)
    node["size"] = len(raw)
    node["lines"] = _lines(raw, 0, len(raw))
    return {
        "version": SUMMARY_VERSION,
        "size": len(raw),
        "header_size": 0,
        "date_epoch": None,
        "sent_date": None,
        "envelope": empty_envelope(),
        "references": None,
        "body": node,
        "decoded": {name: None for name in DECODED_FIELDS},
    }


def summarize(raw: bytes) -> dict[str, Any]:
    """Parse ``raw`` once into the summary dict described in ``mailsuite.message``.

    Total: any bytes give a summary (a degraded one for garbage), never an exception.
    """
    raw = bytes(raw)
    try:
        return summarize_strict(raw)
    except Exception:  # noqa: BLE001 -- a parser bug must not cost the message its listing
        return _fallback(raw)


def summarize_strict(raw: bytes) -> dict[str, Any]:
    """``summarize`` without the last-resort fallback (tests use it to find parser bugs)."""
    return _summarize(raw)

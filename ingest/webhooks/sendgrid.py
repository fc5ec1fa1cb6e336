"""SendGrid signed event webhook: delivery and engagement events for the messages we sent.

The signature (ECDSA P-256 over timestamp + raw body) is checked with the SDK's
``EventWebhook`` before anything is parsed. Events find their org and outbox row through the
``org_id``/``message_id`` custom args the SendGrid provider put on the message; events that do
not carry them (or name unknown ids) are ignored, not errors, since SendGrid would only retry
them. What an event does is ``cartrecovery.email_events``: stored once (keyed by
``sg_event_id``), clicks carry the message's cart, unsubscribes, spam reports, bounces and
drops suppress the address.
"""

from __future__ import annotations

import binascii
import json
import logging
import time
from collections import defaultdict
from functools import lru_cache
from uuid import UUID

from cryptography.exceptions import InvalidSignature
from flask import Blueprint, jsonify, request
from sendgrid.helpers.eventwebhook import EventWebhook
from sendgrid.helpers.eventwebhook.eventwebhook_header import EventWebhookHeader

from cartrecovery import email_events

from ..errors import ApiError
from ..runtime import runtime

log = logging.getLogger(__name__)

bp = Blueprint("sendgrid", __name__)

# Signed timestamps older (or further in the future) than this are replays. SendGrid documents
# no tolerance; None disables the check (the fixture vector carries a fixed, old timestamp).
TIMESTAMP_TOLERANCE_SECONDS: int | None = 600


@lru_cache(maxsize=4)
def _verifier(public_key: str) -> EventWebhook:
    return EventWebhook(public_key)


def verify(
    public_key: str | None,
    body: bytes,
    signature: str | None,
    timestamp: str | None,
    tolerance: int | None = None,
) -> None:
    """Raise ApiError 401 unless ``body`` was signed by the holder of ``public_key``."""
    if not public_key:
        raise ApiError(
            401,
            "signature_not_configured",
            "SENDGRID_WEBHOOK_PUBLIC_KEY is not set; signed events cannot be accepted",
        )
    if not signature or not timestamp:
        raise ApiError(401, "missing_signature", "signature or timestamp header missing")
    if tolerance is not None:
        try:
            age = abs(time.time() - int(timestamp))
        except ValueError:
            raise ApiError(401, "invalid_signature", "timestamp is not a number") from None
        if age > tolerance:
            raise ApiError(401, "stale_timestamp", "signature timestamp outside tolerance")
    try:
        payload = body.decode("utf-8")
        valid = _verifier(public_key).verify_signature(payload, signature, timestamp)
    except (UnicodeDecodeError, ValueError, binascii.Error, InvalidSignature):
        valid = False
    if not valid:
        raise ApiError(401, "invalid_signature", "event webhook signature does not verify")


def _uuid(value) -> UUID | None:
    try:
        return UUID(str(value)) if value else None
    except ValueError:
        return None


@bp.post("/api/webhooks/sendgrid/events")
def events():
    """Verify, then store each event once; 200 ``{received, stored, duplicates, ignored}``."""
    body = request.get_data(cache=True)
    header = EventWebhookHeader
    verify(
        runtime().settings.sendgrid_webhook_public_key,
        body,
        request.headers.get(header.SIGNATURE),
        request.headers.get(header.TIMESTAMP),
        TIMESTAMP_TOLERANCE_SECONDS,
    )
    try:
        batch = json.loads(body)
    except (ValueError, UnicodeDecodeError):
        raise ApiError(400, "invalid_json", "body is not valid JSON") from None
    if not isinstance(batch, list):
        raise ApiError(400, "invalid_body", "body must be a JSON array of events")

    by_org: dict[UUID, list[dict]] = defaultdict(list)
    ignored = 0
    for event in batch:
        org_id = _uuid(event.get("org_id")) if isinstance(event, dict) else None
        if org_id is None or not event.get("sg_event_id") or _uuid(event.get("message_id")) is None:
            ignored += 1
            continue
        by_org[org_id].append(event)

    stored = duplicates = 0
    for org_id, org_events in by_org.items():
        s, d, i = email_events.record_events(runtime().db, org_id, org_events)
        stored, duplicates, ignored = stored + s, duplicates + d, ignored + i
    log.info(
        "sendgrid events: %d received, %d stored, %d duplicate, %d ignored",
        len(batch),
        stored,
        duplicates,
        ignored,
    )
    return jsonify(
        {"received": len(batch), "stored": stored, "duplicates": duplicates, "ignored": ignored}
    ), 200

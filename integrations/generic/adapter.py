"""The generic adapter: our own documented JSON, for custom shops (docs/adapters.md).

A custom shop posts each event to ``/api/webhooks/custom/<connection_id>`` with the body of
the tracking API (``{"event", "cart_data", "timestamp", "event_id"}``, see
docs/tracking-api.md), ``event_id`` required, and two headers:

- ``X-Cartrecovery-Timestamp``: Unix seconds when the request was signed;
- ``X-Cartrecovery-Signature``: ``sha256=<hex HMAC-SHA256 of "<timestamp>.<raw body>">``
  keyed with the connection's webhook secret.

A timestamp further than ``TOLERANCE_SECONDS`` from now is refused (401), so a captured
request cannot be replayed later; within the window, the event id makes a replay a duplicate.
"""

from __future__ import annotations

import hashlib
import hmac
import time
from typing import ClassVar
from uuid import UUID

from pydantic import Field

from cartrecovery.carts import upsert_cart
from cartrecovery.orders import record_order
from cartrecovery.tenancy import Connection
from cartrecovery.tracking_events import TrackEvent, to_cart, to_order

from ..base import Adapter, Delivery, InboundRequest, json_object

PLATFORM = "generic"
TOLERANCE_SECONDS = 300
SIGNATURE_HEADER = "X-Cartrecovery-Signature"
TIMESTAMP_HEADER = "X-Cartrecovery-Timestamp"


class GenericEvent(TrackEvent):
    """A tracking-API event whose ``event_id`` is required (it is the dedup key)."""

    event_id: str = Field(min_length=1, max_length=255)


def signature(secret: str, body: bytes, timestamp: int | str) -> str:
    """The ``X-Cartrecovery-Signature`` value for ``body`` signed at ``timestamp``."""
    message = str(timestamp).encode() + b"." + body
    return "sha256=" + hmac.new(secret.encode(), message, hashlib.sha256).hexdigest()


def sign(secret: str, body: bytes, timestamp: int | None = None) -> dict[str, str]:
    """The two headers a sender adds (a client helper, also used by the tests)."""
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {TIMESTAMP_HEADER: str(timestamp), SIGNATURE_HEADER: signature(secret, body, timestamp)}


class GenericAdapter(Adapter):
    """Custom shops: cart, checkout and order events in our own signed JSON."""

    platform = PLATFORM
    webhook_topics: ClassVar[dict[str, str]] = {
        "events": "/api/webhooks/custom/{connection_id}",
    }

    def locate(self, request: InboundRequest) -> str | None:
        # Reached only through /api/webhooks/custom/<connection_id>, which names the store.
        return None

    def verify(self, request: InboundRequest, connection: Connection) -> bool:
        given = (request.headers.get(SIGNATURE_HEADER) or "").strip()
        stamp = (request.headers.get(TIMESTAMP_HEADER) or "").strip()
        if not given or not stamp.isdigit() or len(stamp) > 12:
            return False
        if abs(time.time() - int(stamp)) > TOLERANCE_SECONDS:
            return False
        return any(
            hmac.compare_digest(signature(secret, request.body, stamp).encode(), given.encode())
            for secret in connection.secrets
        )

    def parse(self, request: InboundRequest, connection: Connection) -> Delivery:
        raw = json_object(request.body)
        event = GenericEvent.model_validate(raw)  # ValidationError → 400
        cart = to_cart(event, PLATFORM, connection.connection_id)
        order = (
            to_order(event, PLATFORM, connection.connection_id)
            if event.event == "order_completed"
            else None
        )

        def apply(conn, org_id: UUID) -> UUID:
            cart_id = upsert_cart(conn, org_id, cart)
            if order is not None:
                record_order(conn, org_id, order)
            return cart_id

        return Delivery(
            topic=event.event,
            payload=raw,
            dedup_key=event.event_id,
            apply=apply,
            occurred_at=event.timestamp,
            response=event.clamp_note() or None,  # a clock ahead of ours: say what was used
        )

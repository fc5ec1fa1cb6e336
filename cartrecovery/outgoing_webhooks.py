"""Outgoing webhooks: subscriptions, the delivery outbox, signing and retry policy.

An org subscribes a URL to event types (``POST /api/v1/webhook-subscriptions``). Whatever
changes a cart or a message calls :func:`emit` inside its own transaction: one
``app.webhook_deliveries`` row per matching subscription is written with the change, so an
event is reported if and only if the change committed, and a Redis loss loses nothing
(outbox pattern). The core only writes and updates these rows; delivery's scheduler tick
claims the due ones (:func:`claim_due`) and enqueues one job per row.

What a subscriber receives: ``POST <url>`` with the JSON body
``{"id": <event id>, "type": "cart.abandoned", "created_at": <ISO 8601>, "data": {...}}`` and
the header ``X-Cartrecovery-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256>``, the HMAC
keyed with the subscription's secret over ``f"{t}.{raw body}"`` (the Stripe scheme). To verify:
split the header, recompute the HMAC over the timestamp, a dot and the *raw* request body,
compare in constant time, and refuse a timestamp older than a few minutes (replays) — exactly
:func:`verify_signature`. The event id is the same for every subscription and every retry:
deduplicate on it (delivery is at least once).

Retries: a non-2xx answer or a transport error (timeout ``TIMEOUT_SECONDS``) schedules the next
attempt after ``BACKOFF`` (1 min, 5 min, 30 min, 2 h, 6 h) through ``next_attempt_at`` —
Postgres is the source of truth — after which the delivery is 'failed'. ``DISABLE_AFTER``
consecutive failures of a subscription (across deliveries) disable it, with the reason
recorded, and cancel its pending deliveries.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import time
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from .crypto import decrypt, encrypt, new_secret

EVENT_TYPES = (
    "cart.abandoned",
    "cart.recovered",
    "message.sent",
    "message.delivered",
    "message.opened",
    "message.clicked",
    "message.bounced",
    "message.failed",
    "message.unsubscribed",
    "message.spam_report",
)
SIGNATURE_HEADER = "X-Cartrecovery-Signature"
EVENT_HEADER = "X-Cartrecovery-Event"
DELIVERY_HEADER = "X-Cartrecovery-Delivery"
TIMEOUT_SECONDS = 5.0
BACKOFF = (
    timedelta(minutes=1),
    timedelta(minutes=5),
    timedelta(minutes=30),
    timedelta(hours=2),
    timedelta(hours=6),
)
MAX_ATTEMPTS = len(BACKOFF) + 1
DISABLE_AFTER = 8
STALE_AFTER = timedelta(minutes=10)
SIGNATURE_TOLERANCE_SECONDS = 300

_COLUMNS = (
    "subscription_id, url, events, description, status, disabled_reason, disabled_at, "
    "consecutive_failures, created_at, updated_at"
)


def _aad(org_id: UUID | str, subscription_id: UUID | str) -> bytes:
    # Binds a ciphertext to its row: a secret copied to another subscription won't decrypt.
    return f"webhook:{org_id}:{subscription_id}".encode()


# --- subscriptions -----------------------------------------------------------------------


def create_subscription(
    conn: psycopg.Connection,
    key: bytes,
    org_id: UUID,
    *,
    url: str,
    events: list[str],
    description: str | None = None,
) -> dict:
    """Create a subscription; returns its row plus ``secret`` (``whsec_…``), the only time the
    secret is shown. ``events`` must be known types (ValueError otherwise)."""
    unknown = sorted(set(events) - set(EVENT_TYPES))
    if unknown or not events:
        raise ValueError(f"unknown event types: {unknown}" if unknown else "no event types")
    subscription_id = uuid.uuid4()
    secret = f"whsec_{new_secret(32)}"
    row = conn.execute(
        f"INSERT INTO app.webhook_subscriptions (org_id, subscription_id, url, events, "
        f"description, secret_ciphertext) VALUES (%s, %s, %s, %s, %s, %s) RETURNING {_COLUMNS}",
        (
            org_id,
            subscription_id,
            url,
            sorted(set(events)),
            description,
            encrypt(key, secret, _aad(org_id, subscription_id)),
        ),
    ).fetchone()
    return {**row, "secret": secret}


def list_subscriptions(conn: psycopg.Connection, org_id: UUID) -> list[dict]:
    """The org's subscriptions, newest first, without secrets."""
    return conn.execute(
        f"SELECT {_COLUMNS} FROM app.webhook_subscriptions WHERE org_id = %s "
        "ORDER BY created_at DESC",
        (org_id,),
    ).fetchall()


def delete_subscription(conn: psycopg.Connection, org_id: UUID, subscription_id: UUID) -> bool:
    """Delete a subscription and its deliveries; False if the org has no such subscription."""
    return (
        conn.execute(
            "DELETE FROM app.webhook_subscriptions WHERE org_id = %s AND subscription_id = %s",
            (org_id, subscription_id),
        ).rowcount
        > 0
    )


def subscription_secret(
    conn: psycopg.Connection, key: bytes, org_id: UUID | str, subscription_id: UUID | str
) -> str | None:
    row = conn.execute(
        "SELECT secret_ciphertext FROM app.webhook_subscriptions WHERE org_id = %s "
        "AND subscription_id = %s",
        (org_id, subscription_id),
    ).fetchone()
    if row is None:
        return None
    return decrypt(key, bytes(row["secret_ciphertext"]), _aad(org_id, subscription_id))


# --- emitting ----------------------------------------------------------------------------


def _plain(value: Any) -> Any:
    if isinstance(value, dict):
        return {str(k): _plain(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_plain(v) for v in value]
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, datetime):
        return value.isoformat()
    if isinstance(value, Decimal):
        return str(value)
    return value


def emit(conn: psycopg.Connection, org_id: UUID | str, event_type: str, data: dict) -> int:
    """Write one delivery per active subscription of the org to ``event_type``, inside the
    caller's transaction. Returns how many deliveries were written (0 when nobody listens).
    ``data`` must be JSON-ready after UUID/datetime/Decimal conversion; its ``cart_id``, if
    any, links the delivery to the cart (erasure removes it with the cart)."""
    if event_type not in EVENT_TYPES:
        raise ValueError(f"unknown event type {event_type!r}")
    event_id = uuid.uuid4()
    body = {
        "id": str(event_id),
        "type": event_type,
        "created_at": datetime.now(UTC).isoformat(),
        "data": _plain(data),
    }
    cart_id = data.get("cart_id")
    return conn.execute(
        "INSERT INTO app.webhook_deliveries (org_id, subscription_id, event_id, event_type, "
        "cart_id, body) SELECT org_id, subscription_id, %s, %s, %s, %s "
        "FROM app.webhook_subscriptions WHERE org_id = %s AND status = 'active' "
        "AND %s = ANY(events)",
        (event_id, event_type, str(cart_id) if cart_id else None, Jsonb(body), org_id, event_type),
    ).rowcount


# Provider callback event → outgoing event type (None: not reported).
PROVIDER_EVENTS = {
    "sendgrid": {
        "delivered": "message.delivered",
        "open": "message.opened",
        "click": "message.clicked",
        "bounce": "message.bounced",
        "dropped": "message.failed",
        "spamreport": "message.spam_report",
        "unsubscribe": "message.unsubscribed",
        "group_unsubscribe": "message.unsubscribed",
    },
    "twilio": {
        "delivered": "message.delivered",
        "undelivered": "message.bounced",
        "failed": "message.failed",
    },
}
_CART_FIELDS = (
    "cart_id",
    "external_id",
    "platform",
    "connection_id",
    "customer_id",
    "email",
    "phone",
    "currency",
    "total_price",
    "item_count",
    "line_items",
    "status",
    "abandoned_at",
    "converted_at",
)


def event_type_for(provider: str, provider_event: str) -> str | None:
    """The outgoing event type for a provider callback (``("sendgrid", "open")`` →
    ``"message.opened"``), or None when subscribers are not told about it."""
    return PROVIDER_EVENTS.get(provider, {}).get(provider_event)


def cart_data(cart: dict, **extra: Any) -> dict:
    """The ``data`` of cart.* events from an ``app.carts`` row: ids, contact, totals, items,
    status and times (never the restore link: it opens the checkout)."""
    return {**{k: cart.get(k) for k in _CART_FIELDS if k in cart}, **extra}


def message_data(message: dict, **extra: Any) -> dict:
    """The ``data`` of message.* events from an ``app.outbox`` row (plus ``extra``, e.g.
    ``url`` of a click, ``occurred_at``)."""
    fields = (
        "message_id",
        "cart_id",
        "campaign_id",
        "step_index",
        "channel",
        "recipient",
        "provider",
        "provider_message_id",
        "sent_at",
    )
    return {**{k: message.get(k) for k in fields if k in message}, **extra}


# --- signing -----------------------------------------------------------------------------


def sign(secret: str, body: bytes, timestamp: int | None = None) -> str:
    """The ``X-Cartrecovery-Signature`` value for ``body`` sent at ``timestamp``."""
    t = int(time.time()) if timestamp is None else int(timestamp)
    mac = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return f"t={t},v1={mac}"


def verify_signature(
    secret: str,
    header: str,
    body: bytes,
    *,
    tolerance: int = SIGNATURE_TOLERANCE_SECONDS,
    now: float | None = None,
) -> bool:
    """What a subscriber does: True when ``header`` signs ``body`` with ``secret`` and its
    timestamp is within ``tolerance`` seconds of ``now``. Several v1 values (a secret roll)
    are accepted if any matches."""
    parts: dict[str, list[str]] = {}
    for item in (header or "").split(","):
        name, _, value = item.strip().partition("=")
        parts.setdefault(name, []).append(value)
    try:
        t = int(parts["t"][0])
    except (KeyError, ValueError, IndexError):
        return False
    if abs((time.time() if now is None else now) - t) > tolerance:
        return False
    expected = hmac.new(secret.encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    return any(hmac.compare_digest(expected, v) for v in parts.get("v1", []))


def encode_body(body: dict) -> bytes:
    """The exact bytes sent (and signed): compact JSON, keys in the stored order."""
    return json.dumps(body, separators=(",", ":")).encode()


# --- the delivery outbox -----------------------------------------------------------------


def claim_due(conn: psycopg.Connection, limit: int) -> list[dict]:
    """Mark due pending deliveries of active subscriptions 'enqueued' (skipping rows other
    ticks hold), plus 'enqueued' rows older than STALE_AFTER (their job was lost; a job that
    does run finds the row already delivered). Run as system, across orgs."""
    return conn.execute(
        """
        UPDATE app.webhook_deliveries d SET status = 'enqueued', enqueued_at = now(),
               updated_at = now()
        FROM (
          SELECT d.org_id, d.delivery_id FROM app.webhook_deliveries d
          JOIN app.webhook_subscriptions s USING (org_id, subscription_id)
          WHERE s.status = 'active'
            AND ((d.status = 'pending' AND d.next_attempt_at <= now())
                 OR (d.status = 'enqueued' AND d.enqueued_at < now() - %s))
          ORDER BY d.next_attempt_at
          LIMIT %s
          FOR UPDATE OF d SKIP LOCKED
        ) due
        WHERE d.org_id = due.org_id AND d.delivery_id = due.delivery_id
        RETURNING d.org_id, d.delivery_id, d.attempts
        """,
        (STALE_AFTER, limit),
    ).fetchall()


def record_success(conn: psycopg.Connection, delivery: dict, status_code: int) -> None:
    conn.execute(
        "UPDATE app.webhook_deliveries SET status = 'delivered', attempts = attempts + 1, "
        "last_status_code = %s, last_error = NULL, delivered_at = now(), updated_at = now() "
        "WHERE org_id = %s AND delivery_id = %s",
        (status_code, delivery["org_id"], delivery["delivery_id"]),
    )
    conn.execute(
        "UPDATE app.webhook_subscriptions SET consecutive_failures = 0, updated_at = now() "
        "WHERE org_id = %s AND subscription_id = %s AND consecutive_failures <> 0",
        (delivery["org_id"], delivery["subscription_id"]),
    )


def record_failure(
    conn: psycopg.Connection, delivery: dict, status_code: int | None, error: str
) -> dict:
    """Schedule the next attempt (or fail the delivery after MAX_ATTEMPTS) and count the
    failure against the subscription, disabling it after DISABLE_AFTER in a row. Returns
    ``{"status", "next_attempt_at", "subscription_disabled"}``."""
    attempts = delivery["attempts"] + 1
    if attempts >= MAX_ATTEMPTS:
        status, delay = "failed", None
    else:
        status, delay = "pending", BACKOFF[attempts - 1]
    row = conn.execute(
        "UPDATE app.webhook_deliveries SET status = %s, attempts = %s, last_status_code = %s, "
        "last_error = %s, next_attempt_at = CASE WHEN %s::interval IS NULL THEN next_attempt_at "
        "ELSE now() + %s::interval END, updated_at = now() "
        "WHERE org_id = %s AND delivery_id = %s RETURNING next_attempt_at",
        (
            status,
            attempts,
            status_code,
            error[:500],
            delay,
            delay,
            delivery["org_id"],
            delivery["delivery_id"],
        ),
    ).fetchone()
    sub = conn.execute(
        "UPDATE app.webhook_subscriptions SET consecutive_failures = consecutive_failures + 1, "
        "updated_at = now() WHERE org_id = %s AND subscription_id = %s "
        "RETURNING consecutive_failures, status",
        (delivery["org_id"], delivery["subscription_id"]),
    ).fetchone()
    disabled = False
    if sub and sub["status"] == "active" and sub["consecutive_failures"] >= DISABLE_AFTER:
        reason = (
            f"{sub['consecutive_failures']} consecutive failed deliveries (last: {error[:200]})"
        )
        disable_subscription(conn, delivery["org_id"], delivery["subscription_id"], reason)
        disabled = True
    return {
        "status": status,
        "next_attempt_at": row["next_attempt_at"] if row else None,
        "subscription_disabled": disabled,
    }


def disable_subscription(
    conn: psycopg.Connection, org_id: UUID | str, subscription_id: UUID | str, reason: str
) -> None:
    """Disable a subscription with ``reason`` and cancel its undelivered deliveries."""
    conn.execute(
        "UPDATE app.webhook_subscriptions SET status = 'disabled', disabled_reason = %s, "
        "disabled_at = now(), updated_at = now() WHERE org_id = %s AND subscription_id = %s",
        (reason, org_id, subscription_id),
    )
    conn.execute(
        "UPDATE app.webhook_deliveries SET status = 'cancelled', last_error = %s, "
        "updated_at = now() WHERE org_id = %s AND subscription_id = %s "
        "AND status IN ('pending', 'enqueued')",
        ("subscription disabled", org_id, subscription_id),
    )

"""``/api/v1/webhook-subscriptions``: outgoing signed webhooks of the calling org.

The signing secret is answered once, at creation; how to verify a delivery is documented in
``cartrecovery.outgoing_webhooks`` (Stripe-style ``t=…,v1=…`` HMAC-SHA256 header).
"""

from __future__ import annotations

from typing import Literal
from urllib.parse import urlsplit
from uuid import UUID

from flask import Blueprint, g, jsonify
from pydantic import BaseModel, ConfigDict, Field, field_validator

from cartrecovery import outgoing_webhooks as hooks

from ..auth import require_key
from ..errors import ApiError
from ..openapi import request_body
from ..runtime import runtime

bp = Blueprint("webhook_subscriptions", __name__, url_prefix="/api/v1/webhook-subscriptions")

EventType = Literal[hooks.EVENT_TYPES]  # type: ignore[valid-type]


class SubscriptionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)

    url: str = Field(max_length=2000, description="http(s) URL that receives the POSTs")
    events: list[EventType] = Field(min_length=1, max_length=len(hooks.EVENT_TYPES))
    description: str | None = Field(default=None, max_length=500)

    @field_validator("url")
    @classmethod
    def _url(cls, value: str) -> str:
        parts = urlsplit(value)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError("must be an absolute http(s) URL")
        if parts.username or parts.password:
            raise ValueError("must not carry credentials (the signature authenticates us)")
        return value


def _json(row: dict) -> dict:
    out = dict(row)
    for key in ("created_at", "updated_at", "disabled_at"):
        if out.get(key) is not None:
            out[key] = out[key].isoformat()
    out["subscription_id"] = str(out["subscription_id"])
    out["events"] = list(out["events"])
    return out


@bp.post("")
@require_key("admin")
@request_body(SubscriptionCreate, status=201)
def create(body: SubscriptionCreate):
    """Subscribe a URL to events (admin key) → 201 with the subscription and its signing
    secret, shown this once.

    Events: cart.abandoned, cart.recovered, message.sent, message.delivered, message.opened,
    message.clicked, message.bounced, message.failed, message.unsubscribed,
    message.spam_report. Each delivery is a POST of ``{id, type, created_at, data}`` with
    ``X-Cartrecovery-Signature: t=<unix>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>``;
    failures are retried after 1 min, 5 min, 30 min, 2 h and 6 h, and 8 consecutive failures
    disable the subscription.
    """
    rt = runtime()
    with rt.db.tenant(g.org_id) as conn:
        created = hooks.create_subscription(
            conn,
            rt.encryption_key,
            g.org_id,
            url=body.url,
            events=list(body.events),
            description=body.description,
        )
    return jsonify(_json(created)), 201


@bp.get("")
@require_key("read")
def list_all():
    """List the org's webhook subscriptions (never their secrets), with status and the
    reason a disabled one was disabled."""
    with runtime().db.tenant(g.org_id) as conn:
        found = hooks.list_subscriptions(conn, g.org_id)
    return jsonify({"subscriptions": [_json(r) for r in found]})


@bp.delete("/<id>")
@require_key("admin")
def delete(id: str):
    """Delete a subscription and its pending deliveries (admin key) → 204."""
    try:
        subscription_id = UUID(id)
    except ValueError:
        raise ApiError(404, "not_found", "subscription not found") from None
    with runtime().db.tenant(g.org_id) as conn:
        if not hooks.delete_subscription(conn, g.org_id, subscription_id):
            raise ApiError(404, "not_found", "subscription not found")
    return "", 204

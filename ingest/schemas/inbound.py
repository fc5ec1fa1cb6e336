"""Answers of the inbound side: store and provider webhooks, the tracking API and health."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field

from cartrecovery.tracking_events import MAX_BATCH, TrackEvent

from .common import Answer


class TrackBatch(Answer):
    """The body of ``POST /api/v1/events/batch``: each event is validated on its own, so one
    bad event is reported in ``results`` without refusing the others."""

    model_config = ConfigDict(extra="ignore")

    events: list[TrackEvent] = Field(min_length=1, max_length=MAX_BATCH)


class Tracked(Answer):
    status: Literal["accepted", "duplicate"] = Field(
        description="duplicate: the event (same event_id, or same body) was seen before and "
        "changed nothing."
    )
    event_id: str | None = Field(description="The stored raw event.")
    cart_id: str | None = Field(description="The cart the event applied to.")
    timestamp_clamped: bool | None = Field(
        default=None,
        description="true when the event's timestamp was more than 5 minutes ahead of the "
        "server clock and the time of receipt was used instead (see `warning`).",
    )
    warning: str | None = Field(default=None, description="Why the timestamp was not used.")


class FieldError(Answer):
    loc: list[str | int]
    msg: str


class BatchItem(Answer):
    index: int = Field(description="Position of the event in `events`.")
    status: Literal["accepted", "duplicate", "rejected"]
    cart_id: str | None = None
    error: list[FieldError] | None = Field(default=None, description="Why it was rejected.")
    timestamp_clamped: bool | None = Field(
        default=None,
        description="true when the event's timestamp was more than 5 minutes ahead of the "
        "server clock and the time of receipt was used instead (see `warning`).",
    )
    warning: str | None = Field(default=None, description="Why the timestamp was not used.")


class BatchTracked(Answer):
    results: list[BatchItem]
    accepted: int
    duplicates: int
    rejected: int


class WebhookAck(Answer):
    """A store webhook was verified and stored once (``duplicate`` when it was seen before).
    An adapter may add keys its platform expects in the answer."""

    model_config = ConfigDict(extra="allow")

    status: Literal["ok", "duplicate"]
    event_id: str | None = None


class SendgridAck(Answer):
    received: int
    stored: int
    duplicates: int
    ignored: int = Field(description="Events that name no message of ours.")


class TwilioStatusAck(Answer):
    stored: bool
    duplicate: bool
    delivery_status: str | None = None
    ignored: Literal["unknown_message"] | None = None


class Health(Answer):
    status: Literal["ok"]


class HealthDown(Answer):
    status: Literal["error"]
    error: str


class QueueCounts(Answer):
    queued: int
    failed: int
    started: int


class QueueHealth(Answer):
    status: Literal["ok"]
    queues: dict[str, QueueCounts]


class ApplierLag(Answer):
    p50: float | None = Field(description="ms from acknowledgement to applied state, median")
    p99: float | None = Field(description="99th percentile, ms")
    max: float | None = Field(description="largest, ms")


class ApplierHealth(Answer):
    status: Literal["ok", "lagging"] = Field(
        description="lagging: the oldest unapplied event is older than 30 s"
    )
    pending_events: int = Field(description="acknowledged webhooks whose state is not applied")
    watermark: datetime | None = Field(
        description="receipt time of the oldest unapplied event (None: all applied); the "
        "scheduler leaves carts with unapplied events alone"
    )
    oldest_pending_ms: float = Field(description="age of the oldest unapplied event, ms")
    applied_last_minute: int = Field(description="events applied in the last minute")
    lag_ms: ApplierLag = Field(description="lag of the events applied in the last minute")


class OpenApiDocument(Answer):
    model_config = ConfigDict(extra="allow")

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]


class ShopifyInstallQuery(Answer):
    """The start of a Shopify install (docs/adapters.md, "Shopify")."""

    model_config = ConfigDict(extra="allow")

    shop: str = Field(description="The shop's `<name>.myshopify.com` domain")
    org: str | None = Field(
        default=None, description="A signed org hint from `cartrecovery shopify install-link`"
    )


class ShopifyCallbackQuery(Answer):
    """Shopify's redirect back after the merchant approved the scopes; every parameter is
    covered by `hmac` (HMAC-SHA256 with the app's secret)."""

    model_config = ConfigDict(extra="allow")

    shop: str
    code: str
    state: str
    hmac: str
    timestamp: str | None = None
    host: str | None = None

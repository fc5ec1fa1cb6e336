"""Answers of the inbound side: store and provider webhooks, the tracking API and health."""

from __future__ import annotations

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


class ApplierHealth(Answer):
    status: Literal["ok"]
    lag_seconds: float = Field(
        description="Age of the oldest acknowledged event not yet applied to cart, customer "
        "and order state (0 while events are applied as they are acknowledged)."
    )


class ApplierBehind(Answer):
    status: Literal["error"]
    error: str
    lag_seconds: float | None = None


class QueueCounts(Answer):
    queued: int
    failed: int
    started: int


class QueueHealth(Answer):
    status: Literal["ok"]
    queues: dict[str, QueueCounts]


class OpenApiDocument(Answer):
    model_config = ConfigDict(extra="allow")

    openapi: str
    info: dict[str, Any]
    paths: dict[str, Any]

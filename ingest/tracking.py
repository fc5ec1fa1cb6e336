"""The tracking API: stores (or their JS snippet) report cart events directly.

``POST /api/v1/carts/track`` takes one event, ``POST /api/v1/events/batch`` up to 1,000. Both
run the same set-based path: claim every dedup key in one statement, upsert customers and
carts in one statement each, record orders, append the raw events in one statement, all in
one tenant transaction. See docs/tracking-api.md for the bodies and answers.

Cost per event matters here (a batch is 100s of events): the canonical cart is built
straight from the validated event (no model_dump round trips); the NUL/surrogate walk runs
only when the raw body could hold one; the API key comes from a per-process cache and is
confirmed in the ingest transaction (``auth``).
"""

from __future__ import annotations

import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any, Literal
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg
from flask import Blueprint, g, request
from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    PrivateAttr,
    ValidationError,
    field_validator,
    model_validator,
)

from cartrecovery import client_clock, phones
from cartrecovery.canonical import MAX_MONEY, CanonicalCart, CanonicalOrder, LineItem, sum_items
from cartrecovery.carts import find_cart, upsert_carts
from cartrecovery.events import (
    EventRow,
    append_events,
    body_hash,
    canonical_json,
    claim_events,
    existing_event_id,
    find_nul,
    may_hold_unstorable,
)
from cartrecovery.orders import record_order

from .auth import require_key, tenant_transaction
from .errors import ApiError

bp = Blueprint("tracking", __name__)

SOURCE = "api"
MAX_BATCH = 1000
EVENTS = ("cart_created", "cart_updated", "checkout_started", "checkout_updated", "order_completed")
_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+\.[^@\s]+$")


def _money():
    return Field(default=None, ge=0, lt=MAX_MONEY)


def _text():
    return Field(default=None, max_length=1000)


class _Body(BaseModel):
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True, str_strip_whitespace=True)


class TrackCustomer(_Body):
    id: str | None = Field(default=None, max_length=255)
    first_name: str | None = _text()
    last_name: str | None = _text()
    timezone: str | None = Field(default=None, max_length=64)
    accepts_marketing: bool | None = None

    @field_validator("timezone")
    @classmethod
    def _known_zone(cls, value: str | None) -> str | None:
        if value is None:
            return None
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError) as exc:
            raise ValueError("unknown IANA time zone") from exc
        return value


class TrackLineItem(_Body):
    product_id: str | None = Field(default=None, max_length=255)
    variant_id: str | None = Field(default=None, max_length=255)
    sku: str | None = Field(default=None, max_length=255)
    title: str | None = _text()
    quantity: int = Field(default=1, ge=0, le=1_000_000)
    price: Decimal = Field(default=Decimal("0"), ge=0, lt=MAX_MONEY)
    image_url: str | None = Field(default=None, max_length=2048)


class TrackOrder(_Body):
    order_id: str = Field(min_length=1, max_length=255)
    total_price: Decimal | None = _money()
    currency: str | None = Field(default=None, pattern=r"^[A-Za-z]{3}$")


class CartData(_Body):
    cart_id: str = Field(min_length=1, max_length=255)
    email: str | None = Field(default=None, max_length=320)
    phone: str | None = Field(default=None, max_length=32)
    customer: TrackCustomer | None = None
    currency: str | None = Field(default=None, pattern=r"^[A-Za-z]{3}$")
    total_price: Decimal | None = _money()
    line_items: list[TrackLineItem] | None = Field(default=None, max_length=500)
    restore_url: str | None = Field(default=None, max_length=2048, pattern=r"^https?://")
    order: TrackOrder | None = None

    @field_validator("email")
    @classmethod
    def _email(cls, value: str | None) -> str | None:
        if value and not _EMAIL.match(value):
            raise ValueError("not an email address")
        return value or None

    @field_validator("phone")
    @classmethod
    def _phone(cls, value: str | None) -> str | None:
        # The one rule of every door (a stored number can be consented and messaged).
        return phones.to_e164(value) if value else None

    @model_validator(mode="after")
    def _total_fits(self):
        if self.total_price is None and self.line_items:
            if sum_items(self.line_items) >= MAX_MONEY:
                raise ValueError("line items add up to more than the largest total accepted")
        return self


class TrackEvent(_Body):
    event: Literal[EVENTS]  # type: ignore[valid-type]
    cart_data: CartData
    timestamp: datetime
    event_id: str | None = Field(default=None, min_length=1, max_length=255)
    # The timestamp as sent, when it was too far ahead of the server clock (then clamped).
    _given_timestamp: datetime | None = PrivateAttr(default=None)

    @field_validator("timestamp")
    @classmethod
    def _utc(cls, value: datetime) -> datetime:
        # A timestamp without an offset is read as UTC rather than the server's zone.
        return value if value.tzinfo else value.replace(tzinfo=UTC)

    def model_post_init(self, context: Any) -> None:
        # A clock in the future would lock the cart (see cartrecovery.client_clock).
        used, clamped = client_clock.clamp_future(self.timestamp)
        if clamped:
            self._given_timestamp, self.timestamp = self.timestamp, used

    @property
    def timestamp_clamped(self) -> bool:
        return self._given_timestamp is not None

    def clamp_note(self) -> dict:
        """What the answer says about a clamped timestamp ({} when it was used as given)."""
        if self._given_timestamp is None:
            return {}
        return {
            "timestamp_clamped": True,
            "warning": (
                f"timestamp {self._given_timestamp.isoformat()} is more than "
                f"{int(client_clock.MAX_SKEW.total_seconds() // 60)} minutes ahead of the "
                f"server clock; {self.timestamp.isoformat()} (time of receipt) was used"
            ),
        }

    @model_validator(mode="after")
    def _order_needed(self):
        if self.event == "order_completed" and self.cart_data.order is None:
            raise ValueError("cart_data.order is required for order_completed")
        return self


def to_cart(
    event: TrackEvent, platform: str = SOURCE, connection_id: UUID | None = None
) -> CanonicalCart:
    """The validated event as a canonical cart (its values are validated already; the
    canonical cart lowers the email and uppers the currency)."""
    data, customer = event.cart_data, event.cart_data.customer
    lines = (
        None
        if data.line_items is None
        else [
            LineItem(
                product_id=i.product_id,
                variant_id=i.variant_id,
                sku=i.sku,
                title=i.title,
                quantity=i.quantity,
                price=i.price,
                image_url=i.image_url,
            )
            for i in data.line_items
        ]
    )
    who = (
        {}
        if customer is None
        else {
            "first_name": customer.first_name,
            "last_name": customer.last_name,
            "timezone": customer.timezone,
            "accepts_marketing": customer.accepts_marketing,
            "customer_external_id": customer.id,
        }
    )
    return CanonicalCart(
        platform=platform,
        connection_id=connection_id,
        external_id=data.cart_id,
        email=data.email,
        phone=data.phone,
        currency=data.currency,
        total_price=data.total_price,
        line_items=lines,
        restore_url=data.restore_url,
        source_created_at=event.timestamp,
        source_updated_at=event.timestamp,
        **who,
    )


def to_order(
    event: TrackEvent, platform: str = SOURCE, connection_id: UUID | None = None
) -> CanonicalOrder:
    data, order = event.cart_data, event.cart_data.order
    total = order.total_price
    if total is None and data.line_items is not None:
        total = data.total_price if data.total_price is not None else sum_items(data.line_items)
    # Still None: record_order takes the stored cart's total.
    return CanonicalOrder(
        platform=platform,
        connection_id=connection_id,
        external_id=order.order_id,
        checkout_external_id=data.cart_id,
        email=data.email,
        phone=data.phone,
        total_price=total,
        currency=order.currency or data.currency,
        ordered_at=event.timestamp,
    )


class Accepted:
    """A validated event of a request, with its dedup key and raw body."""

    def __init__(self, index: int, event: TrackEvent, raw: dict):
        self.index, self.event, self.raw = index, event, raw
        self.dedup_key = event.event_id or body_hash(canonical_json(raw))


def ingest(conn: psycopg.Connection, org_id: UUID, items: list[Accepted]) -> dict[int, dict]:
    """Apply validated events in one transaction, set-based. Returns per index
    ``{"status": "accepted"|"duplicate", "event_id"?, "cart_id"?}``; an event whose key was
    seen before, or earlier in ``items``, is a duplicate and changes nothing."""
    claimed = claim_events(conn, org_id, [(SOURCE, i.dedup_key) for i in items])
    fresh: list[Accepted] = []
    results: dict[int, dict] = {}
    for item in items:
        event_id = claimed.pop((SOURCE, item.dedup_key), None)
        if event_id is None:
            results[item.index] = {"status": "duplicate"}
        else:
            results[item.index] = {"status": "accepted", "event_id": event_id}
            fresh.append(item)
    if not fresh:
        return results

    # Source time order, so a batch's own updates fold the way separate calls would.
    fresh.sort(key=lambda i: (i.event.timestamp, i.index))
    cart_ids = upsert_carts(conn, org_id, [to_cart(i.event) for i in fresh])
    for item, cart_id in zip(fresh, cart_ids, strict=True):
        results[item.index]["cart_id"] = cart_id
        if item.event.event == "order_completed":
            record_order(conn, org_id, to_order(item.event))
    append_events(
        conn,
        org_id,
        [
            EventRow(
                source=SOURCE,
                topic=i.event.event,
                dedup_key=i.dedup_key,
                payload=i.raw,
                cart_id=results[i.index]["cart_id"],
                occurred_at=i.event.timestamp,
                event_id=results[i.index]["event_id"],
            )
            for i in fresh
        ],
    )
    return results


@bp.post("/api/v1/carts/track")
@require_key("track", cached=True)
def track():
    raw = _json_body()
    if not isinstance(raw, dict):
        raise ApiError(400, "invalid_json", "body must be a JSON object")
    if may_hold_unstorable(request.get_data(cache=True)):
        _reject_nul(raw)
    item = Accepted(0, TrackEvent.model_validate(raw), raw)  # ValidationError → 400
    with tenant_transaction() as (conn, _):
        result = ingest(conn, g.org_id, [item])[0]
        if result["status"] == "duplicate":
            result["event_id"] = existing_event_id(conn, g.org_id, SOURCE, item.dedup_key)
            cart = find_cart(conn, g.org_id, SOURCE, external_ids=[item.event.cart_data.cart_id])
            result["cart_id"] = cart["cart_id"] if cart else None
    return {
        "status": result["status"],
        "event_id": _str(result.get("event_id")),
        "cart_id": _str(result.get("cart_id")),
        **item.event.clamp_note(),
    }, 202


@bp.post("/api/v1/events/batch")
@require_key("track", cached=True)
def batch():
    body = _json_body()
    events = body.get("events") if isinstance(body, dict) else None
    if not isinstance(events, list) or not 1 <= len(events) <= MAX_BATCH:
        raise ApiError(
            400,
            "invalid_batch",
            f'body must be {{"events": [...]}} with 1 to {MAX_BATCH} events',
            {"count": len(events) if isinstance(events, list) else None},
        )
    accepted: list[Accepted] = []
    notes: dict[int, dict] = {}
    rejected: dict[int, Any] = {}
    scan = may_hold_unstorable(request.get_data(cache=True))  # else no event can hold one
    for index, raw in enumerate(events):
        try:
            if scan and isinstance(raw, dict) and find_nul(raw):
                raise ValueError("NUL characters are not accepted")
            event = TrackEvent.model_validate(raw)
            accepted.append(Accepted(index, event, raw))
            if event.timestamp_clamped:
                notes[index] = event.clamp_note()
        except ValidationError as exc:
            rejected[index] = _errors(exc)
        except ValueError as exc:
            rejected[index] = [{"loc": [], "msg": str(exc)}]

    outcome: dict[int, dict] = {}
    if accepted:
        with tenant_transaction() as (conn, _):
            outcome = ingest(conn, g.org_id, accepted)
    results = []
    for index in range(len(events)):
        if index in rejected:
            results.append({"index": index, "status": "rejected", "error": rejected[index]})
        else:
            entry = {"index": index, "status": outcome[index]["status"]}
            if "cart_id" in outcome[index]:
                entry["cart_id"] = str(outcome[index]["cart_id"])
            results.append({**entry, **notes.get(index, {})})
    counts = {
        s: sum(1 for r in results if r["status"] == s)
        for s in ("accepted", "duplicate", "rejected")
    }
    return {
        "results": results,
        "accepted": counts["accepted"],
        "duplicates": counts["duplicate"],
        "rejected": counts["rejected"],
    }, 202


def _json_body() -> Any:
    body = request.get_data(cache=True)  # raises 413 past MAX_CONTENT_LENGTH
    try:
        return json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, "invalid_json", "body is not valid JSON", {"reason": str(exc)}) from exc


def _reject_nul(raw: Any) -> None:
    where = find_nul(raw)
    if where is not None:
        raise ApiError(400, "invalid_json", "NUL characters are not accepted", {"at": where})


def _errors(exc: ValidationError) -> list[dict]:
    return [
        {"loc": list(e["loc"]), "msg": e["msg"]}
        for e in exc.errors(include_url=False, include_context=False, include_input=False)
    ]


def _str(value) -> str | None:
    return None if value is None else str(value)

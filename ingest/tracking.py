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
from typing import Any
from uuid import UUID

import psycopg
from flask import Blueprint, g, request
from pydantic import (
    ValidationError,
)

from cartrecovery import telemetry
from cartrecovery.carts import find_cart, upsert_carts
from cartrecovery.devices import device_class
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
from cartrecovery.tracking_events import (
    MAX_BATCH,
    SOURCE,
    TrackEvent,
    to_cart,
    to_order,
)

from .auth import require_key, tenant_transaction
from .errors import ApiError

bp = Blueprint("tracking", __name__)


class Accepted:
    """A validated event of a request, with its dedup key and raw body."""

    def __init__(self, index: int, event: TrackEvent, raw: dict):
        self.index, self.event, self.raw = index, event, raw
        self.dedup_key = event.event_id or body_hash(canonical_json(raw))


def ingest(
    conn: psycopg.Connection, org_id: UUID, items: list[Accepted], device: str | None = None
) -> dict[int, dict]:
    """Apply validated events in one transaction, set-based. Returns per index
    ``{"status": "accepted"|"duplicate", "event_id"?, "cart_id"?}``; an event whose key was
    seen before, or earlier in ``items``, is a duplicate and changes nothing. ``device``: the
    class of the request's User-Agent, for events that name none (tracking_events.to_cart)."""
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
    cart_ids = upsert_carts(conn, org_id, [to_cart(i.event, request_device=device) for i in fresh])
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
        result = ingest(conn, g.org_id, [item], _request_device())[0]
        if result["status"] == "duplicate":
            result["event_id"] = existing_event_id(conn, g.org_id, SOURCE, item.dedup_key)
            cart = find_cart(conn, g.org_id, SOURCE, external_ids=[item.event.cart_data.cart_id])
            result["cart_id"] = cart["cart_id"] if cart else None
    telemetry.count_events(
        SOURCE,
        accepted=int(result["status"] == "accepted"),
        duplicates=int(result["status"] == "duplicate"),
    )
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
            outcome = ingest(conn, g.org_id, accepted, _request_device())
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
    telemetry.count_events(SOURCE, accepted=counts["accepted"], duplicates=counts["duplicate"])
    return {
        "results": results,
        "accepted": counts["accepted"],
        "duplicates": counts["duplicate"],
        "rejected": counts["rejected"],
    }, 202


def _request_device() -> str | None:
    # The JS snippet posts from the shopper's browser: its User-Agent is theirs. A store
    # server's HTTP client classifies as unknown (None), so it never overwrites a device.
    return device_class(request.headers.get("User-Agent"))


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

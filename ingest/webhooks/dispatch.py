"""The one request path every store webhook takes: locate → verify → parse → store.

A delivery whose change is a cart upsert (``carts.CartChange`` without a completion) or
nothing is acknowledged once its raw event is durable and deduplicated: the dedup key, the
raw event and the pending change are written by this process's group committer
(``committer.py``: one transaction for the requests of that moment), and
``cartrecovery.applier`` applies the cart state shortly after. Any other change (completed
checkouts, orders, deletions, privacy requests: they cancel messages, answer with or act on
state) is applied inline: one tenant transaction claims the key, applies the pending changes
of the org first, then the change, and appends the raw event.

Hot path: the store's connection comes from a per-process cache (``CONNECTION_CACHE_SECONDS``)
and is confirmed by the first statement of the request's own transaction; a connection changed
since (disconnected, secret rotated or replaced, grace period ended) rolls that transaction
back and the request starts over with a fresh lookup, as does a signature that the cached
secrets do not verify (for a deferred delivery, the committer runs that confirmation in its
transaction).
"""

from __future__ import annotations

import msgspec
from flask import request

from cartrecovery import applier, telemetry
from cartrecovery.applier import Deferred, encode_change
from cartrecovery.carts import CartChange
from cartrecovery.events import append_event, body_hash, claim_query, namespaced_key
from cartrecovery.tenancy import (
    Connection,
    connection_unchanged,
    find_connection,
    forget_cached,
)
from integrations.base import Adapter, AdapterError, Delivery, InboundRequest
from integrations.headers import EnvironHeaderView

from ..errors import ApiError
from ..runtime import runtime
from .committer import StaleConnection, committer

_JSON = msgspec.json.Encoder()

# Headers never kept with a raw event: they carry credentials, not facts about the event.
_SECRET_HEADERS = {
    "authorization",
    "cookie",
    "x-shopify-hmac-sha256",
    "x-wc-webhook-signature",
    "webhook-signature",
    "x-adobe-commerce-webhook-signature",
    "x-cartrecovery-signature",
    # The shared token BigCommerce hooks and unsigned Magento hooks send.
    "x-cartrec-hook-token",
}

# How long a process may reuse a store connection it read. Every use is confirmed against the
# row in the request's transaction, so this bounds only memory staleness, not what is accepted.
CONNECTION_CACHE_SECONDS = 60.0


class _StaleConnection(Exception):
    """The cached connection no longer matches its row: start over with a fresh lookup."""


def inbound_request(topic: str | None = None) -> InboundRequest:
    return InboundRequest(
        body=request.get_data(cache=True),  # 413 past MAX_CONTENT_LENGTH
        headers=EnvironHeaderView(request.environ),
        url=request.url,
        topic=topic,
        query=request.args,
    )


def kept_headers(req: InboundRequest) -> dict[str, str]:
    """The request's headers as kept with its raw event (credentials left out). Built when
    the event is stored, not by the adapters: it is part of writing the row."""
    return {k: v for k, v in req.headers.items() if k.lower() not in _SECRET_HEADERS}


def unknown_store(code: str = "unknown_store") -> ApiError:
    # One answer for every unknown store: it reveals nothing about which exist.
    return ApiError(404, code, "no active store matches this request")


def receive(adapter: Adapter, req: InboundRequest, connection: Connection | None = None):
    """Handle one webhook for ``adapter``; returns a Flask (body, status) pair."""
    try:
        body, status = _receive(adapter, req, connection, CONNECTION_CACHE_SECONDS)
    except _StaleConnection:
        body, status = _receive(adapter, req, connection, 0.0)
    if isinstance(body, dict):
        telemetry.count_events(
            adapter.platform,
            accepted=int("event_id" in body),
            duplicates=int(body.get("status") == "duplicate"),
            applied=0,  # counted where applied: inline below, else by the applier
        )
    return body, status


def _receive(adapter: Adapter, req: InboundRequest, connection: Connection | None, max_age: float):
    check = None  # the query confirming a connection this request looked up itself
    try:
        ack = adapter.acknowledge_unsigned(req)
        if ack is not None:
            return {"status": "ok", **(ack.response or {})}, 200
        if connection is None:
            key = adapter.locate(req)
            if not key:
                raise ApiError(401, "unauthorized", "the request does not name its store")
            statuses = tuple(adapter.connection_statuses(req))
            # Only the plain "active" lookup is cached: a wider one picks among several rows.
            cached = max_age if statuses == ("active",) else 0.0
            rt = runtime()
            connection = find_connection(
                rt.db, rt.encryption_key, adapter.platform, key, statuses=statuses, max_age=cached
            )
            if connection is None:
                raise unknown_store(adapter.unknown_store_code)
            if cached:
                check = connection_unchanged(connection, statuses)
        if not adapter.verify(req, connection):
            if check is not None:
                raise _StaleConnection  # the secret may have been rotated since it was read
            raise ApiError(401, "invalid_signature", "signature missing or invalid")
        delivery = adapter.parse(req, connection)
    except AdapterError as exc:
        raise ApiError(exc.status, exc.code, exc.message, exc.details) from exc
    if not delivery.store:
        return {"status": "ok", **(delivery.response or {})}, 200
    try:
        return _store(adapter, req, connection, delivery, check)
    except _StaleConnection:
        forget_cached(connection)
        raise
    except AdapterError as exc:
        # Refused while applying (the transaction rolled back, the key is not burnt).
        raise ApiError(exc.status, exc.code, exc.message, exc.details) from exc


def _store(
    adapter: Adapter,
    req: InboundRequest,
    connection: Connection,
    delivery: Delivery,
    check: tuple | None,
):
    """Store the delivery once: deferred (raw event now, state by the applier) when its
    change is a cart upsert or nothing, else claimed, applied and appended in one tenant
    transaction (see the module docstring)."""
    rt = runtime()
    org_id = connection.org_id
    dedup_key = delivery.dedup_key or body_hash(req.body)
    headers = delivery.headers or kept_headers(req)
    change = delivery.apply
    # A completed checkout (converted_at) is applied inline: it cancels pending messages,
    # which must not wait for the applier (a send in between would follow a purchase).
    if change is None or (isinstance(change, CartChange) and change.converted_at is None):
        cart = change.cart if change is not None else None
        event = Deferred(
            source=adapter.platform,
            topic=delivery.topic,
            dedup_key=namespaced_key(adapter.platform, dedup_key),
            payload_json=_JSON.encode(delivery.payload).decode(),
            headers_json=_JSON.encode(headers).decode(),
            connection_id=connection.connection_id,
            occurred_at=delivery.occurred_at,
            platform=cart.platform if cart else None,
            external_id=cart.external_id if cart else None,
            change=encode_change(cart, change.converted_at) if cart else None,
        )
        try:
            event_id = committer(rt.db).store(org_id, event, check)
        except StaleConnection:
            raise _StaleConnection from None
        if event_id is None:
            return {"status": "duplicate"}, 200
        return {"status": "ok", "event_id": str(event_id), **(delivery.response or {})}, 200
    checks = (check,) if check else ()
    claim = claim_query(org_id, adapter.platform, dedup_key)
    with rt.db.tenant_with(org_id, *checks, claim) as (conn, rows):
        if checks and not rows[0]:
            raise _StaleConnection
        if not rows[-1]:
            return {"status": "duplicate"}, 200
        event_id = rows[-1][0]["event_id"]
        # Changes acknowledged before this one are applied first (event order per cart).
        applier.drain(conn, org_id)
        cart_id = change(conn, org_id)
        append_event(
            conn,
            event_id,
            org_id=org_id,
            source=adapter.platform,
            topic=delivery.topic,
            dedup_key=dedup_key,
            payload=delivery.payload,
            headers=headers,
            connection_id=connection.connection_id,
            cart_id=cart_id,
            occurred_at=delivery.occurred_at,
        )
    telemetry.EVENTS_APPLIED.labels(adapter.platform).inc()
    return {"status": "ok", "event_id": str(event_id), **(delivery.response or {})}, 200

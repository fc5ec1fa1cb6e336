"""The one request path every store webhook takes: locate → verify → parse → one
transaction that claims the dedup key, applies the state change and appends the raw event."""

from __future__ import annotations

from flask import request

from cartrecovery.events import append_event, body_hash, claim_event
from cartrecovery.tenancy import Connection, find_connection

from ..errors import ApiError
from ..runtime import runtime
from .base import Adapter, AdapterError, InboundRequest

# Headers never kept with a raw event: they carry credentials, not facts about the event.
_SECRET_HEADERS = {"authorization", "cookie", "x-shopify-hmac-sha256", "x-wc-webhook-signature",
                   "webhook-signature", "x-adobe-commerce-webhook-signature",
                   "x-cartrecovery-signature"}


def inbound_request(topic: str | None = None) -> InboundRequest:
    return InboundRequest(
        body=request.get_data(cache=True),  # 413 past MAX_CONTENT_LENGTH
        headers=request.headers,
        url=request.url,
        topic=topic,
        query=request.args,
    )


def kept_headers(req: InboundRequest, extra_secret: set[str] = frozenset()) -> dict[str, str]:
    secret = _SECRET_HEADERS | {h.lower() for h in extra_secret}
    return {k: v for k, v in req.headers.items() if k.lower() not in secret}


def unknown_store(code: str = "unknown_store") -> ApiError:
    # One answer for every unknown store: it reveals nothing about which exist.
    return ApiError(404, code, "no active store matches this request")


def receive(adapter: Adapter, req: InboundRequest, connection: Connection | None = None):
    """Handle one webhook for ``adapter``; returns a Flask (body, status) pair."""
    try:
        ack = adapter.acknowledge_unsigned(req)
        if ack is not None:
            return {"status": "ok", **(ack.response or {})}, 200
        if connection is None:
            key = adapter.locate(req)
            if not key:
                raise ApiError(401, "unauthorized", "the request does not name its store")
            rt = runtime()
            connection = find_connection(rt.db, rt.encryption_key, adapter.platform, key,
                                         statuses=adapter.connection_statuses(req))
            if connection is None:
                raise unknown_store(adapter.unknown_store_code)
        if not adapter.verify(req, connection):
            raise ApiError(401, "invalid_signature", "signature missing or invalid")
        delivery = adapter.parse(req, connection)
    except AdapterError as exc:
        raise ApiError(exc.status, exc.code, exc.message, exc.details) from exc
    if not delivery.store:
        return {"status": "ok", **(delivery.response or {})}, 200

    rt = runtime()
    source = adapter.platform
    dedup_key = delivery.dedup_key or body_hash(req.body)
    try:
        with rt.db.tenant(connection.org_id) as conn:
            event_id = claim_event(conn, connection.org_id, source, dedup_key)
            if event_id is None:
                return {"status": "duplicate"}, 200
            cart_id = delivery.apply(conn, connection.org_id) if delivery.apply else None
            append_event(
                conn, event_id, org_id=connection.org_id, source=source, topic=delivery.topic,
                dedup_key=dedup_key, payload=delivery.payload,
                headers=delivery.headers or kept_headers(req),
                connection_id=connection.connection_id, cart_id=cart_id,
                occurred_at=delivery.occurred_at,
            )
    except AdapterError as exc:
        # Refused while applying (the transaction rolled back, the key is not burnt).
        raise ApiError(exc.status, exc.code, exc.message, exc.details) from exc
    return {"status": "ok", "event_id": str(event_id), **(delivery.response or {})}, 200

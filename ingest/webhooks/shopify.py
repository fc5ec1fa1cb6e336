"""Shopify webhooks: checkouts, carts and orders into canonical state.

Checks run in this order, and a request that fails one stores nothing: body size (Flask's
MAX_CONTENT_LENGTH, 413), shop domain header (401), the store by domain (404), HMAC-SHA256 of
the raw body with the store's secret (401), JSON (400), payload fields (400). Then, in one
tenant transaction, the delivery is claimed by ``X-Shopify-Webhook-Id`` (else a body hash),
applied to customers/carts/orders and appended to raw.events with the cart it touched.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from collections.abc import Callable
from datetime import datetime
from decimal import Decimal
from typing import Any
from uuid import UUID

import psycopg
from flask import Blueprint, request
from pydantic import BaseModel, ConfigDict, Field

from cartrecovery import carts as state
from cartrecovery.events import append_event, body_hash, claim_event, find_nul
from cartrecovery.tenancy import Connection, find_connection

from ..errors import ApiError
from ..runtime import runtime

bp = Blueprint("shopify", __name__)

SOURCE = "shopify"
MAX_MONEY = Decimal("1e12")  # app.carts/orders hold numeric(14, 2)


class _Payload(BaseModel):
    # Shopify adds fields over API versions; unknown ones are kept only in raw.events.
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)


class ShopifyLineItem(_Payload):
    product_id: str | None = None
    variant_id: str | None = None
    title: str | None = None
    sku: str | None = None
    quantity: int = Field(default=1, ge=0)
    price: Decimal = Field(default=Decimal("0"), ge=0, lt=MAX_MONEY)
    line_price: Decimal | None = Field(default=None, ge=0, lt=MAX_MONEY)


class ShopifyCustomer(_Payload):
    id: str | None = None
    email: str | None = None
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None
    accepts_marketing: bool | None = None


class ShopifyCheckout(_Payload):
    id: str | None = None
    token: str = Field(min_length=1)
    cart_token: str | None = None
    email: str | None = None
    phone: str | None = None
    buyer_accepts_marketing: bool | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None
    completed_at: datetime | None = None
    currency: str | None = None
    total_price: Decimal = Field(default=Decimal("0"), ge=0, lt=MAX_MONEY)
    line_items: list[ShopifyLineItem] = Field(default_factory=list)
    abandoned_checkout_url: str | None = None
    customer: ShopifyCustomer | None = None
    billing_address: dict[str, Any] | None = None
    shipping_address: dict[str, Any] | None = None


class ShopifyOrder(_Payload):
    id: str = Field(min_length=1)
    checkout_id: str | None = None
    checkout_token: str | None = None
    cart_token: str | None = None
    email: str | None = None
    contact_email: str | None = None
    phone: str | None = None
    total_price: Decimal = Field(default=Decimal("0"), ge=0, lt=MAX_MONEY)
    currency: str | None = None
    financial_status: str | None = None
    created_at: datetime | None = None
    processed_at: datetime | None = None
    customer: ShopifyCustomer | None = None


class ShopifyCart(_Payload):
    token: str = Field(min_length=1)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    line_items: list[ShopifyLineItem] = Field(default_factory=list)


# --- payload → canonical -------------------------------------------------------------------


def _line_items(items: list[ShopifyLineItem]) -> list[state.LineItem]:
    return [state.LineItem(title=i.title, product_id=i.product_id, variant_id=i.variant_id,
                           sku=i.sku, quantity=i.quantity, price=i.price) for i in items]


def checkout_to_cart(checkout: ShopifyCheckout, connection_id: UUID) -> state.CanonicalCart:
    """A Shopify checkout as a canonical cart (external_id = checkout token)."""
    customer = checkout.customer or ShopifyCustomer()
    address = checkout.billing_address or checkout.shipping_address or {}
    marketing = checkout.buyer_accepts_marketing
    return state.CanonicalCart(
        platform=SOURCE,
        external_id=checkout.token,
        cart_token=checkout.cart_token,
        checkout_id=checkout.id,
        connection_id=connection_id,
        email=checkout.email or customer.email,
        phone=checkout.phone or customer.phone or address.get("phone"),
        first_name=customer.first_name or address.get("first_name"),
        last_name=customer.last_name or address.get("last_name"),
        accepts_marketing=customer.accepts_marketing if marketing is None else marketing,
        customer_external_id=customer.id,
        currency=checkout.currency,
        total_price=checkout.total_price,
        line_items=_line_items(checkout.line_items),
        restore_url=checkout.abandoned_checkout_url,
        source_created_at=checkout.created_at,
        source_updated_at=checkout.updated_at,
    )


def order_to_canonical(order: ShopifyOrder, connection_id: UUID) -> state.CanonicalOrder:
    customer = order.customer or ShopifyCustomer()
    return state.CanonicalOrder(
        platform=SOURCE,
        external_id=order.id,
        connection_id=connection_id,
        checkout_token=order.checkout_token,
        checkout_external_id=order.checkout_id,
        cart_token=order.cart_token,
        email=order.email or order.contact_email or customer.email,
        phone=order.phone or customer.phone,
        total_price=order.total_price,
        currency=order.currency,
        financial_status=order.financial_status,
        ordered_at=order.processed_at or order.created_at,
    )


# --- what each topic does -----------------------------------------------------------------
# Each parser validates the payload up front (400 before anything is written) and returns
# what to do inside the tenant transaction: a function of the connection giving the cart id.

Apply = Callable[[psycopg.Connection], UUID | None]


def _apply_checkout(store: Connection, payload: dict) -> Apply:
    checkout = ShopifyCheckout.model_validate(payload)
    cart = checkout_to_cart(checkout, store.connection_id)

    def apply(conn) -> UUID:
        cart_id = state.upsert_cart(conn, store.org_id, cart)
        if checkout.completed_at is not None:
            # The order event does the attribution; this only stops pending messages early.
            state.mark_cart_converted(conn, store.org_id, cart_id, checkout.completed_at)
        return cart_id

    return apply


def _apply_order(store: Connection, payload: dict) -> Apply:
    order = order_to_canonical(ShopifyOrder.model_validate(payload), store.connection_id)
    return lambda conn: state.record_order(conn, store.org_id, order)["cart_id"]


def _apply_cart(store: Connection, payload: dict) -> Apply:
    cart = ShopifyCart.model_validate(payload)

    def apply(conn) -> UUID | None:
        # Carts carry no email: they only refresh the checkout that shares their token.
        found = state.find_cart(conn, store.org_id, SOURCE, cart_token=cart.token)
        if found is None:
            return None
        items = _line_items(cart.line_items)
        total = sum((i.line_price if i.line_price is not None else i.price * i.quantity
                     for i in cart.line_items), Decimal("0"))
        return state.upsert_cart(conn, store.org_id, state.CanonicalCart(
            platform=SOURCE, external_id=found["external_id"], cart_token=cart.token,
            connection_id=store.connection_id, total_price=total, line_items=items,
            source_updated_at=cart.updated_at,
        ))

    return apply


# --- the shared request path ---------------------------------------------------------------

Parser = Callable[[Connection, dict], Apply]


def _receive(topic: str, parse: Parser):
    body = request.get_data(cache=True)  # raises 413 past MAX_CONTENT_LENGTH
    domain = request.headers.get("X-Shopify-Shop-Domain", "").strip()
    if not domain:
        raise ApiError(401, "unauthorized", "missing X-Shopify-Shop-Domain header")
    rt = runtime()
    store = find_connection(rt.db, rt.encryption_key, SOURCE, domain)
    if store is None:
        raise ApiError(404, "unknown_shop", "no active Shopify store for this shop domain")
    if not verify_hmac(store.secret, body, request.headers.get("X-Shopify-Hmac-Sha256")):
        raise ApiError(401, "invalid_signature", "HMAC signature missing or invalid")
    payload = _parse_json(body)
    apply = parse(store, payload)  # pydantic ValidationError → 400

    with rt.db.tenant(store.org_id) as conn:
        dedup_key = request.headers.get("X-Shopify-Webhook-Id") or body_hash(body)
        event_id = claim_event(conn, store.org_id, SOURCE, dedup_key)
        if event_id is None:
            return {"status": "duplicate"}, 200
        cart_id = apply(conn)
        append_event(
            conn, event_id, org_id=store.org_id, source=SOURCE, topic=topic,
            dedup_key=dedup_key, payload=payload, headers=_shopify_headers(),
            connection_id=store.connection_id, cart_id=cart_id, occurred_at=_triggered_at(),
        )
    return {"status": "ok", "event_id": str(event_id)}, 200


def verify_hmac(secret: str, body: bytes, signature: str | None) -> bool:
    """Shopify's check: base64 HMAC-SHA256 of the raw body, compared in constant time."""
    if not signature:
        return False
    expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
    return hmac.compare_digest(expected, signature.strip().encode())


def _parse_json(body: bytes) -> dict:
    try:
        payload = json.loads(body)
    except (UnicodeDecodeError, ValueError) as exc:
        raise ApiError(400, "invalid_json", "body is not valid JSON", {"reason": str(exc)}) from exc
    if not isinstance(payload, dict):
        raise ApiError(400, "invalid_json", "body must be a JSON object")
    where = find_nul(payload)
    if where is not None:
        raise ApiError(400, "invalid_json", "NUL characters are not accepted", {"at": where})
    return payload


def _shopify_headers() -> dict:
    # Everything Shopify describes the delivery with, except the signature itself.
    return {k: v for k, v in request.headers.items()
            if k.lower().startswith("x-shopify-") and k.lower() != "x-shopify-hmac-sha256"}


def _triggered_at() -> datetime | None:
    value = request.headers.get("X-Shopify-Triggered-At")
    try:
        return datetime.fromisoformat(value) if value else None
    except ValueError:
        return None


def _route(path: str, topic: str, parse: Parser) -> None:
    def view():
        return _receive(topic, parse)

    bp.add_url_rule(f"/api/webhooks/shopify/{path}", endpoint=path.replace("-", "_"),
                    view_func=view, methods=["POST"])


_route("checkout-create", "checkouts/create", _apply_checkout)
_route("checkout-update", "checkouts/update", _apply_checkout)
_route("order-create", "orders/create", _apply_order)
_route("cart-create", "carts/create", _apply_cart)
_route("cart-update", "carts/update", _apply_cart)

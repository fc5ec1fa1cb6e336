"""Shopify: checkouts, carts, orders, uninstall and the mandatory privacy topics.

The store is found by ``X-Shopify-Shop-Domain``; authenticity is the base64 HMAC-SHA256 of
the raw body with the app's client secret (``X-Shopify-Hmac-Sha256``, any secret still valid
after a rotation); the topic comes from the URL (``/api/webhooks/shopify/checkout-create``)
or, on the single endpoint, from ``X-Shopify-Topic``. Deliveries are deduplicated by
``X-Shopify-Webhook-Id`` (else a body hash) and ordered by the payload's ``updated_at`` (else
``X-Shopify-Triggered-At``), so a late, older update never rolls state back.

What each topic does:

- ``checkouts/create|update``: the checkout is the canonical cart (external id = checkout
  token; ``abandoned_checkout_url`` is the restore link); ``completed_at`` converts it.
- ``checkouts/delete``: the checkout is closed (``carts.closed_at``): pending messages are
  cancelled (reason ``checkout_deleted``) and it is kept out of abandonment.
- ``carts/create|update``: refresh the items of the checkout sharing the cart token.
- ``orders/create|paid``: the order converts its cart; ``financial_status`` changes only for
  a newer order state.
- ``app/uninstalled``: the connection is disabled and every pending message of the store's
  carts cancelled (reason ``app_uninstalled``); later webhooks get 404.
- ``customers/data_request``: the subject's export bundle is prepared and kept in
  ``app.data_requests`` for the merchant; ``customers/redact``: the subject's personal data
  is erased; ``shop/redact``: the store's data is erased. These reach a store after
  uninstall too (Shopify sends ``shop/redact`` 48 h later), and the raw event keeps no email
  or phone.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
from datetime import datetime
from decimal import Decimal
from typing import Any, ClassVar
from uuid import UUID

import msgspec
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field, model_validator

from cartrecovery import tenancy
from cartrecovery.canonical import (
    MAX_MONEY,
    CanonicalCart,
    CanonicalOrder,
    LineItem,
    normalize_email,
    normalize_phone,
)
from cartrecovery.carts import CartChange, cancel_pending_messages, find_cart, upsert_cart
from cartrecovery.orders import record_order

from ..base import Adapter, Apply, BadPayload, Delivery, InboundRequest, json_object

SOURCE = "shopify"

# Topic → the URL path segment Shopify is told to post it to.
TOPIC_PATHS: dict[str, str] = {
    "carts/create": "cart-create",
    "carts/update": "cart-update",
    "checkouts/create": "checkout-create",
    "checkouts/update": "checkout-update",
    "checkouts/delete": "checkout-delete",
    "orders/create": "order-create",
    "orders/paid": "order-paid",
    "app/uninstalled": "app-uninstalled",
    "customers/data_request": "customers-data-request",
    "customers/redact": "customers-redact",
    "shop/redact": "shop-redact",
}
PRIVACY_TOPICS = frozenset({"customers/data_request", "customers/redact", "shop/redact"})
REQUESTED_BY = "shopify"


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


class ShopifyCheckoutRef(_Payload):
    """A deleted checkout: Shopify may send only its id."""

    id: str | None = None
    token: str | None = None
    cart_token: str | None = None
    updated_at: datetime | None = None

    @model_validator(mode="after")
    def _named(self):
        if not (self.id or self.token):
            raise ValueError("a deleted checkout needs its id or token")
        return self


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
    updated_at: datetime | None = None
    processed_at: datetime | None = None
    customer: ShopifyCustomer | None = None
    discount_codes: list[dict[str, Any]] = Field(default_factory=list, max_length=100)


class ShopifyCart(_Payload):
    token: str = Field(min_length=1)
    created_at: datetime | None = None
    updated_at: datetime | None = None
    line_items: list[ShopifyLineItem] = Field(default_factory=list)


class PrivacySubject(_Payload):
    id: str | None = None
    email: str | None = None
    phone: str | None = None


class DataRequestRef(_Payload):
    id: str | None = None


class CustomerPrivacyRequest(_Payload):
    """``customers/data_request`` and ``customers/redact``."""

    shop_id: str | None = None
    shop_domain: str | None = None
    customer: PrivacySubject
    orders_requested: list[str] = Field(default_factory=list)
    orders_to_redact: list[str] = Field(default_factory=list)
    data_request: DataRequestRef | None = None


class ShopRedact(_Payload):
    shop_id: str | None = None
    shop_domain: str | None = None


# --- payload → canonical -------------------------------------------------------------------


def _line_items(items: list[ShopifyLineItem]) -> list[LineItem]:
    return [
        LineItem(
            title=i.title,
            product_id=i.product_id,
            variant_id=i.variant_id,
            sku=i.sku,
            quantity=i.quantity,
            price=i.price,
        )
        for i in items
    ]


def checkout_to_cart(checkout: ShopifyCheckout, connection_id: UUID) -> CanonicalCart:
    """A Shopify checkout as a canonical cart (external_id = checkout token)."""
    customer = checkout.customer or ShopifyCustomer()
    address = checkout.billing_address or checkout.shipping_address or {}
    marketing = checkout.buyer_accepts_marketing
    return CanonicalCart(
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


def order_to_canonical(order: ShopifyOrder, connection_id: UUID) -> CanonicalOrder:
    customer = order.customer or ShopifyCustomer()
    return CanonicalOrder(
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
        discount_codes=[str(d["code"]) for d in order.discount_codes if d.get("code")],
    )


def verify_hmac(secret: str, body: bytes, signature: str | None) -> bool:
    """Shopify's check: base64 HMAC-SHA256 of the raw body, compared in constant time."""
    if not signature:
        return False
    expected = base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest())
    return hmac.compare_digest(expected, signature.strip().encode())


# --- what each topic does ------------------------------------------------------------------
# Each parser validates the payload up front (400 before anything is written) and returns
# what to do inside the tenant transaction.


def _checkout(store: tenancy.Connection, payload: dict, at: datetime | None) -> Apply:
    checkout = ShopifyCheckout.model_validate(payload)
    # Upsert the cart; a completed checkout also converts it (the order event does the
    # attribution, this only stops pending messages early). A CartChange, so the dispatcher
    # can claim, apply and store the delivery in one statement.
    return CartChange(
        checkout_to_cart(checkout, store.connection_id), converted_at=checkout.completed_at
    )


def _checkout_delete(store: tenancy.Connection, payload: dict, at: datetime | None) -> Apply:
    ref = ShopifyCheckoutRef.model_validate(payload)

    def apply(conn, org_id) -> UUID | None:
        found = find_cart(conn, org_id, SOURCE, external_ids=[ref.token, ref.id])
        if found is None and ref.token:
            # Deleted before we saw it (webhooks are unordered): keep the closed checkout, so
            # its late create cannot open it again. No content, no email: nothing to send.
            cart_id = upsert_cart(
                conn,
                org_id,
                CanonicalCart(
                    platform=SOURCE,
                    external_id=ref.token,
                    checkout_id=ref.id,
                    cart_token=ref.cart_token,
                    connection_id=store.connection_id,
                ),
            )
        elif found is None:
            return None
        else:
            cart_id = found["cart_id"]
        conn.execute(
            "UPDATE app.carts SET closed_at = COALESCE(closed_at, %s, now()), updated_at = now() "
            "WHERE org_id = %s AND cart_id = %s",
            (ref.updated_at or at, org_id, cart_id),
        )
        cancel_pending_messages(conn, org_id, [cart_id], reason="checkout_deleted")
        return cart_id

    return apply


def _order(store: tenancy.Connection, payload: dict, at: datetime | None) -> Apply:
    parsed = ShopifyOrder.model_validate(payload)
    order = order_to_canonical(parsed, store.connection_id)
    updated_at = parsed.updated_at or at

    def apply(conn, org_id) -> UUID | None:
        # record_order would overwrite financial_status whatever its age: store the order
        # without it, then take the status only from a state at least as new as ours.
        result = record_order(conn, org_id, msgspec.structs.replace(order, financial_status=None))
        conn.execute(
            """
            UPDATE app.orders
            SET financial_status = COALESCE(%(status)s, financial_status),
                source_updated_at = GREATEST(source_updated_at, %(at)s)
            WHERE org_id = %(org)s AND order_id = %(order)s
              AND (%(at)s::timestamptz IS NULL OR source_updated_at IS NULL
                   OR source_updated_at <= %(at)s)
            """,
            {
                "status": order.financial_status,
                "at": updated_at,
                "org": org_id,
                "order": result["order_id"],
            },
        )
        return result["cart_id"]

    return apply


def _cart(store: tenancy.Connection, payload: dict, at: datetime | None) -> Apply:
    cart = ShopifyCart.model_validate(payload)

    def apply(conn, org_id) -> UUID | None:
        # Carts carry no email: they only refresh the checkout that shares their token.
        found = find_cart(conn, org_id, SOURCE, cart_token=cart.token)
        if found is None:
            return None
        items = _line_items(cart.line_items)
        total = sum(
            (
                i.line_price if i.line_price is not None else i.price * i.quantity
                for i in cart.line_items
            ),
            Decimal("0"),
        )
        return upsert_cart(
            conn,
            org_id,
            CanonicalCart(
                platform=SOURCE,
                external_id=found["external_id"],
                cart_token=cart.token,
                connection_id=store.connection_id,
                total_price=total,
                line_items=items,
                source_updated_at=cart.updated_at,
            ),
        )

    return apply


def _uninstalled(store: tenancy.Connection, payload: dict, at: datetime | None) -> Apply:
    def apply(conn, org_id) -> None:
        tenancy.change_status(conn, org_id, store.connection_id, "disabled", "app_uninstalled")
        return None

    return apply


def _data_request(store: tenancy.Connection, payload: dict, at: datetime | None) -> Apply:
    request = CustomerPrivacyRequest.model_validate(payload)
    email, phone = _subject(request.customer)
    request_ref = request.data_request.id if request.data_request else None

    def apply(conn, org_id) -> None:
        from cartrecovery.privacy import export  # imported when first needed

        try:
            bundle = export.export_subject(conn, org_id, email=email, phone=phone)
        except ValueError as exc:
            raise BadPayload(str(exc)) from exc
        conn.execute(
            """
            INSERT INTO app.data_requests (org_id, connection_id, platform, external_request_id,
                                           email, phone, bundle)
            VALUES (%s, %s, %s, %s, %s, %s, %s)
            ON CONFLICT (org_id, platform, external_request_id)
                WHERE external_request_id IS NOT NULL DO NOTHING
            """,
            (
                org_id,
                store.connection_id,
                SOURCE,
                request_ref,
                email,
                phone,
                Jsonb(_jsonable(bundle)),
            ),
        )
        return None

    return apply


def _customers_redact(store: tenancy.Connection, payload: dict, at: datetime | None) -> Apply:
    request = CustomerPrivacyRequest.model_validate(payload)
    email, phone = _subject(request.customer)

    def apply(conn, org_id) -> None:
        from cartrecovery.privacy import erasure

        try:
            erasure.erase_subject(
                conn,
                org_id,
                email=email,
                phone=phone,
                reason="shopify_customers_redact",
                requested_by=REQUESTED_BY,
            )
        except ValueError as exc:
            raise BadPayload(str(exc)) from exc
        # A prepared export of the same person is personal data too.
        conn.execute(
            "DELETE FROM app.data_requests WHERE org_id = %s "
            "AND ((%s::text IS NOT NULL AND email = %s) OR (%s::text IS NOT NULL AND phone = %s))",
            (org_id, email, email, phone, phone),
        )
        return None

    return apply


def _shop_redact(store: tenancy.Connection, payload: dict, at: datetime | None) -> Apply:
    ShopRedact.model_validate(payload)

    def apply(conn, org_id) -> None:
        from cartrecovery.privacy import erasure

        erasure.erase_connection_data(
            conn, org_id, store.connection_id, reason="shopify_shop_redact"
        )
        conn.execute(
            "DELETE FROM app.data_requests WHERE org_id = %s AND connection_id = %s",
            (org_id, store.connection_id),
        )
        return None

    return apply


def _subject(customer: PrivacySubject) -> tuple[str | None, str | None]:
    email, phone = normalize_email(customer.email), normalize_phone(customer.phone)
    if not (email or phone):
        raise BadPayload(
            "the privacy request names no email or phone", {"customer": "email or phone required"}
        )
    return email, phone


def _jsonable(value: Any) -> Any:
    # The export bundle may hold dates, decimals and uuids.
    return json.loads(json.dumps(value, default=str))


def _redacted(topic: str, payload: dict) -> dict:
    """What raw.events keeps of a privacy request: ids, never the subject's email/phone
    (it would outlive the erasure it asks for)."""
    if topic not in PRIVACY_TOPICS:
        return payload
    kept = dict(payload)
    customer = kept.get("customer")
    if isinstance(customer, dict):
        kept["customer"] = {
            k: ("[redacted]" if k in ("email", "phone") and v else v) for k, v in customer.items()
        }
    return kept


PARSERS = {
    "carts/create": _cart,
    "carts/update": _cart,
    "checkouts/create": _checkout,
    "checkouts/update": _checkout,
    "checkouts/delete": _checkout_delete,
    "orders/create": _order,
    "orders/paid": _order,
    "app/uninstalled": _uninstalled,
    "customers/data_request": _data_request,
    "customers/redact": _customers_redact,
    "shop/redact": _shop_redact,
}


class ShopifyAdapter(Adapter):
    """Shopify webhooks (see the module docstring for what each topic does)."""

    platform = SOURCE
    webhook_topics: ClassVar[dict[str, str]] = {
        topic: f"/api/webhooks/shopify/{path}" for topic, path in TOPIC_PATHS.items()
    }
    unknown_store_code = "unknown_shop"

    def topic(self, request: InboundRequest) -> str | None:
        """The URL names the subscription; the single endpoint relies on X-Shopify-Topic."""
        return request.topic or (request.headers.get("X-Shopify-Topic") or "").strip() or None

    def connection_statuses(self, request: InboundRequest) -> tuple[str, ...]:
        topic = self.topic(request)
        if topic in PRIVACY_TOPICS:
            # Shopify sends shop/redact 48 h after uninstall; the erasure must still happen.
            return tenancy.STATUSES
        if topic == "app/uninstalled":
            return ("active", "disabled")  # a redelivery is a duplicate, not a 404
        return ("active",)

    def locate(self, request: InboundRequest) -> str | None:
        return (request.headers.get("X-Shopify-Shop-Domain") or "").strip() or None

    def verify(self, request: InboundRequest, connection: tenancy.Connection) -> bool:
        signature = request.headers.get("X-Shopify-Hmac-Sha256")
        return any(verify_hmac(secret, request.body, signature) for secret in connection.secrets)

    def parse(self, request: InboundRequest, connection: tenancy.Connection) -> Delivery:
        topic = self.topic(request)
        parser = PARSERS.get(topic or "")
        if parser is None:
            raise BadPayload(
                "unsupported Shopify topic", {"topic": topic, "supported": sorted(PARSERS)}
            )
        payload = json_object(request.body)
        triggered_at = _triggered_at(request)
        apply = parser(connection, payload, triggered_at)  # ValidationError → 400
        return Delivery(
            topic=topic,
            payload=_redacted(topic, payload),
            dedup_key=(request.headers.get("X-Shopify-Webhook-Id") or "").strip() or None,
            apply=apply,
            occurred_at=triggered_at,
            headers=_shopify_headers(request),
        )


def _shopify_headers(request: InboundRequest) -> dict[str, str]:
    # Everything Shopify describes the delivery with, except the signature itself.
    return {
        k: v
        for k, v in request.headers.items()
        if k.lower().startswith("x-shopify-") and k.lower() != "x-shopify-hmac-sha256"
    }


def _triggered_at(request: InboundRequest) -> datetime | None:
    value = request.headers.get("X-Shopify-Triggered-At")
    try:
        parsed = datetime.fromisoformat(value.strip()) if value else None
    except ValueError:
        return None
    # A time without an offset cannot be ordered against the payload's: ignore it.
    return parsed if parsed is None or parsed.tzinfo else None

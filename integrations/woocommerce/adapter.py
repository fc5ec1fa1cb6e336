"""WooCommerce: order webhooks into carts and orders (``POST /api/webhooks/woocommerce``).

WooCommerce has no cart webhook; an unpaid order is the closest thing (and the tracking
snippet covers carts before checkout, docs/snippet.md). So:

- ``order.created`` / ``order.updated`` (and ``order.restored``) with status ``pending``,
  ``failed`` or ``checkout-draft`` → an open cart, external id = the order id, restore link =
  the order's ``payment_url`` (pay-for-order page), else the site's ``/cart/`` page;
- the same topics with ``processing``, ``completed`` or ``on-hold`` → an order matched to
  that cart (converted, messages cancelled, recovery attributed: ``orders.record_order``);
- any other topic or status → kept in raw.events only.

Requests: the store is the ``X-WC-Webhook-Source`` header (``home_url('/')``) in the normal
form of :func:`normalize_site_url`, which is also the ``shop_domain`` a WooCommerce
connection is added with; the signature ``X-WC-Webhook-Signature`` is base64 HMAC-SHA256 of
the raw body; dedup by ``X-WC-Webhook-Delivery-ID`` (else a hash of the body); the order's
``date_modified_gmt`` orders updates, so a late, older one never rolls a cart back. The
unsigned ping WooCommerce sends when a webhook is created (form body ``webhook_id=<n>``, no
``X-WC-*`` headers) gets a 200 and is not stored. Facts: ../shared/fixtures/SPEC.md §2.

Marketing consent: WooCommerce's order has no marketing opt-in of its own (SPEC §2). A store
whose checkout adds one (a plugin's checkbox) keeps it in the order's ``meta_data``: name its
key as ``marketing_opt_in_meta_key`` in the connection's credentials and the value
(``yes``/``1``/``true``/``on`` or ``no``/``0``/``false``/``off``/empty) becomes the customer's
``accepts_marketing``; anything else, or no such entry, says nothing.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import re
from datetime import UTC, datetime
from decimal import Decimal
from typing import Annotated, Any, ClassVar
from urllib.parse import urlsplit

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, ValidationError

from cartrecovery.canonical import MAX_MONEY, CanonicalCart, CanonicalOrder, LineItem
from cartrecovery.carts import upsert_cart
from cartrecovery.devices import device_class
from cartrecovery.orders import record_order
from cartrecovery.tenancy import Connection

from ..base import Adapter, BadPayload, Delivery, InboundRequest, json_object

OPEN_STATUSES = frozenset({"pending", "failed", "checkout-draft"})
PAID_STATUSES = frozenset({"processing", "completed", "on-hold"})
ORDER_TOPICS = frozenset({"order.created", "order.updated", "order.restored"})
_PING = re.compile(rb"webhook_id=\d{1,20}")
_SURROGATE_ESCAPE = re.compile(rb"\\u[dD][89a-fA-F]")
_WC_HEADERS = ("X-WC-Webhook-Signature", "X-WC-Webhook-Source", "X-WC-Webhook-Topic")


def normalize_site_url(value: str) -> str:
    """The store key of a WooCommerce site: ``https://Shop.Example.com/`` →
    ``shop.example.com``; ``https://example.com:8443/shop/`` → ``example.com:8443/shop``.

    Lower-case host, a non-default port, and the path of a WordPress installed in a
    subfolder; no scheme and no trailing slash. Raises ValueError without a host.
    """
    text = (value or "").strip()
    if "://" not in text:
        text = "https://" + text
    parts = urlsplit(text)
    try:
        host, port = parts.hostname, parts.port
    except ValueError as exc:
        raise ValueError(f"{value!r} has an invalid port") from exc
    if not host:
        raise ValueError(f"{value!r} names no host")
    default = 80 if parts.scheme.lower() == "http" else 443
    netloc = host + (f":{port}" if port not in (None, default) else "")
    return (netloc + parts.path.rstrip("/")).lower()


_WP_ENTITIES = re.compile(r"&(lt|gt|amp|quot);|&#0*(60|62|38|34|39);|&#[xX]0*(26|22|27);")
_WP_CHARS = {
    "lt": "<",
    "gt": ">",
    "amp": "&",
    "quot": '"',
    "60": "<",
    "62": ">",
    "38": "&",
    "34": '"',
    "39": "'",
    "26": "&",
    "22": '"',
    "27": "'",
}


def wp_specialchars_decode(text: str) -> str:
    """WordPress' ``wp_specialchars_decode($text, ENT_QUOTES)``, which WooCommerce applies
    to the webhook secret before signing: only these few entities, decoded in one pass (so
    ``&amp;lt;`` becomes ``&lt;``). ``html.unescape`` decodes far more and would differ."""
    if "&" not in text:
        return text
    return _WP_ENTITIES.sub(lambda m: _WP_CHARS[next(g for g in m.groups() if g)], text)


def signature(secret: str, body: bytes) -> str:
    """``X-WC-Webhook-Signature`` for ``body`` as WooCommerce computes it."""
    digest = hmac.new(wp_specialchars_decode(secret).encode(), body, hashlib.sha256).digest()
    return base64.b64encode(digest).decode()


def _utc(value: datetime | None) -> datetime | None:
    # The *_gmt fields are UTC without an offset.
    return value.replace(tzinfo=UTC) if value is not None and value.tzinfo is None else value


UtcDatetime = Annotated[datetime | None, AfterValidator(_utc)]


class _Payload(BaseModel):
    # WooCommerce and its plugins add fields freely; unknown ones are kept in raw.events only.
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True, str_strip_whitespace=True)


class WooAddress(_Payload):
    first_name: str | None = None
    last_name: str | None = None
    email: str | None = None
    phone: str | None = None


class WooImage(_Payload):
    src: str | None = None


class WooLineItem(_Payload):
    name: str | None = None
    product_id: str | None = None
    variation_id: str | None = None
    sku: str | None = None
    quantity: int = Field(default=1, ge=0, le=1_000_000)
    price: Decimal = Field(default=Decimal("0"), ge=0, lt=MAX_MONEY)
    image: WooImage | None = None


class WooOrder(_Payload):
    id: int = Field(ge=1)
    status: str = Field(min_length=1, max_length=64)
    currency: str | None = Field(default=None, max_length=8)
    total: Decimal = Field(default=Decimal("0"), ge=0, lt=MAX_MONEY)
    customer_id: int | None = Field(default=None, ge=0)
    billing: WooAddress | None = None
    line_items: list[WooLineItem] = Field(default_factory=list, max_length=1000)
    payment_url: str | None = Field(default=None, max_length=2048)
    date_created_gmt: UtcDatetime = None
    date_modified_gmt: UtcDatetime = None
    date_paid_gmt: UtcDatetime = None
    coupon_lines: list[dict[str, Any]] = Field(default_factory=list, max_length=100)
    meta_data: list[Any] = Field(default_factory=list)
    # The shopper's browser at checkout: only its device class is kept (cartrecovery.devices).
    customer_user_agent: str | None = None


_OPTED_IN = frozenset({"yes", "1", "true", "on"})
_OPTED_OUT = frozenset({"no", "0", "false", "off", ""})


def marketing_opt_in(order: WooOrder, connection: Connection) -> bool | None:
    """The order's marketing opt-in, from the ``meta_data`` entry the connection names
    (``marketing_opt_in_meta_key``); None when unnamed, absent or unreadable."""
    key = (connection.credentials or {}).get("marketing_opt_in_meta_key")
    if not key:
        return None
    for entry in order.meta_data:
        if isinstance(entry, dict) and entry.get("key") == key:
            value = entry.get("value")
            text = str(value).strip().lower() if isinstance(value, str | int | bool) else None
            if text in _OPTED_IN:
                return True
            if text in _OPTED_OUT:
                return False
            return None
    return None


def _site_cart_url(source: str | None) -> str | None:
    if not source or not source.lower().startswith(("https://", "http://")):
        return None
    return source.rstrip("/") + "/cart/"


def _web_url(value: str | None) -> str | None:
    return value if value and value.lower().startswith(("https://", "http://")) else None


def to_cart(order: WooOrder, connection: Connection, source: str | None) -> CanonicalCart:
    """An unpaid order as the canonical cart (external id = order id)."""
    billing = order.billing or WooAddress()
    return CanonicalCart(
        platform="woocommerce",
        external_id=str(order.id),
        connection_id=connection.connection_id,
        email=billing.email or None,
        phone=billing.phone or None,
        first_name=billing.first_name or None,
        last_name=billing.last_name or None,
        customer_external_id=str(order.customer_id) if order.customer_id else None,
        accepts_marketing=marketing_opt_in(order, connection),
        currency=order.currency or None,
        total_price=order.total,
        line_items=[
            LineItem(
                title=item.name,
                product_id=item.product_id if item.product_id not in (None, "0") else None,
                variant_id=item.variation_id if item.variation_id not in (None, "0") else None,
                sku=item.sku or None,
                quantity=item.quantity,
                price=item.price,
                image_url=item.image.src if item.image else None,
            )
            for item in order.line_items
        ],
        restore_url=_web_url(order.payment_url) or _site_cart_url(source),
        source_created_at=order.date_created_gmt,
        source_updated_at=order.date_modified_gmt,
        device=device_class(order.customer_user_agent),
    )


def to_order(order: WooOrder, connection: Connection) -> CanonicalOrder:
    """A paid (or on-hold) order, matched to the cart of the same order id."""
    billing = order.billing or WooAddress()
    return CanonicalOrder(
        platform="woocommerce",
        external_id=str(order.id),
        connection_id=connection.connection_id,
        # Both name the cart: the token also links an order that arrives before its cart.
        checkout_token=str(order.id),
        checkout_external_id=str(order.id),
        email=billing.email or None,
        phone=billing.phone or None,
        total_price=order.total,
        currency=order.currency or None,
        financial_status=order.status,
        # Placed or paid as WooCommerce reports it: an on-hold order (bank transfer, cheque)
        # has no date_paid, and its date_created is when the pending order was first saved,
        # maybe long before; the update that first reports it placed is its modification.
        ordered_at=order.date_paid_gmt or order.date_modified_gmt or order.date_created_gmt,
        discount_codes=[str(c["code"]) for c in order.coupon_lines if c.get("code")],
    )


def _decode(body: bytes) -> dict[str, Any]:
    payload = json_object(body)  # not JSON, not an object, NUL characters → 400
    # A lone surrogate escape (\ud800) parses in Python but Postgres' jsonb refuses it; the
    # full check runs only when the body holds a surrogate escape at all.
    if _SURROGATE_ESCAPE.search(body):
        try:
            json.dumps(payload, ensure_ascii=False).encode()
        except UnicodeEncodeError as exc:
            raise BadPayload("unpaired UTF-16 surrogates are not accepted") from exc
    return payload


class WooCommerceAdapter(Adapter):
    platform = "woocommerce"
    # One delivery URL for every topic; the topic travels in X-WC-Webhook-Topic.
    webhook_topics: ClassVar[dict[str, str]] = {
        "order.created": "/api/webhooks/woocommerce",
        "order.updated": "/api/webhooks/woocommerce",
    }

    @staticmethod
    def store_key(site_url: str) -> str:
        """The ``shop_domain`` to add a connection with, from the site URL an admin gives."""
        return normalize_site_url(site_url)

    def acknowledge_unsigned(self, request: InboundRequest) -> Delivery | None:
        if any(request.headers.get(h) for h in _WC_HEADERS):
            return None
        if _PING.fullmatch(request.body.strip()):
            return Delivery(topic="ping", store=False)
        return None

    def locate(self, request: InboundRequest) -> str | None:
        try:
            return normalize_site_url(request.headers.get("X-WC-Webhook-Source") or "")
        except ValueError:
            return None

    def verify(self, request: InboundRequest, connection: Connection) -> bool:
        given = (request.headers.get("X-WC-Webhook-Signature") or "").strip()
        if not given:
            return False
        # During a secret rotation the previous secret stays valid too.
        return any(
            hmac.compare_digest(signature(secret, request.body).encode(), given.encode())
            for secret in connection.secrets
            if secret
        )

    def parse(self, request: InboundRequest, connection: Connection) -> Delivery:
        topic = (request.headers.get("X-WC-Webhook-Topic") or "").strip().lower()
        if not topic or len(topic) > 200:
            raise BadPayload("X-WC-Webhook-Topic is missing")
        payload = _decode(request.body)
        delivery_id = (request.headers.get("X-WC-Webhook-Delivery-ID") or "").strip()[:255]
        delivery = Delivery(topic=topic, payload=payload, dedup_key=delivery_id or None)
        if topic not in ORDER_TOPICS:
            return delivery  # kept, not applied
        try:
            order = WooOrder.model_validate(payload)
        except ValidationError as exc:
            errors = exc.errors(include_url=False, include_context=False, include_input=False)
            raise BadPayload("order payload is invalid", {"errors": errors}) from exc
        delivery.occurred_at = order.date_modified_gmt
        status = order.status.lower()
        if status in OPEN_STATUSES:
            cart = to_cart(order, connection, request.headers.get("X-WC-Webhook-Source"))
            delivery.apply = lambda conn, org_id: upsert_cart(conn, org_id, cart)
        elif status in PAID_STATUSES:
            canonical = to_order(order, connection)
            delivery.apply = lambda conn, org_id: record_order(conn, org_id, canonical)["cart_id"]
        return delivery

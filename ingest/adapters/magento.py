"""Magento 2 / Adobe Commerce: Adobe Commerce Webhooks calls (SPEC §4).

Connection: ``shop_domain`` = the host of the store's base URL (``shop.example.com``);
``secret`` = a shared token for stores that do not sign; ``credentials`` =
``{"base_url", "integration_token"?, "webhook_public_key_pem"?}``.

**Finding the store.** Adobe's calls name no store, so the webhook URL does:
``/api/webhooks/magento?store=<host>`` (or the header ``X-Cartrec-Store: <host>``, which a
webhook definition can add to its ``headers``).

**Authenticity.** With ``webhook_public_key_pem`` configured (Stores > Configuration > Adobe
Services > Webhooks, "Regenerate key pair"), ``x-adobe-commerce-webhook-signature`` must be a
base64 RSA-SHA256 (PKCS#1 v1.5) signature made with Commerce's private key. Adobe's two doc
examples verify it over the **base64-encoded** body while the text says "the payload"; we
accept either (base64 first, the raw body as fallback) until one is confirmed. Without a key
(signing is off by default in Commerce), the header ``X-Cartrec-Hook-Token`` must carry the
connection's secret (add it to the webhook's ``headers``).

**Events** (names unconfirmed, see SPEC "Not confirmed"; the ``com.adobe.commerce.`` prefix of
Adobe I/O Events is ignored):

- cart: ``observer.checkout_cart_save_after``, ``observer.sales_quote_save_after``,
  ``observer.checkout_cart_product_add_after``;
- order: ``observer.sales_order_place_after``, ``observer.checkout_submit_all_after``,
  ``observer.sales_order_save_after``;
- anything else is kept as a raw event.

Body: ``{"eventName": …, "data": {…}}``; the object is ``data.quote`` / ``data.cart`` /
``data.order`` or ``data.data_object`` (what ``bin/magento webhooks:info`` shows), with
Magento's field names (``entity_id``, ``customer_email``, ``items[{sku,name,qty,price}]``,
``grand_total``, ``quote_currency_code``, ``updated_at``; orders ``increment_id``,
``quote_id``, ``order_currency_code``). When the quote gives its **masked** id
(``masked_id``), and the connection has a ``base_url``, the full cart is fetched with
GraphQL ``cart(cart_id)`` (items, prices, email) and wins over the payload's fields.

Cart external id = the numeric quote id (orders name it as ``quote_id``); the masked id is
kept as the cart token. Dedup key: SHA-256 of the body (Adobe sends no delivery id).

The answer is ``{"op": "success"}`` (plus our ``status``/``event_id``), what Adobe expects
from a webhook endpoint. Webhooks are synchronous in Commerce: subscribe ours with
``required="false"`` so that our being down never blocks a shopper's cart.
"""

from __future__ import annotations

import base64
import binascii
import logging
import time
from datetime import UTC, datetime
from decimal import Decimal
from functools import lru_cache
from typing import Any, ClassVar
from urllib.parse import urlsplit
from uuid import UUID

from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cartrecovery import carts as state
from cartrecovery.http_client import StoreApiError, StoreHttpClient
from cartrecovery.tenancy import Connection

from .base import Adapter, BadPayload, Delivery, InboundRequest
from .bigcommerce import HOOK_TOKEN_HEADER, decode_object, token_matches
from .dispatch import kept_headers

log = logging.getLogger(__name__)

PLATFORM = "magento"
SIGNATURE_HEADER = "x-adobe-commerce-webhook-signature"
STORE_HEADER = "X-Cartrec-Store"
IO_EVENTS_PREFIX = "com.adobe.commerce."
MAX_MONEY = Decimal("1e12")
CART_EVENTS = frozenset({
    "observer.checkout_cart_save_after",
    "observer.sales_quote_save_after",
    "observer.checkout_cart_product_add_after",
})
ORDER_EVENTS = frozenset({
    "observer.sales_order_place_after",
    "observer.checkout_submit_all_after",
    "observer.sales_order_save_after",
})
SUCCESS = {"op": "success"}

# SPEC §4's query; ``items`` works on 2.4.x (``itemsV2`` is preferred on 2.4.7+).
CART_QUERY = """query ($id: String!) { cart(cart_id: $id) { id email total_quantity
  items { uid quantity product { sku name } prices { price { value currency } row_total { value currency } } }
  prices { subtotal_excluding_tax { value currency } grand_total { value currency } } } }"""  # noqa: E501


# --- payload models ------------------------------------------------------------------------


class _Model(BaseModel):
    model_config = ConfigDict(extra="ignore", coerce_numbers_to_str=True)


def magento_time(value: Any) -> datetime | None:
    """Magento writes ``2026-03-14 15:22:11`` in UTC without an offset."""
    if value in (None, ""):
        return None
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value).strip())
        except ValueError as exc:
            raise ValueError("not a date-time") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


class QuoteItem(_Model):
    item_id: str | None = None
    product_id: str | None = None
    sku: str | None = None
    name: str | None = None
    qty: Decimal = Field(default=Decimal("1"), ge=0, lt=2**31)
    price: Decimal = Field(default=Decimal("0"), ge=0, lt=MAX_MONEY)


class Quote(_Model):
    entity_id: str | None = Field(default=None, max_length=64)
    masked_id: str | None = Field(default=None, max_length=64)
    customer_id: str | None = None
    customer_email: str | None = None
    customer_firstname: str | None = None
    customer_lastname: str | None = None
    quote_currency_code: str | None = None
    grand_total: Decimal | None = Field(default=None, ge=0, lt=MAX_MONEY)
    items: list[QuoteItem] | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None

    @field_validator("created_at", "updated_at", mode="before")
    @classmethod
    def _time(cls, value):
        return magento_time(value)


class Order(_Model):
    entity_id: str | None = None
    increment_id: str | None = None
    quote_id: str | None = None
    customer_email: str | None = None
    customer_id: str | None = None
    grand_total: Decimal | None = Field(default=None, ge=0, lt=MAX_MONEY)
    order_currency_code: str | None = None
    status: str | None = None
    created_at: datetime | None = None

    @field_validator("created_at", mode="before")
    @classmethod
    def _time(cls, value):
        return magento_time(value)


class Money(_Model):
    value: Decimal | None = Field(default=None, ge=0, lt=MAX_MONEY)
    currency: str | None = None


class GqlProduct(_Model):
    sku: str | None = None
    name: str | None = None


class GqlItemPrices(_Model):
    price: Money | None = None
    row_total: Money | None = None


class GqlItem(_Model):
    uid: str | None = None
    quantity: Decimal = Field(default=Decimal("1"), ge=0, lt=2**31)
    product: GqlProduct | None = None
    prices: GqlItemPrices | None = None


class GqlCartPrices(_Model):
    grand_total: Money | None = None
    subtotal_excluding_tax: Money | None = None


class GqlCart(_Model):
    id: str = Field(min_length=1)
    email: str | None = None
    items: list[GqlItem | None] = Field(default_factory=list)
    prices: GqlCartPrices | None = None


# --- GraphQL -----------------------------------------------------------------------------------


class MagentoGraphQL:
    """``POST {base_url}/graphql`` with the integration token as bearer."""

    def __init__(self, base_url: str, token: str | None = None, **client_options):
        headers = {"Content-Type": "application/json", "Accept": "application/json"}
        if token:
            headers["Authorization"] = f"Bearer {token}"
        self.client = StoreHttpClient(base_url, headers=headers, **client_options)

    @classmethod
    def for_connection(cls, connection: Connection, **client_options) -> MagentoGraphQL | None:
        creds = connection.credentials or {}
        base = creds.get("base_url")
        if not base or urlsplit(str(base)).scheme not in ("http", "https"):
            return None
        return cls(str(base), creds.get("integration_token"), **client_options)

    def cart(self, masked_id: str) -> dict | None:
        """The cart for a masked quote id, None if Magento does not know it (GraphQL answers
        200 with ``errors`` and ``cart: null`` then)."""
        body = self.client.json("POST", "/graphql", idempotent=True,
                                json={"query": CART_QUERY, "variables": {"id": masked_id}})
        if not isinstance(body, dict):
            raise StoreApiError("GraphQL answer is not an object", 200)
        data = body.get("data")
        cart = data.get("cart") if isinstance(data, dict) else None
        if cart is None:
            if body.get("errors"):
                log.info("magento cart %s: %s", masked_id, str(body["errors"])[:300])
            return None
        if not isinstance(cart, dict):
            raise StoreApiError("GraphQL cart is not an object", 200)
        return cart


# --- payload → canonical ---------------------------------------------------------------------


def quote_to_canonical(quote: Quote, connection_id: UUID | None,
                       graphql: GqlCart | None = None) -> state.CanonicalCart:
    """A quote (webhook payload) as a canonical cart; the GraphQL cart, when fetched, gives
    the items, prices and email."""
    external_id = quote.entity_id or quote.masked_id or (graphql.id if graphql else None)
    if not external_id:
        raise BadPayload("the quote has neither entity_id nor masked_id")
    lines: list[state.LineItem] | None = None
    total, currency, email = quote.grand_total, quote.quote_currency_code, quote.customer_email
    if graphql is not None:
        lines = []
        for item in graphql.items:
            if item is None:  # GraphQL nulls an item it cannot resolve
                continue
            prices = item.prices or GqlItemPrices()
            product = item.product or GqlProduct()
            price = prices.price.value if prices.price and prices.price.value is not None else 0
            lines.append(state.LineItem(title=product.name, sku=product.sku,
                                        product_id=item.uid, quantity=int(item.quantity),
                                        price=price))
            currency = currency or (prices.price.currency if prices.price else None)
        grand = graphql.prices.grand_total if graphql.prices else None
        if grand is not None and grand.value is not None:
            total, currency = grand.value, grand.currency or currency
        email = graphql.email or email
    elif quote.items is not None:
        lines = [state.LineItem(title=i.name, sku=i.sku, product_id=i.product_id,
                                quantity=int(i.qty), price=i.price) for i in quote.items]
    return state.CanonicalCart(
        platform=PLATFORM,
        external_id=external_id,
        cart_token=quote.masked_id or (graphql.id if graphql else None),
        connection_id=connection_id,
        email=email,
        first_name=quote.customer_firstname,
        last_name=quote.customer_lastname,
        customer_external_id=quote.customer_id or None,
        currency=currency,
        total_price=total if lines is not None else None,
        line_items=lines,
        source_created_at=quote.created_at,
        source_updated_at=quote.updated_at,
    )


def order_to_canonical(order: Order, connection_id: UUID | None) -> state.CanonicalOrder:
    external_id = order.increment_id or order.entity_id
    if not external_id:
        raise BadPayload("the order has neither increment_id nor entity_id")
    return state.CanonicalOrder(
        platform=PLATFORM,
        external_id=external_id,
        connection_id=connection_id,
        checkout_token=order.quote_id,
        checkout_external_id=order.quote_id,
        email=order.customer_email,
        total_price=order.grand_total,
        currency=order.order_currency_code,
        financial_status=order.status,
        ordered_at=order.created_at,
    )


@lru_cache(maxsize=256)
def _public_key(pem: str) -> rsa.RSAPublicKey | None:
    try:
        key = serialization.load_pem_public_key(pem.encode())
    except (ValueError, TypeError):
        return None
    return key if isinstance(key, rsa.RSAPublicKey) else None


def verify_signature(pem: str, body: bytes, signature: str | None) -> bool:
    """RSA-SHA256 (PKCS#1 v1.5) over base64(body), or over the raw body (see module doc)."""
    key = _public_key(pem)
    if key is None or not signature:
        return False
    try:
        raw = base64.b64decode(signature.strip(), validate=True)
    except (binascii.Error, ValueError):
        return False
    for message in (base64.b64encode(body), body):
        try:
            key.verify(raw, message, padding.PKCS1v15(), hashes.SHA256())
            return True
        except InvalidSignature:
            continue
    return False


def _event_name(value: Any) -> str:
    name = str(value)
    return name[len(IO_EVENTS_PREFIX):] if name.startswith(IO_EVENTS_PREFIX) else name


# --- the adapter -----------------------------------------------------------------------------


class MagentoAdapter(Adapter):
    platform: ClassVar[str] = PLATFORM
    # The connection's own URL names the store; ``/api/webhooks/magento?store=<host>`` works
    # too, for webhook definitions shared across environments.
    webhook_topics: ClassVar[dict[str, str]] = {
        "webhooks": "/api/webhooks/custom/{connection_id}"}
    sleep: ClassVar = staticmethod(time.sleep)
    # Commerce waits for our answer while the shopper waits for Commerce: stay short.
    client_options: ClassVar[dict] = {"timeout": 3, "max_attempts": 2, "max_retry_after": 2}

    def __init__(self, graphql_factory=None):
        """``graphql_factory(connection) -> MagentoGraphQL-like | None`` replaces the real
        client (benchmarks, tests)."""
        self._graphql_factory = graphql_factory

    def locate(self, request: InboundRequest) -> str | None:
        store = (request.query or {}).get("store") or request.headers.get(STORE_HEADER)
        return store.strip() if store and store.strip() else None

    def verify(self, request: InboundRequest, connection: Connection) -> bool:
        pem = (connection.credentials or {}).get("webhook_public_key_pem")
        if pem:
            return verify_signature(str(pem), request.body, request.headers.get(SIGNATURE_HEADER))
        return token_matches(request.headers.get(HOOK_TOKEN_HEADER), connection.secrets)

    def parse(self, request: InboundRequest, connection: Connection) -> Delivery:
        payload = decode_object(request.body)
        name, data = payload.get("eventName"), payload.get("data")
        if not isinstance(name, str) or not name or not isinstance(data, dict):
            raise BadPayload("expected {\"eventName\": string, \"data\": object}")
        event = _event_name(name)
        delivery = Delivery(topic=event[:200], payload={"webhook": payload},
                            headers=kept_headers(request, {HOOK_TOKEN_HEADER}),
                            response=dict(SUCCESS))
        if event in CART_EVENTS:
            self._cart(delivery, self._object(data, "quote", "cart"), connection)
        elif event in ORDER_EVENTS:
            self._order(delivery, self._object(data, "order"), connection)
        return delivery

    def _cart(self, delivery: Delivery, obj: dict, connection: Connection) -> None:
        try:
            quote = Quote.model_validate(obj)
        except ValidationError as exc:
            raise BadPayload("unreadable quote", _errors(exc)) from exc
        graphql = None
        if quote.masked_id:
            fetched = self._fetch(connection, quote.masked_id)
            delivery.payload["cart"] = fetched
            if fetched is not None:
                try:
                    graphql = GqlCart.model_validate(fetched)
                except ValidationError as exc:
                    log.warning("magento cart %s: unreadable GraphQL cart: %s",
                                quote.masked_id, exc)
        try:
            cart = quote_to_canonical(quote, connection.connection_id, graphql)
        except ValidationError as exc:
            raise BadPayload("unreadable quote", _errors(exc)) from exc
        delivery.occurred_at = quote.updated_at
        delivery.apply = lambda conn, org_id: state.upsert_cart(conn, org_id, cart)

    def _order(self, delivery: Delivery, obj: dict, connection: Connection) -> None:
        try:
            order = order_to_canonical(Order.model_validate(obj), connection.connection_id)
        except ValidationError as exc:
            raise BadPayload("unreadable order", _errors(exc)) from exc
        delivery.occurred_at = order.ordered_at
        delivery.apply = lambda conn, org_id: state.record_order(conn, org_id, order)["cart_id"]

    @staticmethod
    def _object(data: dict, *names: str) -> dict:
        for name in (*names, "data_object"):
            value = data.get(name)
            if isinstance(value, dict):
                return value
        raise BadPayload(f"data has no {' / '.join(names)} object")

    def graphql(self, connection: Connection):
        if self._graphql_factory is not None:
            return self._graphql_factory(connection)
        return MagentoGraphQL.for_connection(connection, sleep=self.sleep, **self.client_options)

    def _fetch(self, connection: Connection, masked_id: str) -> dict | None:
        client = self.graphql(connection)
        if client is None:
            return None
        try:
            cart = client.cart(masked_id)
        except StoreApiError as exc:
            # Never fail the call for this: Commerce would make the shopper wait or fail
            # their cart action. The payload's own fields are kept instead.
            log.warning("magento %s cart %s: %s", connection.shop_domain, masked_id, exc)
            return None
        return cart  # the client decoded it as storable JSON


def _errors(exc: ValidationError) -> dict:
    return {"errors": exc.errors(include_url=False, include_context=False, include_input=False)}

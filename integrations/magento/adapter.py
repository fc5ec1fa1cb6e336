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

**Events** are Magento's own observer events (``events.xml`` of Magento_Checkout, Magento_Quote
and Magento_Sales). Webhook definitions name them ``observer.<event>``; the payload's
``eventName`` may carry that form, the bare event name (Adobe's order-placement example) or
Adobe I/O Events' ``com.adobe.commerce.observer.<event>``: all three are read as
``observer.<event>``, the topic kept with the raw event:

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

**Restore link.** Magento has no URL that reopens a quote by its id, so the cart's restore URL
(where ``/r/`` links redirect) is, with ``restore_url_template`` in the credentials (a route
the store adds, e.g. ``https://shop.example.com/cartrecovery/restore?cart={masked_id}``), that
template with ``{masked_id}`` / ``{quote_id}`` filled in; without one, the store's cart page
``{base_url}/checkout/cart/``, which shows the quote of the shopper's own browser session (or,
once signed in, their account's cart) but not a guest's cart on another device.

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
from typing import Annotated, Any, ClassVar
from urllib.parse import quote as url_quote
from urllib.parse import urljoin, urlsplit
from uuid import UUID

import msgspec
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa

from cartrecovery.canonical import (
    MAX_ITEMS,
    CanonicalCart,
    CanonicalOrder,
    InvalidCanonical,
    LineItem,
)
from cartrecovery.carts import CartChange
from cartrecovery.http_client import StoreApiError, StoreHttpClient
from cartrecovery.orders import record_order
from cartrecovery.tenancy import Connection

from ..base import Adapter, BadPayload, Delivery, InboundRequest, error_details, json_object
from ..bigcommerce.adapter import HOOK_TOKEN_HEADER, token_matches

log = logging.getLogger(__name__)

PLATFORM = "magento"
SIGNATURE_HEADER = "x-adobe-commerce-webhook-signature"
STORE_HEADER = "X-Cartrec-Store"
IO_EVENTS_PREFIX = "com.adobe.commerce."
CART_EVENTS = frozenset(
    {
        "observer.checkout_cart_save_after",
        "observer.sales_quote_save_after",
        "observer.checkout_cart_product_add_after",
    }
)
ORDER_EVENTS = frozenset(
    {
        "observer.sales_order_place_after",
        "observer.checkout_submit_all_after",
        "observer.sales_order_save_after",
    }
)
SUCCESS = {"op": "success"}

# SPEC §4's query; ``items`` works on 2.4.x (``itemsV2`` is preferred on 2.4.7+).
CART_QUERY = """query ($id: String!) { cart(cart_id: $id) { id email total_quantity
  items { uid quantity product { sku name } prices { price { value currency } row_total { value currency } } }
  prices { subtotal_excluding_tax { value currency } grand_total { value currency } } } }"""  # noqa: E501


# --- payload models ------------------------------------------------------------------------


def magento_time(value: Any) -> datetime | None:
    """Magento writes ``2026-03-14 15:22:11`` in UTC without an offset."""
    if value in (None, ""):
        return None
    if type(value) is str and len(value) == 19 and value[10] == " ":
        # Magento's own layout, read as UTC in one call (the general path costs twice).
        try:
            return datetime.fromisoformat(value + "+00:00")
        except ValueError:
            pass
    if isinstance(value, datetime):
        parsed = value
    else:
        try:
            parsed = datetime.fromisoformat(str(value).strip())
        except ValueError as exc:
            raise ValueError("not a date-time") from exc
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


# Payloads are read with msgspec Structs (types checked in C, unknown fields ignored). Magento
# writes numbers as strings or as numbers depending on the column and the version: ids are
# accepted as either (the canonical records turn them into text, and check the bounds).
_Id = str | int | None


class QuoteItem(msgspec.Struct):
    item_id: _Id = None
    product_id: _Id = None
    sku: str | None = None
    name: str | None = None
    qty: Decimal = Decimal("1")
    price: Decimal = Decimal("0")


class Quote(msgspec.Struct):
    entity_id: Annotated[str, msgspec.Meta(max_length=64)] | int | None = None
    masked_id: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    customer_id: _Id = None
    customer_email: str | None = None
    customer_firstname: str | None = None
    customer_lastname: str | None = None
    quote_currency_code: str | None = None
    grand_total: Decimal | None = None
    created_at: Any = None  # Magento's "Y-m-d H:i:s" (or ""): a datetime after reading
    updated_at: Any = None

    def __post_init__(self) -> None:
        self.created_at = magento_time(self.created_at)
        self.updated_at = magento_time(self.updated_at)


class Order(msgspec.Struct):
    entity_id: _Id = None
    increment_id: _Id = None
    quote_id: _Id = None
    customer_email: str | None = None
    customer_id: _Id = None
    grand_total: Decimal | None = None
    order_currency_code: str | None = None
    status: str | None = None
    created_at: Any = None  # as Quote's

    def __post_init__(self) -> None:
        self.created_at = magento_time(self.created_at)


# Items are read only when GraphQL gives no cart (a default payload carries dozens of fields
# per item, for nothing when the fetched cart wins).
QUOTE_ITEMS = list[QuoteItem] | None


# The GraphQL ``cart`` (SPEC §4's query) is read with msgspec Structs (types checked in C),
# then mapped onto the canonical cart, which checks the bounds.
class GqlMoney(msgspec.Struct):
    value: Decimal | None = None
    currency: str | None = None


class GqlProduct(msgspec.Struct):
    sku: str | None = None
    name: str | None = None


class GqlItemPrices(msgspec.Struct):
    price: GqlMoney | None = None


class GqlItem(msgspec.Struct):
    uid: str | int | None = None
    quantity: float = 1  # a Float in the schema: decimal quantities exist
    product: GqlProduct | None = None
    prices: GqlItemPrices | None = None


class GqlCartPrices(msgspec.Struct):
    grand_total: GqlMoney | None = None


class GqlCart(msgspec.Struct):
    id: Annotated[str, msgspec.Meta(max_length=64)] | None = None
    email: str | None = None
    items: list[GqlItem | None] | None = None  # GraphQL nulls an item it cannot resolve
    prices: GqlCartPrices | None = None


def _units(quantity: float | Decimal) -> int:
    # Magento's quantities may be decimal; the canonical line counts whole units.
    finite = quantity.is_finite() if isinstance(quantity, Decimal) else quantity == quantity
    if not finite or not 0 <= quantity < MAX_ITEMS:
        raise InvalidCanonical("quantity must be from 0 to 2^31 - 1")
    return int(quantity)


def _gql_line(item: GqlItem) -> LineItem:
    product, prices = item.product, item.prices
    price = prices.price.value if prices and prices.price else None
    return LineItem(
        title=product.name if product else None,
        sku=product.sku if product else None,
        product_id=item.uid,
        quantity=_units(item.quantity),
        price=price if price is not None else Decimal("0"),
    )


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
        body = self.client.json(
            "POST",
            "/graphql",
            idempotent=True,
            json={"query": CART_QUERY, "variables": {"id": masked_id}},
        )
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


# --- restore link ----------------------------------------------------------------------------

CART_PAGE = "checkout/cart/"
_PLACEHOLDERS = ("{masked_id}", "{quote_id}")


def _http_url(value: Any) -> str | None:
    text = str(value).strip() if value else ""
    parts = urlsplit(text)
    return text if parts.scheme in ("http", "https") and parts.netloc else None


def restore_url(connection: Connection, quote_id: Any, masked_id: str | None) -> str | None:
    """Where the cart's ``/r/`` link leads (see the module doc): the connection's
    ``restore_url_template`` filled with the quote's ids when it has the ids the template
    names, else the store's cart page (``base_url``, or the shop domain, + ``/checkout/cart/``)."""
    creds = connection.credentials or {}
    ids = {"{masked_id}": masked_id, "{quote_id}": None if quote_id is None else str(quote_id)}
    template = creds.get("restore_url_template")
    if isinstance(template, str) and all(ids[p] for p in _PLACEHOLDERS if p in template):
        url = template
        for placeholder in _PLACEHOLDERS:
            if placeholder in url:
                url = url.replace(placeholder, url_quote(ids[placeholder] or "", safe=""))
        if _http_url(url):
            return url
    base = _http_url(creds.get("base_url")) or _http_url(f"https://{connection.shop_domain}")
    return urljoin(base.rstrip("/") + "/", CART_PAGE) if base else None


# --- payload → canonical ---------------------------------------------------------------------


def quote_to_canonical(
    quote: Quote,
    items: list[QuoteItem] | None,
    connection_id: UUID | None,
    graphql: dict | None = None,
    restore: str | None = None,
) -> CanonicalCart:
    """A quote (webhook payload) as a canonical cart; the GraphQL cart, when fetched, gives
    the items, prices and email. Raises ValueError (msgspec's ValidationError, or
    InvalidCanonical) for a GraphQL cart of the wrong shape or bounds, BadPayload for a quote
    without ids."""
    external_id = quote.entity_id or quote.masked_id or (graphql or {}).get("id")
    if not external_id:
        raise BadPayload("the quote has neither entity_id nor masked_id")
    email, currency, token = quote.customer_email, quote.quote_currency_code, quote.masked_id
    if graphql is not None:
        cart = msgspec.convert(graphql, GqlCart)
        grand = cart.prices.grand_total if cart.prices else None
        lines = (
            None
            if cart.items is None
            else [_gql_line(item) for item in cart.items if item is not None]
        )
        total = grand.value if grand is not None and grand.value is not None else quote.grand_total
        currency = (grand.currency if grand else None) or currency or _item_currency(cart)
        email, token = cart.email or email, token or cart.id
    else:
        lines = (
            None
            if items is None
            else [
                LineItem(
                    title=i.name,
                    sku=i.sku,
                    product_id=i.product_id,
                    quantity=_units(i.qty),
                    price=i.price,
                )
                for i in items
            ]
        )
        total = quote.grand_total if lines is not None else None
    return CanonicalCart(
        platform=PLATFORM,
        external_id=external_id,
        cart_token=token,
        connection_id=connection_id,
        email=email,
        first_name=quote.customer_firstname,
        last_name=quote.customer_lastname,
        customer_external_id=quote.customer_id or None,
        currency=currency,
        total_price=total,
        line_items=lines,
        restore_url=restore,
        source_created_at=quote.created_at,
        source_updated_at=quote.updated_at,
    )


def _item_currency(cart: GqlCart) -> str | None:
    for item in cart.items or ():
        money = item.prices.price if item and item.prices else None
        if money and money.currency:
            return money.currency
    return None


def order_to_canonical(order: Order, connection_id: UUID | None) -> CanonicalOrder:
    external_id = order.increment_id or order.entity_id
    if not external_id:
        raise BadPayload("the order has neither increment_id nor entity_id")
    return CanonicalOrder(
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
    """The event as ``observer.<magento event>``: Adobe I/O Events prefix it with
    ``com.adobe.commerce.``, and Commerce's own observer payloads may carry the bare Magento
    event name (Adobe's order-placement example sends ``"eventName":
    "sales_order_place_before"``)."""
    name = str(value)
    if name.startswith(IO_EVENTS_PREFIX):
        name = name[len(IO_EVENTS_PREFIX) :]
    if not name.startswith(("observer.", "plugin.")):
        name = "observer." + name
    return name


# --- the adapter -----------------------------------------------------------------------------


class MagentoAdapter(Adapter):
    platform: ClassVar[str] = PLATFORM
    # The connection's own URL names the store; ``/api/webhooks/magento?store=<host>`` works
    # too, for webhook definitions shared across environments.
    webhook_topics: ClassVar[dict[str, str]] = {"webhooks": "/api/webhooks/custom/{connection_id}"}
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
        payload = json_object(request.body)
        name, data = payload.get("eventName"), payload.get("data")
        if not isinstance(name, str) or not name or not isinstance(data, dict):
            raise BadPayload('expected {"eventName": string, "data": object}')
        event = _event_name(name)
        delivery = Delivery(topic=event[:200], payload={"webhook": payload}, response=dict(SUCCESS))
        if event in CART_EVENTS:
            self._cart(delivery, self._object(data, "quote", "cart"), connection)
        elif event in ORDER_EVENTS:
            self._order(delivery, self._object(data, "order"), connection)
        return delivery

    def _cart(self, delivery: Delivery, obj: dict, connection: Connection) -> None:
        try:
            quote = msgspec.convert(obj, Quote)
        except ValueError as exc:
            raise BadPayload("unreadable quote", error_details(exc)) from exc
        cart = None
        masked = quote.masked_id
        if masked:
            fetched = self._fetch(connection, masked)
            delivery.payload["cart"] = fetched
            if fetched is not None:
                try:
                    link = restore_url(connection, quote.entity_id, masked)
                    cart = quote_to_canonical(quote, None, connection.connection_id, fetched, link)
                except ValueError as exc:  # msgspec's, or the canonical cart's bounds
                    log.warning(
                        "magento cart %s: unreadable GraphQL cart: %s", quote.masked_id, exc
                    )
        if cart is None:  # no GraphQL cart: the payload's own items, if it has them
            try:
                items = msgspec.convert(obj.get("items"), QUOTE_ITEMS)
                link = restore_url(connection, quote.entity_id, masked)
                cart = quote_to_canonical(quote, items, connection.connection_id, restore=link)
            except ValueError as exc:  # msgspec's, or the canonical cart's bounds
                raise BadPayload("unreadable quote", error_details(exc)) from exc
        delivery.occurred_at = quote.updated_at
        # A CartChange: the dispatcher claims, upserts and stores it in one statement.
        delivery.apply = CartChange(cart)

    def _order(self, delivery: Delivery, obj: dict, connection: Connection) -> None:
        try:
            order = order_to_canonical(msgspec.convert(obj, Order), connection.connection_id)
        except ValueError as exc:
            raise BadPayload("unreadable order", error_details(exc)) from exc
        delivery.occurred_at = order.ordered_at
        delivery.apply = lambda conn, org_id: record_order(conn, org_id, order)["cart_id"]

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

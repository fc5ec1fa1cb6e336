"""BigCommerce: ``store/cart/*`` and ``store/order/created`` webhooks (SPEC §3).

Connection: ``shop_domain`` = the store hash (``producer: "stores/{hash}"``); ``secret`` = the
value of the custom header ``X-Cartrec-Hook-Token`` the hook was created with
(``headers: {"X-Cartrec-Hook-Token": secret}``); ``credentials`` =
``{"access_token", "client_secret"?, "api_base_url"?, "signature_tolerance_seconds"?}``.

Authenticity: the custom header must equal a current webhook secret (rotation-aware). When
the request also carries a Standard Webhooks signature (``webhook-id``, ``webhook-timestamp``,
``webhook-signature: v1,<base64 HMAC-SHA256>``) and the credentials hold the app's
``client_secret``, that signature must verify too (key = the client secret's raw bytes;
timestamp within ``signature_tolerance_seconds``, default 300; 0 disables the check).

Callbacks are thin (ids only), so ``parse`` fetches the full cart
``GET /stores/{hash}/v3/carts/{id}?include=redirect_urls`` with the store's API token and
keeps it (a **snapshot**: ``store/cart/converted`` deletes the cart) in the raw event and in
the canonical cart (email, items, amounts, currency, restore link = ``checkout_url``).
Conversion records the order (``GET /v2/orders/{id}`` for the real total; the snapshot's
total when that fails). ``store/cart/abandoned`` is recorded like an update: our own
abandonment timeout decides, the platform's one-hour signal sends nothing by itself.

Dedup key: ``{scope}:{hash}:{created_at}``. BigCommerce's ``hash`` is a SHA-1 of ``data``,
which for cart callbacks is just ``{type, id}``: every update of one cart has the same hash
(the fixtures' created and updated do), so the hash alone would drop all but the first
update; a redelivery repeats scope, hash and ``created_at``. Without a hash: ``webhook-id``.
"""

from __future__ import annotations

import base64
import hmac
import logging
import re
import time
from datetime import UTC, datetime
from decimal import Decimal
from email.utils import parsedate_to_datetime
from functools import lru_cache
from typing import Annotated, Any, ClassVar
from urllib.parse import quote
from uuid import UUID

import msgspec

from cartrecovery.canonical import CanonicalCart, CanonicalOrder, LineItem
from cartrecovery.cart_activity import backdate_activity
from cartrecovery.carts import CartChange, upsert_cart
from cartrecovery.http_client import StoreApiError, StoreHttpClient
from cartrecovery.orders import record_order
from cartrecovery.tenancy import Connection

from ..base import Adapter, AdapterError, BadPayload, Delivery, InboundRequest, json_object

log = logging.getLogger(__name__)

PLATFORM = "bigcommerce"
HOOK_TOKEN_HEADER = "X-Cartrec-Hook-Token"
DEFAULT_API_BASE = "https://api.bigcommerce.com"
DEFAULT_TOLERANCE_SECONDS = 300
CART_SCOPES = ("store/cart/created", "store/cart/updated", "store/cart/abandoned")
CONVERTED = "store/cart/converted"
ORDER_CREATED = "store/order/created"
SCOPES = (*CART_SCOPES, CONVERTED, ORDER_CREATED)
# Cart ids are UUIDs; anything else must never reach a URL path.
_CART_ID = re.compile(r"^[A-Za-z0-9-]{1,64}\Z")
_STORE_HASH = re.compile(r"^[A-Za-z0-9]{1,64}\Z")
_ORDER_ID = re.compile(r"^[0-9]{1,20}\Z")


class StoreApiUnavailable(AdapterError):
    """The store API could not be reached (or kept saying 429/5xx): nothing is stored and
    BigCommerce redelivers later (its retries run for about 48 h)."""

    status, code = 503, "store_api_unavailable"


# --- payload models ------------------------------------------------------------------------


# The callback is checked with msgspec (a C validator, ~0.5 µs): it is the one part of every
# BigCommerce request that is not a store object, and BigCommerce sends many per cart.
class CallbackData(msgspec.Struct):
    id: str | int
    type: str | None = None
    orderId: str | int | None = None  # noqa: N815 (BigCommerce's name)


class Callback(msgspec.Struct):
    scope: Annotated[str, msgspec.Meta(min_length=1, max_length=200)]
    data: CallbackData
    store_id: str | int | None = None
    hash: Annotated[str, msgspec.Meta(max_length=200)] | None = None
    created_at: Annotated[int, msgspec.Meta(ge=0, lt=2**40)] | None = None
    producer: str | None = None


class BcAddress(msgspec.Struct):
    email: str | None = None
    phone: str | None = None
    first_name: str | None = None
    last_name: str | None = None


class BcOrder(msgspec.Struct):
    """A v2 order (``GET /v2/orders/{id}``): money as decimal strings, dates RFC 2822.
    Status id 0 is "Incomplete": a checkout that never became an order [K]. Read with
    :func:`read_order`; ids are text whatever BigCommerce sent."""

    id: str | int
    cart_id: str | None = None
    customer_id: str | int | None = None
    status: str | None = None
    status_id: int | None = None
    payment_status: str | None = None
    total_inc_tax: Decimal | None = None  # bounds: the canonical order's
    currency_code: str | None = None
    date_created: str | None = None
    date_modified: str | None = None
    billing_address: BcAddress | None = None

    def __post_init__(self) -> None:
        self.id = str(self.id)
        if not self.id:
            raise ValueError("the order has no id")
        if self.customer_id is not None:
            self.customer_id = str(self.customer_id)


def read_order(order: Any) -> BcOrder:
    """A v2 order from its JSON; ValueError (msgspec's ValidationError) if it is not one."""
    return msgspec.convert(order, BcOrder)


# --- the store API ---------------------------------------------------------------------------


class BigCommerceApi:
    """The calls we make to one store's REST API (``X-Auth-Token``)."""

    def __init__(
        self, store_hash: str, access_token: str, base_url: str = DEFAULT_API_BASE, **client_options
    ):
        if not _STORE_HASH.match(store_hash or ""):
            raise ValueError("store hash must be alphanumeric")
        self.client = StoreHttpClient(
            f"{base_url.rstrip('/')}/stores/{store_hash}",
            headers={"X-Auth-Token": access_token, "Accept": "application/json"},
            **client_options,
        )

    @classmethod
    def for_connection(cls, connection: Connection, **client_options) -> BigCommerceApi | None:
        """The API of the connection's store, or None without an access token."""
        creds = connection.credentials or {}
        token = creds.get("access_token")
        if not token:
            return None
        return cls(
            connection.shop_domain,
            token,
            creds.get("api_base_url") or DEFAULT_API_BASE,
            **client_options,
        )

    def cart(self, cart_id: str) -> dict | None:
        """The full cart (``data`` of the v3 response), None once it is gone (404)."""
        body = self.client.json(
            "GET",
            f"/v3/carts/{quote(cart_id, safe='')}",
            params={"include": "redirect_urls"},
            allow=(404,),
        )
        if body is None:
            return None
        if not isinstance(body, dict) or not isinstance(body.get("data"), dict):
            raise StoreApiError("cart response has no data object", 200)
        return body["data"]

    def order(self, order_id: str) -> dict | None:
        body = self.client.json("GET", f"/v2/orders/{quote(order_id, safe='')}", allow=(404,))
        if body is None:
            return None
        if not isinstance(body, dict):
            raise StoreApiError("order response is not an object", 200)
        return body

    def orders(
        self,
        *,
        min_date_created: datetime,
        page: int,
        limit: int = 250,
        status_id: int | None = None,
    ) -> list[dict]:
        """One page of v2 orders created since ``min_date_created`` (oldest first); an empty
        list past the last page (BigCommerce answers 204 there)."""
        params: dict[str, Any] = {
            "min_date_created": min_date_created.isoformat(),
            "page": page,
            "limit": limit,
            "sort": "date_created:asc",
        }
        if status_id is not None:
            params["status_id"] = status_id
        body = self.client.json("GET", "/v2/orders", params=params)
        if body is None:
            return []
        if not isinstance(body, list):
            raise StoreApiError("orders response is not a list", 200)
        return body


# --- payload → canonical ---------------------------------------------------------------------


# The v3 cart is read with msgspec Structs over BigCommerce's own names (types checked in C,
# unknown fields ignored), then mapped onto the canonical cart, which checks the bounds.
_Id = str | int | None


class BcLine(msgspec.Struct):
    """A v3 cart line: physical, digital or custom item, or gift certificate."""

    id: _Id = None
    product_id: _Id = None
    variant_id: _Id = None
    sku: str | None = None
    name: str | None = None
    quantity: int = 1
    sale_price: Decimal | None = None
    list_price: Decimal | None = None
    amount: Decimal | None = None  # gift certificates
    image_url: str | None = None


class BcLines(msgspec.Struct):
    physical_items: list[BcLine] | None = None  # a group may be absent or null
    digital_items: list[BcLine] | None = None
    custom_items: list[BcLine] | None = None
    gift_certificates: list[BcLine] | None = None


class BcCurrency(msgspec.Struct):
    code: str | None = None


class BcRedirects(msgspec.Struct):
    checkout_url: str | None = None
    cart_url: str | None = None


class BcCart(msgspec.Struct):
    """A v3 cart (``data`` of ``GET /v3/carts/{id}?include=redirect_urls``)."""

    id: str | int
    customer_id: _Id = None
    email: str | None = None
    currency: BcCurrency | None = None
    cart_amount: Decimal | None = None
    line_items: BcLines | None = None
    redirect_urls: BcRedirects | None = None
    created_time: datetime | None = None
    updated_time: datetime | None = None


def _line(line: BcLine) -> LineItem:
    # The price is the sale price, else the list price (items) or the amount (gift
    # certificates); a gift certificate's id stands for its product id.
    price = line.sale_price
    if price is None:
        price = line.list_price if line.list_price is not None else line.amount
    return LineItem(
        title=line.name,
        product_id=line.product_id if line.product_id is not None else line.id,
        variant_id=line.variant_id,
        sku=line.sku,
        quantity=line.quantity,
        price=price if price is not None else Decimal("0"),
        image_url=line.image_url,
    )


def cart_to_canonical(cart: Any, connection_id: UUID | None) -> CanonicalCart:
    """A v3 cart as a canonical cart (external_id = the cart id); a cart of the wrong shape
    raises ValueError (msgspec's ValidationError and InvalidCanonical are ones)."""
    bc = msgspec.convert(cart, BcCart)
    groups = bc.line_items
    lines = (
        None
        if groups is None
        else [
            _line(line)
            for group in (
                groups.physical_items,
                groups.digital_items,
                groups.custom_items,
                groups.gift_certificates,
            )
            if group
            for line in group
        ]
    )
    redirects = bc.redirect_urls
    return CanonicalCart(
        platform=PLATFORM,
        external_id=bc.id,
        connection_id=connection_id,
        email=bc.email,
        customer_external_id=None if bc.customer_id in (0, "0", "") else bc.customer_id,
        currency=bc.currency.code if bc.currency else None,
        total_price=bc.cart_amount,
        line_items=lines,
        restore_url=(redirects.checkout_url or redirects.cart_url) if redirects else None,
        source_created_at=bc.created_time,
        source_updated_at=bc.updated_time,
    )


def order_to_canonical(
    order: BcOrder, connection_id: UUID | None, cart_id: str | None = None
) -> CanonicalOrder:
    """A v2 order as a canonical order; ``cart_id`` (from ``store/cart/converted``) wins over
    the order's own ``cart_id``."""
    address = order.billing_address or BcAddress()
    cart = cart_id or order.cart_id
    return CanonicalOrder(
        platform=PLATFORM,
        external_id=order.id,
        connection_id=connection_id,
        checkout_token=cart,
        checkout_external_id=cart,
        email=address.email,
        phone=address.phone,
        total_price=order.total_inc_tax,
        currency=order.currency_code,
        financial_status=order.payment_status or order.status,
        ordered_at=rfc2822(order.date_created),
    )


_MONTHS = {
    m: i
    for i, m in enumerate(
        ("Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec"), 1
    )
}


def rfc2822(value: str | None) -> datetime | None:
    """v2 dates (``Tue, 20 Nov 2012 00:00:00 +0000``); ISO 8601 accepted too."""
    if not value:
        return None
    parsed = _v2_date(value)
    if parsed is not None:
        return parsed
    try:
        parsed = parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        try:
            parsed = datetime.fromisoformat(value)
        except ValueError:
            return None
    return parsed if parsed.tzinfo else parsed.replace(tzinfo=UTC)


def _v2_date(value: str) -> datetime | None:
    """The one layout the v2 API writes (always ``+0000``), without email.utils' general
    parser (a sixth of a BigCommerce order's cost); anything else gives None."""
    parts = value.split(" ")
    if len(parts) != 6 or parts[5] != "+0000" or len(parts[4]) != 8:
        return None
    _, day, month, year, clock, _ = parts
    try:
        return datetime(
            int(year),
            _MONTHS[month],
            int(day),
            int(clock[:2]),
            int(clock[3:5]),
            int(clock[6:]),
            tzinfo=UTC,
        )
    except (KeyError, ValueError):
        return None


@lru_cache(maxsize=256)
def _keyed_sha256(key: bytes) -> hmac.HMAC:
    # Copying a keyed HMAC is cheaper than keying a new one (OpenSSL 3 looks the digest up
    # and hashes the key each time); one per app client secret.
    return hmac.new(key, digestmod="sha256")


def verify_standard_webhook(
    key: bytes,
    headers,
    body: bytes,
    tolerance: float | None,
    now: float,
    signatures: str | None = None,
) -> bool:
    """Standard Webhooks: one of the space-separated ``v1,<base64>`` signatures equals
    base64 HMAC-SHA256(key, ``{id}.{timestamp}.{body}``), and the timestamp is within
    ``tolerance`` seconds of ``now`` (None or 0: not checked). ``signatures``: the
    ``webhook-signature`` header when the caller has read it already."""
    if signatures is None:
        signatures = headers.get("webhook-signature")
    msg_id, stamp = headers.get("webhook-id"), headers.get("webhook-timestamp")
    if not msg_id or not stamp or not signatures:
        return False
    try:
        ts = int(stamp)
    except ValueError:
        return False
    if tolerance and abs(now - ts) > tolerance:
        return False
    mac = _keyed_sha256(key).copy()
    mac.update(b"%s.%s.%s" % (msg_id.encode(), stamp.encode(), body))
    expected = base64.b64encode(mac.digest())
    for part in signatures.split():
        version, _, value = part.partition(",")
        if version == "v1" and hmac.compare_digest(expected, value.encode()):
            return True
    return False


def token_matches(given: str | None, secrets: list[str]) -> bool:
    """Constant-time match of a shared-secret header against every valid secret."""
    if not given:
        return False
    given_bytes = given.strip().encode()
    matched = False
    for secret in secrets:
        # No short-circuit: the time taken does not say which secret (current/previous)
        # matched.
        if secret and hmac.compare_digest(given_bytes, secret.encode()):
            matched = True
    return matched


# --- the adapter -----------------------------------------------------------------------------


class BigCommerceAdapter(Adapter):
    platform: ClassVar[str] = PLATFORM
    webhook_topics: ClassVar[dict[str, str]] = {
        scope: "/api/webhooks/bigcommerce" for scope in SCOPES
    }
    # Seams for tests and benchmarks: the clock the signature timestamp is checked against,
    # and the sleep the API client waits with between retries.
    clock: ClassVar = staticmethod(time.time)
    sleep: ClassVar = staticmethod(time.sleep)
    # Inside a webhook request: short timeouts, few retries, never a long Retry-After.
    client_options: ClassVar[dict] = {"timeout": 5, "max_attempts": 3, "max_retry_after": 10}

    def __init__(self, api_factory=None, tolerance: float | None = DEFAULT_TOLERANCE_SECONDS):
        """``api_factory(connection) -> BigCommerceApi-like | None`` replaces the real API
        (benchmarks, tests); ``tolerance`` is the signature timestamp tolerance in seconds."""
        self._api_factory = api_factory
        self.tolerance = tolerance
        self._memo: tuple[bytes, Any] | None = None

    # locate → verify → parse

    def locate(self, request: InboundRequest) -> str | None:
        store = (request.query or {}).get("store")
        if store:
            return store
        producer = self._json(request.body).get("producer")
        if isinstance(producer, str) and producer.startswith("stores/"):
            return producer[len("stores/") :] or None
        return None

    def verify(self, request: InboundRequest, connection: Connection) -> bool:
        if not token_matches(request.headers.get(HOOK_TOKEN_HEADER), connection.secrets):
            return False
        creds = connection.credentials or {}
        client_secret = creds.get("client_secret")
        signatures = request.headers.get("webhook-signature") if client_secret else None
        if signatures is not None:
            tolerance = creds.get("signature_tolerance_seconds", self.tolerance)
            return verify_standard_webhook(
                str(client_secret).encode(),
                request.headers,
                request.body,
                float(tolerance) if isinstance(tolerance, (int, float)) else self.tolerance,
                self.clock(),
                signatures,
            )
        return True

    def parse(self, request: InboundRequest, connection: Connection) -> Delivery:
        payload = self._json(request.body)
        try:
            callback = msgspec.convert(payload, Callback)
        except msgspec.ValidationError as exc:
            raise BadPayload("not a BigCommerce callback", {"errors": [str(exc)]}) from exc
        if callback.producer not in (None, f"stores/{connection.shop_domain}"):
            raise BadPayload("the callback names another store")
        scope = callback.scope
        if callback.hash:
            dedup = f"{scope}:{callback.hash}:{callback.created_at}"
        else:
            dedup = request.headers.get("webhook-id") or None
        occurred = (
            datetime.fromtimestamp(callback.created_at, UTC)
            if callback.created_at is not None
            else None
        )
        delivery = Delivery(
            topic=scope, payload={"callback": payload}, dedup_key=dedup, occurred_at=occurred
        )
        if scope in CART_SCOPES:
            self._cart_delivery(delivery, callback, connection)
        elif scope == CONVERTED:
            self._converted_delivery(delivery, callback, connection)
        elif scope == ORDER_CREATED:
            self._order_delivery(delivery, callback, connection)
        # Any other scope (store/cart/lineItem/*, …) is kept as a raw event only.
        return delivery

    # scopes

    def _cart_delivery(self, delivery: Delivery, callback: Callback, connection: Connection):
        cart_id = str(callback.data.id)
        if not _CART_ID.match(cart_id):
            raise BadPayload("cart id is not a BigCommerce cart id")
        snapshot = self._fetch(connection, "cart", cart_id)
        if snapshot is not None:
            try:
                cart = cart_to_canonical(snapshot, connection.connection_id)
            except ValueError as exc:
                log.warning("bigcommerce cart %s: unreadable API answer: %s", cart_id, exc)
                snapshot, cart = None, None
        else:
            cart = None
        delivery.payload["cart"] = snapshot  # the snapshot outlives the cart itself
        if cart is None or cart.external_id != cart_id:
            # Gone (converted or deleted) or not fetchable: the cart row still exists, so a
            # conversion that arrived first finds it; stored content is left alone.
            cart = CanonicalCart(
                platform=PLATFORM, external_id=cart_id, connection_id=connection.connection_id
            )
        if callback.scope != "store/cart/abandoned" or cart.source_updated_at is None:
            # A CartChange: the dispatcher claims, upserts and stores it in one statement.
            delivery.apply = CartChange(cart)
            return

        def apply(conn, org_id):
            found = upsert_cart(conn, org_id, cart)
            # The platform's "abandoned" is a reminder, not activity: the shopper's last
            # action is the cart's updated_time, not the time this callback arrived.
            backdate_activity(conn, org_id, found, cart.source_updated_at)
            return found

        delivery.apply = apply

    def _converted_delivery(self, delivery: Delivery, callback: Callback, connection: Connection):
        cart_id = str(callback.data.id)
        order_id = None if callback.data.orderId is None else str(callback.data.orderId)
        if not _CART_ID.match(cart_id) or not order_id or not _ORDER_ID.match(order_id):
            raise BadPayload("store/cart/converted needs a cart id and a numeric orderId")
        fetched = self._fetch(connection, "order", order_id, required=False)
        order = self._order(fetched, connection) if fetched else None
        delivery.payload["order"] = fetched if order else None
        canonical = (
            order_to_canonical(order, connection.connection_id, cart_id)
            if order
            else CanonicalOrder(
                platform=PLATFORM,
                external_id=order_id,
                connection_id=connection.connection_id,
                checkout_token=cart_id,
                checkout_external_id=cart_id,
            )
        )
        delivery.apply = lambda conn, org_id: record_order(conn, org_id, canonical)["cart_id"]

    def _order_delivery(self, delivery: Delivery, callback: Callback, connection: Connection):
        order_id = str(callback.data.id)
        if not _ORDER_ID.match(order_id):
            raise BadPayload("store/order/created needs a numeric order id")
        fetched = self._fetch(connection, "order", order_id, required=False)
        order = self._order(fetched, connection) if fetched else None
        delivery.payload["order"] = fetched if order else None
        if order is None or order.status_id == 0:
            return  # not readable (or an incomplete checkout): the raw event only
        canonical = order_to_canonical(order, connection.connection_id)
        delivery.apply = lambda conn, org_id: record_order(conn, org_id, canonical)["cart_id"]

    # helpers

    def api(self, connection: Connection):
        if self._api_factory is not None:
            return self._api_factory(connection)
        return BigCommerceApi.for_connection(connection, sleep=self.sleep, **self.client_options)

    def _fetch(self, connection: Connection, kind: str, object_id: str, required: bool = True):
        """The object from the store API; None when it is gone, not readable or there is no
        token. A temporary failure raises StoreApiUnavailable when ``required`` (a cart:
        without it we would keep an empty snapshot), else gives None (an order: the
        snapshot's total is good enough)."""
        try:
            api = self.api(connection)
        except ValueError as exc:
            log.warning("bigcommerce %s: %s", connection.shop_domain, exc)
            return None
        if api is None:
            return None
        try:
            return getattr(api, kind)(object_id)
        except StoreApiError as exc:
            if exc.retryable and required:
                raise StoreApiUnavailable(
                    "the BigCommerce API is not answering; deliver again later"
                ) from exc
            log.warning("bigcommerce %s %s %s: %s", connection.shop_domain, kind, object_id, exc)
            return None

    @staticmethod
    def _order(fetched: dict, connection: Connection) -> BcOrder | None:
        try:
            return read_order(fetched)
        except ValueError as exc:
            log.warning("bigcommerce %s: unreadable order: %s", connection.shop_domain, exc)
            return None

    def _json(self, body: bytes) -> Any:
        # locate and parse both need the JSON: decode it once per request.
        if self._memo is not None and self._memo[0] is body:
            return self._memo[1]
        value = json_object(body)
        self._memo = (body, value)
        return value

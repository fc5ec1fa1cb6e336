"""A simulated store: realistic Shopify checkout/order traffic and SendGrid engagement, signed.

Used by `cartrecovery demo`, the tests and the benchmarks. Everything random comes from one
``random.Random(seed)`` and every timestamp from an injectable clock, so a seed (and a clock)
reproduce the same traffic byte for byte.

How a session unfolds (defaults in :class:`Behavior`):

* a customer (name, email on a reserved example domain, IANA time zone, fictional phone
  number) opens a checkout with 1-4 catalog items: ``checkouts/create``;
* most checkouts are updated a few seconds later (quantity changed, item added):
  ``checkouts/update``;
* ~30% buy before the abandonment timeout (``orders/create``, then the ``checkouts/update``
  that carries ``completed_at``, as Shopify sends it); the other ~70% abandon;
* recovery messages that the built-in provider stored (``app.local_mailbox``) get signed
  SendGrid ``delivered``/``open``/``click`` events, and some clicked carts then order: the
  recoveries. A few abandoned customers also come back on their own (no click).

The pure builders (:func:`checkout_payload`, :func:`order_payload`, :func:`sign_shopify`,
:func:`shopify_headers`, :func:`sendgrid_event`, :func:`sendgrid_body`,
:func:`sign_sendgrid`, :func:`sendgrid_keypair`) are reused by the benchmarks.
"""

from __future__ import annotations

import base64
import collections
import hashlib
import heapq
import hmac
import json
import logging
import random
import re
import threading
import time
import uuid
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from decimal import ROUND_HALF_UP, Decimal
from zoneinfo import ZoneInfo

import phonenumbers
import requests
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec

log = logging.getLogger("cartrecovery.simulator")

API_VERSION = "2026-01"
SHOP_TIMEZONE = "America/New_York"
VENDOR = "Demo Outfitters"
CENT = Decimal("0.01")
MAILBOX_MARGIN = timedelta(minutes=2)

# Shopify topic -> our webhook path segment (README, "Connecting a store").
SHOPIFY_PATHS = {
    "checkouts/create": "checkout-create",
    "checkouts/update": "checkout-update",
    "orders/create": "order-create",
}


@dataclass(frozen=True)
class Product:
    product_id: int
    variant_id: int
    title: str
    variant_title: str
    sku: str
    price: str
    grams: int
    compare_at_price: str | None = None


CATALOG: tuple[Product, ...] = (
    Product(
        8123456789012, 45012345678901, "Merino Wool Beanie", "Charcoal", "BEANIE-CHAR", "24.00", 120
    ),
    Product(
        8123456780013,
        45012345679902,
        "Trail Running Socks (3-pack)",
        "M",
        "SOCK3-M",
        "18.50",
        150,
        "22.00",
    ),
    Product(
        8123456780024,
        45012345680003,
        "Packable Rain Shell",
        "Navy / L",
        "SHELL-NAV-L",
        "129.00",
        310,
    ),
    Product(
        8123456780035,
        45012345680104,
        "Insulated Water Bottle 750 ml",
        "Sage",
        "BOTTLE-750-SAG",
        "34.95",
        420,
    ),
    Product(
        8123456780046,
        45012345680205,
        "Ultralight Daypack 22 L",
        "Black",
        "PACK22-BLK",
        "89.00",
        540,
        "99.00",
    ),
    Product(
        8123456780057, 45012345680306, "Trekking Poles (pair)", "Carbon", "POLES-CRB", "119.00", 460
    ),
    Product(
        8123456780068, 45012345680407, "Fleece Quarter-Zip", "Oat / M", "FLEECE-OAT-M", "74.00", 380
    ),
    Product(8123456780079, 45012345680508, "Camp Mug", "Enamel White", "MUG-ENM", "16.00", 210),
    Product(8123456780080, 45012345680609, "Headlamp 400 lm", "Orange", "LAMP400-ORG", "42.50", 90),
    Product(
        8123456780091,
        45012345680700,
        "Hiking Boots",
        "Brown / 10",
        "BOOT-BRN-10",
        "159.00",
        1150,
        "179.00",
    ),
    Product(
        8123456780102, 45012345680801, "Sun Hoodie UPF 50", "Sky / S", "SUNHOOD-SKY-S", "58.00", 220
    ),
    Product(
        8123456780113, 45012345680902, "Trail Mix Variety Box", "12 bars", "MIX-12", "27.00", 720
    ),
)


@dataclass(frozen=True)
class Region:
    """Where a customer lives: a real IANA zone, an address, and a fictional phone pattern."""

    timezone: str
    locale: str
    country: str
    country_code: str
    province: str
    province_code: str
    city: str
    zip: str
    phone_pattern: str  # '#' is a random digit; numbers are from ranges reserved for fiction


REGIONS: tuple[Region, ...] = (
    Region(
        "America/New_York",
        "en-US",
        "United States",
        "US",
        "New York",
        "NY",
        "Brooklyn",
        "11201",
        "+171855501##",
    ),
    Region(
        "America/Chicago",
        "en-US",
        "United States",
        "US",
        "Illinois",
        "IL",
        "Chicago",
        "60614",
        "+131255501##",
    ),
    Region(
        "America/Denver",
        "en-US",
        "United States",
        "US",
        "Colorado",
        "CO",
        "Boulder",
        "80302",
        "+130355501##",
    ),
    Region(
        "America/Los_Angeles",
        "en-US",
        "United States",
        "US",
        "California",
        "CA",
        "Oakland",
        "94612",
        "+151055501##",
    ),
    Region(
        "America/Toronto",
        "en-CA",
        "Canada",
        "CA",
        "Ontario",
        "ON",
        "Toronto",
        "M5V 2T6",
        "+141655501##",
    ),
    Region(
        "Europe/London",
        "en-GB",
        "United Kingdom",
        "GB",
        "England",
        "ENG",
        "Bristol",
        "BS1 4DJ",
        "+447700900###",
    ),
    Region(
        "Europe/Berlin",
        "de-DE",
        "Germany",
        "DE",
        "Berlin",
        "BE",
        "Berlin",
        "10115",
        "+493023125###",
    ),
    Region(
        "Europe/Paris",
        "fr-FR",
        "France",
        "FR",
        "Île-de-France",
        "IDF",
        "Paris",
        "75011",
        "+3363998####",
    ),
    Region(
        "Australia/Sydney",
        "en-AU",
        "Australia",
        "AU",
        "New South Wales",
        "NSW",
        "Sydney",
        "2000",
        "+61491570###",
    ),
)

FIRST_NAMES = (
    "Olivia",
    "Liam",
    "Emma",
    "Noah",
    "Amelia",
    "Oliver",
    "Sophia",
    "Elijah",
    "Mia",
    "Lucas",
    "Charlotte",
    "Mateo",
    "Aisha",
    "Hiro",
    "Lena",
    "Jonas",
    "Chloé",
    "Louis",
    "Priya",
    "Arjun",
    "Zoe",
    "Ethan",
    "Grace",
    "Leo",
    "Nora",
    "Felix",
    "Isla",
    "Samuel",
    "Maya",
    "Daniel",
)
LAST_NAMES = (
    "Smith",
    "Johnson",
    "Williams",
    "Brown",
    "Garcia",
    "Miller",
    "Davis",
    "Martin",
    "Müller",
    "Schmidt",
    "Dubois",
    "Moreau",
    "Taylor",
    "Wilson",
    "Nguyen",
    "Patel",
    "Kim",
    "Lopez",
    "Anderson",
    "Thomas",
    "Walker",
    "Young",
    "King",
    "Wright",
    "Scott",
    "Green",
)
# Reserved by RFC 2606: nothing the demo "sends" can reach a real mailbox.
EMAIL_DOMAINS = ("example.com", "example.org", "example.net")
STREETS = ("Maple Avenue", "Oak Street", "Harbor Road", "Station Lane", "Hill Crescent")


@dataclass(frozen=True)
class Customer:
    customer_id: int
    first_name: str
    last_name: str
    email: str
    phone: str
    region: Region
    address1: str
    accepts_marketing: bool
    created_at: datetime

    @property
    def timezone(self) -> str:
        return self.region.timezone


@dataclass(frozen=True)
class Behavior:
    """Probabilities and delays of simulated customers (seconds)."""

    buy_rate: float = 0.30  # order before the abandonment timeout
    update_rate: float = 0.6  # a checkouts/update follows the create
    organic_return_rate: float = 0.03  # abandoned, then buy later without any message
    returning_customer_rate: float = 0.1  # same person as an earlier session
    deliver_rate: float = 0.97
    open_rate: float = 0.55  # of delivered
    click_rate: float = 0.35  # of opened
    clicked_buy_rate: float = 0.5  # of clicked: an order, i.e. a recovery
    abandonment_timeout: float = 20.0  # the org's setting; buyers order well within it
    open_delay: tuple[float, float] = (3.0, 30.0)  # after delivery: open, then the click
    order_delay: tuple[float, float] = (5.0, 40.0)  # after the click: the order


# ---------------------------------------------------------------------------------------
# Pure payload builders
# ---------------------------------------------------------------------------------------


def _money(value: Decimal) -> str:
    return str(value.quantize(CENT, rounding=ROUND_HALF_UP))


def _local_iso(moment: datetime, zone: str = SHOP_TIMEZONE) -> str:
    # Shopify renders timestamps in the shop's time zone, with its offset.
    return moment.astimezone(ZoneInfo(zone)).isoformat(timespec="seconds")


def _address(customer: Customer) -> dict:
    region = customer.region
    return {
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "name": f"{customer.first_name} {customer.last_name}",
        "company": None,
        "address1": customer.address1,
        "address2": None,
        "city": region.city,
        "province": region.province,
        "province_code": region.province_code,
        "country": region.country,
        "country_code": region.country_code,
        "zip": region.zip,
        "phone": customer.phone,
        "latitude": None,
        "longitude": None,
    }


def _customer_object(customer: Customer, updated_at: datetime) -> dict:
    address = _address(customer)
    return {
        "id": customer.customer_id,
        "email": customer.email,
        "accepts_marketing": customer.accepts_marketing,
        "first_name": customer.first_name,
        "last_name": customer.last_name,
        "phone": customer.phone,
        "state": "enabled",
        "verified_email": True,
        "tags": "",
        "currency": "USD",
        "orders_count": 0,
        "total_spent": "0.00",
        "last_order_id": None,
        "last_order_name": None,
        "note": None,
        "multipass_identifier": None,
        "created_at": _local_iso(customer.created_at),
        "updated_at": _local_iso(updated_at),
        "admin_graphql_api_id": f"gid://shopify/Customer/{customer.customer_id}",
        "default_address": {
            **address,
            "id": customer.customer_id + 2_111_111_111_111,
            "customer_id": customer.customer_id,
            "country_name": customer.region.country,
            "default": True,
        },
    }


def checkout_payload(
    *,
    customer: Customer,
    items: Iterable[tuple[Product, int]],
    checkout_id: int,
    token: str,
    cart_token: str,
    shop_domain: str,
    created_at: datetime,
    updated_at: datetime | None = None,
    completed_at: datetime | None = None,
    recover_key: str = "",
    tax_rate: str = "0.08",
    landing_site: str = "/",
    referring_site: str = "",
) -> dict:
    """A Shopify checkout resource (topics ``checkouts/*``), shaped like the fixture.

    The customer's IANA time zone travels in ``note_attributes`` (name ``timezone``), as a
    storefront snippet would capture it; Shopify itself has no such field.
    """
    updated_at = updated_at or created_at
    line_items = []
    subtotal = Decimal(0)
    weight = 0
    for product, quantity in items:
        price = Decimal(product.price)
        line_price = price * quantity
        subtotal += line_price
        weight += product.grams * quantity
        line_items.append(
            {
                "key": hashlib.md5(f"{token}:{product.variant_id}".encode()).hexdigest(),
                "id": product.variant_id,
                "product_id": product.product_id,
                "variant_id": product.variant_id,
                "title": product.title,
                "variant_title": product.variant_title,
                "sku": product.sku,
                "vendor": VENDOR,
                "quantity": quantity,
                "price": _money(price),
                "line_price": _money(line_price),
                "compare_at_price": product.compare_at_price,
                "grams": product.grams,
                "requires_shipping": True,
                "taxable": True,
                "gift_card": False,
                "fulfillment_service": "manual",
                "properties": None,
                "applied_discounts": [],
                "tax_lines": [],
            }
        )
    rate = Decimal(tax_rate)
    tax = (subtotal * rate).quantize(CENT, rounding=ROUND_HALF_UP)
    total = subtotal + tax
    address = _address(customer)
    return {
        "id": checkout_id,
        "token": token,
        "cart_token": cart_token,
        "email": customer.email,
        "phone": customer.phone,
        "gateway": None,
        "buyer_accepts_marketing": customer.accepts_marketing,
        "created_at": _local_iso(created_at),
        "updated_at": _local_iso(updated_at),
        "completed_at": _local_iso(completed_at) if completed_at else None,
        "closed_at": None,
        "landing_site": landing_site,
        "referring_site": referring_site,
        "note": None,
        "note_attributes": [{"name": "timezone", "value": customer.timezone}],
        "source_name": "web",
        "source": None,
        "source_identifier": None,
        "source_url": None,
        "customer_locale": customer.region.locale,
        "currency": "USD",
        "presentment_currency": "USD",
        "taxes_included": False,
        "total_weight": weight,
        "subtotal_price": _money(subtotal),
        "total_line_items_price": _money(subtotal),
        "total_discounts": "0.00",
        "total_tax": _money(tax),
        "total_price": _money(total),
        "name": f"#{checkout_id}",
        "abandoned_checkout_url": (
            f"https://{shop_domain}/checkouts/ac/{cart_token}/recover?key={recover_key}"
        ),
        "discount_codes": [],
        "shipping_lines": [
            {"code": "Standard", "title": "Standard", "price": "0.00", "source": "shopify"}
        ],
        "tax_lines": [{"price": _money(tax), "rate": float(rate), "title": "State Tax"}],
        "line_items": line_items,
        "billing_address": dict(address),
        "shipping_address": dict(address),
        "customer": _customer_object(customer, updated_at),
    }


def order_payload(
    checkout: dict,
    *,
    order_id: int,
    order_number: int,
    token: str,
    created_at: datetime,
    financial_status: str = "paid",
) -> dict:
    """A Shopify order resource (``orders/create``) for ``checkout``: ``checkout_token`` is
    the checkout's ``token``, ``checkout_id`` its ``id``, ``cart_token`` its cart token."""
    stamp = _local_iso(created_at)
    line_items = [
        {
            "id": order_id * 10 + index,
            "variant_id": item["variant_id"],
            "product_id": item["product_id"],
            "title": item["title"],
            "variant_title": item["variant_title"],
            "name": f"{item['title']} - {item['variant_title']}",
            "sku": item["sku"],
            "vendor": item["vendor"],
            "quantity": item["quantity"],
            "price": item["price"],
            "total_discount": "0.00",
            "grams": item["grams"],
            "requires_shipping": item["requires_shipping"],
            "taxable": item["taxable"],
            "gift_card": item["gift_card"],
            "fulfillment_service": item["fulfillment_service"],
            "fulfillment_status": None,
            "properties": [],
            "product_exists": True,
        }
        for index, item in enumerate(checkout.get("line_items", []), start=1)
    ]
    customer = checkout.get("customer")
    if customer:
        customer = {**customer, "orders_count": customer.get("orders_count", 0) + 1}
    return {
        "id": order_id,
        "admin_graphql_api_id": f"gid://shopify/Order/{order_id}",
        "name": f"#{order_number}",
        "order_number": order_number,
        "number": order_number - 1000,
        "token": token,
        "checkout_id": checkout["id"],
        "checkout_token": checkout["token"],
        "cart_token": checkout.get("cart_token"),
        "email": checkout.get("email"),
        "contact_email": checkout.get("email"),
        "phone": checkout.get("phone"),
        "buyer_accepts_marketing": checkout.get("buyer_accepts_marketing", False),
        "created_at": stamp,
        "updated_at": stamp,
        "processed_at": stamp,
        "cancelled_at": None,
        "cancel_reason": None,
        "closed_at": None,
        "financial_status": financial_status,
        "fulfillment_status": None,
        "test": False,
        "confirmed": True,
        "currency": checkout.get("currency", "USD"),
        "presentment_currency": checkout.get("presentment_currency", "USD"),
        "taxes_included": checkout.get("taxes_included", False),
        "subtotal_price": checkout.get("subtotal_price", checkout.get("total_price", "0.00")),
        "total_line_items_price": checkout.get(
            "total_line_items_price", checkout.get("total_price", "0.00")
        ),
        "total_discounts": checkout.get("total_discounts", "0.00"),
        "total_tax": checkout.get("total_tax", "0.00"),
        "total_price": checkout.get("total_price", "0.00"),
        "current_total_price": checkout.get("total_price", "0.00"),
        "discount_codes": [],
        "note": None,
        "note_attributes": checkout.get("note_attributes", []),
        "source_name": "web",
        "landing_site": checkout.get("landing_site"),
        "referring_site": checkout.get("referring_site"),
        "gateway": "shopify_payments",
        "payment_gateway_names": ["shopify_payments"],
        "line_items": line_items,
        "shipping_lines": [
            {
                "id": order_id + 7,
                "code": "Standard",
                "title": "Standard",
                "price": "0.00",
                "source": "shopify",
            }
        ],
        "tax_lines": checkout.get("tax_lines", []),
        "billing_address": checkout.get("billing_address"),
        "shipping_address": checkout.get("shipping_address"),
        "customer": customer,
    }


def sign_shopify(secret: str, body: bytes) -> str:
    """``X-Shopify-Hmac-Sha256``: base64 HMAC-SHA256 of the raw body with the app secret."""
    return base64.b64encode(hmac.new(secret.encode(), body, hashlib.sha256).digest()).decode()


def shopify_headers(
    topic: str,
    body: bytes,
    *,
    secret: str,
    shop_domain: str,
    webhook_id: str,
    triggered_at: datetime,
    event_id: str | None = None,
) -> dict[str, str]:
    """The headers Shopify sends with a webhook delivery, signed."""
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Hmac-Sha256": sign_shopify(secret, body),
        "X-Shopify-Shop-Domain": shop_domain,
        "X-Shopify-API-Version": API_VERSION,
        "X-Shopify-Webhook-Id": webhook_id,
        "X-Shopify-Triggered-At": triggered_at.astimezone(UTC).isoformat().replace("+00:00", "Z"),
    }
    if event_id:
        headers["X-Shopify-Event-Id"] = event_id
    return headers


def sendgrid_event(
    event: str,
    *,
    email: str,
    timestamp: int,
    sg_event_id: str,
    sg_message_id: str,
    message_id: str,
    org_id: str,
    url: str | None = None,
) -> dict:
    """One SendGrid Event Webhook event; our custom args (message_id, org_id) are top-level
    keys, as SendGrid delivers them."""
    body = {
        "email": email,
        "timestamp": int(timestamp),
        "event": event,
        "sg_event_id": sg_event_id,
        "sg_message_id": sg_message_id,
        "smtp-id": f"<{sg_message_id.split('.')[0]}@sim.sendgrid.net>",
        "category": ["cart_recovery"],
        "message_id": message_id,
        "org_id": org_id,
    }
    if event == "delivered":
        body["response"] = "250 2.0.0 OK"
    if event in ("open", "click"):
        body["useragent"] = "Mozilla/5.0 (iPhone; CPU iPhone OS 17_3 like Mac OS X)"
        body["ip"] = "198.51.100.23"
    if event == "open":
        body["sg_machine_open"] = False
    if event == "click":
        body["url"] = url or ""
    return body


def sendgrid_event_batch(
    message: dict, events: Iterable[str], *, timestamp: int, rng: random.Random, url: str = ""
) -> list[dict]:
    """Events for one stored message (``message`` has message_id, org_id, recipient and
    optionally provider_message_id), one second apart from ``timestamp``."""
    prefix = message.get("provider_message_id") or uuid.UUID(str(message["message_id"])).hex
    return [
        sendgrid_event(
            kind,
            email=message["recipient"],
            timestamp=timestamp + offset,
            sg_event_id=_token(rng, 22),
            sg_message_id=f"{prefix}.recvd-sim-0",
            message_id=str(message["message_id"]),
            org_id=str(message["org_id"]),
            url=url if kind == "click" else None,
        )
        for offset, kind in enumerate(events)
    ]


def sendgrid_body(events: list[dict]) -> bytes:
    """The raw request body SendGrid posts: a JSON array (ASCII, so str == bytes)."""
    return json.dumps(events, separators=(",", ":")).encode()


def sendgrid_keypair() -> tuple[ec.EllipticCurvePrivateKey, str]:
    """A new ECDSA P-256 key pair: (private key, public key as base64 DER SubjectPublicKeyInfo,
    the form of ``SENDGRID_WEBHOOK_PUBLIC_KEY``)."""
    private_key = ec.generate_private_key(ec.SECP256R1())
    der = private_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    return private_key, base64.b64encode(der).decode()


def sign_sendgrid(private_key: ec.EllipticCurvePrivateKey, timestamp: str, body: bytes) -> str:
    """``X-Twilio-Email-Event-Webhook-Signature``: base64 DER ECDSA-P256-SHA256 over the
    timestamp string followed by the raw body."""
    signature = private_key.sign(timestamp.encode() + body, ec.ECDSA(hashes.SHA256()))
    return base64.b64encode(signature).decode()


def _token(rng: random.Random, length: int, alphabet: str | None = None) -> str:
    alphabet = alphabet or "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789"
    return "".join(rng.choice(alphabet) for _ in range(length))


def _uuid(rng: random.Random) -> str:
    return str(uuid.UUID(int=rng.getrandbits(128), version=4))


# ---------------------------------------------------------------------------------------
# The simulator
# ---------------------------------------------------------------------------------------


@dataclass
class Session:
    """One checkout's plan and state."""

    checkout: dict
    customer: Customer
    buys: bool
    returns_later: bool
    ordered: bool = False
    clicked: bool = False


@dataclass(order=True)
class _Action:
    due: float
    seq: int
    kind: str = field(compare=False)
    key: object = field(compare=False, default=None)
    data: object = field(compare=False, default=None)


class StoreSimulator:
    """Traffic of one Shopify store, posted signed to ``base_url``.

    ``database_url``/``org_id`` are needed only to read the messages the built-in provider
    stored (:meth:`engage_with_sent_messages`); without ``org_id`` the org is found from the
    store's connection. ``sendgrid_private_key`` signs SendGrid events (unsigned otherwise).
    """

    def __init__(
        self,
        base_url: str,
        shop_domain: str,
        secret: str,
        seed: int | None = 0,
        sendgrid_private_key: ec.EllipticCurvePrivateKey | None = None,
        database_url: str | None = None,
        org_id: str | uuid.UUID | None = None,
        behavior: Behavior | None = None,
        clock: Callable[[], float] = time.time,
        session: requests.Session | None = None,
        timeout: float = 10.0,
        engage_since: datetime | None = None,
    ):
        self.base_url = base_url.rstrip("/")
        self.shop_domain = shop_domain
        self.secret = secret
        self.rng = random.Random(seed)
        self.sendgrid_private_key = sendgrid_private_key
        self.database_url = database_url
        self.org_id = str(org_id) if org_id else None
        self.behavior = behavior or Behavior()
        self.clock = clock
        self.http = session or requests.Session()
        self.timeout = timeout
        self.sessions: dict[str, Session] = {}
        self.customers: list[Customer] = []
        self.stats: collections.Counter = collections.Counter()
        self.errors: collections.deque = collections.deque(maxlen=50)
        self._queue: list[_Action] = []
        self._seq = 0
        self._next_order_number = 1001
        self._seen_messages: set[str] = set()
        # Messages stored before this (e.g. by an earlier demo run) are not engaged with.
        self._mailbox_since = engage_since or datetime.fromtimestamp(0, UTC)
        self._next_arrival: float | None = None
        self._next_engage: float | None = None
        self._db = None

    # -- generation ----------------------------------------------------------------------
    def new_customer(self) -> Customer:
        """A new or (sometimes) returning customer."""
        rng = self.rng
        if self.customers and rng.random() < self.behavior.returning_customer_rate:
            return rng.choice(self.customers)
        first, last = rng.choice(FIRST_NAMES), rng.choice(LAST_NAMES)
        region = rng.choice(REGIONS)
        n = len(self.customers) + 1
        local = f"{_ascii(first)}.{_ascii(last)}{n}".lower()
        digits = "".join(str(rng.randrange(10)) if c == "#" else c for c in region.phone_pattern)
        phone = phonenumbers.format_number(
            phonenumbers.parse(digits), phonenumbers.PhoneNumberFormat.E164
        )
        customer = Customer(
            customer_id=7_000_000_000_000 + rng.randrange(10**12),
            first_name=first,
            last_name=last,
            email=f"{local}@{rng.choice(EMAIL_DOMAINS)}",
            phone=phone,
            region=region,
            address1=f"{rng.randrange(1, 999)} {rng.choice(STREETS)}",
            accepts_marketing=rng.random() < 0.8,
            created_at=datetime.fromtimestamp(self.clock() - rng.randrange(86400 * 400), UTC),
        )
        self.customers.append(customer)
        return customer

    def _items(self) -> list[tuple[Product, int]]:
        rng = self.rng
        count = rng.choices((1, 2, 3, 4), weights=(45, 30, 17, 8))[0]
        products = rng.sample(CATALOG, count)
        return [(p, rng.choices((1, 2, 3), weights=(80, 15, 5))[0]) for p in products]

    def new_checkout(self) -> dict:
        """Generate a checkout (the ``checkouts/create`` payload) and plan its session:
        an update, an order before the timeout (``buy_rate``) or abandonment."""
        rng, behavior = self.rng, self.behavior
        customer = self.new_customer()
        now = datetime.fromtimestamp(self.clock(), UTC)
        checkout = checkout_payload(
            customer=customer,
            items=self._items(),
            checkout_id=35_000_000_000_000 + rng.randrange(10**12),
            token=_token(rng, 32, "0123456789abcdef"),
            cart_token=_token(rng, 44),
            shop_domain=self.shop_domain,
            created_at=now,
            recover_key=_token(rng, 32, "0123456789abcdef"),
            landing_site=f"/products/{rng.choice(CATALOG).sku.lower()}",
            referring_site=rng.choice(
                ("", "https://www.google.com/", "https://l.instagram.com/", "https://t.co/")
            ),
        )
        buys = rng.random() < behavior.buy_rate
        returns_later = not buys and rng.random() < behavior.organic_return_rate
        session = Session(checkout, customer, buys=buys, returns_later=returns_later)
        self.sessions[checkout["token"]] = session
        timeout = behavior.abandonment_timeout
        start = self.clock()
        if rng.random() < behavior.update_rate:
            self._schedule(start + rng.uniform(1, timeout * 0.3), "update", checkout["token"])
        if buys:
            self._schedule(
                start + rng.uniform(timeout * 0.35, timeout * 0.7), "order", checkout["token"]
            )
        elif returns_later:
            self._schedule(start + timeout * rng.uniform(6, 15), "order", checkout["token"])
        return checkout

    def updated_checkout(self, checkout: dict) -> dict:
        """The next version of ``checkout``: a quantity change or one more item."""
        session = self.sessions.get(checkout["token"])
        items = [
            (_product(item["variant_id"]), item["quantity"]) for item in checkout["line_items"]
        ]
        rng = self.rng
        if len(items) < 4 and rng.random() < 0.5:
            taken = {p.variant_id for p, _ in items}
            items.append((rng.choice([p for p in CATALOG if p.variant_id not in taken]), 1))
        else:
            index = rng.randrange(len(items))
            items[index] = (items[index][0], items[index][1] + 1)
        customer = session.customer if session else None
        updated = checkout_payload(
            customer=customer or _customer_from(checkout),
            items=items,
            checkout_id=checkout["id"],
            token=checkout["token"],
            cart_token=checkout["cart_token"],
            shop_domain=self.shop_domain,
            created_at=datetime.fromisoformat(checkout["created_at"]),
            updated_at=datetime.fromtimestamp(self.clock(), UTC),
            recover_key=checkout["abandoned_checkout_url"].rsplit("key=", 1)[-1],
            landing_site=checkout["landing_site"],
            referring_site=checkout["referring_site"],
        )
        if session:
            session.checkout = updated
        return updated

    # -- posting -------------------------------------------------------------------------
    def post_checkout(self, checkout: dict, topic: str = "checkouts/create") -> int | None:
        """POST a checkout webhook; returns the HTTP status (None if unreachable)."""
        return self._post_shopify(topic, checkout)

    def post_order(self, checkout: dict) -> int | None:
        """POST ``orders/create`` for ``checkout``, then the ``checkouts/update`` carrying
        ``completed_at`` (Shopify sends both). Returns the order's HTTP status."""
        now = datetime.fromtimestamp(self.clock(), UTC)
        order_number = self._next_order_number
        self._next_order_number += 1
        order = order_payload(
            checkout,
            order_id=5_900_000_000_000 + self.rng.randrange(10**12),
            order_number=order_number,
            token=_token(self.rng, 32, "0123456789abcdef"),
            created_at=now,
        )
        status = self._post_shopify("orders/create", order)
        session = self.sessions.get(checkout["token"])
        if session:
            session.ordered = True
        if "line_items" in checkout and "customer" in checkout:
            completed = {
                **checkout,
                "updated_at": _local_iso(now),
                "completed_at": _local_iso(now),
            }
            self._post_shopify("checkouts/update", completed)
        return status

    def _post_shopify(self, topic: str, payload: dict) -> int | None:
        body = json.dumps(payload, separators=(",", ":")).encode()
        headers = shopify_headers(
            topic,
            body,
            secret=self.secret,
            shop_domain=self.shop_domain,
            webhook_id=_uuid(self.rng),
            event_id=_uuid(self.rng),
            triggered_at=datetime.fromtimestamp(self.clock(), UTC),
        )
        url = f"{self.base_url}/api/webhooks/shopify/{SHOPIFY_PATHS[topic]}"
        return self._post(topic, url, body, headers)

    def post_sendgrid_events(self, events: list[dict]) -> int | None:
        """POST one signed batch of SendGrid events."""
        body = sendgrid_body(events)
        headers = {"Content-Type": "application/json", "User-Agent": "SendGrid Event API"}
        if self.sendgrid_private_key is not None:
            stamp = str(int(self.clock()))
            headers["X-Twilio-Email-Event-Webhook-Timestamp"] = stamp
            headers["X-Twilio-Email-Event-Webhook-Signature"] = sign_sendgrid(
                self.sendgrid_private_key, stamp, body
            )
        url = f"{self.base_url}/api/webhooks/sendgrid/events"
        return self._post("sendgrid", url, body, headers, count=len(events))

    def _post(self, kind: str, url: str, body: bytes, headers: dict, count: int = 1):
        try:
            response = self.http.post(url, data=body, headers=headers, timeout=self.timeout)
        except requests.RequestException as exc:
            self.stats["unreachable"] += 1
            self.errors.append(f"{kind}: {exc}")
            log.warning("%s: %s", kind, exc)
            return None
        self.stats[f"{kind}"] += count
        if response.status_code >= 300:
            self.stats[f"{kind} http {response.status_code}"] += 1
            self.errors.append(f"{kind}: {response.status_code} {response.text[:200]}")
            log.warning("%s -> %s %s", kind, response.status_code, response.text[:200])
        return response.status_code

    # -- engagement ----------------------------------------------------------------------
    def sent_messages(self) -> list[dict]:
        """Email messages the built-in provider stored for this org and we have not seen."""
        org_id = self.resolve_org()
        if org_id is None:
            return []
        with self._database().tenant(org_id) as conn:
            rows = conn.execute(
                """
                SELECT m.org_id, m.message_id, m.stored_at, m.recipient, m.subject, m.body_html,
                       o.provider_message_id, c.external_id, c.cart_token, c.email,
                       c.total_price, c.currency
                  FROM app.local_mailbox m
                  LEFT JOIN app.outbox o
                         ON o.org_id = m.org_id AND o.message_id = m.message_id
                  LEFT JOIN app.carts c ON c.org_id = o.org_id AND c.cart_id = o.cart_id
                 WHERE m.org_id = %s AND m.channel = 'email' AND m.stored_at >= %s
                 ORDER BY m.stored_at, m.message_id
                """,
                (org_id, self._mailbox_since),
            ).fetchall()
        fresh = [r for r in rows if str(r["message_id"]) not in self._seen_messages]
        if rows:
            # The cursor keeps each poll small. It trails the newest row by a margin because
            # stored_at is the inserting transaction's start, which can commit out of order;
            # ids inside the margin stay remembered so nothing is engaged with twice.
            cutoff = rows[-1]["stored_at"] - MAILBOX_MARGIN
            if cutoff > self._mailbox_since:
                self._mailbox_since = cutoff
                self._seen_messages = {
                    str(r["message_id"]) for r in rows if r["stored_at"] >= cutoff
                }
        return fresh

    def engage_with_sent_messages(self) -> int:
        """Plan SendGrid events for newly stored messages: delivered for most, open for
        many, click for some, and an order after some clicks. Returns how many messages
        were picked up; the events go out as their time comes (:meth:`step`, :meth:`flush`).
        """
        rng, behavior = self.rng, self.behavior
        messages = self.sent_messages()
        now = self.clock()
        for message in messages:
            self._seen_messages.add(str(message["message_id"]))
            if rng.random() >= behavior.deliver_rate:
                continue
            events = ["delivered"]
            at = now + rng.uniform(0.5, 3)
            if rng.random() < behavior.open_rate:
                events.append("open")
                if rng.random() < behavior.click_rate:
                    events.append("click")
            url = _first_link(message.get("body_html")) or f"{self.base_url}/"
            batch = sendgrid_event_batch(message, events, timestamp=int(at), rng=rng, url=url)
            # delivered first, the open a little later, the click after that
            self._schedule(at, "sendgrid", data=batch[:1])
            if len(batch) > 1:
                at += rng.uniform(*behavior.open_delay)
                self._schedule(at, "sendgrid", data=batch[1:])
            if "click" in events and rng.random() < behavior.clicked_buy_rate:
                session = self._session_for(message)
                if session is not None and not session.ordered:
                    session.clicked = True
                    self._schedule(
                        at + rng.uniform(*behavior.order_delay), "order", session.checkout["token"]
                    )
        self.stats["messages seen"] += len(messages)
        return len(messages)

    def _session_for(self, message: dict) -> Session | None:
        external_id = str(message.get("external_id") or "")
        for session in self.sessions.values():
            checkout = session.checkout
            if external_id and external_id in (checkout["token"], str(checkout["id"])):
                return session
        cart_token = message.get("cart_token")
        for session in self.sessions.values():
            if cart_token and session.checkout.get("cart_token") == cart_token:
                return session
        if not external_id:
            return None
        # A cart from before this simulator started (e.g. the demo was restarted).
        checkout = {
            "id": int(external_id) if external_id.isdigit() else 0,
            "token": external_id,
            "cart_token": cart_token,
            "email": message.get("email") or message.get("recipient"),
            "total_price": str(message.get("total_price") or "0.00"),
            "currency": message.get("currency") or "USD",
        }
        session = Session(checkout, _customer_from(checkout), buys=False, returns_later=False)
        self.sessions[external_id] = session
        return session

    def resolve_org(self) -> str | None:
        """The org of this store (from its Shopify connection) unless given."""
        if self.org_id is None and self.database_url:
            with self._database().system() as conn:
                row = conn.execute(
                    "SELECT org_id FROM app.connections WHERE platform = 'shopify' "
                    "AND shop_domain = %s AND status = 'active'",
                    (self.shop_domain.lower(),),
                ).fetchone()
            self.org_id = str(row["org_id"]) if row else None
        return self.org_id

    def _database(self):
        if self._db is None:
            if not self.database_url:
                raise RuntimeError("engagement needs database_url to read the sent messages")
            from cartrecovery.db import Database

            self._db = Database(self.database_url, max_size=2)
        return self._db

    # -- running -------------------------------------------------------------------------
    def _schedule(self, due: float, kind: str, key=None, data=None) -> None:
        self._seq += 1
        heapq.heappush(self._queue, _Action(due, self._seq, kind, key, data))

    def _run(self, action: _Action) -> None:
        session = self.sessions.get(action.key) if action.key else None
        if action.kind == "update" and session and not session.ordered:
            self.post_checkout(self.updated_checkout(session.checkout), "checkouts/update")
        elif action.kind == "order" and session and not session.ordered:
            self.post_order(session.checkout)
        elif action.kind == "sendgrid":
            stamp = int(self.clock())
            events = [{**e, "timestamp": min(e["timestamp"], stamp)} for e in action.data]
            self.post_sendgrid_events(events)
            for event in events:
                if event.get("event") == "click":
                    self.follow_link(event.get("url"))

    def follow_link(self, url: str | None) -> int | None:
        """What the shopper's browser does on a click: open the message's link (our signed
        ``/r/`` link counts the click and redirects to the cart; the redirect is not
        followed, the store is not ours). Returns the status code, None if not our link."""
        if not url or not url.startswith(self.base_url.rstrip("/") + "/r/"):
            return None
        try:
            response = self.http.get(url, allow_redirects=False, timeout=self.timeout)
        except requests.RequestException:
            self.stats["failed requests"] += 1
            return None
        self.stats["restore links opened"] += 1
        return response.status_code

    def pending(self) -> int:
        """Actions planned and not yet done."""
        return len(self._queue)

    def step(self, rate: float = 0.5, engage_every: float = 5.0) -> int:
        """One tick: start the checkouts whose arrival time has come (Poisson, ``rate`` per
        second), run the due actions, and every ``engage_every`` s look for sent messages.
        Returns how many actions ran."""
        now = self.clock()
        done = 0
        if self._next_arrival is None:
            self._next_arrival = now
        while rate > 0 and self._next_arrival <= now:
            self.post_checkout(self.new_checkout())
            self._next_arrival += self.rng.expovariate(rate)
            done += 1
        while self._queue and self._queue[0].due <= now:
            self._run(heapq.heappop(self._queue))
            done += 1
        if self.database_url and (self._next_engage is None or self._next_engage <= now):
            self._next_engage = now + engage_every
            try:
                self.engage_with_sent_messages()
            except Exception as exc:  # noqa: BLE001 - a database hiccup must not stop traffic
                self.errors.append(f"engagement: {exc}")
                log.warning("engagement: %s", exc)
        return done

    def flush(self) -> int:
        """Run every planned action now, in order (tests, benchmarks)."""
        done = 0
        while self._queue:
            self._run(heapq.heappop(self._queue))
            done += 1
        return done

    def run(
        self,
        duration: float | None = None,
        rate: float = 0.5,
        stop: threading.Event | None = None,
        engage_every: float = 5.0,
    ) -> collections.Counter:
        """Send traffic until ``duration`` seconds passed or ``stop`` is set; returns stats."""
        stop = stop or threading.Event()
        start = self.clock()
        while not stop.is_set():
            if duration is not None and self.clock() - start >= duration:
                break
            self.step(rate=rate, engage_every=engage_every)
            upcoming = [self._next_arrival or 0.0]
            if self._queue:
                upcoming.append(self._queue[0].due)
            stop.wait(min(0.5, max(0.01, min(upcoming) - self.clock())))
        return self.stats

    def summary(self) -> str:
        """One line for the demo's log."""
        sessions = len(self.sessions)
        ordered = sum(s.ordered for s in self.sessions.values())
        recovered = sum(s.ordered and s.clicked for s in self.sessions.values())
        failed = sum(v for k, v in self.stats.items() if " http " in k or k == "unreachable")
        return (
            f"checkouts={sessions} orders={ordered} after-click orders={recovered} "
            f"sent messages seen={self.stats['messages seen']} "
            f"sendgrid events={self.stats['sendgrid']} failed requests={failed}"
        )


def _ascii(name: str) -> str:
    table = str.maketrans({"ü": "ue", "é": "e", "ö": "oe", "ä": "ae"})
    return re.sub(r"[^A-Za-z]", "", name.translate(table))


def _product(variant_id: int) -> Product:
    for product in CATALOG:
        if product.variant_id == variant_id:
            return product
    raise KeyError(variant_id)


def _customer_from(checkout: dict) -> Customer:
    """A stand-in customer for a checkout we did not generate (only the email is known)."""
    email = checkout.get("email") or "customer@example.com"
    return Customer(
        customer_id=0,
        first_name=email.split("@")[0].split(".")[0].title(),
        last_name="",
        email=email,
        phone="",
        region=REGIONS[0],
        address1="",
        accepts_marketing=True,
        created_at=datetime.fromtimestamp(0, UTC),
    )


def _first_link(html: str | None) -> str | None:
    match = re.search(r'href="(https?://[^"]+)"', html or "")
    return match.group(1) if match else None

"""Property-based tests: random JSON, random bytes and fixture-shaped payloads with random
values, sent through the HTTP routes of EVERY installed store adapter with VALID signatures
over the random bodies (so the parsing is exercised, not just the signature check).

Whatever arrives: never a 5xx, always a JSON answer, and a 4xx carries the error shape.
Store APIs (BigCommerce REST, Magento GraphQL) point at a local recorder that answers
``{}``, so the adapters' handling of useless API answers is exercised as well.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import uuid

import pytest
from conftest import Recorder, fixture_bytes, shopify_hmac
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import padding, rsa
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cartrecovery import tenancy
from integrations import registry

SECRET = "fuzz_webhook_secret_0123456789"
CLIENT_SECRET = "fuzz_bc_client_secret"
BC_STORE = "fuzzstore" + uuid.uuid4().hex[:6]
MAGENTO_HOST = f"fuzz-{uuid.uuid4().hex[:6]}.magento.test"
WOO_SITE = f"fuzz-{uuid.uuid4().hex[:6]}.woo.test"
SHOP = f"fuzz-{uuid.uuid4().hex[:6]}.myshopify.com"
FUZZ = settings(
    max_examples=100,
    deadline=None,
    derandomize=True,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
FEW = settings(FUZZ, max_examples=40)

# Any JSON value, including the ones Postgres cannot store (NaN, NUL characters).
scalars = (
    st.none()
    | st.booleans()
    | st.integers()
    | st.floats()
    | st.text(max_size=40)
    | st.sampled_from(
        ["", "0", "-1", "\x00", "1e999", float("inf"), float("nan"), 10**30, -(10**30), 1e300]
    )
)
json_values = st.recursive(
    scalars,
    lambda children: (
        st.lists(children, max_size=5) | st.dictionaries(st.text(max_size=12), children, max_size=5)
    ),
    max_leaves=25,
)


def mutated(base: dict) -> st.SearchStrategy[dict]:
    """``base`` with a few of its fields (and of its nested objects and item lists) given
    random values, and maybe a few random extra fields: mostly well-formed, so the adapters'
    deeper checks are reached."""
    keys = list(base)

    @st.composite
    def build(draw):
        out = dict(base)
        for key in draw(st.sets(st.sampled_from(keys), max_size=2)) if keys else ():
            out[key] = draw(json_values)
        for key, value in base.items():
            if out.get(key) is not value or not draw(st.booleans()):
                continue
            if isinstance(value, dict) and value:
                out[key] = draw(mutated(value))
            elif isinstance(value, list) and value and isinstance(value[0], dict):
                out[key] = [draw(mutated(value[0])) for _ in range(draw(st.integers(0, 3)))]
        if draw(st.booleans()):
            extra = draw(st.dictionaries(st.text(max_size=8), json_values, max_size=2))
            out.update({k: v for k, v in extra.items() if k not in base})
        return out

    return build()


def dumps(value) -> bytes:
    return json.dumps(value).encode()  # NaN/Infinity are written as such: adapters must cope


# --- the world: one org with one connection per platform ------------------------------------


class World:
    def __init__(self, client, connections, private_key):
        self.client = client
        self.connections = connections
        self.private_key = private_key


@pytest.fixture(scope="module")
def world(settings, db):
    from ingest.app import create_app

    app = create_app(settings)
    app.config.update(TESTING=True)
    key = app.extensions["cartrecovery"].encryption_key
    recorder = Recorder()
    private = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    pem = (
        private.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    org_id = tenancy.create_org(db, f"fuzz-{uuid.uuid4().hex[:6]}")
    connections = {
        "shopify": tenancy.add_connection(db, key, org_id, "shopify", SHOP, SECRET),
        "woocommerce": tenancy.add_connection(db, key, org_id, "woocommerce", WOO_SITE, SECRET),
        "bigcommerce": tenancy.add_connection(
            db,
            key,
            org_id,
            "bigcommerce",
            BC_STORE,
            SECRET,
            {
                "access_token": "tok",
                "client_secret": CLIENT_SECRET,
                "api_base_url": recorder.url,
                "signature_tolerance_seconds": 0,
            },
        ),
        "magento": tenancy.add_connection(
            db,
            key,
            org_id,
            "magento",
            MAGENTO_HOST,
            SECRET,
            {"base_url": recorder.url, "integration_token": "tok", "webhook_public_key_pem": pem},
        ),
        "generic": tenancy.add_connection(
            db, key, org_id, "generic", f"fuzz-{uuid.uuid4().hex[:6]}.custom", SECRET
        ),
    }
    yield World(app.test_client(), connections, private)
    recorder.close()


# --- how each platform signs ------------------------------------------------------------------

SHOPIFY_TOPICS = [
    "checkout-create",
    "checkout-update",
    "checkout-delete",
    "cart-update",
    "order-create",
    "order-paid",
    "customers-data-request",
    "customers-redact",
    "shop-redact",
]  # not app-uninstalled: it would disable the store mid-run


def send_shopify(world, body: bytes, choice: int = 0):
    path = SHOPIFY_TOPICS[choice % len(SHOPIFY_TOPICS)]
    return world.client.post(
        f"/api/webhooks/shopify/{path}",
        data=body,
        headers={
            "X-Shopify-Shop-Domain": SHOP,
            "X-Shopify-Hmac-Sha256": shopify_hmac(SECRET, body),
            "X-Shopify-Webhook-Id": str(uuid.uuid4()),
            "Content-Type": "application/json",
        },
    )


def send_woocommerce(world, body: bytes, choice: int = 0):
    from integrations.woocommerce.adapter import signature

    topic = ["order.created", "order.updated", "order.deleted"][choice % 3]
    return world.client.post(
        "/api/webhooks/woocommerce",
        data=body,
        headers={
            "X-WC-Webhook-Source": f"https://{WOO_SITE}/",
            "X-WC-Webhook-Topic": topic,
            "X-WC-Webhook-Signature": signature(SECRET, body),
            "X-WC-Webhook-Delivery-ID": uuid.uuid4().hex,
            "Content-Type": "application/json",
        },
    )


def send_bigcommerce(world, body: bytes, choice: int = 0):
    msg_id, ts = f"msg_{uuid.uuid4().hex}", "1773504132"
    digest = hmac.new(CLIENT_SECRET.encode(), f"{msg_id}.{ts}.".encode() + body, hashlib.sha256)
    return world.client.post(
        f"/api/webhooks/bigcommerce?store={BC_STORE}",
        data=body,
        headers={
            "X-Cartrec-Hook-Token": SECRET,
            "webhook-id": msg_id,
            "webhook-timestamp": ts,
            "webhook-signature": "v1," + base64.b64encode(digest.digest()).decode(),
            "Content-Type": "application/json",
        },
    )


def send_magento(world, body: bytes, choice: int = 0):
    sig = world.private_key.sign(base64.b64encode(body), padding.PKCS1v15(), hashes.SHA256())
    return world.client.post(
        f"/api/webhooks/magento?store={MAGENTO_HOST}",
        data=body,
        headers={
            "x-adobe-commerce-webhook-signature": base64.b64encode(sig).decode(),
            "Content-Type": "application/json",
        },
    )


def send_generic(world, body: bytes, choice: int = 0):
    from integrations.generic.adapter import sign

    return world.client.post(
        f"/api/webhooks/custom/{world.connections['generic']}",
        data=body,
        headers={**sign(SECRET, body), "Content-Type": "application/json"},
    )


SENDERS = {
    "shopify": send_shopify,
    "woocommerce": send_woocommerce,
    "bigcommerce": send_bigcommerce,
    "magento": send_magento,
    "generic": send_generic,
}
PLATFORMS = [p for p in SENDERS if p in registry.adapters()]


def test_every_registered_adapter_is_fuzzed():
    installed = set(registry.adapters())
    assert {"shopify", "bigcommerce", "magento"} <= installed
    # A new built-in adapter must get a sender here (third-party ones are tested by theirs).
    assert installed - set(SENDERS) <= {"example"}, installed - set(SENDERS)


def check(res):
    assert res.status_code < 500, (res.status_code, res.get_data()[:300])
    assert res.is_json, res.get_data()[:300]
    if res.status_code >= 400:
        error = res.json["error"]
        assert isinstance(error["code"], str) and isinstance(error["message"], str)


# --- fixture-shaped payloads ---------------------------------------------------------------------

SHAPES = {
    "shopify": json.loads(fixture_bytes("shopify_checkouts_create.json")),
    "woocommerce": json.loads(fixture_bytes("woocommerce_order_created.json")),
    "bigcommerce": {
        **json.loads(fixture_bytes("bigcommerce_cart_converted.json")),
        "producer": f"stores/{BC_STORE}",
    },
    "magento": {
        "eventName": "observer.checkout_cart_save_after",
        "data": {
            "quote": {
                "entity_id": "1",
                "masked_id": "abc",
                "customer_email": "a@b.c",
                "grand_total": "1.00",
                "updated_at": "2026-03-14 15:22:11",
                "items": [{"sku": "s", "name": "n", "qty": 1, "price": "1.00"}],
            }
        },
    },
    "generic": {
        "event": "cart_updated",
        "event_id": "e1",
        "timestamp": "2026-03-14T15:00:00Z",
        "cart_data": {
            "cart_id": "c1",
            "email": "a@b.c",
            "currency": "USD",
            "items": [{"product_id": "p", "quantity": 1, "price": 1}],
        },
    },
}
BC_SCOPES = [
    "store/cart/created",
    "store/cart/updated",
    "store/cart/abandoned",
    "store/cart/converted",
    "store/order/created",
    "store/cart/deleted",
]
MAGENTO_EVENTS = [
    "observer.checkout_cart_save_after",
    "observer.sales_quote_save_after",
    "observer.sales_order_place_after",
    "observer.sales_order_save_after",
    "observer.other",
]


@pytest.mark.parametrize("platform", PLATFORMS)
@FUZZ
@given(value=json_values, choice=st.integers(0, 100))
def test_random_json_never_breaks_an_adapter(world, platform, value, choice):
    check(SENDERS[platform](world, dumps(value), choice))


@pytest.mark.parametrize("platform", PLATFORMS)
@FEW
@given(body=st.binary(max_size=512), choice=st.integers(0, 100))
def test_random_bytes_never_break_an_adapter(world, platform, body, choice):
    check(SENDERS[platform](world, body, choice))


@pytest.mark.parametrize("platform", PLATFORMS)
@FUZZ
@given(data=st.data(), choice=st.integers(0, 100))
def test_fixture_shaped_payloads_with_random_values(world, platform, data, choice):
    payload = data.draw(mutated(SHAPES[platform]))
    if platform == "bigcommerce" and isinstance(payload, dict):
        payload["scope"] = BC_SCOPES[choice % len(BC_SCOPES)]
    if platform == "magento" and isinstance(payload, dict):
        payload["eventName"] = MAGENTO_EVENTS[choice % len(MAGENTO_EVENTS)]
        if choice % 2 and isinstance(payload.get("data"), dict):
            payload["data"] = {"order": payload["data"].get("quote")}
    check(SENDERS[platform](world, dumps(payload), choice))

"""WooCommerce webhooks end to end: signed order deliveries into raw.events, carts and orders."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest
from conftest import fixture_bytes, fixture_headers, fixture_vectors
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from cartrecovery import tenancy
from ingest.webhooks.dispatch import inbound_request, receive
from integrations.registry import get_adapter
from integrations.woocommerce.adapter import (
    normalize_site_url,
    signature,
    wp_specialchars_decode,
)

ROUTE = "/api/webhooks/woocommerce"
FIXTURE = "woocommerce_order_created.json"
SITE = "https://shop.example.com/"
STORE_KEY = "shop.example.com"
SECRET = fixture_vectors()["woocommerce"]["secret"]
ORDER_ID = "4821"
PAYMENT_URL = (
    "https://shop.example.com/checkout/order-pay/4821/"
    "?pay_for_order=true&key=wc_order_Xk3pQ9vT2mN7a"
)


@pytest.fixture()
def woo_client(app):
    """The app's client, with the WooCommerce route added when the stores blueprint does
    not (yet) register it: the same dispatch call it makes."""
    if not any(rule.rule == ROUTE for rule in app.url_map.iter_rules()):
        app.add_url_rule(
            ROUTE,
            "test_woocommerce_webhook",
            methods=["POST"],
            view_func=lambda: receive(get_adapter("woocommerce"), inbound_request()),
        )
    return app.test_client()


def connect_store(db, key: bytes, org_id, site: str = STORE_KEY, secret: str = SECRET):
    """Connect ``site`` to ``org_id`` after removing it from any other org (a store is
    actively connected to one org at a time, and every test has a fresh org)."""
    with db.system() as conn:
        conn.execute(
            "UPDATE app.connections SET status = 'removed', updated_at = now() "
            "WHERE platform = 'woocommerce' AND shop_domain = %s AND org_id <> %s",
            (site, org_id),
        )
    return tenancy.add_connection(db, key, org_id, "woocommerce", site, secret)


@pytest.fixture()
def store(db, runtime, org):
    org.connection_id = connect_store(db, runtime.encryption_key, org.org_id)
    return org


def order_body(**fields) -> bytes:
    payload = json.loads(fixture_bytes(FIXTURE))
    payload.update(fields)
    return json.dumps(payload).encode()


def deliver(
    client,
    body: bytes | None = None,
    topic: str = "order.created",
    delivery_id: str | None = None,
    secret: str = SECRET,
    headers: dict | None = None,
):
    """POST as WooCommerce would. The fixture goes with its recorded headers; a changed body
    is signed with ``secret`` and gets a fresh delivery id unless one is given."""
    sent = fixture_headers("woocommerce", FIXTURE)
    if body is None:
        body = fixture_bytes(FIXTURE)
    else:
        sent["X-WC-Webhook-Signature"] = signature(secret, body)
        sent["X-WC-Webhook-Delivery-ID"] = delivery_id or uuid.uuid4().hex
    sent["X-WC-Webhook-Topic"] = topic
    sent.update(headers or {})
    sent = {k: v for k, v in sent.items() if v is not None}
    return client.post(ROUTE, data=body, headers=sent)


def one(db, sql: str, *params):
    with db.system() as conn:
        return conn.execute(sql, params).fetchone()


def rows(db, sql: str, *params):
    with db.system() as conn:
        return conn.execute(sql, params).fetchall()


def cart_of(db, org_id, external_id=ORDER_ID):
    return one(
        db,
        "SELECT * FROM app.carts WHERE org_id = %s AND platform = 'woocommerce' "
        "AND external_id = %s",
        org_id,
        external_id,
    )


def events_of(db, org_id):
    return rows(
        db,
        "SELECT * FROM raw.events WHERE org_id = %s AND source = 'woocommerce' "
        "ORDER BY received_at",
        org_id,
    )


def all_woo_rows(db) -> tuple:
    return (
        one(db, "SELECT count(*) AS n FROM raw.events WHERE source = 'woocommerce'")["n"],
        one(db, "SELECT count(*) AS n FROM app.carts WHERE platform = 'woocommerce'")["n"],
        one(db, "SELECT count(*) AS n FROM raw.event_keys")["n"],
    )


# --- pure functions --------------------------------------------------------------------------


def test_fixture_signature_vector_matches():
    expected = fixture_headers("woocommerce", FIXTURE)["X-WC-Webhook-Signature"]
    assert signature(SECRET, fixture_bytes(FIXTURE)) == expected
    assert signature(SECRET + "x", fixture_bytes(FIXTURE)) != expected


@pytest.mark.parametrize(
    ("given_", "decoded"),
    [
        ("plain", "plain"),
        ("a&amp;b", "a&b"),
        ("&lt;&gt;&quot;&#039;&#x27;&#X27;&#0039;&#34;&#038;", "<>\"''''\"&"),
        ("&amp;lt;", "&lt;"),  # one pass, like PHP's strtr
        ("&nbsp;&eacute;&#65;", "&nbsp;&eacute;&#65;"),  # not in WordPress' list: left alone
    ],
)
def test_wp_specialchars_decode(given_, decoded):
    assert wp_specialchars_decode(given_) == decoded


@pytest.mark.parametrize(
    ("site", "key"),
    [
        ("https://shop.example.com/", "shop.example.com"),
        ("HTTPS://Shop.Example.COM", "shop.example.com"),
        ("shop.example.com", "shop.example.com"),
        ("http://shop.example.com:80/", "shop.example.com"),
        ("https://example.com:8443/store/", "example.com:8443/store"),
    ],
)
def test_normalize_site_url(site, key):
    assert normalize_site_url(site) == key
    assert get_adapter("woocommerce").store_key(site) == key


def test_normalize_site_url_refuses_no_host():
    with pytest.raises(ValueError):
        normalize_site_url("https:///")


# --- deliveries ------------------------------------------------------------------------------


def test_order_created_fixture_becomes_an_open_cart(woo_client, db, store):
    response = deliver(woo_client)
    assert response.status_code == 200, response.get_json()
    assert response.get_json()["status"] == "ok"

    cart = cart_of(db, store.org_id)
    assert cart["status"] == "active"
    assert cart["connection_id"] == store.connection_id
    assert (cart["email"], cart["phone"]) == ("lena.schmidt@example.com", "+4930123456789")
    assert (cart["currency"], cart["total_price"], cart["item_count"]) == (
        "EUR",
        Decimal("65.00"),
        3,
    )
    assert [i["sku"] for i in cart["line_items"]] == ["POUR-SET-WHT", "BEANS-SO-250"]
    first = cart["line_items"][0]
    assert (first["product_id"], first["variant_id"], first["price"]) == ("233", "241", "42.02")
    assert cart["line_items"][1]["variant_id"] is None  # variation_id 0 = no variation
    assert first["image_url"].endswith("/pour-over-white.jpg")
    assert cart["restore_url"] == PAYMENT_URL
    assert cart["source_updated_at"] == datetime(2026, 3, 14, 15, 2, 12, tzinfo=UTC)

    customer = one(
        db,
        "SELECT * FROM app.customers WHERE org_id = %s AND customer_id = %s",
        store.org_id,
        cart["customer_id"],
    )
    assert (customer["first_name"], customer["last_name"]) == ("Lena", "Schmidt")

    [event] = events_of(db, store.org_id)
    assert (event["topic"], event["cart_id"]) == ("order.created", cart["cart_id"])
    assert event["dedup_key"] == "woocommerce:5d41402abc4b2a76b9719d911017c592"
    assert event["connection_id"] == store.connection_id
    assert event["payload"]["id"] == 4821
    assert event["occurred_at"] == datetime(2026, 3, 14, 15, 2, 12, tzinfo=UTC)
    kept = {k.lower() for k in event["headers"]}
    assert "x-wc-webhook-signature" not in kept and "x-wc-webhook-topic" in kept


def test_restore_link_falls_back_to_the_site_cart_page(woo_client, db, store):
    assert deliver(woo_client, order_body(payment_url=None)).status_code == 200
    assert cart_of(db, store.org_id)["restore_url"] == "https://shop.example.com/cart/"


@pytest.mark.parametrize("status", ["failed", "checkout-draft"])
def test_other_open_statuses_are_carts(woo_client, db, store, status):
    assert deliver(woo_client, order_body(status=status)).status_code == 200
    assert cart_of(db, store.org_id)["status"] == "active"


def test_creation_ping_is_answered_and_nothing_is_stored(woo_client, db):
    before = all_woo_rows(db)
    response = woo_client.post(
        ROUTE,
        data=fixture_bytes("woocommerce_ping.txt"),
        headers=fixture_headers("woocommerce", "woocommerce_ping.txt"),
    )
    assert response.status_code == 200
    assert response.get_json()["status"] == "ok"
    assert all_woo_rows(db) == before


def test_ping_shaped_body_with_webhook_headers_is_not_a_ping(woo_client, db, store):
    # Only the unsigned creation ping is waved through; a signed request is checked in full.
    before = all_woo_rows(db)
    response = woo_client.post(
        ROUTE,
        data=b"webhook_id=17",
        headers={
            "X-WC-Webhook-Source": SITE,
            "X-WC-Webhook-Topic": "order.created",
            "X-WC-Webhook-Signature": "bm9wZQ==",
        },
    )
    assert response.status_code == 401
    assert all_woo_rows(db) == before


def test_wrong_signature_is_401_and_nothing_is_stored(woo_client, db, store):
    before = all_woo_rows(db)
    body = order_body(total="99.00")
    response = deliver(woo_client, body, secret="not-the-secret")
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "invalid_signature"
    # The signature of the unchanged fixture over a changed body: also refused.
    headers = fixture_headers("woocommerce", FIXTURE)
    assert woo_client.post(ROUTE, data=body, headers=headers).status_code == 401
    assert all_woo_rows(db) == before


def test_missing_signature_is_401(woo_client, db, store):
    before = all_woo_rows(db)
    response = deliver(woo_client, headers={"X-WC-Webhook-Signature": None})
    assert response.status_code == 401
    assert woo_client.post(ROUTE, data=fixture_bytes(FIXTURE)).status_code == 401
    assert all_woo_rows(db) == before


@pytest.mark.parametrize(
    "body",
    [
        fixture_bytes(FIXTURE)[:400],  # truncated
        b"{not json",
        b"[1, 2, 3]",  # not an object
        b'{"id": 4821, "status": "pending", "total": "lots"}',
        b'{"id": 4821, "status": "pending", "total": "-1.00"}',
        b'{"status": "pending"}',  # no id
        b'{"id": 4821, "status": "pending", "line_items": [{"quantity": -2}]}',
        b'{"id": 4821, "status": "pending", "billing": {"email": "a\\u0000b@example.com"}}',
        b"\xff\xfe",
    ],
)
def test_malformed_or_truncated_body_is_400(woo_client, db, store, body):
    before = all_woo_rows(db)
    response = deliver(woo_client, body)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] in ("invalid_payload", "invalid_json")
    assert all_woo_rows(db) == before


def test_missing_topic_is_400(woo_client, db, store):
    response = deliver(woo_client, order_body(), headers={"X-WC-Webhook-Topic": None})
    assert response.status_code == 400


def test_unknown_store_is_404_without_saying_which_exist(woo_client, db, store):
    before = all_woo_rows(db)
    response = deliver(
        woo_client, order_body(), headers={"X-WC-Webhook-Source": "https://other-shop.example.org/"}
    )
    assert response.status_code == 404
    error = response.get_json()["error"]
    assert error["code"] == "unknown_store" and "shop.example.com" not in json.dumps(error)
    assert all_woo_rows(db) == before


def test_redelivery_is_stored_once(woo_client, db, store):
    first = deliver(woo_client)
    second = deliver(woo_client)
    assert (first.status_code, second.status_code) == (200, 200)
    assert second.get_json()["status"] == "duplicate"
    assert len(events_of(db, store.org_id)) == 1
    # Without a delivery id the body hash is the key.
    body = order_body(total="70.00")
    for _ in range(2):
        deliver(woo_client, body, headers={"X-WC-Webhook-Delivery-ID": None})
    assert len(events_of(db, store.org_id)) == 2


def test_out_of_order_updates_keep_the_newest_cart(woo_client, db, store):
    newer = order_body(
        date_modified_gmt="2026-03-14T15:30:00",
        total="21.00",
        line_items=[
            {
                "name": "Filter papers",
                "product_id": 300,
                "variation_id": 0,
                "quantity": 3,
                "price": 7.0,
                "sku": "FILTER-100",
            }
        ],
    )
    assert deliver(woo_client, newer, topic="order.updated").status_code == 200
    assert deliver(woo_client).status_code == 200  # the older order.created, arriving late

    cart = cart_of(db, store.org_id)
    assert (cart["total_price"], cart["item_count"]) == (Decimal("21.00"), 3)
    assert [i["sku"] for i in cart["line_items"]] == ["FILTER-100"]
    assert cart["source_updated_at"] == datetime(2026, 3, 14, 15, 30, tzinfo=UTC)
    assert len(events_of(db, store.org_id)) == 2


def add_click(db, org_id, cart_id, clicked_at: datetime):
    """A sent email for the cart, a click on it, and a later step still scheduled."""
    with db.system() as conn:
        campaign_id = conn.execute(
            "INSERT INTO app.campaigns (org_id, name, status) VALUES (%s, 'Woo', 'active') "
            "RETURNING campaign_id",
            (org_id,),
        ).fetchone()["campaign_id"]
        message_id = conn.execute(
            "INSERT INTO app.outbox (org_id, cart_id, campaign_id, step_index, channel, "
            "recipient, due_at, status, sent_at) VALUES (%s, %s, %s, 0, 'email', "
            "'lena.schmidt@example.com', %s, 'sent', %s) RETURNING message_id",
            (org_id, cart_id, campaign_id, clicked_at, clicked_at),
        ).fetchone()["message_id"]
        conn.execute(
            "INSERT INTO app.outbox (org_id, cart_id, campaign_id, step_index, channel, "
            "recipient, due_at) VALUES (%s, %s, %s, 1, 'email', 'lena.schmidt@example.com', "
            "%s)",
            (org_id, cart_id, campaign_id, clicked_at + timedelta(days=1)),
        )
        conn.execute(
            "INSERT INTO app.message_events (org_id, event_key, message_id, cart_id, event_type, "
            "url, occurred_at) VALUES (%s, %s, %s, %s, 'click', 'https://x.test/r', %s)",
            (org_id, f"click-{uuid.uuid4()}", message_id, cart_id, clicked_at),
        )
    return message_id


def test_pending_then_processing_converts_and_attributes(woo_client, db, store):
    assert deliver(woo_client).status_code == 200
    cart = cart_of(db, store.org_id)
    message_id = add_click(
        db, store.org_id, cart["cart_id"], datetime(2026, 3, 14, 17, 0, tzinfo=UTC)
    )

    paid = order_body(
        status="processing",
        date_modified_gmt="2026-03-14T18:00:05",
        date_paid_gmt="2026-03-14T18:00:00",
        transaction_id="ch_1",
    )
    response = deliver(woo_client, paid, topic="order.updated")
    assert response.status_code == 200

    cart = cart_of(db, store.org_id)
    assert cart["status"] == "recovered"
    assert cart["converted_at"] == datetime(2026, 3, 14, 18, 0, tzinfo=UTC)
    order = one(
        db, "SELECT * FROM app.orders WHERE org_id = %s AND platform = 'woocommerce'", store.org_id
    )
    assert (order["external_id"], order["cart_id"]) == (ORDER_ID, cart["cart_id"])
    assert (order["total_price"], order["financial_status"]) == (Decimal("65.00"), "processing")
    recovery = one(db, "SELECT * FROM app.recoveries WHERE org_id = %s", store.org_id)
    assert (recovery["message_id"], recovery["revenue"]) == (message_id, Decimal("65.00"))
    pending = rows(
        db,
        "SELECT status, reason FROM app.outbox WHERE org_id = %s AND step_index = 1",
        store.org_id,
    )
    assert [(r["status"], r["reason"]) for r in pending] == [("cancelled", "cart_converted")]

    # completed later: the same order, still one recovery
    done = order_body(
        status="completed",
        date_modified_gmt="2026-03-15T09:00:00",
        date_paid_gmt="2026-03-14T18:00:00",
    )
    assert deliver(woo_client, done, topic="order.updated").status_code == 200
    assert one(db, "SELECT count(*) AS n FROM app.orders WHERE org_id = %s", store.org_id)["n"] == 1
    assert cart_of(db, store.org_id)["status"] == "recovered"


def test_on_hold_order_without_date_paid_after_a_click_is_a_recovery(woo_client, db, store):
    # Bank transfer: pending order saved at 15:02:11, email clicked at 15:09:39, the order
    # placed on-hold at 15:10:00 with no date_paid. It converts when it was placed, after the
    # click, not when the pending order was first saved.
    assert deliver(woo_client).status_code == 200
    cart = cart_of(db, store.org_id)
    clicked_at = datetime(2026, 3, 14, 15, 9, 39, tzinfo=UTC)
    message_id = add_click(db, store.org_id, cart["cart_id"], clicked_at)

    on_hold = order_body(
        status="on-hold", date_modified_gmt="2026-03-14T15:10:00", date_paid_gmt=None
    )
    assert deliver(woo_client, on_hold, topic="order.updated").status_code == 200

    cart = cart_of(db, store.org_id)
    assert cart["status"] == "recovered"
    assert cart["converted_at"] == datetime(2026, 3, 14, 15, 10, tzinfo=UTC)
    assert cart["converted_at"] >= clicked_at
    recovery = one(db, "SELECT * FROM app.recoveries WHERE org_id = %s", store.org_id)
    assert (recovery["message_id"], recovery["revenue"], recovery["currency"]) == (
        message_id,
        Decimal("65.00"),
        cart["currency"],
    )


def test_conversion_arriving_before_the_cart_still_converts_it(woo_client, db, store):
    paid = order_body(
        status="processing",
        date_modified_gmt="2026-03-14T18:00:05",
        date_paid_gmt="2026-03-14T18:00:00",
    )
    assert deliver(woo_client, paid, topic="order.updated").status_code == 200
    assert cart_of(db, store.org_id) is None
    assert deliver(woo_client).status_code == 200  # the pending order.created, late

    cart = cart_of(db, store.org_id)
    assert cart["status"] == "converted"
    order = one(db, "SELECT cart_id FROM app.orders WHERE org_id = %s", store.org_id)
    assert order["cart_id"] == cart["cart_id"]


def test_on_hold_counts_as_a_conversion(woo_client, db, store):
    deliver(woo_client)
    deliver(
        woo_client,
        order_body(status="on-hold", date_modified_gmt="2026-03-14T16:00:00"),
        topic="order.updated",
    )
    assert cart_of(db, store.org_id)["status"] == "converted"


@pytest.mark.parametrize(
    ("topic", "status"),
    [("customer.created", "pending"), ("order.deleted", "pending"), ("order.updated", "cancelled")],
)
def test_other_topics_and_statuses_are_kept_raw_only(woo_client, db, store, topic, status):
    response = deliver(woo_client, order_body(status=status), topic=topic)
    assert response.status_code == 200
    assert cart_of(db, store.org_id) is None
    [event] = events_of(db, store.org_id)
    assert (event["topic"], event["cart_id"]) == (topic, None)


def test_secret_with_html_entities_is_decoded_like_wordpress(woo_client, db, runtime, org):
    # The connection holds the secret as typed into WordPress; WooCommerce signs with it
    # after wp_specialchars_decode.
    connect_store(db, runtime.encryption_key, org.org_id, secret="s3cr&amp;t&#039;x")
    body = order_body()
    signed = signature("s3cr&t'x", body)
    response = deliver(woo_client, body, headers={"X-WC-Webhook-Signature": signed})
    assert response.status_code == 200
    assert cart_of(db, org.org_id) is not None


def test_previous_secret_verifies_during_rotation(woo_client, db, runtime, store):
    new = tenancy.rotate_secret(
        db,
        runtime.encryption_key,
        store.org_id,
        store.connection_id,
        "wc_new_secret_123",
        grace_seconds=600,
    )
    assert deliver(woo_client, order_body(total="1.00")).status_code == 200  # old secret
    assert deliver(woo_client, order_body(total="2.00"), secret=new).status_code == 200
    assert deliver(woo_client, order_body(total="3.00"), secret="wrong").status_code == 401


def test_store_in_a_subfolder(woo_client, db, runtime, org):
    connect_store(db, runtime.encryption_key, org.org_id, site="example.com/shop")
    response = deliver(
        woo_client,
        order_body(payment_url=""),
        headers={"X-WC-Webhook-Source": "https://example.com/shop/"},
    )
    assert response.status_code == 200
    assert cart_of(db, org.org_id)["restore_url"] == "https://example.com/shop/cart/"


_json = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(), inner, max_size=4),
    max_leaves=12,
)
_order_like = st.fixed_dictionaries(
    {
        "id": st.one_of(st.integers(), st.text(), st.none()),
        "status": st.sampled_from(["pending", "processing", "failed", "completed", "x", ""]),
    },
    optional={
        "total": _json,
        "currency": _json,
        "billing": _json,
        "line_items": _json,
        "date_modified_gmt": _json,
        "payment_url": _json,
        "customer_id": _json,
    },
)


@settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(payload=st.one_of(_json, _order_like))
def test_random_json_never_causes_a_server_error(woo_client, store, payload):
    body = json.dumps(payload).encode()
    response = deliver(woo_client, body, topic="order.updated")
    assert response.status_code in (200, 400), response.get_json()


@pytest.mark.parametrize("topic", ["order.created", "customer.created"])
def test_lone_surrogate_is_400(woo_client, db, store, topic):
    body = b'{"id": 4821, "status": "pending", "billing": {"first_name": "\\ud800"}}'
    assert deliver(woo_client, body, topic=topic).status_code == 400

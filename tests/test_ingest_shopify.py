"""Shopify webhooks end to end: signed fixture deliveries into raw.events and app state."""

from __future__ import annotations

import json
import uuid
from datetime import datetime, timedelta
from decimal import Decimal

import pytest
from conftest import fixture_bytes, fixture_headers, fixture_vectors, shopify_hmac

from cartrecovery import tenancy

SHOP = "example-outfitters.myshopify.com"
SECRET = fixture_vectors()["shopify"]["client_secret"]
ROUTES = {
    "shopify_checkouts_create.json": "/api/webhooks/shopify/checkout-create",
    "shopify_checkouts_update_completed.json": "/api/webhooks/shopify/checkout-update",
    "shopify_orders_create.json": "/api/webhooks/shopify/order-create",
    "shopify_carts_update.json": "/api/webhooks/shopify/cart-update",
}
CHECKOUT_TOKEN = "b7d3f0a1c2e94f5a8b6c7d8e9f0a1b2c"
CART_TOKEN = "Z2NwLXVzLWVhc3QxOjAxSFRFU1RDQVJUMDAwMDAwMDAwMDAwMDA"
ORDERED_AT = datetime.fromisoformat("2026-03-14T11:20:03-04:00")


def connect_shop(db, key: bytes, org_id, domain: str = SHOP, secret: str = SECRET):
    """Connect ``domain`` to ``org_id``, first removing it from any other org: a shop domain
    is actively connected to one org at a time, and every test gets a fresh org."""
    with db.system() as conn:
        conn.execute(
            "UPDATE app.connections SET status = 'removed', updated_at = now() "
            "WHERE platform = 'shopify' AND shop_domain = %s AND org_id <> %s",
            (domain, org_id),
        )
    return tenancy.add_connection(db, key, org_id, "shopify", domain, secret)


@pytest.fixture()
def shop(db, runtime, org):
    org.connection_id = connect_shop(db, runtime.encryption_key, org.org_id)
    return org


def deliver(client, name: str, body: bytes | None = None, webhook_id: str | None = None):
    """POST a fixture as Shopify would; a changed body is re-signed with the shop secret."""
    headers = fixture_headers("shopify", name)
    if body is not None:
        headers["X-Shopify-Hmac-Sha256"] = shopify_hmac(SECRET, body)
        headers["X-Shopify-Webhook-Id"] = webhook_id or str(uuid.uuid4())
    return client.post(
        ROUTES[name], data=body if body is not None else fixture_bytes(name), headers=headers
    )


def changed(name: str, **fields) -> bytes:
    payload = json.loads(fixture_bytes(name))
    payload.update(fields)
    return json.dumps(payload).encode()


def one(db, sql: str, *params):
    with db.system() as conn:
        return conn.execute(sql, params).fetchone()


def rows(db, sql: str, *params):
    with db.system() as conn:
        return conn.execute(sql, params).fetchall()


def cart_of(db, org_id, external_id=CHECKOUT_TOKEN):
    return one(
        db,
        "SELECT * FROM app.carts WHERE org_id = %s AND platform = 'shopify' AND external_id = %s",
        org_id,
        external_id,
    )


def add_click(db, org_id, cart_id, clicked_at: datetime, channel: str = "email"):
    """A sent message for the cart and a click on it, as delivery and the provider callback
    would have written them."""
    with db.system() as conn:
        campaign_id = conn.execute(
            "INSERT INTO app.campaigns (org_id, name, status) VALUES (%s, 'Win back', 'active') "
            "RETURNING campaign_id",
            (org_id,),
        ).fetchone()["campaign_id"]
        message_id = conn.execute(
            "INSERT INTO app.outbox (org_id, cart_id, campaign_id, step_index, channel, "
            "recipient, due_at, status, sent_at) "
            "VALUES (%s, %s, %s, 0, %s, 'jane.doe@example.com', %s, 'sent', %s) "
            "RETURNING message_id",
            (
                org_id,
                cart_id,
                campaign_id,
                channel,
                clicked_at - timedelta(minutes=5),
                clicked_at - timedelta(minutes=5),
            ),
        ).fetchone()["message_id"]
        conn.execute(
            "INSERT INTO app.message_events (org_id, event_key, message_id, cart_id, event_type, "
            "url, occurred_at) VALUES (%s, %s, %s, %s, 'click', 'https://x.test/r', %s)",
            (org_id, f"click-{uuid.uuid4()}", message_id, cart_id, clicked_at),
        )
    return campaign_id, message_id


def test_checkout_create_fixture_lands_in_raw_events_and_carts(client, db, shop):
    response = deliver(client, "shopify_checkouts_create.json")
    assert response.status_code == 200
    assert response.get_json()["status"] == "ok"

    cart = cart_of(db, shop.org_id)
    assert cart["status"] == "active"
    assert cart["cart_token"] == CART_TOKEN
    assert cart["connection_id"] == shop.connection_id
    assert cart["email"] == "jane.doe@example.com"
    assert cart["phone"] == "+15035550123"
    assert (cart["currency"], cart["total_price"], cart["item_count"]) == (
        "USD",
        Decimal("71.82"),
        3,
    )
    assert [i["sku"] for i in cart["line_items"]] == ["BEANIE-CHAR", "SOCK3-M"]
    assert cart["line_items"][0]["product_id"] == "8123456789012"
    assert cart["restore_url"].endswith("/recover?key=4f6e8d2c1b0a9e8f7d6c5b4a3f2e1d0c")
    assert cart["source_updated_at"] == datetime.fromisoformat("2026-03-14T10:04:37-04:00")

    customer = one(
        db,
        "SELECT * FROM app.customers WHERE org_id = %s AND customer_id = %s",
        shop.org_id,
        cart["customer_id"],
    )
    assert (customer["email"], customer["first_name"], customer["last_name"]) == (
        "jane.doe@example.com",
        "Jane",
        "Doe",
    )
    assert customer["external_id"] == "7012345678901" and customer["accepts_marketing"] is True

    event = one(db, "SELECT * FROM raw.events WHERE org_id = %s", shop.org_id)
    assert (event["source"], event["topic"]) == ("shopify", "checkouts/create")
    assert event["cart_id"] == cart["cart_id"]
    assert event["connection_id"] == shop.connection_id
    assert event["dedup_key"] == "shopify:1b2c3d4e-5f60-7182-93a4-b5c6d7e8f900"
    assert event["payload"]["token"] == CHECKOUT_TOKEN
    assert event["occurred_at"] == datetime.fromisoformat("2026-03-14T14:04:37.512345+00:00")
    assert "X-Shopify-Hmac-Sha256" not in event["headers"]
    assert event["headers"]["X-Shopify-Topic"] == "checkouts/create"


def test_same_checkout_three_times_is_one_event_and_one_cart(client, db, shop):
    statuses = [
        deliver(client, "shopify_checkouts_create.json").get_json()["status"] for _ in range(3)
    ]
    assert statuses == ["ok", "duplicate", "duplicate"]
    assert one(db, "SELECT count(*) AS n FROM raw.events WHERE org_id = %s", shop.org_id)["n"] == 1
    assert one(db, "SELECT count(*) AS n FROM app.carts WHERE org_id = %s", shop.org_id)["n"] == 1


def test_delivery_without_webhook_id_is_deduplicated_by_body_hash(client, db, shop):
    headers = fixture_headers("shopify", "shopify_checkouts_create.json")
    del headers["X-Shopify-Webhook-Id"]
    route = ROUTES["shopify_checkouts_create.json"]
    body = fixture_bytes("shopify_checkouts_create.json")
    first = client.post(route, data=body, headers=headers).get_json()["status"]
    second = client.post(route, data=body, headers=headers).get_json()["status"]
    assert (first, second) == ("ok", "duplicate")
    assert one(db, "SELECT count(*) AS n FROM raw.events WHERE org_id = %s", shop.org_id)["n"] == 1


def test_checkout_update_completed_converts_and_cancels_pending_messages(client, db, shop):
    deliver(client, "shopify_checkouts_create.json")
    cart = cart_of(db, shop.org_id)
    _, message_id = add_click(db, shop.org_id, cart["cart_id"], ORDERED_AT - timedelta(hours=1))
    with db.system() as conn:
        campaign_id = conn.execute(
            "SELECT campaign_id FROM app.outbox WHERE message_id = %s", (message_id,)
        ).fetchone()["campaign_id"]
        pending = conn.execute(
            "INSERT INTO app.outbox (org_id, cart_id, campaign_id, step_index, channel, due_at) "
            "VALUES (%s, %s, %s, 1, 'email', now() + interval '1 day') RETURNING message_id",
            (shop.org_id, cart["cart_id"], campaign_id),
        ).fetchone()["message_id"]

    assert deliver(client, "shopify_checkouts_update_completed.json").status_code == 200

    cart = cart_of(db, shop.org_id)
    assert cart["status"] == "converted"
    assert cart["converted_at"] == ORDERED_AT
    outbox = {
        r["message_id"]: r
        for r in rows(
            db, "SELECT message_id, status, reason FROM app.outbox WHERE org_id = %s", shop.org_id
        )
    }
    assert (outbox[pending]["status"], outbox[pending]["reason"]) == ("cancelled", "cart_converted")
    assert outbox[message_id]["status"] == "sent"  # already sent: history is not rewritten
    # Attribution is the order's job, not the checkout's.
    assert (
        one(db, "SELECT count(*) AS n FROM app.recoveries WHERE org_id = %s", shop.org_id)["n"] == 0
    )


def test_order_after_checkout_converts_the_cart(client, db, shop):
    deliver(client, "shopify_checkouts_create.json")
    response = deliver(client, "shopify_orders_create.json")
    assert response.status_code == 200 and response.get_json()["status"] == "ok"

    cart = cart_of(db, shop.org_id)
    order = one(db, "SELECT * FROM app.orders WHERE org_id = %s", shop.org_id)
    assert order["external_id"] == "5901234567890"
    assert order["cart_id"] == cart["cart_id"]
    assert (order["total_price"], order["currency"], order["financial_status"]) == (
        Decimal("71.82"),
        "USD",
        "paid",
    )
    assert order["checkout_token"] == CHECKOUT_TOKEN
    assert order["ordered_at"] == ORDERED_AT
    assert order["customer_id"] == cart["customer_id"]
    assert cart["status"] == "converted" and cart["converted_at"] == ORDERED_AT
    event = one(
        db, "SELECT * FROM raw.events WHERE org_id = %s AND topic = 'orders/create'", shop.org_id
    )
    assert event["cart_id"] == cart["cart_id"]
    assert (
        one(db, "SELECT count(*) AS n FROM app.recoveries WHERE org_id = %s", shop.org_id)["n"] == 0
    )


def test_order_matched_by_cart_token_when_checkout_token_differs(client, db, shop):
    deliver(client, "shopify_checkouts_create.json")
    body = changed("shopify_orders_create.json", checkout_token="another-checkout", checkout_id=111)
    assert deliver(client, "shopify_orders_create.json", body).status_code == 200
    cart = cart_of(db, shop.org_id)
    order = one(db, "SELECT * FROM app.orders WHERE org_id = %s", shop.org_id)
    assert order["cart_id"] == cart["cart_id"]
    assert cart["status"] == "converted"


def test_order_matched_by_checkout_id_when_token_is_missing(client, db, shop):
    deliver(client, "shopify_checkouts_create.json")
    checkout_id = json.loads(fixture_bytes("shopify_checkouts_create.json"))["id"]
    body = changed(
        "shopify_orders_create.json", checkout_token=None, cart_token=None, checkout_id=checkout_id
    )
    assert deliver(client, "shopify_orders_create.json", body).status_code == 200
    cart = cart_of(db, shop.org_id)
    assert cart["checkout_id"] == str(checkout_id)
    order = one(db, "SELECT * FROM app.orders WHERE org_id = %s", shop.org_id)
    assert order["cart_id"] == cart["cart_id"]
    assert cart["status"] == "converted"


def test_order_for_an_unknown_cart_is_stored_unmatched(client, db, shop):
    body = changed("shopify_orders_create.json", checkout_token="x", cart_token="y")
    assert deliver(client, "shopify_orders_create.json", body).status_code == 200
    order = one(db, "SELECT * FROM app.orders WHERE org_id = %s", shop.org_id)
    assert order["cart_id"] is None
    assert one(db, "SELECT count(*) AS n FROM app.carts WHERE org_id = %s", shop.org_id)["n"] == 0


def test_order_before_its_checkout_converts_the_cart_when_the_checkout_arrives(client, db, shop):
    deliver(client, "shopify_orders_create.json")
    assert (
        one(db, "SELECT cart_id FROM app.orders WHERE org_id = %s", shop.org_id)["cart_id"] is None
    )
    deliver(client, "shopify_checkouts_create.json")
    cart = cart_of(db, shop.org_id)
    assert cart["status"] == "converted"
    assert (
        one(db, "SELECT cart_id FROM app.orders WHERE org_id = %s", shop.org_id)["cart_id"]
        == cart["cart_id"]
    )


def test_late_older_checkout_update_does_not_roll_back(client, db, shop):
    newer = changed(
        "shopify_checkouts_create.json",
        updated_at="2026-03-14T10:30:00-04:00",
        total_price="24.00",
        email="jane.new@example.com",
        line_items=[
            json.loads(fixture_bytes("shopify_checkouts_create.json"))["line_items"][0]
            | {"quantity": 1}
        ],
    )
    deliver(client, "shopify_checkouts_create.json", newer)
    deliver(client, "shopify_checkouts_create.json")  # the older state arrives last

    cart = cart_of(db, shop.org_id)
    assert cart["total_price"] == Decimal("24.00")
    assert cart["item_count"] == 1 and len(cart["line_items"]) == 1
    assert cart["email"] == "jane.new@example.com"
    assert cart["source_updated_at"] == datetime.fromisoformat("2026-03-14T10:30:00-04:00")
    assert one(db, "SELECT count(*) AS n FROM raw.events WHERE org_id = %s", shop.org_id)["n"] == 2


def test_converted_cart_stays_converted_after_an_older_update(client, db, shop):
    deliver(client, "shopify_checkouts_update_completed.json")
    deliver(client, "shopify_checkouts_create.json")
    cart = cart_of(db, shop.org_id)
    assert cart["status"] == "converted"
    assert cart["source_updated_at"] == datetime.fromisoformat("2026-03-14T11:20:05-04:00")


def test_abandoned_cart_with_a_newer_update_is_active_again(client, db, shop):
    deliver(client, "shopify_checkouts_create.json")
    with db.system() as conn:
        conn.execute(
            "UPDATE app.carts SET status = 'abandoned', abandoned_at = now() WHERE org_id = %s",
            (shop.org_id,),
        )
    deliver(
        client,
        "shopify_checkouts_create.json",
        changed("shopify_checkouts_create.json", updated_at="2026-03-14T12:00:00-04:00"),
    )
    cart = cart_of(db, shop.org_id)
    assert cart["status"] == "active"
    assert cart["abandoned_at"] is not None


def test_cart_update_refreshes_the_checkout_with_that_cart_token(client, db, shop):
    deliver(client, "shopify_checkouts_create.json")
    cart_id = cart_of(db, shop.org_id)["cart_id"]

    # The fixture cart update is older than the checkout: stored, linked, content kept.
    assert deliver(client, "shopify_carts_update.json").status_code == 200
    event = one(
        db, "SELECT * FROM raw.events WHERE org_id = %s AND topic = 'carts/update'", shop.org_id
    )
    assert event["cart_id"] == cart_id
    assert cart_of(db, shop.org_id)["item_count"] == 3

    newer = changed("shopify_carts_update.json", updated_at="2026-03-14T15:00:00Z")
    deliver(client, "shopify_carts_update.json", newer)
    cart = cart_of(db, shop.org_id)
    assert (cart["item_count"], cart["total_price"]) == (2, Decimal("48.00"))
    assert cart["email"] == "jane.doe@example.com"  # carts carry no email: it is kept


def test_cart_update_without_a_checkout_only_stores_the_event(client, db, shop):
    assert deliver(client, "shopify_carts_update.json").status_code == 200
    event = one(db, "SELECT * FROM raw.events WHERE org_id = %s", shop.org_id)
    assert event["topic"] == "carts/update" and event["cart_id"] is None
    assert one(db, "SELECT count(*) AS n FROM app.carts WHERE org_id = %s", shop.org_id)["n"] == 0


def test_cart_create_route_is_registered(client, db, shop):
    body = fixture_bytes("shopify_carts_update.json")
    headers = fixture_headers("shopify", "shopify_carts_update.json")
    headers["X-Shopify-Topic"] = "carts/create"
    headers["X-Shopify-Webhook-Id"] = str(uuid.uuid4())
    response = client.post("/api/webhooks/shopify/cart-create", data=body, headers=headers)
    assert response.status_code == 200
    assert (
        one(db, "SELECT topic FROM raw.events WHERE org_id = %s", shop.org_id)["topic"]
        == "carts/create"
    )


def test_click_within_the_window_then_order_is_a_recovery(client, db, shop):
    deliver(client, "shopify_checkouts_create.json")
    cart_id = cart_of(db, shop.org_id)["cart_id"]
    clicked_at = ORDERED_AT - timedelta(hours=1)
    campaign_id, message_id = add_click(db, shop.org_id, cart_id, clicked_at, channel="sms")

    deliver(client, "shopify_orders_create.json")
    deliver(client, "shopify_orders_create.json")  # redelivery changes nothing

    recoveries = rows(db, "SELECT * FROM app.recoveries WHERE org_id = %s", shop.org_id)
    assert len(recoveries) == 1
    recovery = recoveries[0]
    order = one(db, "SELECT * FROM app.orders WHERE org_id = %s", shop.org_id)
    assert (recovery["cart_id"], recovery["order_id"]) == (cart_id, order["order_id"])
    assert (recovery["revenue"], recovery["currency"]) == (Decimal("71.82"), "USD")
    assert (recovery["message_id"], recovery["campaign_id"], recovery["channel"]) == (
        message_id,
        campaign_id,
        "sms",
    )
    assert recovery["clicked_at"] == clicked_at
    assert cart_of(db, shop.org_id)["status"] == "recovered"


def test_click_older_than_the_window_is_converted_not_recovered(client, db, shop):
    deliver(client, "shopify_checkouts_create.json")
    cart_id = cart_of(db, shop.org_id)["cart_id"]
    window = one(
        db, "SELECT attribution_window_seconds AS s FROM app.orgs WHERE org_id = %s", shop.org_id
    )["s"]
    add_click(db, shop.org_id, cart_id, ORDERED_AT - timedelta(seconds=window + 60))
    add_click(db, shop.org_id, cart_id, ORDERED_AT + timedelta(minutes=5))  # after the order

    deliver(client, "shopify_orders_create.json")
    assert cart_of(db, shop.org_id)["status"] == "converted"
    assert (
        one(db, "SELECT count(*) AS n FROM app.recoveries WHERE org_id = %s", shop.org_id)["n"] == 0
    )


def test_order_after_checkout_completed_is_still_attributed(client, db, shop):
    deliver(client, "shopify_checkouts_create.json")
    cart_id = cart_of(db, shop.org_id)["cart_id"]
    add_click(db, shop.org_id, cart_id, ORDERED_AT - timedelta(days=1))
    deliver(client, "shopify_checkouts_update_completed.json")
    assert cart_of(db, shop.org_id)["status"] == "converted"

    deliver(client, "shopify_orders_create.json")
    assert cart_of(db, shop.org_id)["status"] == "recovered"
    assert one(db, "SELECT revenue FROM app.recoveries WHERE org_id = %s", shop.org_id)[
        "revenue"
    ] == Decimal("71.82")


def test_events_of_one_shop_stay_in_its_org(client, db, runtime, make_org):
    first = make_org("first")
    connect_shop(db, runtime.encryption_key, first.org_id)
    deliver(client, "shopify_checkouts_create.json")
    second = make_org("second")
    connect_shop(db, runtime.encryption_key, second.org_id)
    deliver(
        client,
        "shopify_checkouts_create.json",
        changed("shopify_checkouts_create.json", token="second-org-checkout"),
    )
    assert cart_of(db, first.org_id) is not None and cart_of(db, second.org_id) is None
    assert cart_of(db, second.org_id, "second-org-checkout") is not None
    with db.tenant(second.org_id) as conn:
        seen = conn.execute("SELECT DISTINCT org_id FROM app.carts").fetchall()
    assert [r["org_id"] for r in seen] == [second.org_id]

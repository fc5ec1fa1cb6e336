"""The Shopify adapter beyond the basics of test_ingest_shopify.py: the single endpoint,
checkouts/delete, orders/paid, app/uninstalled, the privacy topics acting for real, secret
rotation, bad input on every topic."""

from __future__ import annotations

import json
import uuid
from datetime import timedelta

import pytest
from conftest import fixture_bytes, fixture_headers, shopify_hmac
from test_ingest_shopify import (
    CHECKOUT_TOKEN,
    SECRET,
    SHOP,
    cart_of,
    changed,
    connect_shop,
    one,
    rows,
)

from cartrecovery import tenancy
from delivery import scheduler
from integrations.shopify.adapter import TOPIC_PATHS

JANE = "jane.doe@example.com"
FIXTURE_TOPICS = {
    "shopify_checkouts_create.json": "checkouts/create",
    "shopify_checkouts_update_completed.json": "checkouts/update",
    "shopify_carts_update.json": "carts/update",
    "shopify_orders_create.json": "orders/create",
    "shopify_customers_data_request.json": "customers/data_request",
    "shopify_customers_redact.json": "customers/redact",
    "shopify_shop_redact.json": "shop/redact",
}
PRIVACY = [
    "shopify_customers_data_request.json",
    "shopify_customers_redact.json",
    "shopify_shop_redact.json",
]
CHECKOUT_ID = json.loads(fixture_bytes("shopify_checkouts_create.json"))["id"]
COUNTED = (
    "raw.events",
    "raw.event_keys",
    "app.carts",
    "app.orders",
    "app.customers",
    "app.data_requests",
    "app.erasure_requests",
    "app.connections",
    "app.outbox",
)


@pytest.fixture()
def shop(db, runtime, org):
    org.connection_id = connect_shop(db, runtime.encryption_key, org.org_id)
    return org


def post(
    client,
    topic: str,
    body: bytes,
    *,
    secret: str = SECRET,
    single: bool = False,
    webhook_id: str | None = None,
    shop_domain: str = SHOP,
    **extra,
):
    """POST ``body`` signed as Shopify would, to the topic's URL (or the single endpoint)."""
    headers = {
        "Content-Type": "application/json",
        "X-Shopify-Topic": topic,
        "X-Shopify-Shop-Domain": shop_domain,
        "X-Shopify-Hmac-Sha256": shopify_hmac(secret, body),
        "X-Shopify-Webhook-Id": webhook_id or str(uuid.uuid4()),
        "X-Shopify-Triggered-At": "2026-03-14T15:00:00Z",
        **extra,
    }
    url = "/api/webhooks/shopify" if single else f"/api/webhooks/shopify/{TOPIC_PATHS[topic]}"
    return client.post(url, data=body, headers=headers)


def deliver_fixture(client, name: str, single: bool = False):
    url = (
        "/api/webhooks/shopify"
        if single
        else f"/api/webhooks/shopify/{TOPIC_PATHS[FIXTURE_TOPICS[name]]}"
    )
    return client.post(url, data=fixture_bytes(name), headers=fixture_headers("shopify", name))


def totals(db) -> dict:
    with db.system() as conn:
        return {t: conn.execute(f"SELECT count(*) AS n FROM {t}").fetchone()["n"] for t in COUNTED}


def raw_topics(db, org_id) -> list[str]:
    return [
        r["topic"]
        for r in rows(
            db, "SELECT topic FROM raw.events WHERE org_id = %s ORDER BY received_at", org_id
        )
    ]


def pending_message(db, org_id, cart_id, step: int = 0, status: str = "scheduled"):
    with db.system() as conn:
        campaign = conn.execute(
            "INSERT INTO app.campaigns (org_id, name, status) VALUES (%s, 'c', 'active') "
            "RETURNING campaign_id",
            (org_id,),
        ).fetchone()["campaign_id"]
        return conn.execute(
            "INSERT INTO app.outbox (org_id, cart_id, campaign_id, step_index, channel, "
            "recipient, due_at, status) VALUES (%s, %s, %s, %s, 'email', %s, "
            "now() + interval '1 hour', %s) RETURNING message_id",
            (org_id, cart_id, campaign, step, JANE, status),
        ).fetchone()["message_id"]


def message(db, message_id):
    return one(db, "SELECT status, reason FROM app.outbox WHERE message_id = %s", message_id)


# --- every fixture, both ways of routing -----------------------------------------------------


@pytest.mark.parametrize("name", sorted(FIXTURE_TOPICS))
def test_every_fixture_on_the_single_endpoint_is_routed_by_its_topic_header(client, db, shop, name):
    if name in ("shopify_orders_create.json", "shopify_carts_update.json"):
        deliver_fixture(client, "shopify_checkouts_create.json")
    response = deliver_fixture(client, name, single=True)
    assert response.status_code == 200, response.get_json()
    assert raw_topics(db, shop.org_id)[-1] == FIXTURE_TOPICS[name]


def test_single_endpoint_lands_the_checkout_in_canonical_tables(client, db, shop):
    assert deliver_fixture(client, "shopify_checkouts_create.json", single=True).status_code == 200
    deliver_fixture(client, "shopify_orders_create.json", single=True)
    cart = cart_of(db, shop.org_id)
    assert cart["status"] == "converted" and cart["email"] == JANE
    assert cart["restore_url"].endswith("/recover?key=4f6e8d2c1b0a9e8f7d6c5b4a3f2e1d0c")
    order = one(db, "SELECT * FROM app.orders WHERE org_id = %s", shop.org_id)
    assert order["cart_id"] == cart["cart_id"] and order["financial_status"] == "paid"


@pytest.mark.parametrize("topic", [None, "products/create", "checkouts/unknown"])
def test_missing_or_unsupported_topic_is_400_and_stores_nothing(client, db, shop, topic):
    body = fixture_bytes("shopify_checkouts_create.json")
    headers = {"X-Shopify-Shop-Domain": SHOP, "X-Shopify-Hmac-Sha256": shopify_hmac(SECRET, body)}
    if topic:
        headers["X-Shopify-Topic"] = topic
    before = totals(db)
    response = client.post("/api/webhooks/shopify", data=body, headers=headers)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_payload"
    assert totals(db) == before


def test_the_url_topic_wins_over_the_header(client, db, shop):
    body = fixture_bytes("shopify_checkouts_create.json")
    post(client, "checkouts/create", body, **{"X-Shopify-Topic": "orders/create"})
    assert raw_topics(db, shop.org_id) == ["checkouts/create"]


# --- bad input on every topic ----------------------------------------------------------------


@pytest.mark.parametrize("topic", sorted(TOPIC_PATHS))
def test_truncated_body_is_400_on_every_topic(client, db, shop, topic):
    body = fixture_bytes("shopify_checkouts_create.json")[:-40]
    before = totals(db)
    response = post(client, topic, body)
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "invalid_json"
    assert totals(db) == before


@pytest.mark.parametrize("topic", sorted(TOPIC_PATHS))
@pytest.mark.parametrize(
    "junk",
    [
        b'"x": NaN',
        b'"x": -Infinity',
        b'"x": 1e999',
        b'"x": "a\\u0000b"',
        b'"x": ' + b"[" * 5000 + b"]" * 5000,
    ],
)
def test_json_postgres_cannot_store_is_400_on_every_topic(client, db, shop, topic, junk):
    body = fixture_bytes("shopify_checkouts_create.json").rstrip()[:-1] + b", " + junk + b"}"
    before = totals(db)
    response = post(client, topic, body)
    assert response.status_code == 400, response.get_json()
    assert response.get_json()["error"]["code"] == "invalid_json"
    assert totals(db) == before


@pytest.mark.parametrize("topic", sorted(TOPIC_PATHS))
@pytest.mark.parametrize("signature", ["wrong", "missing", "other_secret"])
def test_bad_signature_is_401_on_every_topic(client, db, shop, topic, signature):
    deliver_fixture(client, "shopify_checkouts_create.json")
    body = fixture_bytes("shopify_customers_redact.json")
    extra = {
        "wrong": {"X-Shopify-Hmac-Sha256": shopify_hmac(SECRET, body + b" ")},
        "missing": {"X-Shopify-Hmac-Sha256": ""},
        "other_secret": {"X-Shopify-Hmac-Sha256": shopify_hmac("not-it", body)},
    }[signature]
    before = totals(db)
    response = post(client, topic, body, **extra)
    assert response.status_code == 401
    assert response.get_json()["error"]["code"] == "invalid_signature"
    assert totals(db) == before
    assert cart_of(db, shop.org_id)["email"] == JANE  # nothing erased


@pytest.mark.parametrize("name", PRIVACY)
def test_privacy_topics_refuse_a_bad_hmac_and_keep_everything(client, db, shop, name):
    deliver_fixture(client, "shopify_checkouts_create.json")
    headers = fixture_headers("shopify", name)
    headers["X-Shopify-Hmac-Sha256"] = shopify_hmac("forged", fixture_bytes(name))
    before = totals(db)
    response = client.post(
        f"/api/webhooks/shopify/{TOPIC_PATHS[FIXTURE_TOPICS[name]]}",
        data=fixture_bytes(name),
        headers=headers,
    )
    assert response.status_code == 401
    assert totals(db) == before
    assert cart_of(db, shop.org_id)["email"] == JANE


@pytest.mark.parametrize(
    "topic", ["checkouts/create", "customers/redact", "shop/redact", "app/uninstalled"]
)
def test_unknown_stores_all_get_the_same_404(client, db, shop, topic):
    body = fixture_bytes("shopify_shop_redact.json")
    answers = [
        post(client, topic, body, shop_domain=domain)
        for domain in ("nobody.myshopify.com", "other-shop.myshopify.com")
    ]
    assert [a.status_code for a in answers] == [404, 404]
    assert answers[0].get_json() == answers[1].get_json()
    assert answers[0].get_json()["error"]["code"] == "unknown_shop"


# --- checkouts/delete ------------------------------------------------------------------------


def test_checkout_delete_closes_the_cart_and_cancels_its_messages(client, db, shop):
    deliver_fixture(client, "shopify_checkouts_create.json")
    cart = cart_of(db, shop.org_id)
    scheduled = pending_message(db, shop.org_id, cart["cart_id"], 0)
    enqueued = pending_message(db, shop.org_id, cart["cart_id"], 1, "enqueued")
    body = json.dumps({"id": CHECKOUT_ID, "token": CHECKOUT_TOKEN}).encode()
    assert post(client, "checkouts/delete", body).status_code == 200

    cart = cart_of(db, shop.org_id)
    assert cart["closed_at"] is not None
    assert cart["email"] == JANE  # the history stays
    for message_id in (scheduled, enqueued):
        assert message(db, message_id) == {"status": "cancelled", "reason": "checkout_deleted"}
    event = one(
        db, "SELECT * FROM raw.events WHERE org_id = %s AND topic = 'checkouts/delete'", shop.org_id
    )
    assert event["cart_id"] == cart["cart_id"]


def test_checkout_delete_finds_the_cart_by_checkout_id_alone(client, db, shop):
    deliver_fixture(client, "shopify_checkouts_create.json")
    assert (
        post(client, "checkouts/delete", json.dumps({"id": CHECKOUT_ID}).encode()).status_code
        == 200
    )
    assert cart_of(db, shop.org_id)["closed_at"] is not None


def test_checkout_delete_before_create_keeps_the_checkout_closed(client, db, shop):
    body = json.dumps({"id": CHECKOUT_ID, "token": CHECKOUT_TOKEN}).encode()
    assert post(client, "checkouts/delete", body).status_code == 200
    deliver_fixture(client, "shopify_checkouts_create.json")
    cart = cart_of(db, shop.org_id)
    assert cart["closed_at"] is not None
    assert (cart["email"], cart["item_count"]) == (JANE, 3)


def test_checkout_delete_naming_nothing_is_400(client, db, shop):
    before = totals(db)
    response = post(client, "checkouts/delete", b'{"note": "x"}')
    assert response.status_code == 400 and totals(db) == before


def test_closed_checkout_is_kept_out_of_abandonment(client, db, runtime, shop):
    deliver_fixture(client, "shopify_checkouts_create.json")
    post(client, "checkouts/delete", json.dumps({"token": CHECKOUT_TOKEN}).encode())
    assert cart_of(db, shop.org_id)["closed_at"] is not None
    with db.system() as conn:
        conn.execute(
            "UPDATE app.carts SET last_activity_at = now() - interval '1 day' WHERE org_id = %s",
            (shop.org_id,),
        )
        conn.execute(
            "INSERT INTO app.campaigns (org_id, name, status, sequence_steps) VALUES "
            "(%s, 'c', 'active', '[{\"channel\": \"email\", \"delay_seconds\": 86400}]')",
            (shop.org_id,),
        )
    scheduler.abandon_and_enroll(runtime)
    assert cart_of(db, shop.org_id)["status"] == "active"
    assert rows(db, "SELECT * FROM app.outbox WHERE org_id = %s", shop.org_id) == []


# --- orders/create and orders/paid -----------------------------------------------------------


def _order(status: str, updated_at: str) -> bytes:
    return changed("shopify_orders_create.json", financial_status=status, updated_at=updated_at)


def _order_row(db, org_id):
    return one(db, "SELECT * FROM app.orders WHERE org_id = %s", org_id)


def test_orders_paid_after_create_updates_the_financial_status(client, db, shop):
    deliver_fixture(client, "shopify_checkouts_create.json")
    post(client, "orders/create", _order("pending", "2026-03-14T11:20:06-04:00"))
    assert _order_row(db, shop.org_id)["financial_status"] == "pending"
    assert (
        post(client, "orders/paid", _order("paid", "2026-03-14T11:25:00-04:00")).status_code == 200
    )
    order = _order_row(db, shop.org_id)
    assert order["financial_status"] == "paid"
    assert one(db, "SELECT count(*) AS n FROM app.orders WHERE org_id = %s", shop.org_id)["n"] == 1
    assert cart_of(db, shop.org_id)["status"] == "converted"
    assert raw_topics(db, shop.org_id)[-2:] == ["orders/create", "orders/paid"]


def test_orders_paid_before_create_is_not_rolled_back(client, db, shop):
    deliver_fixture(client, "shopify_checkouts_create.json")
    post(client, "orders/paid", _order("paid", "2026-03-14T11:25:00-04:00"))
    post(client, "orders/create", _order("pending", "2026-03-14T11:20:06-04:00"))
    order = _order_row(db, shop.org_id)
    assert order["financial_status"] == "paid"
    assert order["cart_id"] == cart_of(db, shop.org_id)["cart_id"]
    assert cart_of(db, shop.org_id)["status"] == "converted"


def test_order_redelivery_is_stored_once(client, db, shop):
    body = _order("paid", "2026-03-14T11:25:00-04:00")
    answers = [
        post(client, "orders/paid", body, webhook_id="same-delivery").get_json()["status"]
        for _ in range(3)
    ]
    assert answers == ["ok", "duplicate", "duplicate"]
    assert raw_topics(db, shop.org_id) == ["orders/paid"]


def test_completed_checkout_before_its_create_stays_converted(client, db, shop):
    deliver_fixture(client, "shopify_checkouts_update_completed.json")
    deliver_fixture(client, "shopify_checkouts_create.json")
    assert cart_of(db, shop.org_id)["status"] == "converted"


# --- app/uninstalled -------------------------------------------------------------------------


def _uninstall(client, webhook_id="uninstall-1"):
    body = json.dumps({"id": 81234567, "domain": SHOP, "myshopify_domain": SHOP}).encode()
    return post(client, "app/uninstalled", body, webhook_id=webhook_id)


def test_app_uninstalled_disables_the_store_and_cancels_pending_messages(client, db, runtime, shop):
    deliver_fixture(client, "shopify_checkouts_create.json")
    cart_id = cart_of(db, shop.org_id)["cart_id"]
    scheduled = pending_message(db, shop.org_id, cart_id, 0)
    enqueued = pending_message(db, shop.org_id, cart_id, 1, "enqueued")
    sent = pending_message(db, shop.org_id, cart_id, 2, "sent")

    assert _uninstall(client).status_code == 200

    connection = one(
        db,
        "SELECT status, status_reason FROM app.connections WHERE connection_id = %s",
        shop.connection_id,
    )
    assert connection == {"status": "disabled", "status_reason": "app_uninstalled"}
    for message_id in (scheduled, enqueued):
        assert message(db, message_id) == {"status": "cancelled", "reason": "app_uninstalled"}
    assert message(db, sent)["status"] == "sent"
    assert tenancy.find_connection(db, runtime.encryption_key, "shopify", SHOP) is None

    # Later webhooks of the store are refused, a redelivered uninstall is a duplicate.
    refused = deliver_fixture(client, "shopify_checkouts_update_completed.json")
    assert refused.status_code == 404
    assert _uninstall(client).get_json()["status"] == "duplicate"
    assert raw_topics(db, shop.org_id) == ["checkouts/create", "app/uninstalled"]


def test_no_enrollment_after_app_uninstalled(client, db, runtime, shop):
    deliver_fixture(client, "shopify_checkouts_create.json")
    _uninstall(client)
    with db.system() as conn:
        # A control cart from no store connection: the campaign does enroll it.
        control = conn.execute(
            "INSERT INTO app.carts (org_id, platform, external_id, email) "
            "VALUES (%s, 'api', 'control', 'control@example.com') RETURNING cart_id",
            (shop.org_id,),
        ).fetchone()["cart_id"]
        conn.execute(
            "UPDATE app.carts SET last_activity_at = now() - interval '1 day' WHERE org_id = %s",
            (shop.org_id,),
        )
        conn.execute(
            "INSERT INTO app.campaigns (org_id, name, status, sequence_steps) VALUES "
            "(%s, 'c', 'active', '[{\"channel\": \"email\", \"delay_seconds\": 86400}]')",
            (shop.org_id,),
        )
    scheduler.abandon_and_enroll(runtime)
    assert [
        r["cart_id"]
        for r in rows(db, "SELECT cart_id FROM app.outbox WHERE org_id = %s", shop.org_id)
    ] == [control]


def test_reinstall_reactivates_the_store(client, db, runtime, shop):
    _uninstall(client)
    connect_shop(db, runtime.encryption_key, shop.org_id)
    assert deliver_fixture(client, "shopify_checkouts_create.json").status_code == 200


# --- privacy topics --------------------------------------------------------------------------


def _shop_with_jane(client):
    deliver_fixture(client, "shopify_checkouts_create.json")
    deliver_fixture(client, "shopify_orders_create.json")


def _mentions_jane(db, org_id) -> list[str]:
    """Which tables of the org still hold Jane's email or phone anywhere in a row."""
    found = []
    with db.system() as conn:
        for table in (
            "app.customers",
            "app.carts",
            "app.orders",
            "raw.events",
            "app.data_requests",
        ):
            for row in conn.execute(f"SELECT * FROM {table} WHERE org_id = %s", (org_id,)):
                text = json.dumps(row, default=str)
                if JANE in text or "5035550123" in text:
                    found.append(table)
                    break
    return found


def test_customers_data_request_prepares_the_export_bundle(client, db, shop):
    _shop_with_jane(client)
    response = deliver_fixture(client, "shopify_customers_data_request.json")
    assert response.status_code == 200
    request_row = one(db, "SELECT * FROM app.data_requests WHERE org_id = %s", shop.org_id)
    assert request_row["external_request_id"] == "98765"
    assert request_row["connection_id"] == shop.connection_id
    assert (request_row["email"], request_row["phone"]) == (JANE, "+15035550123")
    bundle = request_row["bundle"]
    assert [c["external_id"] for c in bundle["carts"]] == [CHECKOUT_TOKEN]
    assert [o["external_id"] for o in bundle["orders"]] == ["5901234567890"]
    assert JANE in bundle["subject"]["emails"]
    # The raw event keeps the request, not the person.
    event = one(
        db,
        "SELECT payload FROM raw.events WHERE org_id = %s AND topic = 'customers/data_request'",
        shop.org_id,
    )
    assert event["payload"]["data_request"] == {"id": 98765}
    assert JANE not in json.dumps(event["payload"])

    # Redelivery prepares nothing twice; the merchant fetches the bundle through the API.
    deliver_fixture(client, "shopify_customers_data_request.json")
    assert (
        one(db, "SELECT count(*) AS n FROM app.data_requests WHERE org_id = %s", shop.org_id)["n"]
        == 1
    )
    listed = client.get("/api/v1/privacy/data-requests", headers=shop.headers).get_json()
    assert [r["external_request_id"] for r in listed["data_requests"]] == ["98765"]
    assert "bundle" not in listed["data_requests"][0]
    one_request = client.get(
        f"/api/v1/privacy/data-requests/{request_row['request_id']}", headers=shop.headers
    )
    assert one_request.status_code == 200
    assert one_request.get_json()["bundle"]["orders"][0]["external_id"] == "5901234567890"


def test_data_requests_are_per_org(client, db, shop, make_org):
    _shop_with_jane(client)
    deliver_fixture(client, "shopify_customers_data_request.json")
    request_id = one(db, "SELECT request_id FROM app.data_requests WHERE org_id = %s", shop.org_id)[
        "request_id"
    ]
    other = make_org("other")
    assert (
        client.get("/api/v1/privacy/data-requests", headers=other.headers).get_json()[
            "data_requests"
        ]
        == []
    )
    assert (
        client.get(f"/api/v1/privacy/data-requests/{request_id}", headers=other.headers).status_code
        == 404
    )


def test_customers_redact_erases_the_customer(client, db, shop):
    _shop_with_jane(client)
    deliver_fixture(client, "shopify_customers_data_request.json")
    assert _mentions_jane(db, shop.org_id)

    response = deliver_fixture(client, "shopify_customers_redact.json")
    assert response.status_code == 200
    assert _mentions_jane(db, shop.org_id) == []
    # Counts survive: the cart and order rows stay, anonymised.
    cart = cart_of(db, shop.org_id)
    assert cart is not None and cart["email"] is None and cart["item_count"] == 3
    assert one(db, "SELECT count(*) AS n FROM app.orders WHERE org_id = %s", shop.org_id)["n"] == 1
    erasure = one(db, "SELECT * FROM app.erasure_requests WHERE org_id = %s", shop.org_id)
    assert (erasure["requested_by"], erasure["reason"]) == ("shopify", "shopify_customers_redact")


def test_shop_redact_erases_the_stores_data(client, db, shop, make_org):
    _shop_with_jane(client)
    deliver_fixture(client, "shopify_carts_update.json")
    _uninstall(client)  # Shopify sends shop/redact 48 h after uninstall

    response = deliver_fixture(client, "shopify_shop_redact.json")
    assert response.status_code == 200
    for table in ("app.carts", "app.orders", "app.customers"):
        assert (
            one(db, f"SELECT count(*) AS n FROM {table} WHERE org_id = %s", shop.org_id)["n"] == 0
        ), table
    assert raw_topics(db, shop.org_id) == ["shop/redact"]
    assert _mentions_jane(db, shop.org_id) == []
    # The connection row stays (disabled), for the record.
    assert (
        one(db, "SELECT status FROM app.connections WHERE connection_id = %s", shop.connection_id)[
            "status"
        ]
        == "disabled"
    )


def test_privacy_request_naming_nobody_is_400(client, db, shop):
    body = json.dumps({"shop_domain": SHOP, "customer": {"id": 1}}).encode()
    before = totals(db)
    response = post(client, "customers/redact", body)
    assert response.status_code == 400 and totals(db) == before


# --- secret rotation -------------------------------------------------------------------------


def test_previous_secret_verifies_during_the_grace_period_only(client, db, runtime, shop):
    new = tenancy.rotate_secret(db, runtime.encryption_key, shop.org_id, shop.connection_id)
    assert new and new != SECRET
    connection = tenancy.find_connection(db, runtime.encryption_key, "shopify", SHOP)
    assert connection.secrets == [new, SECRET]

    body = fixture_bytes("shopify_checkouts_create.json")
    assert post(client, "checkouts/create", body, secret=SECRET).status_code == 200
    assert post(client, "checkouts/create", body, secret=new).status_code == 200

    with db.system() as conn:  # the grace period ends
        conn.execute(
            "UPDATE app.connections SET previous_secret_expires_at = "
            "now() - interval '1 second' WHERE connection_id = %s",
            (shop.connection_id,),
        )
    before = totals(db)
    assert post(client, "checkouts/create", body, secret=SECRET).status_code == 401
    assert totals(db) == before
    assert post(client, "checkouts/create", body, secret=new).status_code == 200


def test_rotation_grace_is_one_hour_by_default(db, runtime, shop):
    tenancy.rotate_secret(db, runtime.encryption_key, shop.org_id, shop.connection_id)
    left = one(
        db,
        "SELECT previous_secret_expires_at - now() AS left FROM app.connections "
        "WHERE connection_id = %s",
        shop.connection_id,
    )["left"]
    assert timedelta(minutes=59) < left <= timedelta(hours=1)

"""The tracking API: single events and batches into raw.events and app state."""

from __future__ import annotations

import uuid
from datetime import datetime, timedelta
from decimal import Decimal

from cartrecovery import tenancy

T0 = datetime.fromisoformat("2026-05-01T12:00:00+00:00")


def cart_event(cart_id: str, event: str = "cart_updated", at: datetime = T0, event_id=None, **data):
    body = {
        "event": event,
        "timestamp": at.isoformat(),
        "cart_data": {
            "cart_id": cart_id,
            "email": "Shopper@Example.com",
            "currency": "eur",
            "line_items": [
                {
                    "product_id": 17,
                    "variant_id": "v1",
                    "sku": "MUG",
                    "title": "Mug",
                    "quantity": 2,
                    "price": "12.50",
                    "image_url": "https://img.test/mug.png",
                },
            ],
            "restore_url": f"https://shop.test/cart/{cart_id}",
            **data,
        },
    }
    if event_id is not None:
        body["event_id"] = event_id
    return body


def track(client, org, body, headers=None):
    return client.post("/api/v1/carts/track", json=body, headers=headers or org.headers)


def one(db, sql, *params):
    with db.system() as conn:
        return conn.execute(sql, params).fetchone()


def count(db, table, org_id):
    return one(db, f"SELECT count(*) AS n FROM {table} WHERE org_id = %s", org_id)["n"]


def api_cart(db, org_id, external_id):
    return one(
        db,
        "SELECT * FROM app.carts WHERE org_id = %s AND platform = 'api' AND external_id = %s",
        org_id,
        external_id,
    )


def test_track_creates_cart_customer_and_raw_event(client, db, org):
    body = cart_event(
        "c-1",
        "cart_created",
        event_id="e-1",
        phone="+44 20 7946 0958",
        customer={
            "id": 991,
            "first_name": "Ada",
            "last_name": "Lovelace",
            "timezone": "Europe/London",
            "accepts_marketing": True,
        },
    )
    response = track(client, org, body)
    assert response.status_code == 202
    answer = response.get_json()
    assert answer["status"] == "accepted"

    cart = api_cart(db, org.org_id, "c-1")
    assert answer["cart_id"] == str(cart["cart_id"])
    assert (cart["email"], cart["phone"], cart["currency"]) == (
        "shopper@example.com",
        "+442079460958",
        "EUR",
    )
    assert (cart["total_price"], cart["item_count"]) == (Decimal("25.00"), 2)
    assert cart["line_items"][0]["product_id"] == "17"
    assert cart["restore_url"] == "https://shop.test/cart/c-1"
    assert cart["source_updated_at"] == T0 and cart["status"] == "active"
    customer = one(
        db,
        "SELECT * FROM app.customers WHERE org_id = %s AND customer_id = %s",
        org.org_id,
        cart["customer_id"],
    )
    assert (customer["first_name"], customer["timezone"], customer["external_id"]) == (
        "Ada",
        "Europe/London",
        "991",
    )
    event = one(db, "SELECT * FROM raw.events WHERE org_id = %s", org.org_id)
    assert str(event["event_id"]) == answer["event_id"]
    assert (event["source"], event["topic"], event["cart_id"]) == (
        "api",
        "cart_created",
        cart["cart_id"],
    )
    assert event["occurred_at"] == T0 and event["payload"] == body


def test_same_event_id_twice_is_a_duplicate(client, db, org):
    first = track(client, org, cart_event("c-1", event_id="e-1")).get_json()
    again = track(client, org, cart_event("c-1", event_id="e-1", email="other@example.com"))
    assert again.status_code == 202
    assert again.get_json() == {
        "status": "duplicate",
        "event_id": first["event_id"],
        "cart_id": first["cart_id"],
    }
    assert count(db, "raw.events", org.org_id) == 1
    assert api_cart(db, org.org_id, "c-1")["email"] == "shopper@example.com"


def test_without_event_id_the_body_hash_deduplicates(client, db, org):
    body = cart_event("c-1")
    assert track(client, org, body).get_json()["status"] == "accepted"
    reordered = dict(reversed(list(body.items())))  # same event, other key order
    assert track(client, org, reordered).get_json()["status"] == "duplicate"
    later = cart_event("c-1", at=T0 + timedelta(minutes=1))
    assert track(client, org, later).get_json()["status"] == "accepted"
    assert count(db, "raw.events", org.org_id) == 2


def test_older_update_does_not_roll_back_and_total_given_wins(client, db, org):
    track(
        client,
        org,
        cart_event(
            "c-1", at=T0, total_price="99.90", line_items=[{"title": "Lamp", "price": "99.90"}]
        ),
    )
    track(client, org, cart_event("c-1", at=T0 - timedelta(minutes=5)))
    cart = api_cart(db, org.org_id, "c-1")
    assert (cart["total_price"], cart["item_count"]) == (Decimal("99.90"), 1)
    assert cart["line_items"][0]["title"] == "Lamp"


def test_order_completed_converts_and_keeps_content(client, db, org):
    track(client, org, cart_event("c-1", "checkout_started"))
    done = {
        "event": "order_completed",
        "timestamp": (T0 + timedelta(hours=1)).isoformat(),
        "cart_data": {"cart_id": "c-1", "order": {"order_id": 5001, "total_price": "27.00"}},
    }
    assert track(client, org, done).status_code == 202
    cart = api_cart(db, org.org_id, "c-1")
    assert cart["status"] == "converted"
    assert (cart["total_price"], cart["item_count"]) == (Decimal("25.00"), 2)
    order = one(db, "SELECT * FROM app.orders WHERE org_id = %s", org.org_id)
    assert (order["external_id"], order["platform"], order["cart_id"]) == (
        "5001",
        "api",
        cart["cart_id"],
    )
    assert (order["total_price"], order["currency"]) == (Decimal("27.00"), "EUR")


def test_order_completed_after_a_click_is_a_recovery(client, db, org):
    cart_id = track(client, org, cart_event("c-1")).get_json()["cart_id"]
    with db.system() as conn:
        campaign = conn.execute(
            "INSERT INTO app.campaigns (org_id, name) VALUES (%s, 'c') RETURNING campaign_id",
            (org.org_id,),
        ).fetchone()["campaign_id"]
        message = conn.execute(
            "INSERT INTO app.outbox (org_id, cart_id, campaign_id, step_index, channel, due_at, "
            "status) VALUES (%s, %s, %s, 0, 'push', %s, 'sent') RETURNING message_id",
            (org.org_id, cart_id, campaign, T0),
        ).fetchone()["message_id"]
        conn.execute(
            "INSERT INTO app.message_events (org_id, event_key, message_id, cart_id, "
            "event_type, occurred_at) VALUES (%s, 'k1', %s, %s, 'click', %s)",
            (org.org_id, message, cart_id, T0 + timedelta(minutes=30)),
        )
    done = cart_event(
        "c-1", "order_completed", at=T0 + timedelta(hours=1), order={"order_id": "o-1"}
    )
    track(client, org, done)
    recovery = one(db, "SELECT * FROM app.recoveries WHERE org_id = %s", org.org_id)
    assert (recovery["revenue"], recovery["channel"], recovery["message_id"]) == (
        Decimal("25.00"),
        "push",
        message,
    )
    assert api_cart(db, org.org_id, "c-1")["status"] == "recovered"


def test_an_order_never_converts_before_the_cart_events_we_saw(client, db, org):
    # The order's reported time (T0+20m) is earlier than a cart update we already stored
    # (T0+40m, after the click at T0+30m): the conversion cannot precede that update, so it
    # counts from T0+40m and the click recovers the cart, as for every platform.
    cart_id = track(client, org, cart_event("c-9")).get_json()["cart_id"]
    with db.system() as conn:
        campaign = conn.execute(
            "INSERT INTO app.campaigns (org_id, name) VALUES (%s, 'c') RETURNING campaign_id",
            (org.org_id,),
        ).fetchone()["campaign_id"]
        message = conn.execute(
            "INSERT INTO app.outbox (org_id, cart_id, campaign_id, step_index, channel, due_at, "
            "status) VALUES (%s, %s, %s, 0, 'email', %s, 'sent') RETURNING message_id",
            (org.org_id, cart_id, campaign, T0),
        ).fetchone()["message_id"]
        conn.execute(
            "INSERT INTO app.message_events (org_id, event_key, message_id, cart_id, "
            "event_type, occurred_at) VALUES (%s, 'k9', %s, %s, 'click', %s)",
            (org.org_id, message, cart_id, T0 + timedelta(minutes=30)),
        )
    assert track(client, org, cart_event("c-9", at=T0 + timedelta(minutes=40))).status_code == 202
    done = cart_event(
        "c-9", "order_completed", at=T0 + timedelta(minutes=20), order={"order_id": "o-9"}
    )
    assert track(client, org, done).status_code == 202

    cart = api_cart(db, org.org_id, "c-9")
    assert cart["status"] == "recovered"
    assert cart["converted_at"] == T0 + timedelta(minutes=40)
    recovery = one(db, "SELECT * FROM app.recoveries WHERE org_id = %s", org.org_id)
    assert (recovery["message_id"], recovery["revenue"]) == (message, Decimal("25.00"))


def test_publishable_key_may_track_but_read_key_may_not(client, db, org):
    publishable = tenancy.create_api_key(db, org.org_id, "publishable")
    read = tenancy.create_api_key(db, org.org_id, "read")
    ok = track(client, org, cart_event("c-1"), {"Authorization": f"Bearer {publishable}"})
    denied = track(client, org, cart_event("c-2"), {"Authorization": f"Bearer {read}"})
    assert ok.status_code == 202
    assert denied.status_code == 403 and denied.get_json()["error"]["code"] == "forbidden"
    assert api_cart(db, org.org_id, "c-2") is None


def test_batch_of_100_with_duplicates_and_invalid_items(client, db, org):
    stored_before = cart_event("cart-0", event_id="already-stored")
    assert track(client, org, stored_before).get_json()["status"] == "accepted"

    events, expected = [], []
    for i in range(100):
        if i % 10 == 3:
            events.append({"event": "cart_updated", "cart_data": {"email": "x@example.com"}})
            expected.append("rejected")  # no cart_id, no timestamp
        elif i % 10 == 7:
            events.append(cart_event(f"cart-{i % 20}", event_id=f"b-{i - 1}"))
            expected.append("duplicate")  # repeats the event just before it
        elif i == 50:
            events.append(stored_before)
            expected.append("duplicate")
        else:
            events.append(
                cart_event(
                    f"cart-{i % 20}",
                    at=T0 + timedelta(seconds=i),
                    event_id=f"b-{i}",
                    total_price=str(i),
                )
            )
            expected.append("accepted")
    events[99] = "not an object"
    expected[99] = "rejected"

    response = client.post("/api/v1/events/batch", json={"events": events}, headers=org.headers)
    assert response.status_code == 202
    answer = response.get_json()
    assert [r["status"] for r in answer["results"]] == expected
    assert [r["index"] for r in answer["results"]] == list(range(100))
    assert (answer["accepted"], answer["duplicates"], answer["rejected"]) == (
        expected.count("accepted"),
        expected.count("duplicate"),
        expected.count("rejected"),
    )
    rejected = answer["results"][3]
    assert {tuple(e["loc"]) for e in rejected["error"]} >= {
        ("timestamp",),
        ("cart_data", "cart_id"),
    }

    assert count(db, "raw.events", org.org_id) == 1 + expected.count("accepted")
    carts = {
        e["cart_data"]["cart_id"]
        for e, status in zip(events, expected, strict=True)
        if status == "accepted"
    }
    assert len(carts) == 16  # residues 3, 7, 13, 17 only ever had rejected or duplicate events
    assert count(db, "app.carts", org.org_id) == len(carts | {"cart-0"})
    # Each cart holds its newest update of the batch.
    assert api_cart(db, org.org_id, "cart-18")["total_price"] == Decimal("98")
    accepted = [r for r in answer["results"] if r["status"] == "accepted"]
    cart_ids = {r["cart_id"] for r in accepted}
    assert len(cart_ids) == len(carts)
    assert str(api_cart(db, org.org_id, "cart-1")["cart_id"]) == answer["results"][1]["cart_id"]


def test_batch_repeated_whole_is_all_duplicates(client, db, org):
    events = [cart_event(f"c-{i}", at=T0 + timedelta(seconds=i)) for i in range(5)]
    client.post("/api/v1/events/batch", json={"events": events}, headers=org.headers)
    again = client.post(
        "/api/v1/events/batch", json={"events": events}, headers=org.headers
    ).get_json()
    assert (again["accepted"], again["duplicates"], again["rejected"]) == (0, 5, 0)
    assert count(db, "raw.events", org.org_id) == 5


def test_batch_with_an_order_and_the_cart_updates_before_it(client, db, org):
    events = [
        cart_event("c-9", "checkout_started", at=T0, event_id=str(uuid.uuid4())),
        cart_event(
            "c-9", "order_completed", at=T0 + timedelta(minutes=2), order={"order_id": "o-9"}
        ),
    ]
    answer = client.post(
        "/api/v1/events/batch", json={"events": events}, headers=org.headers
    ).get_json()
    assert answer["accepted"] == 2
    cart = api_cart(db, org.org_id, "c-9")
    assert cart["status"] == "converted"
    assert (
        one(db, "SELECT cart_id FROM app.orders WHERE org_id = %s", org.org_id)["cart_id"]
        == cart["cart_id"]
    )


def test_order_without_a_total_takes_the_carts(client, db, org):
    track(client, org, cart_event("c-1", "checkout_started"))
    done = {
        "event": "order_completed",
        "timestamp": (T0 + timedelta(hours=1)).isoformat(),
        "cart_data": {
            "cart_id": "c-1",
            "total_price": "1.00",  # no items: ignored
            "order": {"order_id": "o-2"},
        },
    }
    track(client, org, done)
    order = one(db, "SELECT * FROM app.orders WHERE org_id = %s", org.org_id)
    assert (order["total_price"], order["currency"]) == (Decimal("25.00"), "EUR")
    assert api_cart(db, org.org_id, "c-1")["total_price"] == Decimal("25.00")

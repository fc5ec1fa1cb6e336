"""Campaign rules: trigger conditions, priority, re-entry cooldown, first vs repeat, new vs
returning, connections, variants and recipients at enrollment; API validation of the fields."""

from __future__ import annotations

import uuid
from collections import Counter
from datetime import timedelta

import pytest
from psycopg.types.json import Jsonb

from cartrecovery.assignment import choose_variant
from delivery import enrollment
from delivery.enrollment import campaign_matches

STEP = {"channel": "email", "delay_seconds": 0, "subject": "Hi", "template": "cart_reminder"}
ITEMS = [
    {
        "product_id": "P1",
        "variant_id": "V1",
        "sku": "BEANIE-M",
        "quantity": 2,
        "price": "24",
        "collections": ["winter", "hats"],
    },
    {"product_id": "P2", "variant_id": "V2", "sku": "SOCK-1", "quantity": 1, "price": "23.82"},
]
CART = {
    "total_price": "71.82",
    "currency": "USD",
    "item_count": 3,
    "line_items": ITEMS,
    "platform": "shopify",
    "connection_id": "6d1f0c1e-9f6b-4c55-8d0e-3b4c1e1f2a3b",
}


@pytest.mark.parametrize(
    ("conditions", "expected"),
    [
        ({"item_count_min": 3}, True),
        ({"item_count_min": 4}, False),
        ({"item_count_max": 2}, False),
        ({"products_include": ["P2"]}, True),
        ({"products_include": ["V1"]}, True),
        ({"products_include": ["BEANIE-M"]}, True),
        ({"products_include": ["P9"]}, False),
        ({"products_exclude": ["SOCK-1"]}, False),
        ({"products_exclude": ["P9"]}, True),
        ({"collections_include": ["hats"]}, True),
        ({"collections_include": ["summer"]}, False),
        ({"collections_exclude": ["winter"]}, False),
        ({"platforms": ["shopify", "woocommerce"]}, True),
        ({"platforms": ["woocommerce"]}, False),
        ({"connection_ids": [CART["connection_id"]]}, True),
        ({"connection_ids": [str(uuid.uuid4())]}, False),
        ({"cart_value_min": 50, "item_count_max": 5, "products_include": ["P1"]}, True),
        ({"products_include": "P1"}, False),  # unreadable: matches nothing
    ],
)
def test_conditions(conditions, expected):
    assert campaign_matches(conditions, CART) is expected


def test_item_count_falls_back_to_quantities():
    cart = {**CART, "item_count": None}
    assert campaign_matches({"item_count_min": 3, "item_count_max": 3}, cart)


@pytest.mark.parametrize(
    ("conditions", "facts", "expected"),
    [
        ({"customer_type": "returning"}, {"returning": True}, True),
        ({"customer_type": "returning"}, {"returning": False}, False),
        ({"customer_type": "new"}, {"returning": False}, True),
        ({"customer_type": "new"}, None, False),  # unknown: not assumed
        ({"abandonment": "repeat"}, {"repeat": True}, True),
        ({"abandonment": "first"}, {"repeat": True}, False),
        ({"abandonment": "first"}, {"repeat": False}, True),
    ],
)
def test_customer_conditions(conditions, facts, expected):
    assert campaign_matches(conditions, CART, facts) is expected


def test_variants_are_deterministic_and_weighted():
    step = {**STEP, "variants": [{"name": "a", "weight": 3}, {"name": "b", "weight": 1}]}
    org, campaign = uuid.uuid4(), uuid.uuid4()
    picks = Counter(
        choose_variant(org, campaign, 0, step, f"cart:{i}")["name"] for i in range(4000)
    )
    assert 2800 < picks["a"] < 3200 and picks["a"] + picks["b"] == 4000
    assert choose_variant(org, campaign, 0, step, "cart:7") == choose_variant(
        org, campaign, 0, step, "cart:7"
    )
    assert choose_variant(org, campaign, 0, STEP, "cart:7") is None


@pytest.fixture(autouse=True)
def _no_due_leftovers(db):
    """Rows left 'scheduled' here would be picked up by another test's scheduler tick
    (ticks are cross-org): park them when the test ends."""
    with db.system() as conn:
        started = conn.execute("SELECT clock_timestamp() AS t").fetchone()["t"]
    yield
    with db.system() as conn:
        conn.execute(
            "UPDATE app.outbox SET status = 'cancelled', reason = 'test ended' "
            "WHERE status IN ('scheduled', 'enqueued') AND created_at >= %s",
            (started,),
        )


# --- with the database --------------------------------------------------------------------


def campaign(db, org_id, *, priority=0, conditions=None, steps=None, cooldown=None):
    with db.system() as conn:
        return conn.execute(
            "INSERT INTO app.campaigns (org_id, name, status, priority, trigger_conditions, "
            "sequence_steps, reentry_cooldown_seconds) VALUES (%s, %s, 'active', %s, %s, %s, "
            "%s) RETURNING campaign_id",
            (
                org_id,
                uuid.uuid4().hex[:6],
                priority,
                Jsonb(conditions or {}),
                Jsonb(steps or [STEP]),
                cooldown,
            ),
        ).fetchone()["campaign_id"]


def abandoned_cart(
    db, org_id, email="jane@example.com", *, phone=None, ago=0, connection_id=None, total=71.82
):
    """An abandoned cart (``ago`` seconds ago), linked to the customer of ``email``."""
    with db.system() as conn:
        customer = conn.execute(
            "INSERT INTO app.customers (org_id, email) VALUES (%s, %s) ON CONFLICT "
            "(org_id, email) WHERE email IS NOT NULL DO UPDATE SET email = EXCLUDED.email "
            "RETURNING customer_id",
            (org_id, email),
        ).fetchone()["customer_id"]
        return conn.execute(
            "INSERT INTO app.carts (org_id, platform, external_id, customer_id, email, phone, "
            "total_price, currency, line_items, status, connection_id, abandoned_at, "
            "last_activity_at) VALUES (%s, 'custom', %s, %s, %s, %s, %s, 'USD', %s, "
            "'abandoned', %s, now() - make_interval(secs => %s), "
            "now() - make_interval(secs => %s)) RETURNING *",
            (
                org_id,
                uuid.uuid4().hex,
                customer,
                email,
                phone,
                total,
                Jsonb(ITEMS),
                connection_id,
                ago,
                ago + 1800,
            ),
        ).fetchone()


def enroll(db, cart) -> dict | None:
    with db.system() as conn:
        enrollment.enroll(conn, dict(cart))
        return conn.execute(
            "SELECT campaign_id, enrolled_at FROM app.enrollments WHERE cart_id = %s",
            (cart["cart_id"],),
        ).fetchone()


def test_priority_picks_one_campaign(db, org):
    campaign(db, org.org_id, priority=50, conditions={"cart_value_min": 1000})
    high = campaign(db, org.org_id, priority=10)
    campaign(db, org.org_id, priority=1)
    cart = abandoned_cart(db, org.org_id)
    assert enroll(db, cart)["campaign_id"] == high
    with db.system() as conn:
        assert enrollment.enroll(conn, dict(cart)) == 0  # a cart is enrolled once


def test_reentry_cooldown_per_customer(db, org):
    guarded = campaign(db, org.org_id, priority=10, cooldown=7 * 24 * 3600)
    fallback = campaign(db, org.org_id, priority=1)
    assert enroll(db, abandoned_cart(db, org.org_id, "loyal@example.com"))["campaign_id"] == guarded
    # The same customer abandons again: the guarded campaign is in cooldown, the next matches.
    assert (
        enroll(db, abandoned_cart(db, org.org_id, "loyal@example.com"))["campaign_id"] == fallback
    )
    # Another customer is not affected.
    assert enroll(db, abandoned_cart(db, org.org_id, "new@example.com"))["campaign_id"] == guarded
    # Once the cooldown has passed, the customer may enter again.
    with db.system() as conn:
        conn.execute(
            "UPDATE app.enrollments SET enrolled_at = enrolled_at - interval '8 days' "
            "WHERE org_id = %s",
            (org.org_id,),
        )
    assert enroll(db, abandoned_cart(db, org.org_id, "loyal@example.com"))["campaign_id"] == guarded


def test_first_versus_repeat_abandonment(db, org):
    repeat = campaign(db, org.org_id, priority=10, conditions={"abandonment": "repeat"})
    first = campaign(db, org.org_id, priority=1, conditions={"abandonment": "first"})
    earlier = abandoned_cart(db, org.org_id, "twice@example.com", ago=86400)
    assert enroll(db, earlier)["campaign_id"] == first
    assert enroll(db, abandoned_cart(db, org.org_id, "twice@example.com"))["campaign_id"] == repeat
    assert enroll(db, abandoned_cart(db, org.org_id, "once@example.com"))["campaign_id"] == first


def test_new_versus_returning_customer(db, org):
    returning = campaign(db, org.org_id, priority=10, conditions={"customer_type": "returning"})
    new = campaign(db, org.org_id, priority=1, conditions={"customer_type": "new"})
    with db.system() as conn:
        conn.execute(
            "INSERT INTO app.orders (org_id, platform, external_id, email, total_price, "
            "ordered_at) VALUES (%s, 'custom', %s, 'back@example.com', 10, "
            "now() - interval '60 days')",
            (org.org_id, uuid.uuid4().hex),
        )
    assert (
        enroll(db, abandoned_cart(db, org.org_id, "back@example.com"))["campaign_id"] == returning
    )
    assert enroll(db, abandoned_cart(db, org.org_id, "first@example.com"))["campaign_id"] == new


def test_carts_of_inactive_connections_are_not_enrolled(db, org):
    campaign(db, org.org_id)
    with db.system() as conn:
        connection_id = conn.execute(
            "INSERT INTO app.connections (org_id, platform, shop_domain, secret_ciphertext, "
            "status) VALUES (%s, 'shopify', %s, '\\x00', 'disabled') RETURNING connection_id",
            (org.org_id, f"{uuid.uuid4().hex[:8]}.myshopify.com"),
        ).fetchone()["connection_id"]
    assert enroll(db, abandoned_cart(db, org.org_id, connection_id=connection_id)) is None
    with db.system() as conn:
        conn.execute(
            "UPDATE app.connections SET status = 'active' WHERE connection_id = %s",
            (connection_id,),
        )
    assert enroll(db, abandoned_cart(db, org.org_id, connection_id=connection_id)) is not None


def test_outbox_rows_carry_channel_recipient_and_variant(db, org):
    steps = [
        {
            **STEP,
            "variants": [
                {"name": "warm", "subject": "Warm {{ store.name }}", "weight": 1},
                {"name": "cool", "subject": "Cool", "weight": 1},
            ],
        },
        {
            "channel": "sms",
            "delay_seconds": 3600,
            "template": "sms_reminder",
            "discount": {"type": "percentage", "value": 10, "expires_in_hours": 72},
        },
    ]
    campaign_id = campaign(db, org.org_id, steps=steps)
    cart = abandoned_cart(db, org.org_id, "Jane.V@Example.com", phone="+1 (212) 555-0123")
    enroll(db, cart)
    with db.system() as conn:
        rows = conn.execute(
            "SELECT * FROM app.outbox WHERE cart_id = %s ORDER BY step_index", (cart["cart_id"],)
        ).fetchall()
    assert [(r["channel"], r["recipient"]) for r in rows] == [
        ("email", "jane.v@example.com"),
        ("sms", "+12125550123"),
    ]
    # Assigned by customer (the cart's email), not by cart: see tests/test_experiments.py.
    expected = choose_variant(org.org_id, campaign_id, 0, steps[0], "email:jane.v@example.com")
    assert rows[0]["variant"] == expected["name"] and rows[0]["subject"] == expected["subject"]
    assert rows[1]["variant"] is None and rows[1]["subject"] is None
    assert rows[1]["due_at"] - rows[0]["due_at"] == timedelta(hours=1)


# --- the API ------------------------------------------------------------------------------


def body(**overrides):
    return {"name": "Rules", "sequence_steps": [STEP], **overrides}


def test_api_stores_the_new_fields(client, org):
    conditions = {
        "cart_value_min": 50,
        "item_count_min": 1,
        "item_count_max": 10,
        "products_include": ["P1", "SKU-2"],
        "collections_exclude": ["gift-cards"],
        "customer_type": "returning",
        "abandonment": "first",
        "platforms": ["shopify"],
        "connection_ids": [CART["connection_id"]],
    }
    steps = [
        STEP,
        {"channel": "sms", "delay_seconds": 86400, "template": "sms_reminder"},
        {
            "channel": "email",
            "delay_seconds": 259200,
            "subject": "10% off",
            "template": "cart_reminder_discount",
            "discount": {"type": "percentage", "value": 10, "expires_in_hours": 72},
        },
        {"channel": "push", "delay_seconds": 600, "template": "push_reminder"},
    ]
    r = client.post(
        "/api/v1/campaigns",
        headers=org.headers,
        json=body(
            trigger_conditions=conditions, sequence_steps=steps, reentry_cooldown_seconds=86400
        ),
    )
    assert r.status_code == 201, r.get_json()
    created = r.get_json()
    assert created["trigger_conditions"] == conditions
    assert created["sequence_steps"] == steps
    assert created["reentry_cooldown_seconds"] == 86400

    url = f"/api/v1/campaigns/{created['campaign_id']}"
    patched = client.patch(url, headers=org.headers, json={"reentry_cooldown_seconds": 0})
    assert patched.status_code == 200 and patched.get_json()["reentry_cooldown_seconds"] is None
    assert patched.get_json()["trigger_conditions"] == conditions


@pytest.mark.parametrize(
    ("overrides", "where"),
    [
        ({"trigger_conditions": {"item_count_min": 5, "item_count_max": 2}}, "trigger_conditions"),
        ({"trigger_conditions": {"item_count_min": -1}}, "trigger_conditions.item_count_min"),
        ({"trigger_conditions": {"products_include": []}}, "trigger_conditions.products_include"),
        ({"trigger_conditions": {"products_include": "P1"}}, "trigger_conditions.products_include"),
        (
            {"trigger_conditions": {"products_include": ["P1"], "products_exclude": ["P1"]}},
            "trigger_conditions",
        ),
        ({"trigger_conditions": {"customer_type": "vip"}}, "trigger_conditions.customer_type"),
        ({"trigger_conditions": {"abandonment": "third"}}, "trigger_conditions.abandonment"),
        ({"trigger_conditions": {"connection_ids": ["nope"]}}, "trigger_conditions.connection_ids"),
        ({"reentry_cooldown_seconds": -5}, "reentry_cooldown_seconds"),
        ({"sequence_steps": [{**STEP, "subject": None}]}, "sequence_steps.0"),
        (
            {"sequence_steps": [{k: v for k, v in STEP.items() if k != "subject"}]},
            "sequence_steps.0",
        ),
        (
            {"sequence_steps": [{**STEP, "discount": {"type": "percentage", "value": 150}}]},
            "sequence_steps.0.discount",
        ),
        (
            {"sequence_steps": [{**STEP, "discount": {"type": "bogo", "value": 1}}]},
            "sequence_steps.0.discount.type",
        ),
        (
            {"sequence_steps": [{**STEP, "discount": {"type": "fixed_amount"}}]},
            "sequence_steps.0.discount",
        ),
        (
            {
                "sequence_steps": [
                    {**STEP, "discount": {"type": "percentage", "value": 10, "expires_in_hours": 0}}
                ]
            },
            "sequence_steps.0.discount.expires_in_hours",
        ),
        (
            {
                "sequence_steps": [
                    {
                        "channel": "sms",
                        "delay_seconds": 0,
                        "template": "sms_reminder",
                        "variants": [{"name": "a", "subject": "x"}],
                    }
                ]
            },
            "sequence_steps.0",
        ),
    ],
)
def test_api_validation_of_new_fields(client, db, org, overrides, where):
    r = client.post("/api/v1/campaigns", headers=org.headers, json=body(**overrides))
    assert r.status_code == 400, r.get_json()
    error = r.get_json()["error"]
    assert error["code"] == "validation_error"
    locs = [".".join(str(p) for p in e["loc"]) for e in error["details"]["errors"]]
    assert any(loc == where or loc.startswith(where + ".") for loc in locs), locs
    with db.tenant(org.org_id) as conn:
        assert conn.execute("SELECT count(*) AS n FROM app.campaigns").fetchone()["n"] == 0


def test_settings_api_compliance_fields(client, org):
    r = client.patch(
        "/api/v1/settings",
        headers=org.headers,
        json={
            "quiet_hours": {
                "start": "09:00",
                "end": "20:00",
                "regions": {
                    "US-FL": {"start": "08:00", "end": "20:00"},
                    "FR": {"start": "10:00", "end": "19:00"},
                },
            },
            "frequency_caps": {"sms": 7200},
            "email_consent_policy": "soft_opt_in",
            "store_timezone": "Europe/Paris",
            "sender_identities": {
                "email": {"from_name": "Outfitters", "from_email": "hi@example.com"},
                "sms": {"from_number": "+12125550100"},
            },
            "sms_help_text": "Outfitters: reply STOP to stop.",
        },
    )
    assert r.status_code == 200, r.get_json()
    got = r.get_json()
    assert got["frequency_caps"] == {"email": 57600, "sms": 7200, "push": 86400}
    assert got["quiet_hours"]["regions"]["FR"] == {"start": "10:00", "end": "19:00"}
    assert got["sender_identities"] == {
        "email": {"from_name": "Outfitters", "from_email": "hi@example.com"},
        "sms": {"from_number": "+12125550100"},
    }
    reset = client.patch("/api/v1/settings", headers=org.headers, json={"quiet_hours": None})
    assert reset.get_json()["quiet_hours"] == {
        "start": "08:00",
        "end": "21:00",
        "regions": {},
        "channels": ["sms", "push"],
    }


@pytest.mark.parametrize(
    "patch",
    [
        {"quiet_hours": {"start": "8am", "end": "21:00"}},
        {"quiet_hours": {"start": "09:00", "end": "09:00"}},
        {"quiet_hours": {"start": "24:00", "end": "09:00"}},
        {
            "quiet_hours": {
                "start": "08:00",
                "end": "21:00",
                "regions": {"Florida": {"start": "08:00", "end": "20:00"}},
            }
        },
        {"frequency_caps": {"sms": -1}},
        {"frequency_caps": {"fax": 10}},
        {"email_consent_policy": "implied"},
        {"store_timezone": "Mars/Olympus"},
        {
            "sender_identities": {
                "sms": {"from_number": "+12125550100", "messaging_service_sid": "MG" + "0" * 32}
            }
        },
        {"sender_identities": {"email": {"from_email": "not an email"}}},
    ],
)
def test_settings_api_rejects_bad_compliance_fields(client, org, patch):
    before = client.get("/api/v1/settings", headers=org.headers).get_json()
    r = client.patch("/api/v1/settings", headers=org.headers, json=patch)
    assert r.status_code == 400, r.get_json()
    assert client.get("/api/v1/settings", headers=org.headers).get_json() == before

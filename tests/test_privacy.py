"""GDPR: erasure leaves no trace of the subject anywhere, export returns what is held,
retention purges old raw payloads.

The subject is seeded through the real Shopify webhooks (signed fixtures) plus delivery rows,
then looked for in every text and JSON column of every table of the app and raw schemas,
found by introspection, in any letter case and any phone formatting.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta

import pytest
from conftest import fixture_bytes, fixture_headers, fixture_vectors, shopify_hmac
from psycopg import sql
from psycopg.types.json import Jsonb

from cartrecovery import suppressions, tenancy
from cartrecovery.events import store_event
from cartrecovery.privacy import erasure, retention

SHOP = "example-outfitters.myshopify.com"
SECRET = fixture_vectors()["shopify"]["client_secret"]
EMAIL = "jane.doe@example.com"
PHONE = "+15035550123"
PHONE_DIGITS = "5035550123"
OTHER_EMAIL = "max.other@example.org"
OTHER_PHONE = "+15035550999"
ROUTES = {
    "shopify_checkouts_create.json": "/api/webhooks/shopify/checkout-create",
    "shopify_orders_create.json": "/api/webhooks/shopify/order-create",
}


def q(db, statement, params=()):
    with db.system() as conn:
        cur = conn.execute(statement, params)
        return cur.fetchall() if cur.description else cur.rowcount


def connect_shop(db, key, org_id):
    with db.system() as conn:
        conn.execute(
            "UPDATE app.connections SET status = 'removed' WHERE platform = 'shopify' "
            "AND shop_domain = %s AND org_id <> %s",
            (SHOP, org_id),
        )
    return tenancy.add_connection(db, key, org_id, "shopify", SHOP, SECRET)


def deliver(client, name, body=None):
    headers = fixture_headers("shopify", name)
    if body is not None:
        headers["X-Shopify-Hmac-Sha256"] = shopify_hmac(SECRET, body)
        headers["X-Shopify-Webhook-Id"] = str(uuid.uuid4())
    response = client.post(
        ROUTES[name], data=body if body is not None else fixture_bytes(name), headers=headers
    )
    assert response.status_code < 300, response.get_data(as_text=True)


def other_checkout() -> bytes:
    """The same checkout fixture for another shopper (other token, email, phone, names)."""
    payload = json.loads(fixture_bytes("shopify_checkouts_create.json"))
    text = json.dumps(payload)
    text = (
        text.replace(EMAIL, OTHER_EMAIL)
        .replace(PHONE, OTHER_PHONE)
        .replace("Jane", "Max")
        .replace("123 Example Street", "9 Other Road")
        .replace("b7d3f0a1c2e94f5a8b6c7d8e9f0a1b2c", "f" * 32)
        .replace("Z2NwLXVzLWVhc3QxOjAxSFRFU1RDQVJUMDAwMDAwMDAwMDAwMDA", "OTHERCARTTOKEN")
    )
    payload = json.loads(text)
    payload["id"] = 35099999999999
    return json.dumps(payload).encode()


def seed_delivery_rows(db, org_id, cart_id, recipient, phone):
    """What delivery and provider callbacks write for a cart: messages, the local mailbox,
    events, a suppression."""
    with db.system() as conn:
        campaign_id = conn.execute(
            "INSERT INTO app.campaigns (org_id, name, status) VALUES (%s, %s, 'active') "
            "RETURNING campaign_id",
            (org_id, f"c-{uuid.uuid4().hex[:6]}"),
        ).fetchone()["campaign_id"]
        ids = []
        for step, (channel, to) in enumerate((("email", recipient.upper()), ("sms", phone))):
            message_id = conn.execute(
                "INSERT INTO app.outbox (org_id, cart_id, campaign_id, step_index, channel, "
                "recipient, subject, due_at, status, sent_at) VALUES (%s, %s, %s, %s, %s, %s, "
                "%s, now(), 'sent', now()) RETURNING message_id",
                (org_id, cart_id, campaign_id, step, channel, to, f"Jane, for {recipient}"),
            ).fetchone()["message_id"]
            ids.append(message_id)
            conn.execute(
                "INSERT INTO app.local_mailbox (org_id, message_id, channel, recipient, subject, "
                "body_html, body_text) VALUES (%s, %s, %s, %s, 'Hi', %s, %s)",
                (org_id, message_id, channel, to, f"<p>Hello {to}</p>", f"Hello {to}"),
            )
        conn.execute(
            "INSERT INTO app.message_events (org_id, event_key, message_id, cart_id, event_type, "
            "url, occurred_at, payload) VALUES (%s, %s, %s, %s, 'click', %s, now(), %s)",
            (
                org_id,
                f"sg:{uuid.uuid4().hex}",
                ids[0],
                cart_id,
                "https://shop/r/tok",
                Jsonb({"email": recipient, "event": "click", "ip": "203.0.113.9"}),
            ),
        )
        conn.execute(
            "INSERT INTO app.consents (org_id, channel, address, status, source, wording, ip, "
            "user_agent) VALUES (%s, 'email', %s, 'granted', 'checkout', 'Send me offers', "
            "'203.0.113.9', 'Mozilla/5.0'), (%s, 'sms', %s, 'granted', 'checkout', "
            "'Text me', '203.0.113.9', 'Mozilla/5.0')",
            (org_id, recipient, org_id, phone),
        )
        conn.execute(
            "INSERT INTO app.push_subscriptions (org_id, cart_id, email, endpoint, p256dh, auth) "
            "VALUES (%s, %s, %s, %s, 'p256', 'auth')",
            (org_id, cart_id, recipient, f"https://push.example/{uuid.uuid4().hex}"),
        )
        conn.execute(
            "INSERT INTO app.coupons (org_id, message_id, cart_id, code, type, value, platform) "
            "VALUES (%s, %s, %s, %s, 'percentage', 10, 'shopify')",
            (org_id, ids[0], cart_id, uuid.uuid4().hex[:10].upper()),
        )
        conn.execute(
            "INSERT INTO app.data_requests (org_id, platform, email, phone, bundle) "
            "VALUES (%s, 'shopify', %s, %s, %s)",
            (
                org_id,
                recipient,
                phone,
                Jsonb({"customer": {"email": recipient, "first_name": "Jane"}}),
            ),
        )
        conn.execute(
            "INSERT INTO app.suppressions (org_id, channel, address, reason) VALUES "
            "(%s, 'email', %s, 'unsubscribe'), (%s, 'sms', %s, 'stop')",
            (org_id, recipient.lower(), org_id, phone),
        )
    return ids


@pytest.fixture()
def seeded(db, client, runtime, org, make_org):
    """Jane and Max as shoppers of org A's Shopify store; Jane also in org B."""
    org.connection_id = connect_shop(db, runtime.encryption_key, org.org_id)
    deliver(client, "shopify_checkouts_create.json")
    deliver(client, "shopify_orders_create.json")
    deliver(client, "shopify_checkouts_create.json", other_checkout())
    carts = {
        r["email"]: r["cart_id"]
        for r in q(db, "SELECT email, cart_id FROM app.carts WHERE org_id = %s", (org.org_id,))
    }
    assert set(carts) == {EMAIL, OTHER_EMAIL}
    seed_delivery_rows(db, org.org_id, carts[EMAIL], EMAIL, PHONE)
    seed_delivery_rows(db, org.org_id, carts[OTHER_EMAIL], OTHER_EMAIL, OTHER_PHONE)
    # A tracking event whose payload writes the phone in national format and the email in
    # capitals, nested in a list: the scrub must find both.
    with db.tenant(org.org_id) as conn:
        store_event(
            conn,
            org_id=org.org_id,
            source="track",
            topic="cart.update",
            dedup_key=uuid.uuid4().hex,
            cart_id=carts[EMAIL],
            payload={
                "cart_data": {"contacts": [{"mail": EMAIL.upper()}, {"tel": "(503) 555-0123"}]}
            },
            headers={
                "X-Forwarded-For": "198.51.100.7",
                "X-Note": f"for {EMAIL}",
                "X-Comment": "call 503.555.0123 about order 77812345",
            },
        )
    other = make_org("other")
    with db.tenant(other.org_id) as conn:
        conn.execute(
            "INSERT INTO app.customers (org_id, email, phone) VALUES (%s, %s, %s)",
            (other.org_id, EMAIL, PHONE),
        )
        store_event(
            conn,
            org_id=other.org_id,
            source="track",
            topic="cart.update",
            dedup_key=uuid.uuid4().hex,
            payload={"email": EMAIL, "phone": PHONE},
        )
    org.carts = carts
    org.other = other
    return org


def text_columns(db):
    """Every text-like and JSON column of every table in app and raw (partitions included
    through their parents), by introspection."""
    return q(
        db,
        """
        SELECT c.table_schema, c.table_name, c.column_name
        FROM information_schema.columns c
        JOIN information_schema.tables t USING (table_schema, table_name)
        JOIN pg_class pc ON pc.relname = c.table_name
        JOIN pg_namespace pn ON pn.oid = pc.relnamespace AND pn.nspname = c.table_schema
        WHERE c.table_schema IN ('app', 'raw') AND t.table_type = 'BASE TABLE'
          AND NOT pc.relispartition
          AND (c.data_type IN ('text', 'character varying', 'json', 'jsonb', 'USER-DEFINED')
               OR c.data_type = 'ARRAY')
    """,
    )


def find_everywhere(db, org_id, email, phone_digits):
    """(table, column, count) wherever the email (any case) or the phone (any formatting)
    still appears in rows of ``org_id``."""
    hits = []
    with db.system() as conn:
        for col in text_columns(db):
            table = sql.Identifier(col["table_schema"], col["table_name"])
            column = sql.Identifier(col["column_name"])
            has_org = q(
                db,
                "SELECT 1 FROM information_schema.columns WHERE table_schema = %s "
                "AND table_name = %s AND column_name = 'org_id'",
                (col["table_schema"], col["table_name"]),
            )
            where = sql.SQL("org_id = %s AND ") if has_org else sql.SQL("")
            params = [org_id] if has_org else []
            count = conn.execute(
                sql.SQL("SELECT count(*) AS n FROM {t} WHERE ").format(t=table)
                + where
                + sql.SQL(
                    "({c}::text ILIKE %s OR regexp_replace({c}::text, '[^0-9]', '', 'g') LIKE %s)"
                ).format(c=column),
                [*params, f"%{email}%", f"%{phone_digits}%"],
            ).fetchone()["n"]
            if count:
                hits.append(
                    (f"{col['table_schema']}.{col['table_name']}", col["column_name"], count)
                )
    return hits


def test_erasure_leaves_no_trace_and_touches_nobody_else(db, client, seeded):
    before = find_everywhere(db, seeded.org_id, EMAIL, PHONE_DIGITS)
    tables_before = {t for t, _, _ in before}
    # The seed really spread the subject around, so the search can fail.
    assert {
        "app.customers",
        "app.carts",
        "app.orders",
        "app.outbox",
        "app.local_mailbox",
        "app.message_events",
        "app.suppressions",
        "raw.events",
        "app.consents",
        "app.push_subscriptions",
        "app.data_requests",
    } <= tables_before
    other_before = find_everywhere(db, seeded.org_id, OTHER_EMAIL, "5035550999")
    counts_before = q(
        db, "SELECT count(*) AS n FROM app.carts WHERE org_id = %s", (seeded.org_id,)
    )[0]["n"]

    response = client.post(
        "/api/v1/privacy/erasure", json={"email": "Jane.Doe@Example.com"}, headers=seeded.headers
    )
    assert response.status_code == 200, response.get_data(as_text=True)
    body = response.get_json()
    assert body["counts"]["app.customers"] >= 1 and body["counts"]["raw.events"] >= 1
    assert body["providers"]["twilio"] == "not_applicable"

    assert find_everywhere(db, seeded.org_id, EMAIL, PHONE_DIGITS) == []
    # The names and street address from the Shopify payloads are gone too.
    assert find_everywhere(db, seeded.org_id, "123 Example Street", "no-digits") == []
    # So are the shopper's IP kept with the tracking call and a phone inside free text.
    assert find_everywhere(db, seeded.org_id, "198.51.100.7", "no-digits") == []
    # Max (same org) and org B are untouched.
    assert find_everywhere(db, seeded.org_id, OTHER_EMAIL, "5035550999") == other_before
    assert len(find_everywhere(db, seeded.other.org_id, EMAIL, PHONE_DIGITS)) >= 3
    # Anonymised, not deleted: analytics keep their counts.
    assert (
        q(db, "SELECT count(*) AS n FROM app.carts WHERE org_id = %s", (seeded.org_id,))[0]["n"]
        == counts_before
    )
    cart = q(
        db,
        "SELECT * FROM app.carts WHERE org_id = %s AND cart_id = %s",
        (seeded.org_id, seeded.carts[EMAIL]),
    )[0]
    assert cart["email"] is None and cart["restore_url"] is None
    assert cart["total_price"] > 0 and cart["status"] == "converted"
    # The erasure is recorded without PII.
    record = q(db, "SELECT * FROM app.erasure_requests WHERE org_id = %s", (seeded.org_id,))
    assert len(record) == 1 and record[0]["requested_by"].startswith("api_key:")


def test_erased_subject_stays_suppressed(db, seeded):
    with db.tenant(seeded.org_id) as conn:
        assert suppressions.is_suppressed(conn, seeded.org_id, "email", EMAIL) == "unsubscribe"
        erasure.erase_subject(
            conn, seeded.org_id, phone="(503) 555-0123", reason="test", requested_by="cli:test"
        )
    assert find_everywhere(db, seeded.org_id, EMAIL, PHONE_DIGITS) == []
    with db.tenant(seeded.org_id) as conn:
        # Found by the phone, the subject's email went too: both stay suppressed, as hashes.
        assert (
            suppressions.is_suppressed(conn, seeded.org_id, "email", EMAIL.upper()) == "unsubscribe"
        )
        assert suppressions.is_suppressed(conn, seeded.org_id, "sms", "+1 503-555-0123") == "stop"
        assert (
            suppressions.is_suppressed(conn, seeded.org_id, "email", OTHER_EMAIL) == "unsubscribe"
        )
        assert suppressions.is_suppressed(conn, seeded.org_id, "email", "new@example.com") is None


def test_export_contains_the_subject_and_nobody_else(db, client, seeded):
    response = client.get(
        "/api/v1/privacy/export", query_string={"email": EMAIL}, headers=seeded.headers
    )
    assert response.status_code == 200
    data = response.get_json()
    assert [c["email"] for c in data["customers"]] == [EMAIL]
    assert [c["cart_id"] for c in data["carts"]] == [str(seeded.carts[EMAIL])]
    assert data["carts"][0]["line_items"][0]["title"] == "Merino Wool Beanie"
    assert len(data["orders"]) == 1 and len(data["messages"]) == 2
    assert data["message_events"][0]["payload"]["email"] == EMAIL
    assert {s["reason"] for s in data["suppressions"]} == {"unsubscribe", "stop"}
    assert {c["channel"] for c in data["consents"]} == {"email", "sms"}
    assert data["consents"][0]["ip"] == "203.0.113.9"
    assert len(data["push_subscriptions"]) == 1 and len(data["coupons"]) == 1
    assert data["data_requests"][0]["bundle"]["customer"]["email"] == EMAIL
    topics = {e["topic"] for e in data["raw_events"]}
    assert "cart.update" in topics and len(data["raw_events"]) >= 3
    assert OTHER_EMAIL not in json.dumps(data)


def test_export_has_the_same_keys_for_an_unknown_subject(db, client, seeded):
    def export(email):
        response = client.get(
            "/api/v1/privacy/export", query_string={"email": email}, headers=seeded.headers
        )
        assert response.status_code == 200
        return response.get_json()

    known, unknown = export(EMAIL), export("nobody@example.com")
    assert set(unknown) == set(known)
    assert {"consents", "push_subscriptions", "coupons", "data_requests"} <= set(unknown)
    assert all(
        value == [] for key, value in unknown.items() if key not in ("subject", "exported_at")
    )


def test_privacy_endpoints_validate_and_need_admin(db, client, org):
    bad = client.post("/api/v1/privacy/erasure", json={}, headers=org.headers)
    assert bad.status_code == 400 and bad.get_json()["error"]["code"]
    bad = client.post(
        "/api/v1/privacy/erasure", json={"email": "not-an-email"}, headers=org.headers
    )
    assert bad.status_code == 400
    assert client.get("/api/v1/privacy/export", headers=org.headers).status_code == 400
    read_key = tenancy.create_api_key(db, org.org_id, "read")
    denied = client.get(
        "/api/v1/privacy/export",
        query_string={"email": EMAIL},
        headers={"Authorization": f"Bearer {read_key}"},
    )
    assert denied.status_code == 403
    assert (
        q(db, "SELECT count(*) AS n FROM app.erasure_requests WHERE org_id = %s", (org.org_id,))[0][
            "n"
        ]
        == 0
    )


def test_erasure_removes_the_sendgrid_contact(db, client, seeded, app, recorder):
    recorder.respond(
        "POST",
        "/v3/marketing/contacts/search/emails",
        200,
        {"result": {EMAIL: {"contact": {"id": "sg-contact-1", "email": EMAIL}}}},
    )
    recorder.respond("DELETE", "/v3/marketing/contacts", 202, {"job_id": "job-9"})
    rt = app.extensions["cartrecovery"]
    from cartrecovery.settings import with_overrides

    rt.settings = with_overrides(
        rt.settings, sendgrid_api_key="SG.k", sendgrid_base_url=recorder.url
    )
    response = client.post("/api/v1/privacy/erasure", json={"email": EMAIL}, headers=seeded.headers)
    assert response.status_code == 200
    search = recorder.find("POST", "/v3/marketing/contacts/search/emails")
    assert json.loads(search[0]["body"]) == {"emails": [EMAIL]}
    assert search[0]["headers"]["Authorization"] == "Bearer SG.k"
    delete = recorder.find("DELETE", "/v3/marketing/contacts")
    assert "ids=sg-contact-1" in delete[0]["path"]
    assert response.get_json()["providers"]["sendgrid"]["status"] == "deleted"


def test_connection_erasure_removes_what_the_store_sent(db, seeded):
    with db.tenant(seeded.org_id) as conn:
        # A customer also known from another channel stays.
        result = erasure.erase_connection_data(
            conn, seeded.org_id, seeded.connection_id, reason="shopify shop/redact"
        )
    assert result["counts"]["app.carts"] == 2
    for table in (
        "app.carts",
        "app.orders",
        "app.customers",
        "app.outbox",
        "app.local_mailbox",
        "app.message_events",
    ):
        assert (
            q(
                db,
                sql.SQL("SELECT count(*) AS n FROM {} WHERE org_id = %s").format(sql.SQL(table)),
                (seeded.org_id,),
            )[0]["n"]
            == 0
        ), table
    # Raw events from the store are gone; the tracking event about the cart too.
    assert (
        q(db, "SELECT count(*) AS n FROM raw.events WHERE org_id = %s", (seeded.org_id,))[0]["n"]
        == 0
    )
    assert find_everywhere(db, seeded.org_id, EMAIL, PHONE_DIGITS) == []
    assert (
        q(db, "SELECT count(*) AS n FROM app.orgs WHERE org_id = %s", (seeded.org_id,))[0]["n"] == 1
    )
    with db.tenant(seeded.org_id) as conn:
        assert suppressions.is_suppressed(conn, seeded.org_id, "email", EMAIL) == "unsubscribe"
    assert len(find_everywhere(db, seeded.other.org_id, EMAIL, PHONE_DIGITS)) >= 3


def test_retention_purges_old_raw_payloads(db, org, make_org):
    strict = make_org("strict")
    with db.system() as conn:
        conn.execute(
            "UPDATE app.orgs SET settings = settings || '{\"raw_retention_days\": 30}' "
            "WHERE org_id = %s",
            (strict.org_id,),
        )
    now = datetime.now(UTC)
    for target in (org, strict):
        with db.tenant(target.org_id) as conn:
            for days in (10, 100, 400):
                store_event(
                    conn,
                    org_id=target.org_id,
                    source="track",
                    topic="cart.update",
                    dedup_key=uuid.uuid4().hex,
                    payload={"email": EMAIL},
                    headers={"X-Forwarded-For": "198.51.100.7"},
                )
                conn.execute(
                    "UPDATE raw.events SET received_at = %s WHERE org_id = %s "
                    "AND received_at > now() - interval '1 minute'",
                    (now - timedelta(days=days), target.org_id),
                )

    def remaining(target):
        return sorted(
            r["age"]
            for r in q(
                db,
                "SELECT extract(day FROM %s - received_at)::int AS age FROM raw.events "
                "WHERE org_id = %s AND payload ? 'email'",
                (now, target.org_id),
            )
        )

    purged = retention.purge_raw_events(db, now=now)
    assert purged >= 3  # org: the 400-day event; strict: 100 and 400 days
    assert remaining(org) == [10, 100]
    assert remaining(strict) == [10]
    assert (
        q(
            db,
            "SELECT headers FROM raw.events WHERE org_id = %s AND payload = '{\"purged\": true}'",
            (strict.org_id,),
        )[0]["headers"]
        == {}
    )
    assert retention.purge_raw_events(db, now=now) == 0
    assert retention.purge_raw_events_if_due(db, now=now) == 0
    assert retention.purge_raw_events_if_due(db, now=now) == 0  # throttled: not even run

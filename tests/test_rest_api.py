"""REST API: settings, campaigns, carts, analytics and the OpenAPI document, on real Postgres.

Carts, orders and messages are inserted with plain SQL inside the org's tenant transaction,
so these tests do not depend on the ingest or delivery code.
"""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import pytest
from psycopg.types.json import Jsonb

from cartrecovery import tenancy
from cartrecovery.org_settings import DEFAULTS

STEP = {
    "channel": "email",
    "delay_seconds": 3600,
    "subject": "You left {{ cart.item_count }} items",
    "template": "cart_reminder",
}


def campaign_body(**overrides):
    body = {"name": "Win back", "sequence_steps": [dict(STEP)]}
    body.update(overrides)
    return body


def assert_error(response, status: int, code: str | None = None):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"}
    assert set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["message"]
    if code:
        assert body["error"]["code"] == code
    return body["error"]


def insert_cart(db, org_id, **values) -> uuid.UUID:
    row = {
        "platform": "custom",
        "external_id": uuid.uuid4().hex,
        "email": None,
        "currency": "USD",
        "total_price": 10,
        "status": "active",
        "abandoned_at": None,
        "created_at": datetime.now(UTC),
    }
    row.update(values)
    columns = ", ".join(row)
    marks = ", ".join(f"%({k})s" for k in row)
    with db.tenant(org_id) as conn:
        return conn.execute(
            f"INSERT INTO app.carts (org_id, {columns}) VALUES (%(org_id)s, {marks}) "
            "RETURNING cart_id",
            {**row, "org_id": org_id},
        ).fetchone()["cart_id"]


def insert_campaign(db, org_id, name="c") -> uuid.UUID:
    with db.tenant(org_id) as conn:
        return conn.execute(
            "INSERT INTO app.campaigns (org_id, name, status) VALUES (%s, %s, 'active') "
            "RETURNING campaign_id",
            (org_id, name),
        ).fetchone()["campaign_id"]


# --- settings ---------------------------------------------------------------------------


def test_settings_defaults_and_patch(client, org):
    got = client.get("/api/v1/settings", headers=org.headers)
    assert got.status_code == 200
    assert got.get_json()["abandonment_timeout_seconds"] == 1800
    assert got.get_json()["attribution_window_seconds"] == 432000

    patched = client.patch(
        "/api/v1/settings", headers=org.headers, json={"abandonment_timeout_seconds": 5}
    )
    assert patched.status_code == 200
    assert patched.get_json()["abandonment_timeout_seconds"] == 5
    assert patched.get_json()["attribution_window_seconds"] == 432000
    again = client.get("/api/v1/settings", headers=org.headers).get_json()
    assert again["abandonment_timeout_seconds"] == 5

    client.patch(
        "/api/v1/settings", headers=org.headers, json={"attribution_window_seconds": 86400}
    )
    reset = client.patch(
        "/api/v1/settings", headers=org.headers, json={"abandonment_timeout_seconds": None}
    )
    assert reset.get_json() == {
        **DEFAULTS,
        "abandonment_timeout_seconds": 1800,
        "attribution_window_seconds": 86400,
    }


@pytest.mark.parametrize(
    "body",
    [
        {"abandonment_timeout_seconds": 0},
        {"abandonment_timeout_seconds": 2592001},
        {"abandonment_timeout_seconds": "60"},
        {"abandonment_timeout_seconds": True},
        {"abandonment_timeout_seconds": 60.5},
        {"attribution_window_seconds": -1},
        {"quiet_hours_typo": 1},
        [1, 2],
    ],
)
def test_settings_patch_rejects_bad_input(client, org, body):
    before = client.get("/api/v1/settings", headers=org.headers).get_json()
    error = assert_error(
        client.patch("/api/v1/settings", headers=org.headers, json=body), 400, "validation_error"
    )
    assert error["details"]["errors"]
    assert client.get("/api/v1/settings", headers=org.headers).get_json() == before


def test_settings_patch_rejects_empty_and_malformed_bodies(client, org):
    assert_error(client.patch("/api/v1/settings", headers=org.headers), 400)
    assert_error(
        client.patch(
            "/api/v1/settings",
            headers=org.headers,
            data="{not json",
            content_type="application/json",
        ),
        400,
        "validation_error",
    )


def test_settings_patch_needs_admin_key(client, db, org):
    write_key = tenancy.create_api_key(db, org.org_id, "write")
    read_key = tenancy.create_api_key(db, org.org_id, "read")
    assert (
        client.get("/api/v1/settings", headers={"Authorization": f"Bearer {read_key}"}).status_code
        == 200
    )
    assert_error(
        client.patch(
            "/api/v1/settings",
            json={"abandonment_timeout_seconds": 60},
            headers={"Authorization": f"Bearer {write_key}"},
        ),
        403,
        "forbidden",
    )


def test_settings_functions_merge_json_settings(db, org):
    from cartrecovery.org_settings import get_settings, update_settings

    with db.tenant(org.org_id) as conn:
        conn.execute('UPDATE app.orgs SET settings = \'{"sms_help_text": "Help!"}\'')
        assert update_settings(conn, org.org_id, {"attribution_window_seconds": 60}) == {
            **DEFAULTS,
            "sms_help_text": "Help!",
            "abandonment_timeout_seconds": 1800,
            "attribution_window_seconds": 60,
        }
        assert get_settings(conn, org.org_id)["sms_help_text"] == "Help!"


# --- campaigns --------------------------------------------------------------------------


def test_campaign_crud(client, db, org):
    body = campaign_body(
        priority=5,
        trigger_conditions={"cart_value_min": 20, "currency": "eur"},
        experiment={"holdout_percent": 10},
    )
    body["sequence_steps"].append(
        {
            "channel": "email",
            "delay_seconds": 86400,
            "subject": "Still there?",
            "template": "<p>{{ cart.total }}</p>",
            "variants": [{"name": "a"}, {"name": "b", "subject": "Hi"}],
        }
    )
    created = client.post("/api/v1/campaigns", headers=org.headers, json=body)
    assert created.status_code == 201, created.get_json()
    campaign = created.get_json()
    cid = campaign["campaign_id"]
    assert campaign["status"] == "draft" and campaign["priority"] == 5
    assert campaign["trigger_conditions"] == {"cart_value_min": 20.0, "currency": "EUR"}

    # Stored exactly under the key names the scheduler reads; absent options stay absent.
    with db.tenant(org.org_id) as conn:
        row = conn.execute("SELECT * FROM app.campaigns WHERE campaign_id = %s", (cid,)).fetchone()
    assert row["trigger_conditions"] == {"cart_value_min": 20, "currency": "EUR"}
    assert row["sequence_steps"][0] == STEP
    assert row["sequence_steps"][1]["variants"] == [
        {"name": "a", "weight": 1.0},
        {"name": "b", "subject": "Hi", "weight": 1.0},
    ]
    assert row["experiment"] == {"holdout_percent": 10}

    listed = client.get("/api/v1/campaigns", headers=org.headers).get_json()["campaigns"]
    assert [c["campaign_id"] for c in listed] == [cid]
    assert client.get(f"/api/v1/campaigns/{cid}", headers=org.headers).get_json() == campaign

    patched = client.patch(
        f"/api/v1/campaigns/{cid}",
        headers=org.headers,
        json={
            "status": "active",
            "name": "Renamed",
            "trigger_conditions": {},
            "sequence_steps": [STEP],
        },
    )
    assert patched.status_code == 200, patched.get_json()
    after = patched.get_json()
    assert (after["status"], after["name"], after["priority"]) == ("active", "Renamed", 5)
    assert after["trigger_conditions"] == {} and after["sequence_steps"] == [STEP]
    assert after["experiment"] == {"holdout_percent": 10}

    paused = client.patch(
        f"/api/v1/campaigns/{cid}", headers=org.headers, json={"status": "paused"}
    )
    assert paused.get_json()["status"] == "paused"

    deleted = client.delete(f"/api/v1/campaigns/{cid}", headers=org.headers)
    assert deleted.status_code == 200 and deleted.get_json()["status"] == "archived"
    assert client.get("/api/v1/campaigns", headers=org.headers).get_json()["campaigns"] == []
    with_archived = client.get("/api/v1/campaigns?include_archived=true", headers=org.headers)
    assert [c["campaign_id"] for c in with_archived.get_json()["campaigns"]] == [cid]
    assert client.get(f"/api/v1/campaigns/{cid}", headers=org.headers).status_code == 200
    assert_error(
        client.patch(f"/api/v1/campaigns/{cid}", headers=org.headers, json={"status": "active"}),
        409,
        "campaign_archived",
    )
    assert client.delete(f"/api/v1/campaigns/{cid}", headers=org.headers).status_code == 200


def test_campaign_list_orders_by_priority(client, org):
    low = client.post(
        "/api/v1/campaigns", headers=org.headers, json=campaign_body(name="low")
    ).get_json()
    high = client.post(
        "/api/v1/campaigns",
        headers=org.headers,
        json=campaign_body(name="high", priority=10, status="active"),
    ).get_json()
    listed = client.get("/api/v1/campaigns", headers=org.headers).get_json()["campaigns"]
    assert [c["campaign_id"] for c in listed] == [high["campaign_id"], low["campaign_id"]]


@pytest.mark.parametrize("channel", ["sms", "push"])
def test_campaign_accepts_sms_and_push_steps(client, db, org, channel):
    step = {"channel": channel, "delay_seconds": 60, "template": f"{channel}_reminder"}
    r = client.post(
        "/api/v1/campaigns", headers=org.headers, json=campaign_body(sequence_steps=[step])
    )
    assert r.status_code == 201, r.get_json()
    assert r.get_json()["sequence_steps"] == [step]
    # An SMS has no subject: refused rather than silently dropped.
    if channel == "sms":
        error = assert_error(
            client.post(
                "/api/v1/campaigns",
                headers=org.headers,
                json=campaign_body(sequence_steps=[{**step, "subject": "Hi"}]),
            ),
            400,
        )
        assert error["details"]["errors"][0]["type"] == "subject_not_allowed"


@pytest.mark.parametrize(
    "body, where",
    [
        ({"sequence_steps": [STEP]}, "name"),
        (campaign_body(name="  "), "name"),
        (campaign_body(status="archived"), "status"),
        (campaign_body(sequence_steps=[]), "sequence_steps"),
        ({"name": "x"}, "sequence_steps"),
        (campaign_body(sequence_steps=[{**STEP, "channel": "fax"}]), "sequence_steps.0.channel"),
        (
            campaign_body(sequence_steps=[{**STEP, "delay_seconds": -1}]),
            "sequence_steps.0.delay_seconds",
        ),
        (
            campaign_body(sequence_steps=[{**STEP, "delay_seconds": "60"}]),
            "sequence_steps.0.delay_seconds",
        ),
        (campaign_body(sequence_steps=[{**STEP, "subject": ""}]), "sequence_steps.0.subject"),
        (
            campaign_body(sequence_steps=[{**STEP, "subject": "Hi {{ name"}]),
            "sequence_steps.0.subject",
        ),
        (campaign_body(sequence_steps=[{**STEP, "template": " "}]), "sequence_steps.0.template"),
        (
            campaign_body(sequence_steps=[{**STEP, "template": "<p>{% if %}</p>"}]),
            "sequence_steps.0.template",
        ),
        (
            campaign_body(sequence_steps=[{**STEP, "template": "no_such_template"}]),
            "sequence_steps.0.template",
        ),
        (campaign_body(sequence_steps=[{**STEP, "extra": 1}]), "sequence_steps.0.extra"),
        (
            campaign_body(trigger_conditions={"cart_value_min": 1, "segment": "vip"}),
            "trigger_conditions.segment",
        ),
        (
            campaign_body(trigger_conditions={"cart_value_min": 50, "cart_value_max": 10}),
            "trigger_conditions",
        ),
        (campaign_body(trigger_conditions={"currency": "dollars"}), "trigger_conditions.currency"),
        (campaign_body(experiment={"holdout_percent": 150}), "experiment.holdout_percent"),
        (campaign_body(unknown=True), "unknown"),
    ],
)
def test_campaign_create_validation(client, db, org, body, where):
    error = assert_error(
        client.post("/api/v1/campaigns", headers=org.headers, json=body), 400, "validation_error"
    )
    locs = [".".join(str(p) for p in e["loc"]) for e in error["details"]["errors"]]
    assert where in locs
    with db.tenant(org.org_id) as conn:
        assert conn.execute("SELECT count(*) AS n FROM app.campaigns").fetchone()["n"] == 0


@pytest.mark.parametrize(
    "patch",
    [
        {"status": "archived"},
        {"status": "draft"},
        {"name": None},
        {"experiment": {}},
        {"sequence_steps": [{**STEP, "channel": "sms"}]},
        {"priority": "high"},
    ],
)
def test_campaign_patch_validation_changes_nothing(client, org, patch):
    created = client.post("/api/v1/campaigns", headers=org.headers, json=campaign_body()).get_json()
    url = f"/api/v1/campaigns/{created['campaign_id']}"
    assert_error(client.patch(url, headers=org.headers, json=patch), 400, "validation_error")
    assert client.get(url, headers=org.headers).get_json() == created


@pytest.mark.parametrize("method", ["get", "patch", "delete"])
@pytest.mark.parametrize("cid", ["not-a-uuid", str(uuid.uuid4()), "1"])
def test_campaign_unknown_ids_are_404(client, org, method, cid):
    kwargs = {"json": {"name": "x"}} if method == "patch" else {}
    response = getattr(client, method)(f"/api/v1/campaigns/{cid}", headers=org.headers, **kwargs)
    assert_error(response, 404, "not_found")


# --- carts ------------------------------------------------------------------------------


def test_cart_list_filters(client, db, org):
    now = datetime.now(UTC)
    active = insert_cart(db, org.org_id, email="Ann@Example.com", created_at=now - timedelta(3))
    abandoned = insert_cart(
        db,
        org.org_id,
        email="bob@example.com",
        status="abandoned",
        abandoned_at=now,
        created_at=now - timedelta(2),
    )
    recovered = insert_cart(
        db, org.org_id, email="ann@example.com", status="recovered", created_at=now - timedelta(1)
    )

    def ids(query=""):
        response = client.get(f"/api/v1/carts{query}", headers=org.headers)
        assert response.status_code == 200, response.get_json()
        return [c["cart_id"] for c in response.get_json()["carts"]]

    assert ids() == [str(recovered), str(abandoned), str(active)]
    assert ids("?status=abandoned") == [str(abandoned)]
    assert ids("?email=ANN@example.COM") == [str(recovered), str(active)]
    assert ids("?email=ann@example.com&status=active") == [str(active)]
    assert ids("?status=converted") == []
    page = client.get("/api/v1/carts?limit=2&offset=1", headers=org.headers).get_json()
    assert [c["cart_id"] for c in page["carts"]] == [str(abandoned), str(active)]
    assert (page["limit"], page["offset"], page["has_more"]) == (2, 1, False)
    assert client.get("/api/v1/carts?limit=1", headers=org.headers).get_json()["has_more"]
    cart = client.get("/api/v1/carts?status=abandoned", headers=org.headers).get_json()["carts"][0]
    assert cart["total_price"] == 10.0 and cart["currency"] == "USD"
    assert cart["abandoned_at"] is not None


@pytest.mark.parametrize(
    "query",
    [
        "status=lost",
        "limit=0",
        "limit=abc",
        "limit=501",
        "offset=-1",
        "offset=1508677971156238849802240",
        "email=",
    ],
)
def test_cart_list_rejects_bad_query(client, org, query):
    assert_error(client.get(f"/api/v1/carts?{query}", headers=org.headers), 400, "validation_error")


def test_cart_detail(client, db, org):
    now = datetime.now(UTC)
    cart_id = insert_cart(
        db,
        org.org_id,
        email="c@example.com",
        status="recovered",
        total_price=42.5,
        item_count=2,
        restore_url="https://s/restore",
        line_items=Jsonb([{"title": "Mug", "quantity": 2}]),
        abandoned_at=now - timedelta(hours=3),
        converted_at=now,
    )
    campaign_id = insert_campaign(db, org.org_id)
    event_id, message_id, order_id = uuid.uuid4(), uuid.uuid4(), uuid.uuid4()
    with db.tenant(org.org_id) as conn:
        conn.execute(
            "INSERT INTO raw.events (org_id, event_id, source, topic, cart_id, dedup_key, payload)"
            " VALUES (%s, %s, 'shopify', 'carts/update', %s, 'k1', '{}')",
            (org.org_id, event_id, cart_id),
        )
        conn.execute(
            "INSERT INTO app.outbox (org_id, message_id, cart_id, campaign_id, step_index, "
            "channel, recipient, subject, due_at, status, sent_at) VALUES "
            "(%s, %s, %s, %s, 0, 'email', 'c@example.com', 'Your cart', %s, 'sent', %s), "
            "(%s, gen_random_uuid(), %s, %s, 1, 'email', 'c@example.com', 'Again', %s, "
            " 'cancelled', NULL)",
            (
                org.org_id,
                message_id,
                cart_id,
                campaign_id,
                now - timedelta(hours=2),
                now - timedelta(hours=2),
                org.org_id,
                cart_id,
                campaign_id,
                now,
            ),
        )
        conn.execute("UPDATE app.outbox SET reason = 'converted' WHERE step_index = 1")
        conn.execute(
            "INSERT INTO app.message_events (org_id, event_key, message_id, cart_id, event_type,"
            " url, occurred_at) VALUES (%s, 'e1', %s, %s, 'click', 'https://s/restore', %s)",
            (org.org_id, message_id, cart_id, now - timedelta(hours=1)),
        )
        conn.execute(
            "INSERT INTO app.orders (org_id, order_id, platform, external_id, cart_id, "
            "total_price, currency, ordered_at) VALUES (%s, %s, 'shopify', '1001', %s, 42.5, "
            "'USD', %s)",
            (org.org_id, order_id, cart_id, now),
        )
        conn.execute(
            "INSERT INTO app.recoveries (org_id, cart_id, order_id, message_id, campaign_id, "
            "channel, revenue, currency) VALUES (%s, %s, %s, %s, %s, 'email', 42.5, 'USD')",
            (org.org_id, cart_id, order_id, message_id, campaign_id),
        )

    response = client.get(f"/api/v1/carts/{cart_id}", headers=org.headers)
    assert response.status_code == 200, response.get_json()
    cart = response.get_json()
    assert cart["cart_id"] == str(cart_id) and cart["status"] == "recovered"
    assert cart["line_items"] == [{"title": "Mug", "quantity": 2}]
    assert cart["total_price"] == 42.5 and cart["item_count"] == 2
    assert [(e["event_id"], e["source"], e["topic"]) for e in cart["events"]] == [
        (str(event_id), "shopify", "carts/update")
    ]
    first, second = cart["messages"]
    assert (first["message_id"], first["channel"], first["step"], first["status"]) == (
        str(message_id),
        "email",
        0,
        "sent",
    )
    assert first["subject"] == "Your cart" and first["sent_at"]
    assert [(e["type"], e["url"]) for e in first["events"]] == [("click", "https://s/restore")]
    assert (second["step"], second["status"], second["reason"], second["events"]) == (
        1,
        "cancelled",
        "converted",
        [],
    )
    assert cart["order"]["order_id"] == str(order_id) and cart["order"]["total_price"] == 42.5
    assert cart["recovered_revenue"] == 42.5
    assert cart["recovery"]["message_id"] == str(message_id)


def test_cart_detail_without_order(client, db, org):
    cart_id = insert_cart(db, org.org_id)
    cart = client.get(f"/api/v1/carts/{cart_id}", headers=org.headers).get_json()
    assert (cart["events"], cart["messages"], cart["order"]) == ([], [], None)
    assert (cart["recovered_revenue"], cart["recovery"]) == (0.0, None)


@pytest.mark.parametrize("cart_id", ["nope", str(uuid.uuid4())])
def test_cart_detail_unknown_is_404(client, org, cart_id):
    assert_error(client.get(f"/api/v1/carts/{cart_id}", headers=org.headers), 404, "not_found")


# --- analytics --------------------------------------------------------------------------


def test_dashboard_numbers(client, db, org):
    now = datetime.now(UTC)
    campaign_id = insert_campaign(db, org.org_id, "Recover")
    carts = [
        insert_cart(db, org.org_id, status="abandoned", abandoned_at=now - timedelta(hours=1))
        for _ in range(3)
    ]
    insert_cart(db, org.org_id, created_at=now - timedelta(days=60))  # outside the period
    message_id = uuid.uuid4()
    with db.tenant(org.org_id) as conn:
        conn.execute(
            "INSERT INTO app.outbox (org_id, message_id, cart_id, campaign_id, step_index, "
            "channel, due_at, status, sent_at) VALUES (%s, %s, %s, %s, 0, 'email', now(), "
            "'sent', now())",
            (org.org_id, message_id, carts[0], campaign_id),
        )
        conn.execute(
            "INSERT INTO app.recoveries (org_id, cart_id, order_id, message_id, campaign_id, "
            "channel, revenue) VALUES (%s, %s, gen_random_uuid(), %s, %s, 'email', 42.50)",
            (org.org_id, carts[0], message_id, campaign_id),
        )

    response = client.get("/api/v1/analytics/dashboard?period=30d", headers=org.headers)
    assert response.status_code == 200, response.get_json()
    body = response.get_json()
    assert {
        k: body[k]
        for k in (
            "carts_tracked",
            "carts_abandoned",
            "messages_sent",
            "carts_recovered",
            "revenue_recovered",
            "recovery_rate",
        )
    } == {
        "carts_tracked": 3,
        "carts_abandoned": 3,
        "messages_sent": 1,
        "carts_recovered": 1,
        "revenue_recovered": 42.5,
        "recovery_rate": 0.3333,
    }
    assert body["period"] == "30d"
    assert datetime.fromisoformat(body["since"]) < now - timedelta(days=29)
    assert body["by_channel"] == [
        {
            "channel": "email",
            "messages_sent": 1,
            "carts_recovered": 1,
            "revenue_recovered": 42.5,
            "revenue_recovered_by_currency": {"XXX": 42.5},
        }
    ]
    assert body["by_campaign"][0]["campaign_id"] == str(campaign_id)
    assert body["by_campaign"][0]["revenue_recovered"] == 42.5
    assert sum(d["carts_abandoned"] for d in body["by_day"]) == 3
    assert len(body["by_day"]) in (31, 32)

    default = client.get("/api/v1/analytics/dashboard", headers=org.headers).get_json()
    assert default["period"] == "30d" and default["carts_abandoned"] == 3


@pytest.mark.parametrize("period", ["30x", "0d", "abc", "", "53w", "9999d"])
def test_dashboard_bad_period(client, org, period):
    response = client.get(f"/api/v1/analytics/dashboard?period={period}", headers=org.headers)
    assert_error(response, 400, "validation_error")


# --- OpenAPI ----------------------------------------------------------------------------

DESIGN_PATHS = {
    "/api/v1/settings": {"get", "patch"},
    "/api/v1/campaigns": {"get", "post"},
    "/api/v1/campaigns/{id}": {"get", "patch", "delete"},
    "/api/v1/carts": {"get"},
    "/api/v1/carts/{id}": {"get"},
    "/api/v1/analytics/dashboard": {"get"},
    "/api/health": {"get"},
    "/api/openapi.json": {"get"},
}


def _refs(node):
    if isinstance(node, dict):
        for key, value in node.items():
            if key == "$ref":
                yield value
            else:
                yield from _refs(value)
    elif isinstance(node, list):
        for value in node:
            yield from _refs(value)


def test_openapi_document(app, client):
    from flask import Blueprint

    from cartrecovery.org_settings import OrgSettingsPatch
    from ingest.openapi import register_schema

    # A route registered by someone else, documented through the registry.
    extra = Blueprint("extra_test", __name__)
    extra.add_url_rule("/api/v1/extra/<thing_id>", "thing", lambda thing_id: "", methods=["PUT"])
    app.register_blueprint(extra)
    register_schema("/api/v1/extra/<thing_id>", "put", OrgSettingsPatch)

    response = client.get("/api/openapi.json")
    assert response.status_code == 200
    doc = response.get_json()
    assert doc["openapi"].startswith("3.1")
    for path, methods in DESIGN_PATHS.items():
        assert methods <= set(doc["paths"].get(path, {})), path
    for rule in app.url_map.iter_rules():
        if rule.endpoint != "static":
            path = rule.rule.replace("<", "{").replace(">", "}")
            path = path.replace("{uuid:", "{").replace("{int:", "{").replace("{path:", "{")
            assert path in doc["paths"], path

    assert doc["components"]["securitySchemes"]["bearerAuth"]["scheme"] == "bearer"
    error = doc["components"]["schemas"]["Error"]
    assert error["properties"]["error"]["required"] == ["code", "message", "details"]
    create = doc["paths"]["/api/v1/campaigns"]["post"]
    assert create["summary"] and create["security"] == [{"bearerAuth": []}]
    assert "201" in create["responses"] and "400" in create["responses"]
    schema_ref = create["requestBody"]["content"]["application/json"]["schema"]["$ref"]
    campaign = doc["components"]["schemas"][schema_ref.rsplit("/", 1)[1]]
    assert {"name", "sequence_steps"} <= set(campaign["required"])
    assert "SequenceStep" in doc["components"]["schemas"]
    settings_patch = doc["paths"]["/api/v1/settings"]["patch"]["requestBody"]
    assert settings_patch["content"]["application/json"]["schema"]["$ref"].endswith(
        "/OrgSettingsPatch"
    )
    carts = doc["paths"]["/api/v1/carts"]["get"]
    assert {p["name"] for p in carts["parameters"]} >= {"status", "email", "limit", "offset"}
    detail = doc["paths"]["/api/v1/carts/{id}"]["get"]
    assert detail["parameters"][0] == {
        "name": "id",
        "in": "path",
        "required": True,
        "schema": {"type": "string"},
    }
    put = doc["paths"]["/api/v1/extra/{thing_id}"]["put"]
    assert put["requestBody"]["content"]["application/json"]["schema"]["$ref"].endswith(
        "/OrgSettingsPatch"
    )
    schemas = doc["components"]["schemas"]
    for ref in _refs(doc):
        assert ref.rsplit("/", 1)[1] in schemas, ref


def test_campaign_accepts_sendgrid_dynamic_templates_on_email_steps_only(client, org):
    email = {"channel": "email", "delay_seconds": 0, "subject": "Hi", "template": "d-" + "0f" * 16}
    created = client.post(
        "/api/v1/campaigns", headers=org.headers, json={"name": "dyn", "sequence_steps": [email]}
    )
    assert created.status_code == 201, created.get_json()
    assert created.get_json()["sequence_steps"][0]["template"] == email["template"]
    push = {**email, "channel": "push"}
    refused = client.post(
        "/api/v1/campaigns",
        headers=org.headers,
        json={"name": "dyn-push", "sequence_steps": [push]},
    )
    assert refused.status_code == 400
    assert "dynamic templates" in str(refused.get_json())


def test_campaign_step_without_template_gets_its_channels_builtin(client, org):
    steps = [
        {"channel": "email", "delay_seconds": 0, "subject": "Your cart"},
        {"channel": "sms", "delay_seconds": 60},
        {"channel": "push", "delay_seconds": 120, "template": None},
    ]
    created = client.post(
        "/api/v1/campaigns", headers=org.headers, json={"name": "defaults", "sequence_steps": steps}
    )
    assert created.status_code == 201, created.get_json()
    body = created.get_json()
    assert [s["template"] for s in body["sequence_steps"]] == [
        "cart_reminder",
        "sms_reminder",
        "push_reminder",
    ]
    stored = client.get(f"/api/v1/campaigns/{body['campaign_id']}", headers=org.headers)
    assert [s["template"] for s in stored.get_json()["sequence_steps"]] == [
        "cart_reminder",
        "sms_reminder",
        "push_reminder",
    ]
    patched = client.patch(
        f"/api/v1/campaigns/{body['campaign_id']}",
        headers=org.headers,
        json={"sequence_steps": [{"channel": "sms", "delay_seconds": 5}]},
    )
    assert patched.status_code == 200, patched.get_json()
    assert patched.get_json()["sequence_steps"][0]["template"] == "sms_reminder"
    # A template that is given is still checked: an unknown name is refused.
    refused = client.post(
        "/api/v1/campaigns",
        headers=org.headers,
        json={"name": "bad", "sequence_steps": [{**steps[0], "template": "no_such_template"}]},
    )
    assert refused.status_code == 400


def test_campaign_patch_changes_the_holdout_share(client, org):
    step = {"channel": "email", "delay_seconds": 0, "subject": "Your cart"}
    created = client.post(
        "/api/v1/campaigns", headers=org.headers, json={"name": "hold", "sequence_steps": [step]}
    ).get_json()
    assert created["experiment"] is None
    patched = client.patch(
        f"/api/v1/campaigns/{created['campaign_id']}",
        headers=org.headers,
        json={"experiment": {"holdout_percent": 12.5}},
    )
    assert patched.status_code == 200, patched.get_json()
    assert patched.get_json()["experiment"] == {"holdout_percent": 12.5}
    refused = client.patch(
        f"/api/v1/campaigns/{created['campaign_id']}",
        headers=org.headers,
        json={"experiment": {"holdout_percent": 120}},
    )
    assert refused.status_code == 400
    again = client.get(f"/api/v1/campaigns/{created['campaign_id']}", headers=org.headers)
    assert again.get_json()["experiment"] == {"holdout_percent": 12.5}

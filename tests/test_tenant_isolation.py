"""One org's key never reaches another org's data, and auth failures are JSON errors."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime

import pytest

from cartrecovery import tenancy

STEP = {"channel": "email", "delay_seconds": 0, "subject": "Hi", "template": "cart_reminder"}


def assert_error(response, status: int, code: str):
    assert response.status_code == status, response.get_data(as_text=True)
    body = response.get_json()
    assert set(body) == {"error"} and set(body["error"]) == {"code", "message", "details"}
    assert body["error"]["code"] == code and body["error"]["message"]


@pytest.fixture()
def org_a_data(db, make_org, client):
    """Org A with an abandoned, recovered cart, a sent message and a campaign."""
    a = make_org("a")
    campaign = client.post(
        "/api/v1/campaigns",
        headers=a.headers,
        json={"name": "A's campaign", "sequence_steps": [STEP]},
    ).get_json()
    now = datetime.now(UTC)
    with db.tenant(a.org_id) as conn:
        cart_id = conn.execute(
            "INSERT INTO app.carts (org_id, platform, external_id, email, status, abandoned_at)"
            " VALUES (%s, 'custom', 'a-1', 'shared@example.com', 'recovered', %s) "
            "RETURNING cart_id",
            (a.org_id, now),
        ).fetchone()["cart_id"]
        message_id = conn.execute(
            "INSERT INTO app.outbox (org_id, cart_id, campaign_id, step_index, channel, due_at,"
            " status, sent_at) VALUES (%s, %s, %s, 0, 'email', now(), 'sent', now()) "
            "RETURNING message_id",
            (a.org_id, cart_id, campaign["campaign_id"]),
        ).fetchone()["message_id"]
        conn.execute(
            "INSERT INTO app.recoveries (org_id, cart_id, order_id, message_id, channel, revenue)"
            " VALUES (%s, %s, gen_random_uuid(), %s, 'email', 99)",
            (a.org_id, cart_id, message_id),
        )
    return a, cart_id, campaign


def test_other_org_sees_no_carts(client, make_org, org_a_data):
    a, cart_id, _ = org_a_data
    b = make_org("b")
    assert client.get("/api/v1/carts", headers=a.headers).get_json()["carts"]
    assert client.get("/api/v1/carts", headers=b.headers).get_json()["carts"] == []
    assert (
        client.get("/api/v1/carts?email=shared@example.com", headers=b.headers).get_json()["carts"]
        == []
    )
    assert client.get(f"/api/v1/carts/{cart_id}", headers=a.headers).status_code == 200
    assert_error(client.get(f"/api/v1/carts/{cart_id}", headers=b.headers), 404, "not_found")


def test_other_org_cannot_touch_campaigns(client, make_org, org_a_data):
    a, _, campaign = org_a_data
    b = make_org("b")
    url = f"/api/v1/campaigns/{campaign['campaign_id']}"
    assert (
        client.get("/api/v1/campaigns?include_archived=true", headers=b.headers).get_json()[
            "campaigns"
        ]
        == []
    )
    assert_error(client.get(url, headers=b.headers), 404, "not_found")
    assert_error(
        client.patch(url, headers=b.headers, json={"name": "stolen", "status": "active"}),
        404,
        "not_found",
    )
    assert_error(client.delete(url, headers=b.headers), 404, "not_found")
    assert client.get(url, headers=a.headers).get_json() == campaign


def test_other_org_metrics_are_zero(client, make_org, org_a_data):
    a, _, _ = org_a_data
    b = make_org("b")
    mine = client.get("/api/v1/analytics/dashboard", headers=a.headers).get_json()
    assert (mine["carts_recovered"], mine["revenue_recovered"]) == (1, 99.0)
    theirs = client.get("/api/v1/analytics/dashboard", headers=b.headers).get_json()
    assert {
        k: theirs[k]
        for k in (
            "carts_tracked",
            "carts_abandoned",
            "messages_sent",
            "carts_recovered",
            "revenue_recovered",
            "recovery_rate",
        )
    } == {
        "carts_tracked": 0,
        "carts_abandoned": 0,
        "messages_sent": 0,
        "carts_recovered": 0,
        "revenue_recovered": 0.0,
        "recovery_rate": 0.0,
    }
    assert theirs["by_channel"] == [] and theirs["by_campaign"] == []
    assert all(d["carts_abandoned"] == 0 for d in theirs["by_day"])


def test_settings_are_per_org(client, make_org):
    a, b = make_org("a"), make_org("b")
    client.patch("/api/v1/settings", headers=a.headers, json={"abandonment_timeout_seconds": 7})
    assert (
        client.get("/api/v1/settings", headers=b.headers).get_json()["abandonment_timeout_seconds"]
        == 1800
    )


READS = [
    "/api/v1/settings",
    "/api/v1/campaigns",
    "/api/v1/carts",
    "/api/v1/analytics/dashboard",
    f"/api/v1/carts/{uuid.uuid4()}",
]


@pytest.mark.parametrize("path", READS)
@pytest.mark.parametrize(
    "header",
    [
        None,
        "Bearer nonsense",
        f"Bearer cr_{uuid.uuid4().hex}_{'a' * 43}",
        "Basic dXNlcjpwYXNz",
        "Bearer ",
    ],
)
def test_bad_or_missing_key_is_401(client, path, header):
    headers = {"Authorization": header} if header else {}
    assert_error(client.get(path, headers=headers), 401, "unauthorized")


def test_revoked_or_tampered_key_is_401(client, db, org):
    assert_error(
        client.get("/api/v1/carts", headers={"Authorization": f"Bearer {org.api_key}x"}),
        401,
        "unauthorized",
    )
    with db.tenant(org.org_id) as conn:
        conn.execute("UPDATE app.api_keys SET revoked_at = now()")
    assert_error(client.get("/api/v1/carts", headers=org.headers), 401, "unauthorized")


def test_read_key_cannot_write(client, db, org):
    created = client.post(
        "/api/v1/campaigns", headers=org.headers, json={"name": "x", "sequence_steps": [STEP]}
    ).get_json()
    url = f"/api/v1/campaigns/{created['campaign_id']}"
    read = {"Authorization": f"Bearer {tenancy.create_api_key(db, org.org_id, 'read')}"}
    assert client.get(url, headers=read).status_code == 200
    assert client.get("/api/v1/carts", headers=read).status_code == 200
    assert_error(
        client.post(
            "/api/v1/campaigns", headers=read, json={"name": "y", "sequence_steps": [STEP]}
        ),
        403,
        "forbidden",
    )
    assert_error(client.patch(url, headers=read, json={"status": "active"}), 403, "forbidden")
    assert_error(client.delete(url, headers=read), 403, "forbidden")
    assert_error(
        client.patch("/api/v1/settings", headers=read, json={"abandonment_timeout_seconds": 60}),
        403,
        "forbidden",
    )
    assert client.get(url, headers=org.headers).get_json() == created
    listed = client.get("/api/v1/campaigns", headers=org.headers).get_json()["campaigns"]
    assert [c["name"] for c in listed] == ["x"]


def test_publishable_key_cannot_read(client, db, org):
    key = tenancy.create_api_key(db, org.org_id, "publishable")
    headers = {"Authorization": f"Bearer {key}"}
    for path in READS[:4]:
        assert_error(client.get(path, headers=headers), 403, "forbidden")


def test_unknown_route_and_method_are_json(client, org):
    assert_error(client.get("/api/v1/nothing-here", headers=org.headers), 404, "not_found")
    assert_error(client.put("/api/v1/campaigns", headers=org.headers), 405, "method_not_allowed")

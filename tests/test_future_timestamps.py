"""A client clock in the future must not lock a cart: timestamps more than 5 minutes ahead of
the server clock are clamped to the time of receipt, and the answer says so (tracking API,
batch, the snippet's publishable key, custom shops' generic adapter)."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import pytest

from cartrecovery.client_clock import MAX_SKEW, clamp_future
from cartrecovery.publishable_keys import create_publishable_key
from integrations.generic.adapter import sign

FUTURE = "2099-01-01T00:00:00Z"


def event(cart_id: str, total: str, timestamp: str, event_id: str | None = None) -> dict:
    body = {
        "event": "cart_updated",
        "timestamp": timestamp,
        "cart_data": {
            "cart_id": cart_id,
            "currency": "USD",
            "line_items": [{"sku": "MUG", "quantity": 1, "price": total}],
        },
    }
    if event_id:
        body["event_id"] = event_id
    return body


def now_iso() -> str:
    return datetime.now(UTC).isoformat()


def cart(db, org_id, external_id, platform="api"):
    with db.system() as conn:
        return conn.execute(
            "SELECT total_price, source_updated_at FROM app.carts "
            "WHERE org_id = %s AND platform = %s AND external_id = %s",
            (org_id, platform, external_id),
        ).fetchone()


def test_clamp_future_keeps_small_skew_and_clamps_beyond_it():
    now = datetime(2026, 6, 1, 12, tzinfo=UTC)
    assert clamp_future(now + MAX_SKEW, now) == (now + MAX_SKEW, False)
    assert clamp_future(now - timedelta(days=3), now) == (now - timedelta(days=3), False)
    assert clamp_future(now + MAX_SKEW + timedelta(seconds=1), now) == (now, True)


def test_a_2099_timestamp_does_not_lock_the_cart(client, db, org):
    before = datetime.now(UTC)
    first = client.post(
        "/api/v1/carts/track", json=event("c-2099", "5", FUTURE), headers=org.headers
    )
    assert first.status_code == 202
    answer = first.get_json()
    assert answer["status"] == "accepted" and answer["timestamp_clamped"] is True
    assert "2099" in answer["warning"]
    stored = cart(db, org.org_id, "c-2099")
    assert before <= stored["source_updated_at"] <= datetime.now(UTC)
    with db.system() as conn:
        raw = conn.execute(
            "SELECT occurred_at, payload FROM raw.events WHERE org_id = %s", (org.org_id,)
        ).fetchone()
    assert raw["occurred_at"] == stored["source_updated_at"]
    assert raw["payload"]["timestamp"] == FUTURE  # the event is kept as it was sent

    later = client.post(
        "/api/v1/carts/track", json=event("c-2099", "99", now_iso()), headers=org.headers
    )
    assert later.status_code == 202
    assert "timestamp_clamped" not in later.get_json()
    assert cart(db, org.org_id, "c-2099")["total_price"] == Decimal("99")


def test_batch_says_which_events_were_clamped(client, db, org):
    response = client.post(
        "/api/v1/events/batch",
        json={"events": [event("c-b", "5", FUTURE, "b-1"), event("c-b2", "7", now_iso(), "b-2")]},
        headers=org.headers,
    )
    assert response.status_code == 202
    first, second = response.get_json()["results"]
    assert first["status"] == "accepted" and first["timestamp_clamped"] is True
    assert "timestamp_clamped" not in second
    assert (
        client.post(
            "/api/v1/events/batch",
            json={"events": [event("c-b", "99", now_iso(), "b-3")]},
            headers=org.headers,
        ).status_code
        == 202
    )
    assert cart(db, org.org_id, "c-b")["total_price"] == Decimal("99")


def test_the_snippets_browser_clock_is_clamped_too(client, db, org):
    key = create_publishable_key(db, org.org_id, ["https://shop.example.com"])
    headers = {"Authorization": f"Bearer {key}", "Origin": "https://shop.example.com"}
    first = client.post("/api/v1/carts/track", json=event("c-js", "5", FUTURE), headers=headers)
    assert first.status_code == 202 and first.get_json()["timestamp_clamped"] is True
    client.post("/api/v1/carts/track", json=event("c-js", "99", now_iso()), headers=headers)
    assert cart(db, org.org_id, "c-js")["total_price"] == Decimal("99")


@pytest.fixture()
def generic(client, org):
    created = client.post(
        "/api/v1/connections",
        json={"platform": "generic", "shop_domain": f"{uuid.uuid4().hex[:8]}.custom.example"},
        headers=org.headers,
    ).get_json()
    org.url = f"/api/webhooks/custom/{created['connection_id']}"
    org.secret = created["secret"]
    return org


def test_a_custom_shops_future_timestamp_is_clamped(client, db, generic):
    for total, timestamp, event_id in (("5", FUTURE, "g-1"), ("99", None, "g-2")):
        body = json.dumps(event("c-g", total, timestamp or now_iso(), event_id)).encode()
        response = client.post(generic.url, data=body, headers=sign(generic.secret, body))
        assert response.status_code == 200, response.get_json()
        assert response.get_json().get("timestamp_clamped", False) is (timestamp == FUTURE)
    assert cart(db, generic.org_id, "c-g", "generic")["total_price"] == Decimal("99")

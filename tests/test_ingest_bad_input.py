"""Bad input on the ingest paths: a clear 4xx JSON error, and nothing stored."""

from __future__ import annotations

import json
from dataclasses import replace

import pytest
from conftest import fixture_bytes, fixture_headers, shopify_hmac
from test_ingest_shopify import ROUTES, SECRET, connect_shop

from ingest.app import create_app

CHECKOUT = "shopify_checkouts_create.json"
TABLES = ("raw.events", "raw.event_keys", "app.carts", "app.orders", "app.customers")


@pytest.fixture()
def shop(db, runtime, org):
    org.connection_id = connect_shop(db, runtime.encryption_key, org.org_id)
    return org


def totals(db) -> dict:
    """Row counts across all orgs: a rejected request must not write anywhere."""
    with db.system() as conn:
        return {t: conn.execute(f"SELECT count(*) AS n FROM {t}").fetchone()["n"] for t in TABLES}


def assert_rejected(response, status: int, code: str | None = None):
    assert response.status_code == status, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["message"] and isinstance(error["details"], dict)
    if code:
        assert error["code"] == code
    return error


def signed(body: bytes, **changes) -> dict:
    headers = fixture_headers("shopify", CHECKOUT)
    headers["X-Shopify-Hmac-Sha256"] = shopify_hmac(SECRET, body)
    headers.update(changes)
    return headers


# --- Shopify ---------------------------------------------------------------------------------


def _without(headers: dict, name: str) -> dict:
    return {k: v for k, v in headers.items() if k != name}


@pytest.mark.parametrize(
    ("case", "status", "code"),
    [
        ("wrong_signature", 401, "invalid_signature"),
        ("signature_of_other_secret", 401, "invalid_signature"),
        ("missing_hmac", 401, "invalid_signature"),
        ("missing_shop_domain", 401, "unauthorized"),
        ("unknown_shop", 404, "unknown_shop"),
        ("malformed_json", 400, "invalid_json"),
        ("json_array", 400, "invalid_json"),
        ("missing_token", 400, "validation_error"),
        ("negative_total", 400, "validation_error"),
        ("nul_character", 400, "invalid_json"),
        ("uncountable_quantity", 400, "validation_error"),  # app.carts.item_count: integer
    ],
)
def test_bad_shopify_delivery_stores_nothing(client, db, shop, case, status, code):
    body = fixture_bytes(CHECKOUT)
    headers = fixture_headers("shopify", CHECKOUT)
    if case == "wrong_signature":
        headers["X-Shopify-Hmac-Sha256"] = shopify_hmac(SECRET, body + b" ")
    elif case == "signature_of_other_secret":
        headers["X-Shopify-Hmac-Sha256"] = shopify_hmac("not-the-secret", body)
    elif case == "missing_hmac":
        headers = _without(headers, "X-Shopify-Hmac-Sha256")
    elif case == "missing_shop_domain":
        headers = _without(headers, "X-Shopify-Shop-Domain")
    elif case == "unknown_shop":
        headers["X-Shopify-Shop-Domain"] = "nobody-here.myshopify.com"
    else:
        payload = json.loads(body)
        if case == "malformed_json":
            body = body[:-20]
        elif case == "json_array":
            body = json.dumps([payload]).encode()
        elif case == "missing_token":
            del payload["token"]
            body = json.dumps(payload).encode()
        elif case == "negative_total":
            body = json.dumps(payload | {"total_price": "-1.00"}).encode()
        elif case == "nul_character":
            body = json.dumps(payload | {"note": "a\u0000b"}).encode()
        elif case == "uncountable_quantity":
            lines = [dict(line, quantity=2**31) for line in payload["line_items"]]
            body = json.dumps(payload | {"line_items": lines}).encode()
        headers = signed(body)  # a valid signature over the bad bytes

    before = totals(db)
    response = client.post(ROUTES[CHECKOUT], data=body, headers=headers)
    assert_rejected(response, status, code)
    assert totals(db) == before


def test_unknown_shops_all_get_the_same_answer(client, db, shop):
    answers = []
    for domain in ("nobody-here.myshopify.com", "other.myshopify.com"):
        headers = fixture_headers("shopify", CHECKOUT) | {"X-Shopify-Shop-Domain": domain}
        answers.append(
            client.post(ROUTES[CHECKOUT], data=fixture_bytes(CHECKOUT), headers=headers).get_json()
        )
    assert answers[0] == answers[1]


def test_removed_connection_is_an_unknown_shop(client, db, shop):
    with db.system() as conn:
        conn.execute(
            "UPDATE app.connections SET status = 'removed' WHERE org_id = %s", (shop.org_id,)
        )
    before = totals(db)
    response = client.post(
        ROUTES[CHECKOUT], data=fixture_bytes(CHECKOUT), headers=fixture_headers("shopify", CHECKOUT)
    )
    assert_rejected(response, 404, "unknown_shop")
    assert totals(db) == before


def test_invalid_delivery_does_not_burn_its_webhook_id(client, db, shop):
    payload = json.loads(fixture_bytes(CHECKOUT))
    del payload["token"]
    bad = json.dumps(payload).encode()
    assert client.post(ROUTES[CHECKOUT], data=bad, headers=signed(bad)).status_code == 400
    ok = client.post(
        ROUTES[CHECKOUT], data=fixture_bytes(CHECKOUT), headers=fixture_headers("shopify", CHECKOUT)
    )
    assert ok.get_json()["status"] == "ok"


def test_oversized_body_is_413_and_stores_nothing(settings, db, shop):
    small = create_app(replace(settings, max_body_bytes=512)).test_client()
    body = fixture_bytes(CHECKOUT)
    assert len(body) > 512
    before = totals(db)
    response = small.post(ROUTES[CHECKOUT], data=body, headers=fixture_headers("shopify", CHECKOUT))
    assert_rejected(response, 413)
    big_track = small.post(
        "/api/v1/carts/track",
        data=b"{" + b" " * 1024 + b"}",
        headers=shop.headers | {"Content-Type": "application/json"},
    )
    assert_rejected(big_track, 413)
    assert totals(db) == before


# --- tracking API ----------------------------------------------------------------------------

VALID = {
    "event": "cart_updated",
    "timestamp": "2026-05-01T12:00:00Z",
    "cart_data": {
        "cart_id": "c-1",
        "email": "a@example.com",
        "line_items": [{"title": "Mug", "quantity": 1, "price": "5"}],
    },
}


def _with(path: str, value):
    body = json.loads(json.dumps(VALID))
    *parents, last = path.split(".")
    target = body
    for key in parents:
        target = target[key]
    if value is KeyError:
        del target[last]
    else:
        target[last] = value
    return body


@pytest.mark.parametrize(
    ("body", "where"),
    [
        (_with("event", "cart_exploded"), "event"),
        (_with("timestamp", KeyError), "timestamp"),
        (_with("timestamp", "yesterday"), "timestamp"),
        (_with("cart_data.cart_id", KeyError), "cart_data"),
        (_with("cart_data.cart_id", ""), "cart_data"),
        (_with("cart_data", "c-1"), "cart_data"),
        (_with("cart_data.email", "not-an-email"), "cart_data"),
        (_with("cart_data.phone", "call me"), "cart_data"),
        (_with("cart_data.total_price", "-3"), "cart_data"),
        (_with("cart_data.total_price", "1e20"), "cart_data"),
        (_with("cart_data.total_price", "NaN"), "cart_data"),
        (_with("cart_data.currency", "euros"), "cart_data"),
        (_with("cart_data.restore_url", "javascript:alert(1)"), "cart_data"),
        (_with("cart_data.line_items", [{"quantity": -1}]), "cart_data"),
        (_with("cart_data.line_items", "mug"), "cart_data"),
        (_with("cart_data.customer", {"timezone": "Mars/Olympus"}), "cart_data"),
        (_with("event", "order_completed"), None),  # needs cart_data.order
        (_with("cart_data.order", {"total_price": "3"}), "cart_data"),
        (_with("event_id", ""), "event_id"),
    ],
)
def test_invalid_tracking_payload_is_400_with_details(client, db, org, body, where):
    before = totals(db)
    response = client.post("/api/v1/carts/track", json=body, headers=org.headers)
    error = assert_rejected(response, 400, "validation_error")
    locations = [e["loc"] for e in error["details"]["errors"]]
    assert locations
    if where:
        assert any(loc and loc[0] == where for loc in locations), locations
    assert totals(db) == before


@pytest.mark.parametrize(
    "raw",
    [b"{not json", b"[1, 2]", b'"text"', b"\xff\xfe", b'{"event": "a\\u0000"}'],
)
def test_non_object_or_malformed_tracking_body_is_400(client, db, org, raw):
    before = totals(db)
    response = client.post(
        "/api/v1/carts/track", data=raw, headers=org.headers | {"Content-Type": "application/json"}
    )
    assert_rejected(response, 400)
    assert totals(db) == before


@pytest.mark.parametrize(
    ("headers", "code"),
    [
        ({}, "unauthorized"),
        ({"Authorization": "Basic dXNlcjpwYXNz"}, "unauthorized"),
        ({"Authorization": "Bearer "}, "unauthorized"),
        (
            {
                "Authorization": "Bearer cr_00000000000000000000000000000000_"
                "aaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaaa"
            },
            "unauthorized",
        ),
        ({"Authorization": "Bearer not-a-key"}, "unauthorized"),
    ],
)
@pytest.mark.parametrize("path", ["/api/v1/carts/track", "/api/v1/events/batch"])
def test_missing_or_wrong_api_key_is_401(client, db, org, headers, code, path):
    body = VALID if path.endswith("track") else {"events": [VALID]}
    before = totals(db)
    response = client.post(path, json=body, headers=headers)
    assert_rejected(response, 401, code)
    assert totals(db) == before


def test_key_of_another_org_with_this_orgs_id_is_401(client, db, org, make_org):
    other = make_org("other")
    forged = f"cr_{org.org_id.hex}_{other.api_key.split('_', 2)[2]}"
    response = client.post(
        "/api/v1/carts/track", json=VALID, headers={"Authorization": f"Bearer {forged}"}
    )
    assert_rejected(response, 401)


@pytest.mark.parametrize(
    "body",
    [{"events": []}, {"events": [VALID] * 1001}, {"events": "all"}, {"evts": [VALID]}, [VALID]],
)
def test_batch_envelope_errors_are_400_and_store_nothing(client, db, org, body):
    before = totals(db)
    response = client.post("/api/v1/events/batch", json=body, headers=org.headers)
    assert_rejected(response, 400, "invalid_batch")
    assert totals(db) == before


def test_batch_with_only_invalid_items_stores_nothing(client, db, org):
    before = totals(db)
    events = [_with("timestamp", KeyError), {"nope": 1}, None, _with("cart_data.email", "x")]
    response = client.post("/api/v1/events/batch", json={"events": events}, headers=org.headers)
    assert response.status_code == 202
    answer = response.get_json()
    assert answer["rejected"] == 4 and answer["accepted"] == 0
    assert all(r["error"] for r in answer["results"])
    assert totals(db) == before

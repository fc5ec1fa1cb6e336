"""The tracking snippet's endpoints: served scripts, publishable keys (origins, CORS, rate
limit, write-only) and push subscriptions."""

from __future__ import annotations

import json
import re
import uuid

import pytest
import redis as redis_lib
from conftest import fixture_bytes

from cartrecovery import push_subscriptions, tenancy
from cartrecovery.publishable_keys import (
    create_publishable_key,
    load_publishable_key,
    normalize_origin,
)
from cartrecovery.rate_limits import RateLimit, hit_rate_limit

ORIGIN = "https://shop.example.com"
TRACK = "/api/v1/carts/track"
PUSH = "/api/v1/push/subscriptions"
SUBSCRIPTION = json.loads(fixture_bytes("webpush_subscription.json"))


@pytest.fixture()
def pk(db, org):
    org.publishable_key = create_publishable_key(db, org.org_id, [ORIGIN, "http://localhost:3000"])
    return org


def browser(key: str, origin: str | None = ORIGIN, **extra) -> dict:
    headers = {"Authorization": f"Bearer {key}", **extra}
    if origin is not None:
        headers["Origin"] = origin
    return headers


def cart_event(cart_id: str, email: str | None = "shopper@example.com") -> dict:
    data = {
        "cart_id": cart_id,
        "currency": "EUR",
        "line_items": [{"product_id": "p1", "title": "Mug", "quantity": 1, "price": "9.50"}],
    }
    if email:
        data["email"] = email
    return {"event": "cart_updated", "timestamp": "2026-05-01T12:00:00Z", "cart_data": data}


def one(db, sql, *params):
    with db.system() as conn:
        return conn.execute(sql, params).fetchone()


def api_cart(db, org_id, external_id):
    return one(
        db,
        "SELECT * FROM app.carts WHERE org_id = %s AND platform = 'api' AND external_id = %s",
        org_id,
        external_id,
    )


def preflight(client, path: str, origin: str):
    return client.options(
        path,
        headers={
            "Origin": origin,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "authorization,content-type",
        },
    )


# --- the scripts -----------------------------------------------------------------------------


def test_snippet_is_served_as_cacheable_javascript(client):
    response = client.get("/static/cartrecovery.js")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert response.cache_control.public and response.cache_control.max_age == 300
    assert response.headers["X-Content-Type-Options"] == "nosniff"
    assert response.headers["Cross-Origin-Resource-Policy"] == "cross-origin"
    body = response.get_data(as_text=True)
    assert "window.cartrecovery = api" in body and "/api/v1/carts/track" in body
    assert "keepalive" in body
    again = client.get(
        "/static/cartrecovery.js", headers={"If-None-Match": response.headers["ETag"]}
    )
    assert again.status_code == 304


def test_service_worker_is_served_for_the_whole_scope(client):
    response = client.get("/static/cartrecovery-sw.js")
    assert response.status_code == 200
    assert response.headers["Content-Type"] == "text/javascript; charset=utf-8"
    assert response.headers["Service-Worker-Allowed"] == "/"
    assert response.cache_control.no_cache
    body = response.get_data(as_text=True)
    assert 'addEventListener("push"' in body and "openWindow" in body


# --- publishable keys ------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("given", "normal"),
    [
        ("https://Shop.Example.com", "https://shop.example.com"),
        ("https://shop.example.com:443/", "https://shop.example.com"),
        ("http://localhost:3000", "http://localhost:3000"),
        ("https://bücher.example", "https://xn--bcher-kva.example"),
        ("http://[::1]:8080", "http://[::1]:8080"),
    ],
)
def test_normalize_origin(given, normal):
    assert normalize_origin(given) == normal


@pytest.mark.parametrize(
    "bad",
    [
        "*",
        "null",
        "",
        "ftp://x.com",
        "https://x.com/shop",
        "https://x.com?a=1",
        "https://user@x.com",
        "https://*.x.com",
        "https://x.com:99999",
    ],
)
def test_normalize_origin_refuses(bad):
    with pytest.raises(ValueError):
        normalize_origin(bad)


def test_admin_creates_lists_and_revokes_publishable_keys(client, db, org):
    response = client.post(
        "/api/v1/publishable-keys",
        headers=org.headers,
        json={
            "allowed_origins": ["https://Shop.Example.com/", "https://shop.example.com"],
            "name": "storefront",
        },
    )
    assert response.status_code == 201, response.get_json()
    created = response.get_json()
    assert created["allowed_origins"] == ["https://shop.example.com"]
    key = created["key"]
    assert load_publishable_key(db, key).org_id == org.org_id

    listed = client.get("/api/v1/publishable-keys", headers=org.headers).get_json()
    [entry] = listed["publishable_keys"]
    assert entry["key_id"] == created["key_id"] and entry["name"] == "storefront"
    assert key not in json.dumps(listed)  # shown once only

    assert client.post(TRACK, json=cart_event("c-revoke"), headers=browser(key)).status_code == 202
    revoked = client.delete(f"/api/v1/publishable-keys/{created['key_id']}", headers=org.headers)
    assert revoked.status_code == 200
    assert client.post(TRACK, json=cart_event("c-revoke"), headers=browser(key)).status_code == 401
    assert (
        client.delete(
            f"/api/v1/publishable-keys/{created['key_id']}", headers=org.headers
        ).status_code
        == 404
    )
    assert client.delete("/api/v1/publishable-keys/nope", headers=org.headers).status_code == 404


@pytest.mark.parametrize("origins", [[], ["*"], ["https://x.com/path"], "https://x.com"])
def test_publishable_key_needs_valid_origins(client, org, origins):
    response = client.post(
        "/api/v1/publishable-keys", headers=org.headers, json={"allowed_origins": origins}
    )
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == "validation_error"


def test_only_admins_create_publishable_keys(client, db, pk):
    for role in ("write", "read", "publishable"):
        key = tenancy.create_api_key(db, pk.org_id, role)
        response = client.post(
            "/api/v1/publishable-keys",
            json={"allowed_origins": [ORIGIN]},
            headers={"Authorization": f"Bearer {key}"},
        )
        assert response.status_code == 403, role


def test_cors_preflight_grants_the_allowed_origin_only(client, pk):
    for path in (TRACK, PUSH):
        response = preflight(client, path, ORIGIN)
        assert response.status_code == 204
        assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
        assert response.headers["Access-Control-Allow-Methods"] == "POST"
        assert response.headers["Access-Control-Allow-Headers"] == "Authorization, Content-Type"
        assert "Origin" in response.headers["Vary"]

        stranger = f"https://{uuid.uuid4().hex}.example.net"
        refused = preflight(client, path, stranger)
        assert refused.status_code == 403
        assert "Access-Control-Allow-Origin" not in refused.headers
        assert refused.get_json()["error"]["code"] == "origin_not_allowed"


def test_track_from_an_allowed_origin(client, db, pk):
    response = client.post(TRACK, json=cart_event("c-ok"), headers=browser(pk.publishable_key))
    assert response.status_code == 202
    assert response.headers["Access-Control-Allow-Origin"] == ORIGIN
    assert "Origin" in response.headers["Vary"]
    assert api_cart(db, pk.org_id, "c-ok")["email"] == "shopper@example.com"
    # The other allowed origin, and a non-browser caller (no Origin): also accepted.
    other = browser(pk.publishable_key, "http://localhost:3000")
    assert client.post(TRACK, json=cart_event("c-ok2"), headers=other).status_code == 202
    no_origin = browser(pk.publishable_key, None)
    response = client.post(TRACK, json=cart_event("c-ok3"), headers=no_origin)
    assert response.status_code == 202
    assert "Access-Control-Allow-Origin" not in response.headers


@pytest.mark.parametrize(
    "origin",
    [
        "https://evil.example.org",
        "null",
        "https://shop.example.com.evil.org",
        "http://shop.example.com",
    ],
)
def test_track_from_another_origin_is_403(client, db, pk, origin):
    response = client.post(
        TRACK, json=cart_event("c-evil"), headers=browser(pk.publishable_key, origin)
    )
    assert response.status_code == 403
    assert response.get_json()["error"]["code"] == "origin_not_allowed"
    assert "Access-Control-Allow-Origin" not in response.headers
    assert api_cart(db, pk.org_id, "c-evil") is None


def test_key_whose_origins_were_never_saved_allows_no_browser(client, db, org):
    key = tenancy.create_api_key(db, org.org_id, "publishable")
    response = client.post(TRACK, json=cart_event("c-none"), headers=browser(key))
    assert response.status_code == 403


def test_admin_key_on_track_is_not_origin_checked(client, db, org):
    response = client.post(
        TRACK,
        json=cart_event("c-admin"),
        headers={**org.headers, "Origin": "https://anything.example"},
    )
    assert response.status_code == 202
    assert "Access-Control-Allow-Origin" not in response.headers


def _filled(rule: str) -> str:
    return re.sub(
        r"<(?:[^:>]+:)?([^>]+)>", lambda m: str(uuid.uuid4()) if "id" in m.group(1) else "x", rule
    )


SIGN_IN = "/api/v1/auth/token"


def test_publishable_key_is_refused_everywhere_else(app, client, pk):
    """Every /api/v1 endpoint except the two the snippet calls refuses a publishable key
    (sign-in, which takes an email and password and no key at all, aside)."""
    headers = browser(pk.publishable_key)
    checked = []
    for rule in app.url_map.iter_rules():
        if not rule.rule.startswith("/api/v1/") or rule.rule in (TRACK, PUSH, SIGN_IN):
            continue
        for method in sorted((rule.methods or set()) - {"HEAD", "OPTIONS"}):
            response = client.open(_filled(rule.rule), method=method, headers=headers, json={})
            checked.append((method, rule.rule))
            assert response.status_code == 403, (method, rule.rule, response.status_code)
    assert ("GET", "/api/v1/carts") in checked and ("POST", "/api/v1/events/batch") in checked


def test_rate_limit_per_key_and_client_ip(app, client, db, pk):
    # A day-long window: the test's few requests cannot straddle two windows.
    app.config.update(PUBLISHABLE_RATE_LIMIT=3, PUBLISHABLE_RATE_WINDOW=86400)
    headers = browser(pk.publishable_key)
    for i in range(3):
        assert client.post(TRACK, json=cart_event(f"c-rl{i}"), headers=headers).status_code == 202
    limited = client.post(TRACK, json=cart_event("c-rl-over"), headers=headers)
    assert limited.status_code == 429
    assert limited.get_json()["error"]["code"] == "rate_limited"
    assert 1 <= int(limited.headers["Retry-After"]) <= 86400
    assert limited.headers["Access-Control-Allow-Origin"] == ORIGIN  # readable by the page
    assert api_cart(db, pk.org_id, "c-rl-over") is None
    # Push subscriptions share the key's budget.
    assert (
        client.post(PUSH, json={"subscription": SUBSCRIPTION}, headers=headers).status_code == 429
    )

    other_ip = client.post(
        TRACK,
        json=cart_event("c-rl-ip"),
        headers=headers,
        environ_base={"REMOTE_ADDR": "198.51.100.7"},
    )
    assert other_ip.status_code == 202
    other_key = create_publishable_key(db, pk.org_id, [ORIGIN])
    assert (
        client.post(TRACK, json=cart_event("c-rl-key"), headers=browser(other_key)).status_code
        == 202
    )
    # Server-side keys are not limited.
    assert client.post(TRACK, json=cart_event("c-rl-admin"), headers=pk.headers).status_code == 202


def test_fixed_window_counts_and_retry_after(runtime):
    bucket = f"test:{uuid.uuid4()}"
    rate = RateLimit(limit=2, window_seconds=60)
    now = 1_800_000_000 + 15.5  # 15.5 s into a window
    assert hit_rate_limit(runtime.redis, bucket, rate, now) is None
    assert hit_rate_limit(runtime.redis, bucket, rate, now + 1) is None
    assert hit_rate_limit(runtime.redis, bucket, rate, now + 2) == 43  # 60 - 17.5, rounded up
    assert hit_rate_limit(runtime.redis, bucket, rate, now + 45) is None  # the next window
    ttl = runtime.redis.ttl(f"cartrecovery:ratelimit:{bucket}:{int((now + 45) // 60)}")
    assert ttl > 0


def test_rate_limiter_lets_requests_through_when_redis_is_down():
    dead = redis_lib.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.5)
    assert hit_rate_limit(dead, "x", RateLimit(1, 60)) is None


# --- push subscriptions ----------------------------------------------------------------------


def test_push_subscription_is_stored_once_per_endpoint(client, db, pk):
    headers = browser(pk.publishable_key, **{"User-Agent": "Mozilla/5.0 TestBrowser"})
    assert (
        client.post(
            TRACK, json=cart_event("c-push", email="Push@Example.com"), headers=headers
        ).status_code
        == 202
    )
    body = {"subscription": SUBSCRIPTION, "cart_id": "c-push"}
    first = client.post(PUSH, json=body, headers=headers)
    assert first.status_code == 201, first.get_json()
    assert first.headers["Access-Control-Allow-Origin"] == ORIGIN
    renewed = dict(SUBSCRIPTION, keys=dict(SUBSCRIPTION["keys"], auth="AAAAAAAAAAAAAAAAAAAAAA"))
    second = client.post(PUSH, json={"subscription": renewed, "cart_id": "c-push"}, headers=headers)
    assert second.status_code == 200
    assert second.get_json() == {
        "subscription_id": first.get_json()["subscription_id"],
        "status": "updated",
    }

    with db.system() as conn:
        rows = conn.execute(
            "SELECT * FROM app.push_subscriptions WHERE org_id = %s", (pk.org_id,)
        ).fetchall()
    [row] = rows
    cart = api_cart(db, pk.org_id, "c-push")
    assert row["endpoint"] == SUBSCRIPTION["endpoint"]
    assert (row["p256dh"], row["auth"]) == (
        SUBSCRIPTION["keys"]["p256dh"],
        "AAAAAAAAAAAAAAAAAAAAAA",
    )
    assert (row["cart_id"], row["external_cart_id"]) == (cart["cart_id"], "c-push")
    assert (row["customer_id"], row["email"]) == (cart["customer_id"], "push@example.com")
    assert row["user_agent"] == "Mozilla/5.0 TestBrowser"
    assert row["key_id"] == load_publishable_key(db, pk.publishable_key).key_id


def test_subscription_before_its_cart_is_found_for_the_cart(client, db, pk):
    headers = browser(pk.publishable_key)
    response = client.post(
        PUSH, json={"subscription": SUBSCRIPTION, "cart_id": "c-later"}, headers=headers
    )
    assert response.status_code == 201
    assert client.post(TRACK, json=cart_event("c-later"), headers=headers).status_code == 202
    cart = api_cart(db, pk.org_id, "c-later")
    with db.tenant(pk.org_id) as conn:
        found = push_subscriptions.subscriptions_for_cart(conn, pk.org_id, cart["cart_id"])
        assert [f["endpoint"] for f in found] == [SUBSCRIPTION["endpoint"]]
        assert push_subscriptions.delete_subscription(conn, pk.org_id, SUBSCRIPTION["endpoint"])
        assert push_subscriptions.subscriptions_for_cart(conn, pk.org_id, cart["cart_id"]) == []


def _with(**changes) -> dict:
    sub = json.loads(json.dumps(SUBSCRIPTION))
    for dotted, value in changes.items():
        target = sub
        *path, last = dotted.split("__")
        for part in path:
            target = target[part]
        target[last] = value
    return {"subscription": sub}


@pytest.mark.parametrize(
    ("body", "code"),
    [
        ({}, "validation_error"),
        ({"subscription": {"endpoint": "https://push.example.com/x"}}, "validation_error"),
        (_with(keys__p256dh="not-a-point"), "validation_error"),
        (_with(keys__p256dh="BAAA"), "validation_error"),
        (_with(keys__auth="c2hvcnQ"), "validation_error"),
        (_with(endpoint="http://fcm.googleapis.com/fcm/send/x"), "invalid_endpoint"),
        (_with(endpoint="https://127.0.0.1/push"), "invalid_endpoint"),
        (_with(endpoint="https://10.1.2.3/push"), "invalid_endpoint"),
        (_with(endpoint="https://localhost/push"), "invalid_endpoint"),
        (_with(endpoint="javascript:alert(1)"), "invalid_endpoint"),
        ({**_with(), "email": "not-an-email"}, "validation_error"),
    ],
)
def test_bad_push_subscriptions_are_400(client, db, pk, body, code):
    response = client.post(PUSH, json=body, headers=browser(pk.publishable_key))
    assert response.status_code == 400
    assert response.get_json()["error"]["code"] == code
    assert (
        one(db, "SELECT count(*) AS n FROM app.push_subscriptions WHERE org_id = %s", pk.org_id)[
            "n"
        ]
        == 0
    )


def test_local_push_endpoints_when_configured(app, client, pk):
    # For development and tests against a local push server.
    app.config["PUSH_ALLOW_LOCAL_ENDPOINTS"] = True
    response = client.post(
        PUSH, json=_with(endpoint="http://127.0.0.1:9/push"), headers=browser(pk.publishable_key)
    )
    assert response.status_code == 201


def test_push_subscription_needs_a_track_key(client, db, pk):
    read = tenancy.create_api_key(db, pk.org_id, "read")
    response = client.post(PUSH, json=_with(), headers={"Authorization": f"Bearer {read}"})
    assert response.status_code == 403
    assert client.post(PUSH, json=_with()).status_code == 401
    assert (
        client.post(
            PUSH, json=_with(), headers=browser(pk.publishable_key, "https://evil.example")
        ).status_code
        == 403
    )


def test_new_paths_are_in_the_openapi_document(client):
    paths = client.get("/api/openapi.json").get_json()["paths"]
    assert "post" in paths[PUSH] and "post" in paths["/api/v1/publishable-keys"]

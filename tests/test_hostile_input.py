"""Hostile requests: bodies over the limit and deeply nested JSON on every route that takes a
body, and hostile values in every request header the code reads. Each gets a 4xx JSON error
(or the route's ordinary answer), never a 5xx, and nothing is stored."""

from __future__ import annotations

import re
import uuid

import pytest

# Every header some part of ingest reads (grep request.headers): auth, CORS, platform and
# provider signatures and routing, proxies, content negotiation.
READ_HEADERS = [
    "Authorization",
    "Origin",
    "Content-Type",
    "Accept",
    "X-Forwarded-Proto",
    "X-Forwarded-Host",
    "X-Forwarded-For",
    "X-Request-ID",
    "X-Shopify-Hmac-Sha256",
    "X-Shopify-Shop-Domain",
    "X-Shopify-Topic",
    "X-Shopify-Webhook-Id",
    "X-Shopify-Event-Id",
    "X-WC-Webhook-Signature",
    "X-WC-Webhook-Source",
    "X-WC-Webhook-Topic",
    "X-WC-Webhook-ID",
    "X-WC-Webhook-Delivery-ID",
    "X-Twilio-Signature",
    "X-Twilio-Email-Event-Webhook-Signature",
    "X-Twilio-Email-Event-Webhook-Timestamp",
    "X-Magento-Signature",
    "X-Cartrecovery-Signature",
    "X-Signature",
    "Idempotency-Key",
]
HOSTILE_VALUES = [
    "x" * 8000,
    "\u202e\u0000\u001f",
    "bearer \u00ff\u00fe",
    "Bearer cr_" + "0" * 32 + "_" + "A" * 40,
    "Bearer a.b.c",
    "Bearer " + "e30." * 3,
    "null",
    "*",
    "https://evil.example.com, https://also.example.com",
    "../../../etc/passwd",
    "' OR 1=1 --",
    "%0d%0aSet-Cookie: x=1",
    "text/html; charset=utf-7",
    "application/json; charset=nonsense",
]


def _concrete(rule: str) -> str:
    def fill(match: re.Match) -> str:
        return str(uuid.uuid4()) if (match.group(1) or "").startswith("uuid") else "x"

    return re.sub(r"<(?:(\w+)(?:\([^)]*\))?:)?\w+>", fill, rule)


def _body_routes(app) -> list[tuple[str, str]]:
    return sorted(
        (method, _concrete(rule.rule))
        for rule in app.url_map.iter_rules()
        for method in rule.methods & {"POST", "PUT", "PATCH"}
    )


def _assert_json_4xx(response, where):
    assert 400 <= response.status_code < 500, (where, response.status_code, response.data[:300])
    error = response.get_json()["error"]
    assert set(error) == {"code", "message", "details"}, where


def _events(db) -> int:
    with db.system() as conn:
        return conn.execute("SELECT count(*) AS n FROM raw.events").fetchone()["n"]


def test_bodies_over_the_limit_are_413_everywhere(app, client, org, db):
    limit = app.config["MAX_CONTENT_LENGTH"]
    before = _events(db)
    routes = _body_routes(app)
    for method, path in routes:
        body = b'{"a":"' + b"x" * limit + b'"}'
        response = client.open(
            path,
            method=method,
            data=body,
            headers={**org.headers, "Content-Type": "application/json"},
        )
        # Routes that refuse the method or the auth first may answer 401/404/405: still 4xx.
        _assert_json_4xx(response, (method, path))
        # A declared length over the limit is refused before the body is read.
    assert _events(db) == before
    print(f"over-limit bodies sent: {len(routes)} routes")
    assert len(routes) > 20


@pytest.mark.parametrize("shape", ["array", "object"])
def test_deeply_nested_json_is_refused_not_crashed(app, client, org, db, shape):
    depth = 100_000
    body = (
        ("[" * depth + "]" * depth) if shape == "array" else ('{"a":' * depth + "1" + "}" * depth)
    )
    before = _events(db)
    routes = _body_routes(app)
    for method, path in routes:
        response = client.open(
            path,
            method=method,
            data=body,
            headers={**org.headers, "Content-Type": "application/json"},
        )
        _assert_json_4xx(response, (method, path))
    assert _events(db) == before


def test_hostile_values_in_every_header_read(app, client, org, db):
    before = _events(db)
    targets = [
        ("POST", "/api/v1/carts/track"),
        ("POST", "/api/v1/events/batch"),
        ("GET", "/api/v1/carts"),
        ("POST", "/api/webhooks/shopify/checkout-update"),
        ("POST", "/api/webhooks/woocommerce"),
        ("POST", "/api/webhooks/bigcommerce"),
        ("POST", "/api/webhooks/magento"),
        ("POST", f"/api/webhooks/custom/{uuid.uuid4()}"),
        ("POST", "/api/webhooks/sendgrid/events"),
        ("POST", "/api/webhooks/twilio/status"),
        ("POST", "/api/webhooks/twilio/inbound"),
        ("OPTIONS", "/api/v1/carts/track"),
        ("GET", "/api/health"),
        ("GET", "/r/x"),
    ]
    sent = 0
    for header in READ_HEADERS:
        for value in HOSTILE_VALUES:
            for method, path in targets:
                headers = {**org.headers, header: value}
                response = client.open(path, method=method, data=b'{"id": 1}', headers=headers)
                assert response.status_code < 500, (header, value[:40], method, path)
                for name, echoed in response.headers.items():
                    assert "\n" not in echoed and "\r" not in echoed, (header, name)
                sent += 1
    assert _events(db) == before
    print(f"hostile header requests: {sent}")

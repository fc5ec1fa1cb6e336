"""Security headers on every response, CORS only for configured origins, and the REST API's
rate limits per API key and per client IP (429 with Retry-After)."""

from __future__ import annotations

import dataclasses
import random
import re
import uuid

import pytest

from cartrecovery.rate_limits import RateLimit
from ingest.http_headers import SECURITY_HEADERS

ADMIN_ORIGIN = "https://admin.example.com"


def _app(settings, **changes):
    from ingest.app import create_app

    app = create_app(dataclasses.replace(settings, **changes))
    app.config.update(TESTING=True)
    return app


def _concrete(rule: str) -> str:
    """A request path for a url rule: every variable filled with something plausible."""

    def fill(match: re.Match) -> str:
        converter = match.group(1) or ""
        return str(uuid.uuid4()) if converter.startswith("uuid") else "x"

    return re.sub(r"<(?:(\w+)(?:\([^)]*\))?:)?\w+>", fill, rule)


def test_every_route_answers_with_security_headers(app, client):
    seen = 0
    for rule in app.url_map.iter_rules():
        path = _concrete(rule.rule)
        for method in sorted(rule.methods - {"HEAD"}):
            response = client.open(path, method=method)
            for name, value in SECURITY_HEADERS.items():
                assert response.headers.get(name) == value, (method, path, name)
            if path.startswith("/api/"):
                assert response.headers.get("Cache-Control") == "no-store", (method, path)
            assert response.status_code < 500, (method, path, response.get_data(as_text=True))
            seen += 1
    # Also unknown routes and errors raised before a view runs.
    for response in (client.get("/nope"), client.post("/api/v1/campaigns", data=b"x" * 2**21)):
        for name, value in SECURITY_HEADERS.items():
            assert response.headers.get(name) == value
    print(f"routes x methods checked: {seen}")
    assert seen > 40


def test_hsts_when_served_over_https(settings):
    client = _app(settings, app_url="https://recover.example.com").test_client()
    assert client.get("/api/health").headers["Strict-Transport-Security"].startswith("max-age=")
    assert (
        "Strict-Transport-Security" not in _app(settings).test_client().get("/api/health").headers
    )


def test_cors_only_for_configured_origins(settings, org):
    plain = _app(settings).test_client()
    response = plain.get("/api/v1/carts", headers={**org.headers, "Origin": ADMIN_ORIGIN})
    assert response.status_code == 200
    assert "Access-Control-Allow-Origin" not in response.headers

    client = _app(settings, cors_origins=(ADMIN_ORIGIN,)).test_client()
    preflight = client.options(
        "/api/v1/campaigns",
        headers={
            "Origin": ADMIN_ORIGIN,
            "Access-Control-Request-Method": "POST",
            "Access-Control-Request-Headers": "Authorization, Content-Type",
        },
    )
    assert preflight.headers["Access-Control-Allow-Origin"] == ADMIN_ORIGIN
    assert "authorization" in preflight.headers["Access-Control-Allow-Headers"].lower()
    allowed = client.get("/api/v1/carts", headers={**org.headers, "Origin": ADMIN_ORIGIN})
    assert allowed.headers["Access-Control-Allow-Origin"] == ADMIN_ORIGIN
    assert "Access-Control-Allow-Credentials" not in allowed.headers
    for origin in ("https://evil.example.com", "https://admin.example.com.evil.example", "null"):
        other = client.get("/api/v1/carts", headers={**org.headers, "Origin": origin})
        assert other.status_code == 200
        assert "Access-Control-Allow-Origin" not in other.headers, origin
        pre = client.options(
            "/api/v1/carts", headers={"Origin": origin, "Access-Control-Request-Method": "GET"}
        )
        assert "Access-Control-Allow-Origin" not in pre.headers, origin


def _assert_429(response, scope: str):
    assert response.status_code == 429, response.get_data(as_text=True)
    retry_after = int(response.headers["Retry-After"])
    assert 1 <= retry_after <= 60
    error = response.get_json()["error"]
    assert error["code"] == "rate_limited"
    assert error["details"] == {"retry_after": retry_after, "scope": scope}


def test_rate_limit_per_api_key(settings, make_org):
    client = _app(settings, api_rate_limit_per_key=RateLimit(3, 60)).test_client()
    a, b = make_org("a"), make_org("b")
    statuses = [client.get("/api/v1/carts", headers=a.headers).status_code for _ in range(3)]
    assert statuses == [200, 200, 200]
    _assert_429(client.get("/api/v1/carts", headers=a.headers), "API key")
    # Writes are refused too, and change nothing.
    refused = client.post("/api/v1/campaigns", headers=a.headers, json={"name": "x"})
    _assert_429(refused, "API key")
    assert client.get("/api/v1/carts", headers=b.headers).status_code == 200
    # Health and webhooks are not the REST API: not limited per key.
    assert client.get("/api/health", headers=a.headers).status_code == 200


def test_rate_limit_per_client_ip(settings, make_org):
    client = _app(
        settings, api_rate_limit_per_ip=RateLimit(4, 60), api_rate_limit_per_key=None
    ).test_client()
    # An address of this test's own: runs on one machine share one Redis.
    ip = f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"
    other_ip = f"10.{random.randrange(256)}.{random.randrange(256)}.{random.randrange(1, 255)}"
    keys = [make_org(f"ip{i}").headers for i in range(5)]
    env = {"REMOTE_ADDR": ip}
    statuses = [client.get("/api/v1/carts", headers=h, environ_base=env).status_code for h in keys]
    assert statuses[:4] == [200] * 4
    _assert_429(client.get("/api/v1/carts", headers=keys[4], environ_base=env), "client IP")
    # Unauthenticated guesses spend the same budget.
    _assert_429(
        client.get("/api/v1/carts", headers={"Authorization": "Bearer junk"}, environ_base=env),
        "client IP",
    )
    # A spoofed forwarding header changes nothing: the connection's address counts.
    spoofed = client.get(
        "/api/v1/carts", headers={**keys[0], "X-Forwarded-For": other_ip}, environ_base=env
    )
    _assert_429(spoofed, "client IP")
    assert (
        client.get("/api/v1/carts", headers=keys[0], environ_base={"REMOTE_ADDR": other_ip})
    ).status_code == 200


@pytest.mark.parametrize(
    "value, expected",
    [("100/10", RateLimit(100, 10)), ("50", RateLimit(50, 60)), ("off", None), ("0", None)],
)
def test_rate_limit_settings(monkeypatch, value, expected):
    from cartrecovery.settings import Settings

    monkeypatch.setenv("API_RATE_LIMIT_PER_KEY", value)
    assert Settings.from_env().api_rate_limit_per_key == expected


@pytest.mark.parametrize("value", ["many", "10/x", "-1/60", "5/0"])
def test_rate_limit_settings_refuse_nonsense(monkeypatch, value):
    from cartrecovery.settings import Settings

    monkeypatch.setenv("API_RATE_LIMIT_PER_IP", value)
    with pytest.raises(ValueError):
        Settings.from_env()

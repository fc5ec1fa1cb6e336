"""Operations: Prometheus /metrics, request ids (answered, logged, carried into jobs), the
applier health hook, and a scan proving the logs hold no contact detail or credential in
clear while real flows run at DEBUG."""

from __future__ import annotations

import io
import json
import logging
import re
import uuid

import pytest
from conftest import shopify_hmac

from cartrecovery import logs, tenancy, users


def _sample(text: str, name: str, **labels) -> float:
    total = 0.0
    for line in text.splitlines():
        if not line.startswith(name + "{") and not line.startswith(name + " "):
            continue
        if all(f'{k}="{v}"' in line for k, v in labels.items()):
            total += float(line.rsplit(" ", 1)[1])
    return total


TRACK = {
    "event": "cart_updated",
    "timestamp": "2026-01-01T00:00:00Z",
    "cart_data": {"cart_id": "ops-1", "email": "ops@example.com", "currency": "USD"},
}


def test_metrics_count_requests_by_route_events_and_queue(client, org):
    before = client.get("/metrics").get_data(as_text=True)
    cart_id = str(uuid.uuid4())
    assert client.get(f"/api/v1/carts/{cart_id}", headers=org.headers).status_code == 404
    body = {**TRACK, "cart_data": {**TRACK["cart_data"], "cart_id": uuid.uuid4().hex}}
    assert client.post("/api/v1/carts/track", headers=org.headers, json=body).status_code == 202
    assert client.post("/api/v1/carts/track", headers=org.headers, json=body).status_code == 202
    response = client.get("/metrics")
    assert response.status_code == 200 and response.mimetype == "text/plain"
    text = response.get_data(as_text=True)

    route = "/api/v1/carts/<id>"
    name = "cartrecovery_http_request_duration_seconds_count"
    assert (
        _sample(text, name, route=route, status="404")
        == _sample(before, name, route=route, status="404") + 1
    )
    assert cart_id not in text  # routes, never paths
    received = "cartrecovery_events_received_total"
    assert (
        _sample(text, received, source="api", outcome="accepted")
        == _sample(before, received, source="api", outcome="accepted") + 1
    )
    assert _sample(text, received, source="api", outcome="duplicate") >= 1
    assert _sample(text, "cartrecovery_events_applied_total", source="api") >= 1
    assert "cartrecovery_applier_lag_seconds" in text
    assert re.search(r'cartrecovery_queue_jobs\{queue="[^"]+",state="queued"\}', text)
    for name in ("cartrecovery_messages_total", "cartrecovery_provider_errors_total"):
        assert f"# HELP {name} " in text


def test_applier_health_reports_the_watermark_and_sets_the_lag_gauge(client):
    response = client.get("/api/health/applier")
    assert response.status_code == 200
    body = response.get_json()
    assert body["status"] == "ok" and body["oldest_pending_ms"] >= 0
    metrics = client.get("/metrics").get_data(as_text=True)
    assert re.search(r"^cartrecovery_applier_lag_seconds(\{[^}]*\})? ", metrics, re.M)


def test_request_id_is_answered_and_well_formed(client):
    given = client.get("/api/health", headers={"X-Request-ID": "lb-1234.abc"})
    assert given.headers["X-Request-ID"] == "lb-1234.abc"
    for hostile in ("x" * 200, "a b", "id\u00e9", "<script>"):
        answer = client.get("/api/health", headers={"X-Request-ID": hostile})
        assert re.fullmatch(r"[0-9a-f]{32}", answer.headers["X-Request-ID"]), hostile
    assert re.fullmatch(r"[0-9a-f]{32}", client.get("/api/health").headers["X-Request-ID"])
    # Also on answers refused before any view runs.
    refused = client.get("/api/v1/carts", headers={"X-Request-ID": "r-1"})
    assert refused.status_code == 401 and refused.headers["X-Request-ID"] == "r-1"


def test_jobs_carry_the_enqueuing_request_id(settings):
    from cartrecovery.runtime import Runtime
    from delivery import jobs

    rt = Runtime(
        settings.__class__(**{**settings.__dict__, "queue_name": f"ops-{uuid.uuid4().hex[:8]}"})
    )
    token = logs.REQUEST_ID.set("req-42")
    try:
        jobs.enqueue(rt, [{"org_id": str(uuid.uuid4()), "message_id": str(uuid.uuid4())}])
    finally:
        logs.REQUEST_ID.reset(token)
    jobs.enqueue(rt, [{"org_id": str(uuid.uuid4()), "message_id": str(uuid.uuid4())}])
    queue = jobs.queue(rt)
    metas = [queue.fetch_job(job_id).meta["request_id"] for job_id in queue.get_job_ids()]
    queue.empty()
    queue.delete(delete_jobs=True)
    assert metas[0] == "req-42" and metas[1].startswith("job-")


@pytest.fixture()
def captured_logs():
    """The product's own log handler (JSON, redacting) on the root logger at DEBUG."""
    stream = io.StringIO()
    handler = logs.handler(stream=stream)
    root = logging.getLogger()
    previous = root.level
    root.addHandler(handler)
    root.setLevel(logging.DEBUG)
    yield stream
    root.removeHandler(handler)
    root.setLevel(previous)


def test_logs_hold_no_secret_key_token_email_or_phone(
    app, client, db, make_org, runtime, captured_logs
):
    org = make_org("logscan")
    email, phone, password = "private.person@example.com", "+15035550187", "correct horse 42"
    secret = "shpss_logscan_secret_value"
    shop = f"logscan-{uuid.uuid4().hex[:6]}.myshopify.com"
    tenancy.add_connection(db, runtime.encryption_key, org.org_id, "shopify", shop, secret)
    users.create_user(db, email, org.org_id, "admin", password)
    token = client.post("/api/v1/auth/token", json={"email": email, "password": password})
    access = token.get_json()["access_token"]

    flows = [
        client.post(
            "/api/v1/carts/track",
            headers=org.headers,
            json={**TRACK, "cart_data": {"cart_id": "scan", "email": email, "phone": phone}},
        ),
        client.post(
            "/api/v1/consents",
            headers=org.headers,
            json={"channel": "sms", "address": phone, "status": "granted", "source": "checkout"},
        ),
        client.get("/api/v1/carts", headers={"Authorization": f"Bearer {access}"}),
        client.get(f"/api/v1/carts?email={email}", headers=org.headers),
        client.post(
            "/api/v1/auth/token",
            json={"email": email, "password": "wrong " + password},
            headers={"X-Request-ID": "scan-1"},
        ),
        client.get("/api/v1/carts", headers={"Authorization": f"Bearer {org.api_key}x"}),
        client.post("/api/v1/carts/track", headers=org.headers, data=b"{" + email.encode()),
    ]
    body = json.dumps({"token": "t-scan", "email": email, "phone": phone}).encode()
    for signature in (shopify_hmac(secret, body), "forged"):
        flows.append(
            client.post(
                "/api/webhooks/shopify/checkout-create",
                data=body,
                headers={
                    "X-Shopify-Hmac-Sha256": signature,
                    "X-Shopify-Shop-Domain": shop,
                    "X-Shopify-Topic": "checkouts/create",
                    "Content-Type": "application/json",
                },
            )
        )
    logging.getLogger("cartrecovery.scan").warning(
        "a careless line: %s %s %s %s", email, phone, org.api_key, access
    )
    assert all(r.status_code < 500 for r in flows)

    text = captured_logs.getvalue()
    lines = [json.loads(line) for line in text.splitlines() if line.strip()]
    print(f"log lines scanned: {len(lines)}")
    assert len(lines) >= 3
    assert any(line.get("request_id") == "scan-1" for line in lines)
    for needle in (
        email,
        phone,
        phone[2:],
        password,
        secret,
        org.api_key,
        access,
        "test-secret-key",
    ):
        assert needle not in text, needle
    assert not re.search(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}", text)
    assert not re.search(r"cr_[0-9a-f]{32}_", text)

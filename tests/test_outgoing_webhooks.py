"""Outgoing webhooks: subscriptions API, signed deliveries through a real RQ worker to the
recorder, retries driven through next_attempt_at, disabling, tenant isolation."""

from __future__ import annotations

import json
import uuid
from datetime import datetime

import pytest
from rq.job import Job

from cartrecovery import outgoing_webhooks as hooks
from cartrecovery import tenancy
from cartrecovery.consents import record_consent
from cartrecovery.org_settings import update_settings
from cartrecovery.runtime import Runtime
from cartrecovery.settings import with_overrides
from delivery import jobs, webhook_jobs
from delivery.worker import run_worker

HOOK_PATH = "/hooks/cartrecovery"


@pytest.fixture()
def rt(settings):
    """A runtime on a queue of this test's own, cleaned afterwards."""
    rt = Runtime(
        with_overrides(settings, queue_name=f"{settings.queue_name}-wh-{uuid.uuid4().hex[:8]}")
    )
    jobs.configure(rt)
    yield rt
    q = jobs.queue(rt)
    for job_id in q.get_job_ids() + q.failed_job_registry.get_job_ids():
        rt.redis.delete(Job.key_for(job_id))
    keys = list(rt.redis.scan_iter(f"*{q.name}*"))
    if keys:
        rt.redis.delete(*keys)
    rt.redis.srem("rq:queues", q.key)
    jobs.configure(None)


def subscribe(client, org, url, events=("cart.abandoned", "message.clicked")):
    response = client.post(
        "/api/v1/webhook-subscriptions",
        json={"url": url, "events": list(events), "description": "crm"},
        headers=org.headers,
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    return response.get_json()


def emit(db, org_id, event_type="cart.abandoned", **data):
    with db.tenant(org_id) as conn:
        return hooks.emit(conn, org_id, event_type, {"cart_id": str(uuid.uuid4()), **data})


def work(rt):
    run_worker(rt.settings, burst=True)
    jobs.configure(rt)


def deliveries(db, org_id):
    with db.system() as conn:
        return conn.execute(
            "SELECT * FROM app.webhook_deliveries WHERE org_id = %s ORDER BY created_at", (org_id,)
        ).fetchall()


def subscription(db, org_id, subscription_id):
    with db.system() as conn:
        return conn.execute(
            "SELECT * FROM app.webhook_subscriptions WHERE org_id = %s AND subscription_id = %s",
            (org_id, subscription_id),
        ).fetchone()


def test_signed_delivery_reaches_the_subscriber(db, client, org, rt, recorder):
    sub = subscribe(client, org, recorder.url + HOOK_PATH)
    assert sub["secret"].startswith("whsec_") and sub["status"] == "active"
    assert emit(db, org.org_id, total_price="71.82", email="jane@example.com") == 1
    assert emit(db, org.org_id, "cart.recovered") == 0  # not subscribed

    assert webhook_jobs.enqueue_due(rt) == 1
    assert webhook_jobs.enqueue_due(rt) == 0  # claimed once
    work(rt)

    [request] = recorder.find("POST", HOOK_PATH)
    body = request["body"]
    assert hooks.verify_signature(
        sub["secret"], request["headers"]["X-Cartrecovery-Signature"], body
    )
    assert not hooks.verify_signature(
        "whsec_wrong", request["headers"]["X-Cartrecovery-Signature"], body
    )
    assert not hooks.verify_signature(
        sub["secret"], request["headers"]["X-Cartrecovery-Signature"], body + b" "
    )
    # The signature is over "<t>.<raw body>", as documented.
    t = request["headers"]["X-Cartrecovery-Signature"].split(",")[0].removeprefix("t=")
    import hashlib
    import hmac

    assert request["headers"]["X-Cartrecovery-Signature"].endswith(
        hmac.new(sub["secret"].encode(), f"{t}.".encode() + body, hashlib.sha256).hexdigest()
    )
    event = json.loads(body)
    assert event["type"] == "cart.abandoned" and event["data"]["total_price"] == "71.82"
    assert set(event) == {"id", "type", "created_at", "data"}
    assert request["headers"]["X-Cartrecovery-Event"] == "cart.abandoned"
    [row] = deliveries(db, org.org_id)
    assert row["status"] == "delivered" and row["attempts"] == 1
    assert str(row["event_id"]) == event["id"]
    # A job that runs again does not post again.
    assert webhook_jobs.deliver(str(org.org_id), str(row["delivery_id"])) == "skipped"
    assert len(recorder.find("POST", HOOK_PATH)) == 1


def test_failed_delivery_is_retried_with_backoff(db, client, org, rt, recorder):
    recorder.respond("POST", HOOK_PATH, 500, {"error": "down"}, times=1)
    recorder.respond("POST", HOOK_PATH, 200, {})
    sub = subscribe(client, org, recorder.url + HOOK_PATH)
    emit(db, org.org_id)
    webhook_jobs.enqueue_due(rt)
    work(rt)
    [row] = deliveries(db, org.org_id)
    assert (row["status"], row["attempts"], row["last_status_code"]) == ("pending", 1, 500)
    with db.system() as conn:
        wait = conn.execute("SELECT %s - now() AS d", (row["next_attempt_at"],)).fetchone()["d"]
    assert 50 < wait.total_seconds() <= 60  # first backoff step: 1 minute
    assert subscription(db, org.org_id, sub["subscription_id"])["consecutive_failures"] == 1
    assert webhook_jobs.enqueue_due(rt) == 0  # not due yet

    with db.system() as conn:
        conn.execute(
            "UPDATE app.webhook_deliveries SET next_attempt_at = now() - interval '1 s' "
            "WHERE org_id = %s",
            (org.org_id,),
        )
    assert webhook_jobs.enqueue_due(rt) == 1
    work(rt)
    [row] = deliveries(db, org.org_id)
    assert (row["status"], row["attempts"], row["last_status_code"]) == ("delivered", 2, 200)
    first, second = recorder.find("POST", HOOK_PATH)
    assert json.loads(first["body"])["id"] == json.loads(second["body"])["id"]
    assert hooks.verify_signature(
        sub["secret"], second["headers"]["X-Cartrecovery-Signature"], second["body"]
    )
    assert subscription(db, org.org_id, sub["subscription_id"])["consecutive_failures"] == 0


def test_delivery_gives_up_after_the_last_backoff(db, client, org, rt, recorder):
    recorder.respond("POST", HOOK_PATH, 503, {})
    subscribe(client, org, recorder.url + HOOK_PATH)
    emit(db, org.org_id)
    for _ in range(hooks.MAX_ATTEMPTS):
        with db.system() as conn:
            conn.execute(
                "UPDATE app.webhook_deliveries SET next_attempt_at = now() "
                "WHERE org_id = %s AND status = 'pending'",
                (org.org_id,),
            )
        assert webhook_jobs.enqueue_due(rt) == 1
        work(rt)
    [row] = deliveries(db, org.org_id)
    assert (row["status"], row["attempts"]) == ("failed", hooks.MAX_ATTEMPTS)
    assert webhook_jobs.enqueue_due(rt) == 0


def test_subscription_disabled_after_repeated_failures(db, client, org, rt, recorder):
    recorder.respond("POST", HOOK_PATH, 500, {})
    sub = subscribe(client, org, recorder.url + HOOK_PATH)
    for _ in range(hooks.DISABLE_AFTER + 2):
        emit(db, org.org_id)
    # One at a time, so the count of failures is exact.
    for _ in range(hooks.DISABLE_AFTER):
        assert webhook_jobs.enqueue_due(rt, limit=1) == 1
        work(rt)
    stored = subscription(db, org.org_id, sub["subscription_id"])
    assert stored["status"] == "disabled"
    assert "8 consecutive failed deliveries" in stored["disabled_reason"]
    assert "HTTP 500" in stored["disabled_reason"]
    assert len(recorder.find("POST", HOOK_PATH)) == hooks.DISABLE_AFTER
    statuses = [d["status"] for d in deliveries(db, org.org_id)]
    assert statuses.count("cancelled") == len(statuses)
    assert webhook_jobs.enqueue_due(rt) == 0
    assert emit(db, org.org_id) == 0  # a disabled subscription gets nothing new
    listed = client.get("/api/v1/webhook-subscriptions", headers=org.headers).get_json()
    assert listed["subscriptions"][0]["status"] == "disabled"
    assert listed["subscriptions"][0]["disabled_reason"] == stored["disabled_reason"]


def test_unreachable_subscriber_counts_as_a_failure(db, client, org, rt):
    subscribe(client, org, "http://127.0.0.1:9/unreachable")
    emit(db, org.org_id)
    webhook_jobs.enqueue_due(rt)
    work(rt)
    [row] = deliveries(db, org.org_id)
    assert row["status"] == "pending" and row["last_status_code"] is None
    assert "ConnectionError" in row["last_error"]


def test_subscriptions_are_isolated_per_org(db, client, org, make_org, rt, recorder):
    other = make_org("other")
    sub = subscribe(client, org, recorder.url + HOOK_PATH)
    assert client.get("/api/v1/webhook-subscriptions", headers=other.headers).get_json() == {
        "subscriptions": []
    }
    gone = client.delete(
        f"/api/v1/webhook-subscriptions/{sub['subscription_id']}", headers=other.headers
    )
    assert gone.status_code == 404
    assert emit(db, other.org_id) == 0
    assert deliveries(db, org.org_id) == []
    listed = client.get("/api/v1/webhook-subscriptions", headers=org.headers).get_json()
    assert [s["subscription_id"] for s in listed["subscriptions"]] == [sub["subscription_id"]]
    assert "secret" not in listed["subscriptions"][0]
    assert "secret_ciphertext" not in listed["subscriptions"][0]
    emit(db, org.org_id)
    deleted = client.delete(
        f"/api/v1/webhook-subscriptions/{sub['subscription_id']}", headers=org.headers
    )
    assert deleted.status_code == 204
    assert deliveries(db, org.org_id) == []


def test_subscription_input_is_validated(db, client, org):
    for body in (
        {"url": "ftp://x.example/h", "events": ["cart.abandoned"]},
        {"url": "https://x.example/h", "events": ["cart.exploded"]},
        {"url": "https://x.example/h", "events": []},
        {"url": "https://user:pw@x.example/h", "events": ["cart.abandoned"]},
        {"events": ["cart.abandoned"]},
    ):
        response = client.post("/api/v1/webhook-subscriptions", json=body, headers=org.headers)
        assert response.status_code == 400, body
        assert response.get_json()["error"]["code"] == "validation_error"
    read_key = tenancy.create_api_key(db, org.org_id, "read")
    denied = client.post(
        "/api/v1/webhook-subscriptions",
        json={"url": "https://x.example/h", "events": ["cart.abandoned"]},
        headers={"Authorization": f"Bearer {read_key}"},
    )
    assert denied.status_code == 403
    assert (
        client.delete("/api/v1/webhook-subscriptions/not-a-uuid", headers=org.headers).status_code
        == 404
    )
    with db.system() as conn:
        assert (
            conn.execute(
                "SELECT count(*) AS n FROM app.webhook_subscriptions WHERE org_id = %s",
                (org.org_id,),
            ).fetchone()["n"]
            == 0
        )
    with pytest.raises(ValueError):
        with db.tenant(org.org_id) as conn:
            hooks.emit(conn, org.org_id, "cart.exploded", {})


def test_verify_signature_refuses_old_timestamps():
    body = b'{"id":"1"}'
    header = hooks.sign("whsec_x", body, timestamp=1_000_000)
    assert hooks.verify_signature("whsec_x", header, body, now=1_000_100)
    assert not hooks.verify_signature("whsec_x", header, body, now=1_000_000 + 301)
    assert not hooks.verify_signature("whsec_x", "garbage", body)


def test_cart_and_message_payloads_are_json_ready(db, org, rt, recorder, client):
    sub = subscribe(
        client, org, recorder.url + HOOK_PATH, events=("cart.abandoned", "message.opened")
    )
    with db.tenant(org.org_id) as conn:
        cart = conn.execute(
            "INSERT INTO app.carts (org_id, platform, external_id, email, currency, "
            "total_price, item_count, line_items, restore_url, status, abandoned_at) VALUES "
            "(%s, 'custom', 'c-1', 'jane@example.com', 'USD', 71.82, 2, "
            "'[{\"title\": \"Beanie\"}]', 'https://shop/restore', 'abandoned', now()) "
            "RETURNING *",
            (org.org_id,),
        ).fetchone()
        assert hooks.emit(conn, org.org_id, "cart.abandoned", hooks.cart_data(cart)) == 1
        event = hooks.event_type_for("sendgrid", "open")
        assert (
            hooks.emit(
                conn,
                org.org_id,
                event,
                hooks.message_data(
                    {"message_id": uuid.uuid4(), "cart_id": cart["cart_id"], "channel": "email"}
                ),
            )
            == 1
        )
    assert hooks.event_type_for("sendgrid", "processed") is None
    assert hooks.event_type_for("twilio", "undelivered") == "message.bounced"
    webhook_jobs.enqueue_due(rt)
    work(rt)
    bodies = [json.loads(r["body"]) for r in recorder.find("POST", HOOK_PATH)]
    by_type = {b["type"]: b["data"] for b in bodies}
    assert by_type["cart.abandoned"]["total_price"] == "71.82"
    assert by_type["cart.abandoned"]["cart_id"] == str(cart["cart_id"])
    assert "restore_url" not in by_type["cart.abandoned"]
    assert by_type["message.opened"]["cart_id"] == str(cart["cart_id"])
    assert all(
        hooks.verify_signature(sub["secret"], r["headers"]["X-Cartrecovery-Signature"], r["body"])
        for r in recorder.find("POST", HOOK_PATH)
    )


def test_message_sent_carries_the_stored_send_time_and_provider_id(db, org, rt, recorder, client):
    sub = subscribe(client, org, recorder.url + HOOK_PATH, events=("message.sent",))
    # The built-in local provider on every channel: it answers with a provider message id.
    local = Runtime(
        with_overrides(
            rt.settings,
            sendgrid_api_key=None,
            twilio_account_sid=None,
            twilio_auth_token=None,
            vapid_private_key=None,
        )
    )
    with db.tenant(org.org_id) as conn:
        update_settings(conn, org.org_id, {"quiet_hours": {"start": "00:00", "end": "24:00"}})
        record_consent(
            conn,
            org.org_id,
            channel="email",
            address="jane@example.com",
            status="granted",
            source="checkout",
        )
        cart = conn.execute(
            "INSERT INTO app.carts (org_id, platform, external_id, email, currency, "
            "total_price, status, abandoned_at, last_activity_at) VALUES (%s, 'custom', 'c-2', "
            "'jane@example.com', 'USD', 42, 'abandoned', now() - interval '1 hour', "
            "now() - interval '61 minutes') RETURNING *",
            (org.org_id,),
        ).fetchone()
        campaign_id = conn.execute(
            "INSERT INTO app.campaigns (org_id, name, status) VALUES (%s, 'c', 'active') "
            "RETURNING campaign_id",
            (org.org_id,),
        ).fetchone()["campaign_id"]
        message_id = conn.execute(
            "INSERT INTO app.outbox (org_id, cart_id, campaign_id, step_index, channel, "
            "recipient, subject, template, due_at, status) VALUES (%s, %s, %s, 0, 'email', "
            "'jane@example.com', 'Still there?', 'cart_reminder', now(), 'enqueued') "
            "RETURNING message_id",
            (org.org_id, cart["cart_id"], campaign_id),
        ).fetchone()["message_id"]
    jobs.configure(local)
    try:
        assert jobs.send_message(str(org.org_id), str(message_id)) == "sent"
    finally:
        jobs.configure(rt)
    with db.tenant(org.org_id) as conn:
        stored = conn.execute(
            "SELECT * FROM app.outbox WHERE org_id = %s AND message_id = %s",
            (org.org_id, message_id),
        ).fetchone()
    assert stored["sent_at"] is not None and stored["provider_message_id"]

    assert webhook_jobs.enqueue_due(rt) == 1
    work(rt)
    [request] = recorder.find("POST", HOOK_PATH)
    assert hooks.verify_signature(
        sub["secret"], request["headers"]["X-Cartrecovery-Signature"], request["body"]
    )
    event = json.loads(request["body"])
    assert event["type"] == "message.sent"
    data = event["data"]
    assert data["message_id"] == str(message_id)
    assert data["provider"] == stored["provider"]
    assert data["provider_message_id"] == stored["provider_message_id"]
    assert datetime.fromisoformat(data["sent_at"]) == stored["sent_at"]

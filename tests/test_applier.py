"""The applier: webhooks acknowledged once stored, their cart state applied in batches later
(cartrecovery/applier.py, ingest/webhooks/committer.py).

These tests use Flask's plain test client (the shared ``client`` fixture applies after every
request) and drive the applier themselves with ``apply_pending``.
"""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import uuid
from datetime import datetime, timedelta
from pathlib import Path

import pytest
from conftest import fixture_bytes, fixture_headers, shopify_hmac, wait_for
from flask.testing import FlaskClient
from test_ingest_shopify import CHECKOUT_TOKEN, SECRET, connect_shop

from cartrecovery import applier
from cartrecovery.applier import Deferred, apply_pending, encode_change
from cartrecovery.canonical import CanonicalCart
from cartrecovery.events import namespaced_key
from delivery import enrollment, scheduler
from ingest.webhooks.committer import GroupCommitter, _Item

REPO = Path(__file__).resolve().parents[1]
ROUTE = "/api/webhooks/shopify/checkout-update"
FIXTURE = "shopify_checkouts_create.json"
T0 = datetime.fromisoformat("2026-03-14T10:04:37-04:00")


@pytest.fixture()
def shop(db, runtime, org):
    org.connection_id = connect_shop(db, runtime.encryption_key, org.org_id)
    yield org
    apply_pending(db)  # leave nothing pending for later tests


@pytest.fixture()
def raw_client(app):
    """A client that does not drive the applier (the state waits for apply_pending)."""
    return FlaskClient(app, app.response_class, use_cookies=False)


def checkout(token: str = CHECKOUT_TOKEN, updated_at: datetime = T0, price: str = "71.82"):
    payload = json.loads(fixture_bytes(FIXTURE))
    payload["token"] = token
    payload["updated_at"] = updated_at.isoformat()
    payload["total_price"] = price
    payload["line_items"] = payload["line_items"][:1]
    payload["line_items"][0]["price"] = price
    payload["line_items"][0]["quantity"] = 1
    return json.dumps(payload).encode()


def deliver(client, body: bytes, webhook_id: str | None = None):
    headers = fixture_headers("shopify", FIXTURE)
    headers["X-Shopify-Topic"] = "checkouts/update"
    headers["X-Shopify-Hmac-Sha256"] = shopify_hmac(SECRET, body)
    headers["X-Shopify-Webhook-Id"] = webhook_id or str(uuid.uuid4())
    response = client.post(ROUTE, data=body, headers=headers)
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def one(db, sql: str, *params):
    with db.system() as conn:
        return conn.execute(sql, params).fetchone()


def cart(db, org_id, token=CHECKOUT_TOKEN):
    return one(
        db,
        "SELECT * FROM app.carts WHERE org_id = %s AND platform = 'shopify' AND external_id = %s",
        org_id,
        token,
    )


def pending(db, org_id) -> int:
    return one(db, "SELECT count(*) AS n FROM raw.pending_changes WHERE org_id = %s", org_id)["n"]


def test_acknowledged_before_applied_then_applied(db, shop, raw_client):
    answer = deliver(raw_client, checkout())
    assert answer["status"] == "ok"
    event = one(db, "SELECT * FROM raw.events WHERE event_id = %s", answer["event_id"])
    assert event is not None and event["cart_id"] is None  # durable, not applied yet
    assert cart(db, shop.org_id) is None
    assert pending(db, shop.org_id) == 1

    assert apply_pending(db) >= 1
    row = cart(db, shop.org_id)
    assert row is not None and str(row["total_price"]) == "71.82"
    event = one(db, "SELECT cart_id FROM raw.events WHERE event_id = %s", answer["event_id"])
    assert event["cart_id"] == row["cart_id"]
    assert pending(db, shop.org_id) == 0


def test_redelivery_stored_once(db, shop, raw_client):
    body = checkout()
    first = deliver(raw_client, body, "hook-1")
    again = deliver(raw_client, body, "hook-1")  # before the applier ran
    assert first["status"] == "ok" and again == {"status": "duplicate"}
    apply_pending(db)
    again = deliver(raw_client, body, "hook-1")  # and after
    assert again == {"status": "duplicate"}
    count = one(
        db,
        "SELECT count(*) AS n FROM raw.events WHERE org_id = %s AND dedup_key = %s",
        shop.org_id,
        "shopify:hook-1",
    )
    assert count["n"] == 1
    assert pending(db, shop.org_id) == 0


def test_same_key_twice_in_one_batch_stored_once(db, shop):
    """Two deliveries of one webhook that land in the same group commit."""
    change = encode_change(CanonicalCart(platform="shopify", external_id="batch-twice"), None)

    def item():
        return _Item(
            shop.org_id,
            None,
            Deferred(
                source="shopify",
                topic="checkouts/update",
                dedup_key=namespaced_key("shopify", "twice"),
                payload_json="{}",
                headers_json="{}",
                platform="shopify",
                external_id="batch-twice",
                change=change,
            ),
        )

    first, second = item(), item()
    GroupCommitter(db, on_commit=lambda: None)._write([first, second])
    assert first.result is not None and second.result is None
    assert pending(db, shop.org_id) == 1


def test_out_of_order_events_applied_in_event_time_order(db, shop, raw_client):
    newer = checkout(updated_at=T0 + timedelta(minutes=5), price="99.00")
    older = checkout(updated_at=T0, price="10.00")
    deliver(raw_client, newer)
    deliver(raw_client, older)  # arrives last, happened first
    apply_pending(db)
    row = cart(db, shop.org_id)
    assert str(row["total_price"]) == "99.00"
    assert row["source_updated_at"] == T0 + timedelta(minutes=5)

    # The same in separate batches: an older change applied after a newer one changes nothing.
    token = "two-batches"
    deliver(raw_client, checkout(token, T0 + timedelta(minutes=5), "99.00"))
    apply_pending(db)
    deliver(raw_client, checkout(token, T0, "10.00"))
    apply_pending(db)
    assert str(cart(db, shop.org_id, token)["total_price"]) == "99.00"


def test_concurrent_appliers_never_double_apply(db, shop, raw_client):
    carts, per_cart = 20, 5
    for n in range(per_cart):
        for c in range(carts):
            deliver(raw_client, checkout(f"conc-{c}", T0 + timedelta(minutes=n), f"{n + 1}.00"))
    with db.system() as conn:
        logged0 = conn.execute(
            "SELECT coalesce(sum(cardinality(lags_ms)), 0) AS n FROM raw.applier_batches"
        ).fetchone()["n"]
    assert pending(db, shop.org_id) == carts * per_cart

    applied, errors = [], []
    barrier = threading.Barrier(4)

    def run():
        try:
            barrier.wait()
            applied.append(apply_pending(db, limit=7))
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=run) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(60)
    assert not errors
    # Each event is applied by exactly one applier: counts add up, each is logged once.
    assert sum(applied) == carts * per_cart
    with db.system() as conn:
        logged = conn.execute(
            "SELECT coalesce(sum(cardinality(lags_ms)), 0) AS n FROM raw.applier_batches"
        ).fetchone()["n"]
        unlinked = conn.execute(
            "SELECT count(*) AS n FROM raw.events WHERE org_id = %s AND cart_id IS NULL",
            (shop.org_id,),
        ).fetchone()["n"]
    assert logged - logged0 == carts * per_cart
    assert unlinked == 0 and pending(db, shop.org_id) == 0
    for c in range(carts):
        assert str(cart(db, shop.org_id, f"conc-{c}")["total_price"]) == f"{per_cart}.00"


def test_scheduler_leaves_carts_with_unapplied_events_alone(db, shop, raw_client, runtime):
    deliver(raw_client, checkout(updated_at=T0))
    apply_pending(db)
    with db.system() as conn:
        conn.execute(
            "UPDATE app.carts SET last_activity_at = now() - interval '3 days' WHERE org_id = %s",
            (shop.org_id,),
        )
    # A newer update is acknowledged, not applied: the cart is not idle any more.
    deliver(raw_client, checkout(updated_at=T0 + timedelta(minutes=1), price="80.00"))
    with db.system() as conn:
        status = conn.execute(
            "SELECT jsonb_build_object('w', min(received_at)) AS w FROM raw.pending_changes"
        ).fetchone()
        assert status["w"]["w"] is not None  # the watermark is behind
        abandoned = enrollment.mark_abandoned(conn, 500)
    assert shop.org_id not in {c["org_id"] for c in abandoned}
    assert cart(db, shop.org_id)["status"] == "active"

    # The tick applies first: the update makes the cart recent, so it stays active.
    counts = scheduler.tick(runtime)
    assert counts["applied"] >= 1
    row = cart(db, shop.org_id)
    assert row["status"] == "active" and str(row["total_price"]) == "80.00"


def test_order_applies_the_pending_checkout_first(db, shop, raw_client):
    """An order (applied inline) finds the cart a just-acknowledged checkout creates."""
    deliver(raw_client, fixture_bytes(FIXTURE))
    assert cart(db, shop.org_id) is None
    headers = fixture_headers("shopify", "shopify_orders_create.json")
    response = raw_client.post(
        "/api/webhooks/shopify/order-create",
        data=fixture_bytes("shopify_orders_create.json"),
        headers=headers,
    )
    assert response.status_code == 200
    row = cart(db, shop.org_id)
    assert row is not None and row["status"] == "converted"
    assert pending(db, shop.org_id) == 0


def test_erasure_covers_unapplied_events(db, shop, raw_client):
    from cartrecovery.privacy.erasure import erase_subject

    email = json.loads(fixture_bytes(FIXTURE))["email"]
    deliver(raw_client, checkout())
    assert pending(db, shop.org_id) == 1
    with db.tenant(shop.org_id) as conn:
        erase_subject(conn, shop.org_id, email=email, reason="test", requested_by="test")
    assert pending(db, shop.org_id) == 0
    with db.system() as conn:
        held = conn.execute(
            "SELECT count(*) AS n FROM app.carts WHERE org_id = %s AND email = %s",
            (shop.org_id, email.lower()),
        ).fetchone()["n"]
    assert held == 0


_KILLED_APPLIER = """
import sys, time
from cartrecovery import applier
from cartrecovery.db import Database
db = Database(sys.argv[1])
with db.system() as conn:
    claimed = applier.apply_batch(conn, limit=1000)  # applied, not committed
    backend = conn.execute("SELECT pg_backend_pid() AS pid").fetchone()["pid"]
    print(claimed, backend, flush=True)
    time.sleep(60)  # killed here
"""


def test_kill_between_ack_and_apply_loses_nothing(db, shop, raw_client, database_url):
    for n in range(5):
        deliver(raw_client, checkout(f"killed-{n}"))
    assert pending(db, shop.org_id) == 5
    # An applier process claims and applies them, and is killed before it commits.
    proc = subprocess.Popen(
        [sys.executable, "-c", _KILLED_APPLIER, database_url],
        cwd=REPO,
        stdout=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONPATH": str(REPO)},
    )
    try:
        claimed, backend = map(int, proc.stdout.readline().split())
        assert claimed >= 5
        assert apply_pending(db) == 0  # its rows are locked: skipped, not applied twice
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait(30)
    # PostgreSQL rolls the dead client's transaction back (and frees its row locks) when its
    # backend sees the connection closed, a moment after the kill: wait for that backend.
    wait_for(
        lambda: (
            one(db, "SELECT count(*) AS n FROM pg_stat_activity WHERE pid = %s", backend)["n"] == 0
        ),
        message=f"the killed applier's backend {backend} is still there",
    )
    assert pending(db, shop.org_id) == 5  # nothing of the killed run was kept
    assert apply_pending(db) >= 5
    assert pending(db, shop.org_id) == 0
    for n in range(5):
        assert cart(db, shop.org_id, f"killed-{n}") is not None


def test_health_reports_the_applier(db, shop, raw_client):
    deliver(raw_client, checkout("health"))
    body = raw_client.get("/api/health/applier").get_json()
    assert body["status"] == "ok"
    assert body["pending_events"] >= 1 and body["watermark"] is not None
    apply_pending(db)
    body = raw_client.get("/api/health/applier").get_json()
    assert body["pending_events"] == 0 and body["watermark"] is None
    assert body["applied_last_minute"] >= 1 and body["lag_ms"]["p99"] is not None


def test_the_applier_thread_applies_after_a_wake(db, shop, raw_client):
    thread = applier.ApplierThread(db, poll=30.0, gather=0.0)
    thread.start()
    try:
        applier_wake = applier._thread
        applier._thread = thread  # the committer wakes this process's thread
        deliver(raw_client, checkout("woken"))
        done = threading.Event()

        def applied():
            while cart(db, shop.org_id, "woken") is None:
                if done.wait(0.05):
                    return

        waiter = threading.Thread(target=applied)
        waiter.start()
        waiter.join(20)
        done.set()
        assert cart(db, shop.org_id, "woken") is not None
    finally:
        applier._thread = applier_wake
        thread.stop()


def test_completed_checkout_is_applied_before_the_answer(db, shop, raw_client):
    """Completion cancels pending messages: it must not wait for the applier."""
    deliver(raw_client, checkout("completed"))
    apply_pending(db)
    payload = json.loads(checkout("completed", T0 + timedelta(minutes=2)))
    payload["completed_at"] = (T0 + timedelta(minutes=2)).isoformat()
    deliver(raw_client, json.dumps(payload).encode())
    assert pending(db, shop.org_id) == 0
    assert cart(db, shop.org_id, "completed")["status"] == "converted"

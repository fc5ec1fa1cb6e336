"""Historical sync (`cartrecovery sync`): Shopify, WooCommerce and BigCommerce APIs served by
a local recorder with pagination, a 429 with Retry-After, an interruption and a resume;
old abandoned carts are never enrolled; webhooks of the same objects change nothing."""

from __future__ import annotations

import base64
import copy
import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from urllib.parse import parse_qs, urlsplit

import pytest
from click.testing import CliRunner
from conftest import fixture_bytes, shopify_hmac
from psycopg.types.json import Jsonb
from shopify_standin import (
    GRAPHQL,
    ShopifyStandIn,
    classic_url,
    graphql_checkout,
    graphql_order,
)

from cartrecovery import tenancy
from cli.main import main
from delivery.scheduler import abandon_and_enroll
from integrations import sync as history

SINCE = datetime(2026, 1, 1, tzinfo=UTC)
SHOPIFY_TOKEN = "shpat_fake_sync_token"
JSON = {"Content-Type": "application/json"}


def fixture_json(name):
    return json.loads(fixture_bytes(name))


def iso(at: datetime) -> str:
    return at.astimezone(UTC).isoformat()


def query(request) -> dict:
    return {k: v[0] for k, v in parse_qs(urlsplit(request["path"]).query).items()}


@pytest.fixture()
def waits():
    return []


def carts_by_id(db, org_id, platform) -> dict:
    with db.tenant(org_id) as conn:
        rows = conn.execute(
            "SELECT * FROM app.carts WHERE org_id = %s AND platform = %s", (org_id, platform)
        ).fetchall()
    return {r["external_id"]: r for r in rows}


def count(db, org_id, table, where="TRUE", params=()):
    with db.tenant(org_id) as conn:
        return conn.execute(
            f"SELECT count(*) AS n FROM {table} WHERE org_id = %s AND {where}", (org_id, *params)
        ).fetchone()["n"]


def add_campaign(db, org_id):
    steps = [
        {
            "channel": "email",
            "delay_seconds": 0,
            "subject": "Come back",
            "template": "cart_reminder",
        }
    ]
    with db.tenant(org_id) as conn:
        conn.execute(
            "INSERT INTO app.campaigns (org_id, name, status, sequence_steps) "
            "VALUES (%s, 'recover', 'active', %s)",
            (org_id, Jsonb(steps)),
        )


# --- Shopify ---------------------------------------------------------------------------------


@pytest.fixture()
def shopify(db, runtime, org, recorder):
    org.shop = f"sync-{uuid.uuid4().hex[:8]}.myshopify.com"
    org.secret = "shpss_sync_secret"
    org.connection_id = tenancy.add_connection(
        db,
        runtime.encryption_key,
        org.org_id,
        "shopify",
        org.shop,
        org.secret,
        {"access_token": SHOPIFY_TOKEN, "api_base_url": recorder.url},
    )
    org.connection = tenancy.get_connection(db, runtime.encryption_key, org.connection_id)
    now = datetime.now(UTC)
    converted = fixture_json("shopify_checkouts_create.json")  # its order is on page 1
    abandoned = copy.deepcopy(converted)
    abandoned.update(
        id=1001,
        token="old-abandoned-token",
        cart_token="c-old",
        email="old.shopper@example.com",
        updated_at="2026-03-10T09:00:00+00:00",
        created_at="2026-03-10T08:55:00+00:00",
    )
    recent = copy.deepcopy(converted)
    recent.update(
        id=1002,
        token="recent-token",
        cart_token="c-recent",
        email="recent.shopper@example.com",
        updated_at=iso(now - timedelta(seconds=60)),
        created_at=iso(now - timedelta(seconds=120)),
    )
    org.checkouts = {"converted": converted, "abandoned": abandoned, "recent": recent}
    for checkout in org.checkouts.values():  # classic checkouts: the URL names the token
        checkout["abandoned_checkout_url"] = classic_url(checkout)
    order = fixture_json("shopify_orders_create.json")
    other_order = copy.deepcopy(order)
    other_order.update(
        id=777,
        token="other-order-token",
        checkout_token=None,
        checkout_id=None,
        cart_token=None,
        total_price="10.00",
    )
    org.orders = [order, other_order]

    standin = ShopifyStandIn(recorder, token=SHOPIFY_TOKEN)
    org.standin = standin

    def serve(throttle: bool = True):
        """Two pages of each resource (the first checkouts query THROTTLED when
        ``throttle``)."""
        standin.pages["abandonedCheckouts"] = [
            [graphql_checkout(converted), graphql_checkout(abandoned)],
            [graphql_checkout(recent)],
        ]
        standin.pages["orders"] = [[graphql_order(order)], [graphql_order(other_order)]]
        standin.fail.clear()
        standin.throttle_once.clear()
        if throttle:
            standin.throttle_once.add("abandonedCheckouts")

    serve()
    org.serve = serve
    return org


def test_shopify_sync_imports_pages_honours_429_and_settles_old_carts(
    db, runtime, shopify, recorder, waits
):
    add_campaign(db, shopify.org_id)
    results = history.sync(db, shopify.connection, SINCE, sleep=waits.append)
    by_name = {r.resource: r for r in results}
    assert by_name["checkouts"].imported == 3 and by_name["checkouts"].pages == 2
    assert by_name["orders"].imported == 2 and by_name["orders"].pages == 2
    assert waits == [2.0]  # THROTTLED: (252 requested - 52 available) / 100 per second

    calls = shopify.standin.graphql_calls("SyncAbandonedCheckouts")
    assert len(calls) == 3
    [first] = [r for r in recorder.requests][:1]
    assert first["headers"]["X-Shopify-Access-Token"] == SHOPIFY_TOKEN
    assert calls[0]["variables"] == {
        "first": 100,
        "after": None,
        "query": "created_at:>='2026-01-01T00:00:00Z'",
    }
    assert calls[1]["variables"]["after"] is None  # the throttled query, tried again
    assert calls[2]["variables"]["after"] == "page-1"  # the endCursor of page 1
    orders = shopify.standin.graphql_calls("SyncOrders")
    assert [c["variables"]["after"] for c in orders] == [None, "page-1"]

    carts = carts_by_id(db, shopify.org_id, "shopify")
    converted = carts[shopify.checkouts["converted"]["token"]]
    old = carts["old-abandoned-token"]
    recent = carts["recent-token"]
    assert converted["status"] == "converted"
    assert old["status"] == "abandoned"
    assert old["abandoned_at"] == old["source_updated_at"] + timedelta(seconds=1800)
    assert old["last_activity_at"] == old["source_updated_at"]
    assert old["restore_url"] and old["email"] == "old.shopper@example.com"
    assert recent["status"] == "active"
    assert recent["last_activity_at"] == recent["source_updated_at"]
    assert count(db, shopify.org_id, "app.orders") == 2

    # The scheduler never enrolls the historical abandonment (nor the converted cart).
    abandon_and_enroll(runtime)
    assert count(db, shopify.org_id, "app.enrollments") == 0
    assert count(db, shopify.org_id, "app.outbox") == 0
    with db.tenant(shopify.org_id) as conn:
        events = conn.execute(
            "SELECT topic, dedup_key, headers FROM raw.events WHERE org_id = %s", (shopify.org_id,)
        ).fetchall()
    assert len(events) == 5
    assert {e["headers"]["X-Cartrecovery-Sync"] for e in events} == {"checkouts", "orders"}
    assert "shopify:sync:checkouts:1001:2026-03-10T09:00:00+00:00" in {
        e["dedup_key"] for e in events
    }


def test_sync_is_idempotent_with_itself_and_with_webhooks(db, client, shopify, waits):
    history.sync(db, shopify.connection, SINCE, sleep=waits.append)
    again = history.sync(db, shopify.connection, SINCE, sleep=waits.append)
    assert all(r.up_to_date for r in again)
    shopify.serve(throttle=False)
    redo = history.sync(db, shopify.connection, SINCE, restart=True, sleep=waits.append)
    assert sum(r.imported for r in redo) == 0 and sum(r.duplicates for r in redo) == 5
    before = carts_by_id(db, shopify.org_id, "shopify")

    # The same checkout version arriving as a webhook leaves the canonical state alone.
    body = json.dumps(shopify.checkouts["abandoned"]).encode()
    res = client.post(
        "/api/webhooks/shopify/checkout-update",
        data=body,
        headers={
            "X-Shopify-Shop-Domain": shopify.shop,
            "X-Shopify-Topic": "checkouts/update",
            "X-Shopify-Hmac-Sha256": shopify_hmac(shopify.secret, body),
            "X-Shopify-Webhook-Id": str(uuid.uuid4()),
            "Content-Type": "application/json",
        },
    )
    assert res.status_code == 200
    after = carts_by_id(db, shopify.org_id, "shopify")
    assert set(after) == set(before)
    # (last_activity_at may move: carts.upsert_cart counts an equal version as activity,
    # which only matters for active carts; this one stays abandoned and unenrolled.)
    for key in (
        "status",
        "abandoned_at",
        "total_price",
        "email",
        "line_items",
        "source_updated_at",
        "restore_url",
    ):
        assert after["old-abandoned-token"][key] == before["old-abandoned-token"][key]
    assert count(db, shopify.org_id, "app.orders") == 2


def test_interrupted_sync_resumes_after_the_last_committed_page(db, shopify, recorder, waits):
    # orders page 2 keeps failing: the sync stops after committing page 1.
    shopify.standin.fail["orders"] = [1]
    with pytest.raises(history.SyncError):
        history.sync(db, shopify.connection, SINCE, sleep=waits.append, max_attempts=2)
    state = {
        s["resource"]: s for s in history.sync_state(db, shopify.org_id, shopify.connection_id)
    }
    assert state["checkouts"]["done_at"] is not None
    assert state["orders"]["done_at"] is None and state["orders"]["imported"] == 1
    assert state["orders"]["cursor"] == "after:page-1"
    assert count(db, shopify.org_id, "app.orders") == 1
    orders_before = len(shopify.standin.graphql_calls("SyncOrders"))

    shopify.standin.fail.clear()
    checkouts_before = len(shopify.standin.graphql_calls("SyncAbandonedCheckouts"))
    results = {
        r.resource: r for r in history.sync(db, shopify.connection, SINCE, sleep=waits.append)
    }
    assert results["checkouts"].up_to_date
    assert results["orders"].resumed and results["orders"].imported == 1
    # nothing refetched
    assert len(shopify.standin.graphql_calls("SyncAbandonedCheckouts")) == checkouts_before
    resumed_calls = shopify.standin.graphql_calls("SyncOrders")[orders_before:]
    assert len(resumed_calls) == 1 and resumed_calls[0]["variables"]["after"] == "page-1"
    assert count(db, shopify.org_id, "app.orders") == 2
    state = {
        s["resource"]: s for s in history.sync_state(db, shopify.org_id, shopify.connection_id)
    }
    assert state["orders"]["done_at"] is not None and state["orders"]["imported"] == 2


def test_a_new_since_starts_over(db, shopify, recorder, waits):
    history.sync(db, shopify.connection, SINCE, resources=["orders"], sleep=waits.append)
    shopify.standin.pages["orders"] = [[]]
    later = SINCE + timedelta(days=30)
    [result] = history.sync(db, shopify.connection, later, resources=["orders"], sleep=waits.append)
    assert not result.up_to_date and not result.resumed and result.imported == 0
    last = shopify.standin.graphql_calls("SyncOrders")[-1]["variables"]
    assert last["query"] == "created_at:>='2026-01-31T00:00:00Z'" and last["after"] is None


def test_sync_without_credentials_or_for_unknown_resources_fails_clearly(db, runtime, org):
    cid = tenancy.add_connection(
        db,
        runtime.encryption_key,
        org.org_id,
        "shopify",
        f"nocreds-{uuid.uuid4().hex[:6]}.myshopify.com",
        "s",
    )
    connection = tenancy.get_connection(db, runtime.encryption_key, cid)
    with pytest.raises(history.SyncError, match="access_token"):
        history.sync(db, connection, SINCE)
    with pytest.raises(history.SyncError, match="unknown resource"):
        history.sync(db, connection, SINCE, resources=["carts"], client=object())


def test_cli_sync_prints_results_and_resumes(db, database_url, shopify, recorder):
    env = {"DATABASE_URL": database_url, "SECRET_KEY": "test-secret-key", "ENCRYPTION_KEY": None}
    shopify.serve(throttle=False)  # the CLI would wait for real
    args = [
        "sync",
        "shopify",
        "--connection",
        str(shopify.connection_id),
        "--since",
        "2026-01-01",
        "--json",
    ]
    result = CliRunner().invoke(main, args, env=env, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    body = {r["resource"]: r for r in json.loads(result.stdout)}
    assert body["checkouts"]["imported"] == 3 and body["orders"]["imported"] == 2
    again = CliRunner().invoke(main, args[:-1], env=env, catch_exceptions=False)
    assert again.exit_code == 0 and "already imported" in again.stdout
    wrong = CliRunner().invoke(
        main,
        [
            "sync",
            "woocommerce",
            "--connection",
            str(shopify.connection_id),
            "--since",
            "2026-01-01",
        ],
        env=env,
    )
    assert wrong.exit_code == 2 and "no active woocommerce connection" in wrong.output
    bad_date = CliRunner().invoke(main, args[:-2] + ["--since", "last tuesday"], env=env)
    assert bad_date.exit_code == 2


# --- WooCommerce -------------------------------------------------------------------------------


def test_woocommerce_sync_pages_with_basic_auth(db, runtime, org, recorder, waits):
    site = f"woo-{uuid.uuid4().hex[:6]}.example"
    cid = tenancy.add_connection(
        db,
        runtime.encryption_key,
        org.org_id,
        "woocommerce",
        site,
        "wc_secret",
        {"consumer_key": "ck_fake", "consumer_secret": "cs_fake", "api_base_url": recorder.url},
    )
    connection = tenancy.get_connection(db, runtime.encryption_key, cid)
    pending = fixture_json("woocommerce_order_created.json")  # pending, March 2026
    paid = copy.deepcopy(pending)
    paid.update(
        id=4822,
        status="processing",
        date_paid_gmt="2026-03-15T10:00:00",
        date_modified_gmt="2026-03-15T10:00:00",
        total="80.00",
    )
    path = "/wp-json/wc/v3/orders"
    pages = {**JSON, "X-WP-TotalPages": "2", "X-WP-Total": "2"}
    recorder.respond("GET", path, 200, [pending], pages)
    recorder.respond("GET", path, 200, [paid], pages)

    [result] = history.sync(db, connection, SINCE, sleep=waits.append)
    assert result.imported == 2 and result.pages == 2 and result.abandoned == 1
    calls = recorder.find("GET", path)
    assert len(calls) == 2
    assert (
        calls[0]["headers"]["Authorization"]
        == "Basic " + base64.b64encode(b"ck_fake:cs_fake").decode()
    )
    q = query(calls[0])
    assert q["after"] == "2026-01-01T00:00:00Z" and q["per_page"] == "100"
    assert q["status"] == "pending,failed,processing,completed" and q["page"] == "1"
    assert query(calls[1])["page"] == "2"
    cart = carts_by_id(db, org.org_id, "woocommerce")["4821"]
    assert cart["status"] == "abandoned" and cart["total_price"] == Decimal("65.00")
    with db.tenant(org.org_id) as conn:
        order = conn.execute("SELECT * FROM app.orders WHERE org_id = %s", (org.org_id,)).fetchone()
    assert order["external_id"] == "4822" and order["total_price"] == Decimal("80.00")


# --- BigCommerce -------------------------------------------------------------------------------


def test_bigcommerce_sync_imports_incomplete_checkouts_and_orders(
    db, runtime, org, recorder, waits
):
    store_hash = "sync" + uuid.uuid4().hex[:8]
    cid = tenancy.add_connection(
        db,
        runtime.encryption_key,
        org.org_id,
        "bigcommerce",
        store_hash,
        "hk_token",
        {"access_token": "bc_token", "api_base_url": recorder.url},
    )
    connection = tenancy.get_connection(db, runtime.encryption_key, cid)
    incomplete = {
        "id": 2001,
        "cart_id": "cart-old-1",
        "status_id": 0,
        "status": "Incomplete",
        "total_inc_tax": "40.0000",
        "currency_code": "EUR",
        "date_created": "Tue, 10 Mar 2026 08:00:00 +0000",
        "date_modified": "Tue, 10 Mar 2026 08:05:00 +0000",
        "billing_address": {"email": "Lee@Example.com", "first_name": "Lee"},
    }
    second = {
        **incomplete,
        "id": 2002,
        "cart_id": "cart-old-2",
        "billing_address": {"email": "kim@example.com"},
    }
    order = {
        "id": 3001,
        "cart_id": "cart-old-2",
        "status_id": 11,
        "status": "Shipped",
        "payment_status": "captured",
        "total_inc_tax": "42.5000",
        "currency_code": "EUR",
        "date_created": "Wed, 11 Mar 2026 08:00:00 +0000",
        "date_modified": "Wed, 11 Mar 2026 08:00:00 +0000",
    }
    path = f"/stores/{store_hash}/v2/orders"
    recorder.respond("GET", path, 200, [incomplete, second])  # checkouts (status_id=0)
    recorder.respond("GET", path, 200, [order])  # orders, page 1 (short: the last)

    results = {r.resource: r for r in history.sync(db, connection, SINCE, sleep=waits.append)}
    assert results["checkouts"].imported == 2 and results["orders"].imported == 1
    calls = recorder.find("GET", path)
    assert calls[0]["headers"]["X-Auth-Token"] == "bc_token"
    assert query(calls[0])["status_id"] == "0" and "status_id" not in query(calls[1])
    assert query(calls[1])["min_date_created"] == "2026-01-01T00:00:00Z"
    carts = carts_by_id(db, org.org_id, "bigcommerce")
    assert carts["cart-old-1"]["status"] == "abandoned"
    assert carts["cart-old-1"]["email"] == "lee@example.com"
    assert carts["cart-old-2"]["status"] == "converted"
    with db.tenant(org.org_id) as conn:
        row = conn.execute("SELECT * FROM app.orders WHERE org_id = %s", (org.org_id,)).fetchone()
    assert row["external_id"] == "3001" and row["total_price"] == Decimal("42.50")
    assert row["cart_id"] == carts["cart-old-2"]["cart_id"]


# --- the shared store API client ------------------------------------------------------------


def test_http_client_retry_policy(recorder):
    from email.utils import format_datetime

    from cartrecovery.http_client import StoreApiError, StoreHttpClient

    waits: list[float] = []
    client = StoreHttpClient(
        recorder.url, {"X-Token": "t"}, sleep=waits.append, max_attempts=3, max_retry_after=60
    )
    # Retry-After as an HTTP date (about 30 s ahead), then success.
    later = format_datetime(datetime.now(UTC) + timedelta(seconds=30), usegmt=True)
    recorder.respond("GET", "/date", 429, {}, {**JSON, "Retry-After": later})
    recorder.respond("GET", "/date", 200, {"ok": True})
    assert client.json("GET", "/date") == {"ok": True}
    assert len(waits) == 1 and 25 <= waits[0] <= 31
    assert recorder.find("GET", "/date")[0]["headers"]["X-Token"] == "t"

    # A POST that failed with 500 may have done something: not retried...
    recorder.respond("POST", "/create", 500, {})
    assert client.post("/create").status_code == 500
    assert len(recorder.find("POST", "/create")) == 1
    # ...unless the caller says it is idempotent (a GraphQL query); a 429 always is.
    recorder.respond("POST", "/query", 500, {}, times=5)
    with pytest.raises(StoreApiError) as failed:
        client.json("POST", "/query", idempotent=True)
    assert failed.value.status == 500 and failed.value.retryable
    assert len(recorder.find("POST", "/query")) == 3  # bounded

    # A server asking for more than max_retry_after is not waited for.
    waits.clear()
    recorder.respond("GET", "/slow", 429, {}, {**JSON, "Retry-After": "3600"})
    assert client.get("/slow").status_code == 429 and waits == []
    # 404 passes through as "allowed"; non-JSON and unstorable JSON are errors.
    recorder.respond("GET", "/gone", 404, {})
    assert client.json("GET", "/gone", allow=(404,)) is None
    recorder.respond("GET", "/nul", 200, b'{"a": "\\u0000"}')
    with pytest.raises(StoreApiError, match="not JSON"):
        client.json("GET", "/nul")


def test_http_client_backs_off_exponentially_and_retries_transport_errors_when_safe(recorder):
    import socket

    import requests

    from cartrecovery.http_client import StoreHttpClient

    waits: list[float] = []
    client = StoreHttpClient(recorder.url, sleep=waits.append, max_attempts=4, backoff=0.5)
    # 5xx without Retry-After: 0.5 s, 1 s, 2 s, then the last answer as it is.
    recorder.respond("GET", "/busy", 503, {}, times=4)
    assert client.get("/busy").status_code == 503
    assert waits == [0.5, 1.0, 2.0] and len(recorder.find("GET", "/busy")) == 4

    with socket.socket() as sock:  # a port nobody listens on: connection refused
        sock.bind(("127.0.0.1", 0))
        closed = f"http://127.0.0.1:{sock.getsockname()[1]}"
    waits.clear()
    refused = StoreHttpClient(closed, sleep=waits.append, max_attempts=3, max_backoff=0.75)
    with pytest.raises(requests.ConnectionError):
        refused.get("/x")
    assert waits == [0.5, 0.75]  # capped by max_backoff
    waits.clear()
    with pytest.raises(requests.ConnectionError):
        refused.post("/x")  # may have created something: never retried
    assert waits == []


def test_cli_sync_runs_are_written_to_the_audit_log(db, database_url, shopify, recorder):
    env = {"DATABASE_URL": database_url, "SECRET_KEY": "test-secret-key", "ENCRYPTION_KEY": None}
    shopify.serve(throttle=False)
    args = ["sync", "shopify", "--connection", str(shopify.connection_id), "--since", "2026-01-01"]
    assert CliRunner().invoke(main, args, env=env, catch_exceptions=False).exit_code == 0
    recorder.respond("POST", GRAPHQL, 403, {"errors": "no scope"})
    failed = CliRunner().invoke(main, args + ["--restart"], env=env)
    assert failed.exit_code == 1 and "403" in failed.output
    with db.system() as conn:
        rows = conn.execute(
            "SELECT actor, action, target, details FROM app.audit_log "
            "WHERE org_id = %s ORDER BY created_at, audit_id",
            (shopify.org_id,),
        ).fetchall()
    assert [(r["action"], r["target"]) for r in rows] == [
        ("sync.run", str(shopify.connection_id)),
        ("sync.failed", str(shopify.connection_id)),
    ]
    assert all(r["actor"].startswith("cli:") for r in rows)
    run, failure = rows[0]["details"], rows[1]["details"]
    assert (run["platform"], run["since"], run["restart"]) == (
        "shopify",
        "2026-01-01T00:00:00+00:00",
        False,
    )
    imported = {r["resource"]: r["imported"] for r in run["results"]}
    assert imported == {"checkouts": 3, "orders": 2}
    assert failure["restart"] is True and "403" in failure["error"]


def test_shopify_checkout_without_token_in_its_url_updates_the_webhooks_cart(
    db, client, shopify, waits
):
    """GraphQL's AbandonedCheckout has no token; with a recovery URL that names only the
    cart token, the checkout a webhook stored already (same checkout id) is the one
    updated, and one never seen is kept under its checkout id."""
    webhook_first = copy.deepcopy(shopify.checkouts["recent"])
    webhook_first.update(id=2001, token="tok-2001", cart_token="ct-2001")
    webhook_first["abandoned_checkout_url"] = (
        "https://shop.example/1/checkouts/ac/ct-2001/recover?key=k"
    )
    body = json.dumps(webhook_first).encode()
    res = client.post(
        "/api/webhooks/shopify/checkout-create",
        data=body,
        headers={
            "X-Shopify-Shop-Domain": shopify.shop,
            "X-Shopify-Hmac-Sha256": shopify_hmac(shopify.secret, body),
            "X-Shopify-Webhook-Id": str(uuid.uuid4()),
            "Content-Type": "application/json",
        },
    )
    assert res.status_code == 200
    newer = copy.deepcopy(webhook_first)
    newer["updated_at"] = iso(datetime.now(UTC) - timedelta(seconds=30))
    newer["line_items"] = newer["line_items"][:1]
    unseen = copy.deepcopy(newer)
    unseen.update(id=2002, token="tok-2002", cart_token="ct-2002", email="new@example.com")
    unseen["abandoned_checkout_url"] = "https://shop.example/1/checkouts/ac/ct-2002/recover?k=1"
    shopify.standin.pages["abandonedCheckouts"] = [[graphql_checkout(newer)]]
    shopify.standin.pages["orders"] = [[]]
    shopify.standin.throttle_once.clear()
    history.sync(db, shopify.connection, SINCE, sleep=waits.append)
    carts = carts_by_id(db, shopify.org_id, "shopify")
    assert set(carts) == {"tok-2001"}
    assert len(carts["tok-2001"]["line_items"]) == 1  # the synced, newer version

    shopify.standin.pages["abandonedCheckouts"] = [[graphql_checkout(unseen)]]
    history.sync(db, shopify.connection, SINCE, sleep=waits.append, restart=True)
    carts = carts_by_id(db, shopify.org_id, "shopify")
    assert set(carts) == {"tok-2001", "2002"}
    assert carts["2002"]["checkout_id"] == "2002" and carts["2002"]["cart_token"] == "ct-2002"


def test_shopify_sync_waits_for_the_cost_bucket_before_the_next_page(db, shopify, waits):
    """A nearly empty bucket (throttleStatus) after a page: the client waits until it can pay
    for another query of the same cost before asking for the next page."""
    shopify.serve(throttle=False)
    shopify.standin.available = 10.0  # each page costs 52; 100 points a second come back
    history.sync(db, shopify.connection, SINCE, sleep=waits.append)
    assert waits == [0.42] * 4  # (52 - 10) / 100 after each of the four pages


def test_graphql_objects_map_to_the_webhooks_canonical_records():
    """The GraphQL checkout and order give the canonical cart and order their webhooks give,
    but for what the GraphQL objects do not carry: a checkout's cart token (its recovery URL
    names either the checkout token or the cart token) and an order's checkout id."""
    import msgspec

    from integrations.shopify.adapter import (
        ShopifyCheckout,
        ShopifyOrder,
        checkout_to_cart,
        order_to_canonical,
    )
    from integrations.shopify.sync import checkout_payload, order_payload

    cid = uuid.uuid4()
    rest = fixture_json("shopify_checkouts_create.json")
    rest["abandoned_checkout_url"] = classic_url(rest)
    webhook = msgspec.structs.asdict(checkout_to_cart(ShopifyCheckout.model_validate(rest), cid))
    synced = checkout_payload(graphql_checkout(rest))
    graphql = msgspec.structs.asdict(checkout_to_cart(ShopifyCheckout.model_validate(synced), cid))
    assert webhook.pop("cart_token") and graphql.pop("cart_token") is None
    assert graphql == webhook

    rest = fixture_json("shopify_orders_create.json")
    webhook = msgspec.structs.asdict(order_to_canonical(ShopifyOrder.model_validate(rest), cid))
    synced = order_payload(graphql_order(rest))
    graphql = msgspec.structs.asdict(order_to_canonical(ShopifyOrder.model_validate(synced), cid))
    assert webhook.pop("checkout_external_id") and graphql.pop("checkout_external_id") is None
    assert graphql == webhook


# --- one checkout, two identities: GraphQL's checkout id and the webhook's token -------------


def post_checkout(client, shop, checkout: dict, route: str = "checkout-update") -> None:
    body = json.dumps(checkout).encode()
    res = client.post(
        f"/api/webhooks/shopify/{route}",
        data=body,
        headers={
            "X-Shopify-Shop-Domain": shop.shop,
            "X-Shopify-Hmac-Sha256": shopify_hmac(shop.secret, body),
            "X-Shopify-Webhook-Id": str(uuid.uuid4()),
            "Content-Type": "application/json",
        },
    )
    assert res.status_code == 200, res.get_json()


def sync_only(db, shop, checkout: dict, waits, restart=False) -> None:
    """A sync whose one abandoned checkout is ``checkout`` (as GraphQL gives it)."""
    shop.standin.pages["abandonedCheckouts"] = [[graphql_checkout(checkout)]]
    shop.standin.pages["orders"] = [[]]
    shop.standin.throttle_once.clear()
    history.sync(db, shop.connection, SINCE, sleep=waits.append, restart=restart)


def modern_checkout(shop, n: int, updated_ago: int, items: int = 2) -> dict:
    """A checkout whose recovery URL names only its cart token (GraphQL gives no token)."""
    checkout = copy.deepcopy(shop.checkouts["recent"])
    checkout.update(
        id=n,
        token=f"tok-{n}",
        cart_token=f"ct-{n}",
        email=f"shopper-{n}@example.com",
        updated_at=iso(datetime.now(UTC) - timedelta(seconds=updated_ago)),
    )
    checkout["line_items"] = [dict(item) for item in checkout["line_items"][:items]]
    checkout["total_price"] = str(
        sum(Decimal(i["price"]) * i["quantity"] for i in checkout["line_items"])
    )
    checkout["abandoned_checkout_url"] = f"https://shop.example/1/checkouts/ac/ct-{n}/recover?k=1"
    return checkout


def enroll_idle(db, runtime, org_id) -> int:
    """Let the org's carts go idle past the timeout, run the scheduler's pass, and count the
    org's enrollments (the pass serves every org of the test database; counted for ours)."""
    with db.tenant(org_id) as conn:
        conn.execute(
            "UPDATE app.carts SET last_activity_at = now() - interval '2 hours' WHERE org_id = %s",
            (org_id,),
        )
    abandon_and_enroll(runtime)
    return count(db, org_id, "app.enrollments")


def one_cart(db, org_id) -> dict:
    carts = carts_by_id(db, org_id, "shopify")
    assert len(carts) == 1, sorted(carts)
    return next(iter(carts.values()))


def assert_events_linked(db, org_id, cart_id, expected: int) -> None:
    assert count(db, org_id, "raw.events", "cart_id = %s", (cart_id,)) == expected
    assert count(db, org_id, "raw.events", "cart_id IS DISTINCT FROM %s", (cart_id,)) == 0


def test_synced_checkout_then_its_webhook_is_one_cart_under_both_identities(
    db, runtime, client, shopify, waits
):
    """The sync stores a checkout it has no token for under its checkout id (GraphQL
    ``gid://shopify/AbandonedCheckout/<n>``); its webhooks (token and the same ``id``),
    applied by the applier, update that cart under the token: one cart, one enrollment, and
    the state of the later ``updated_at`` wins."""
    add_campaign(db, shopify.org_id)
    synced = modern_checkout(shopify, 3001, updated_ago=60, items=2)
    sync_only(db, shopify, synced, waits)
    cart = one_cart(db, shopify.org_id)
    assert (cart["external_id"], cart["checkout_id"]) == ("3001", "3001")
    assert len(cart["line_items"]) == 2

    older = modern_checkout(shopify, 3001, updated_ago=120, items=1)  # delivered late
    post_checkout(client, shopify, older, "checkout-create")
    cart = one_cart(db, shopify.org_id)
    assert (cart["external_id"], cart["checkout_id"], cart["cart_token"]) == (
        "tok-3001",
        "3001",
        "ct-3001",
    )
    assert len(cart["line_items"]) == 2  # the synced state is newer: kept

    newer = modern_checkout(shopify, 3001, updated_ago=10, items=1)
    post_checkout(client, shopify, newer)
    after = one_cart(db, shopify.org_id)
    assert after["cart_id"] == cart["cart_id"] and len(after["line_items"]) == 1
    assert after["total_price"] == Decimal(newer["total_price"])
    assert_events_linked(db, shopify.org_id, cart["cart_id"], 3)

    assert enroll_idle(db, runtime, shopify.org_id) == 1
    # A later sync of the same checkout finds the cart by its checkout id: still one.
    sync_only(db, shopify, modern_checkout(shopify, 3001, updated_ago=5), waits, restart=True)
    assert one_cart(db, shopify.org_id)["cart_id"] == cart["cart_id"]
    assert enroll_idle(db, runtime, shopify.org_id) == 1


def test_webhook_then_sync_of_the_same_checkout_is_one_cart_even_before_the_applier_ran(
    db, runtime, app, shopify, waits
):
    """A webhook acknowledged but not applied yet (raw.pending_changes), then a sync of the
    same checkout: the sync applies the pending change first and updates the webhook's cart
    (found by checkout id), with the later ``updated_at`` winning either way."""
    from flask.testing import FlaskClient

    raw_client = FlaskClient(app, app.response_class, use_cookies=False)  # no applier run
    add_campaign(db, shopify.org_id)
    post_checkout(raw_client, shopify, modern_checkout(shopify, 3101, updated_ago=60, items=1))
    assert count(db, shopify.org_id, "raw.pending_changes") == 1
    assert carts_by_id(db, shopify.org_id, "shopify") == {}

    sync_only(db, shopify, modern_checkout(shopify, 3101, updated_ago=90, items=2), waits)
    cart = one_cart(db, shopify.org_id)
    assert (cart["external_id"], cart["checkout_id"], cart["cart_token"]) == (
        "tok-3101",
        "3101",
        "ct-3101",
    )
    assert len(cart["line_items"]) == 1  # the webhook's state is newer than the synced one
    assert count(db, shopify.org_id, "raw.pending_changes") == 0

    newer = modern_checkout(shopify, 3101, updated_ago=5, items=2)
    sync_only(db, shopify, newer, waits, restart=True)
    after = one_cart(db, shopify.org_id)
    assert after["cart_id"] == cart["cart_id"] and len(after["line_items"]) == 2
    assert_events_linked(db, shopify.org_id, cart["cart_id"], 3)
    assert enroll_idle(db, runtime, shopify.org_id) == 1


def test_completed_webhook_of_a_synced_checkout_converts_that_cart_and_stops_its_messages(
    db, runtime, client, shopify, waits
):
    """A completed checkout is applied inline (not by the applier): it too takes over the
    cart the sync stored under the checkout id, so the messages already scheduled for that
    cart are cancelled instead of going out to a shopper who bought."""
    add_campaign(db, shopify.org_id)
    sync_only(db, shopify, modern_checkout(shopify, 3201, updated_ago=60), waits)
    assert enroll_idle(db, runtime, shopify.org_id) == 1
    assert count(db, shopify.org_id, "app.outbox", "status = 'scheduled'") == 1

    completed = modern_checkout(shopify, 3201, updated_ago=1)
    completed["completed_at"] = completed["updated_at"]
    post_checkout(client, shopify, completed)
    cart = one_cart(db, shopify.org_id)
    assert (cart["external_id"], cart["checkout_id"], cart["status"]) == (
        "tok-3201",
        "3201",
        "converted",
    )
    assert count(db, shopify.org_id, "app.outbox", "status = 'scheduled'") == 0
    assert count(db, shopify.org_id, "app.outbox", "reason = 'cart_converted'") == 1


# --- a sync page and the same checkout's first webhook at the same time ------------------------

RACE_TIMEOUT = 30  # seconds; only reached when something hangs (then the test fails)


def no_applier_client(app):
    from flask.testing import FlaskClient

    return FlaskClient(app, app.response_class, use_cookies=False)


def in_thread(fn, *args):
    """Run ``fn`` in a thread; ``join()`` returns its result (or raises its exception)."""
    import threading

    outcome: dict = {}

    def run():
        try:
            outcome["result"] = fn(*args)
        except BaseException as exc:  # handed to the test thread
            outcome["error"] = exc

    thread = threading.Thread(target=run, daemon=True)
    thread.start()

    def join():
        thread.join(RACE_TIMEOUT)
        assert not thread.is_alive(), f"{fn.__name__} did not finish (deadlock?)"
        if "error" in outcome:
            raise outcome["error"]
        return outcome.get("result")

    return join


def wait_until_blocked_by(database_url, blocker_pid: int) -> None:
    """Return once some backend waits for a lock ``blocker_pid`` holds (read from
    ``pg_blocking_pids``, so no timing is assumed); fail after RACE_TIMEOUT."""
    import time

    import psycopg

    deadline = time.monotonic() + RACE_TIMEOUT
    with psycopg.connect(database_url, autocommit=True) as conn:
        while time.monotonic() < deadline:
            waiting = conn.execute(
                "SELECT count(*) FROM pg_stat_activity WHERE %s = ANY(pg_blocking_pids(pid))",
                (blocker_pid,),
            ).fetchone()[0]
            if waiting:
                return
            time.sleep(0.01)  # polling a state, not timing one
    raise AssertionError(f"nothing waited for backend {blocker_pid}")


@pytest.fixture()
def held_sync_page(monkeypatch, shopify, db, waits):
    """Start a sync of one checkout whose page stops right after its cart lookup (the page's
    transaction open); returns (pid of that transaction's backend, release) where
    ``release()`` lets it commit and returns once the sync finished."""
    import threading

    from integrations.shopify import sync as shopify_sync

    looked_up, go = threading.Event(), threading.Event()
    pids: list[int] = []
    real = shopify_sync._known_token

    def known_token_then_hold(conn, *args):
        found = real(conn, *args)
        pids.append(conn.info.backend_pid)
        looked_up.set()
        assert go.wait(RACE_TIMEOUT)
        return found

    monkeypatch.setattr(shopify_sync, "_known_token", known_token_then_hold)

    def start(checkout: dict):
        join = in_thread(sync_only, db, shopify, checkout, waits)
        assert looked_up.wait(RACE_TIMEOUT), "the sync page never looked its cart up"

        def release():
            go.set()
            return join()

        return pids[0], release

    yield start
    go.set()


def test_webhook_applied_while_the_sync_page_importing_its_checkout_is_open_is_one_cart(
    db, runtime, app, shopify, held_sync_page, waits
):
    """The sync page has looked the checkout up (nothing) and stored it under its checkout
    id, not committed; the checkout's first webhook is acknowledged meanwhile. The applier
    does not apply it while the page holds the org's change lock (it stays pending, the
    applier does not wait); after the page commits it applies it to the page's cart: one
    cart, re-keyed to the token, with both events."""
    from cartrecovery.applier import apply_pending

    add_campaign(db, shopify.org_id)
    pid, release = held_sync_page(modern_checkout(shopify, 3301, updated_ago=90, items=2))
    post_checkout(no_applier_client(app), shopify, modern_checkout(shopify, 3301, 30, items=1))
    assert count(db, shopify.org_id, "raw.pending_changes") == 1

    in_thread(apply_pending, db)()  # returns at once: the org's rows are left pending
    assert count(db, shopify.org_id, "raw.pending_changes") == 1
    assert carts_by_id(db, shopify.org_id, "shopify") == {}  # the page has not committed

    release()  # (the sync's orders page then applies the pending change, or the applier)
    apply_pending(db)
    assert count(db, shopify.org_id, "raw.pending_changes") == 0
    cart = one_cart(db, shopify.org_id)
    assert (cart["external_id"], cart["checkout_id"], cart["cart_token"]) == (
        "tok-3301",
        "3301",
        "ct-3301",
    )
    assert len(cart["line_items"]) == 1  # the webhook's state is the newer one
    assert_events_linked(db, shopify.org_id, cart["cart_id"], 2)
    assert enroll_idle(db, runtime, shopify.org_id) == 1


def test_inline_webhook_during_an_open_sync_page_waits_for_it_and_is_one_cart(
    db, app, client, shopify, held_sync_page, database_url
):
    """A completed checkout is applied inline, after draining the org's pending changes:
    that drain waits for the sync page holding the same checkout (no deadlock: the page
    waits for nothing the drain holds), then converts the page's cart."""
    pid, release = held_sync_page(modern_checkout(shopify, 3302, updated_ago=90))
    completed = modern_checkout(shopify, 3302, updated_ago=1)
    completed["completed_at"] = completed["updated_at"]
    posted = in_thread(post_checkout, client, shopify, completed)
    wait_until_blocked_by(database_url, pid)  # the webhook's transaction waits for the page
    release()
    posted()
    cart = one_cart(db, shopify.org_id)
    assert (cart["external_id"], cart["checkout_id"], cart["status"]) == (
        "tok-3302",
        "3302",
        "converted",
    )


def test_sync_page_waits_for_a_webhook_being_applied_and_updates_its_cart(
    db, app, shopify, waits, database_url
):
    """The applier has applied the checkout's first webhook (its cart under the token) and
    not committed; a sync page of the same checkout waits for it, then finds that cart by
    checkout id: one cart."""
    import threading

    from cartrecovery import applier

    post_checkout(no_applier_client(app), shopify, modern_checkout(shopify, 3303, 30, items=1))
    applied, go = threading.Event(), threading.Event()
    pids: list[int] = []

    def apply_and_hold():
        with db.system() as conn:
            pids.append(conn.info.backend_pid)
            count = applier.apply_batch(conn, limit=1000)
            applied.set()
            assert go.wait(RACE_TIMEOUT)
            return count

    applying = in_thread(apply_and_hold)
    assert applied.wait(RACE_TIMEOUT)
    syncing = in_thread(
        sync_only, db, shopify, modern_checkout(shopify, 3303, updated_ago=90, items=2), waits
    )
    wait_until_blocked_by(database_url, pids[0])
    go.set()
    assert applying() >= 1
    syncing()
    cart = one_cart(db, shopify.org_id)
    assert (cart["external_id"], cart["checkout_id"]) == ("tok-3303", "3303")
    assert len(cart["line_items"]) == 1  # the webhook's state is newer than the synced one
    assert_events_linked(db, shopify.org_id, cart["cart_id"], 2)


def test_scheduler_skips_a_synced_cart_whose_first_webhook_is_pending(
    db, runtime, app, shopify, waits
):
    """A cart stored under its checkout id, idle past the timeout, whose first webhook (under
    the token) is acknowledged but not applied: the abandonment pass leaves it alone (its
    pending change is matched by checkout id); once applied, the cart is abandoned once. A
    cart without checkout id (another platform's) is not held back by those changes."""
    from cartrecovery.applier import apply_pending
    from cartrecovery.canonical import CanonicalCart
    from cartrecovery.carts import upsert_cart

    add_campaign(db, shopify.org_id)
    sync_only(db, shopify, modern_checkout(shopify, 3304, updated_ago=60), waits)
    post_checkout(no_applier_client(app), shopify, modern_checkout(shopify, 3304, 30, items=1))
    with db.tenant(shopify.org_id) as conn:
        upsert_cart(
            conn,
            shopify.org_id,
            CanonicalCart(platform="woocommerce", external_id="wc-1", email="wc@example.com"),
        )
    assert count(db, shopify.org_id, "raw.pending_changes") == 1
    assert enroll_idle(db, runtime, shopify.org_id) == 1  # the WooCommerce cart only
    assert one_cart(db, shopify.org_id)["status"] == "active"

    apply_pending(db)
    assert enroll_idle(db, runtime, shopify.org_id) == 2
    cart = one_cart(db, shopify.org_id)
    assert (cart["external_id"], cart["status"]) == ("tok-3304", "abandoned")

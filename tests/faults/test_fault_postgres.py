"""PostgreSQL restarted while signed Shopify webhooks arrive at ``cartrecovery serve``
(gunicorn, real HTTP) on the fault tests' own PostgreSQL.

The sender behaves as Shopify does: a delivery that is not acknowledged (any non-2xx, or no
answer) is sent again, identical (same body, same X-Shopify-Webhook-Id). While the database is
down the server answers 503 with Retry-After, never a 500, and acknowledges nothing it did not
store. Afterwards every acknowledged delivery is stored exactly once and its cart exists.
"""

from __future__ import annotations

import collections
import json
import threading
import time
import uuid
from datetime import UTC, datetime

import pytest
import requests
from harness import SECRET_KEY, fault_stack, free_port, wait_for

from cartrecovery import tenancy
from cartrecovery.runtime import Runtime
from cartrecovery.settings import Settings
from simulator.store import StoreSimulator, shopify_headers

DELIVERIES = 60
SHOP_SECRET = "shpss_fault_secret"

pytestmark = pytest.mark.faults


@pytest.fixture()
def stack():
    with fault_stack() as parts:
        yield parts


def test_postgres_restart_while_webhooks_arrive(stack):
    pg, redis, _, product = stack
    settings = Settings(database_url=pg.url, redis_url=redis.url, secret_key=SECRET_KEY)
    org_id = tenancy.create_org(pg.db, f"pg-{uuid.uuid4().hex[:6]}")
    shop = f"fault-{uuid.uuid4().hex[:8]}.myshopify.com"
    tenancy.add_connection(
        pg.db, Runtime(settings).encryption_key, org_id, "shopify", shop, SHOP_SECRET
    )
    port = free_port()
    product.start("serve", "serve", "--port", str(port), "--workers", "2")
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: _up(base), message="ingest up")

    sim = StoreSimulator(base, shop, SHOP_SECRET, seed=7)
    deliveries = []
    for _ in range(DELIVERIES):
        checkout = sim.new_checkout()
        body = json.dumps(checkout, separators=(",", ":")).encode()
        webhook_id = str(uuid.uuid4())
        headers = shopify_headers(
            "checkouts/create",
            body,
            secret=SHOP_SECRET,
            shop_domain=shop,
            webhook_id=webhook_id,
            triggered_at=datetime.now(UTC),
        )
        deliveries.append((webhook_id, checkout["token"], body, headers))

    answers: collections.Counter = collections.Counter()
    acknowledged: list[str] = []
    retry_afters: set[str] = set()

    def send_all():
        http = requests.Session()
        for webhook_id, _, body, headers in deliveries:
            deadline = time.monotonic() + 120
            while time.monotonic() < deadline:
                try:
                    response = http.post(
                        f"{base}/api/webhooks/shopify/checkout-create",
                        data=body,
                        headers=headers,
                        timeout=10,
                    )
                except requests.RequestException:
                    answers["no answer"] += 1
                    time.sleep(0.2)
                    continue
                answers[response.status_code] += 1
                if 200 <= response.status_code < 300:
                    acknowledged.append(webhook_id)
                    break
                if response.status_code == 503:
                    retry_afters.add(response.headers.get("Retry-After"))
                time.sleep(0.2)
            time.sleep(0.02)

    sender = threading.Thread(target=send_all)
    sender.start()
    wait_for(lambda: len(acknowledged) >= DELIVERIES // 3, message="first third acknowledged")
    pg.restart()
    restarted_at = len(acknowledged)
    sender.join(timeout=300)
    assert not sender.is_alive()
    product.stop("serve")

    # The acknowledged changes the server's applier had not reached yet are applied by the
    # next applier that runs (the scheduler's, in a deployment).
    from cartrecovery.applier import apply_pending

    apply_pending(pg.db)
    with pg.db.system() as conn:
        stored = conn.execute(
            "SELECT headers ->> 'X-Shopify-Webhook-Id' AS webhook_id, count(*) AS n "
            "FROM raw.events WHERE org_id = %s GROUP BY 1",
            (org_id,),
        ).fetchall()
        carts = conn.execute(
            "SELECT external_id FROM app.carts WHERE org_id = %s", (org_id,)
        ).fetchall()
    stored = {r["webhook_id"]: r["n"] for r in stored}
    print(
        f"\ndeliveries {DELIVERIES}, acknowledged {len(acknowledged)} ({restarted_at} before the "
        f"restart), answers {dict(answers)}, raw events {sum(stored.values())}, carts {len(carts)}"
    )
    assert len(acknowledged) == DELIVERIES == len(set(acknowledged))
    assert 500 not in answers and all(
        code < 500 or code == 503 for code in answers if code != "no answer"
    )
    assert answers[503] + answers["no answer"] > 0, "the restart was not noticed"
    assert retry_afters <= {"1"}
    # Every acknowledged delivery stored once (redeliveries deduplicated), with its cart.
    assert {w: stored.get(w) for w in acknowledged} == {w: 1 for w in acknowledged}
    assert {c["external_id"] for c in carts} >= {token for _, token, _, _ in deliveries}


def _up(base: str) -> bool:
    try:
        return requests.get(f"{base}/api/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False

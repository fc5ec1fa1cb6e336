"""SendGrid and Twilio answering 500, 429 with Retry-After, and not answering in time, while a
real scheduler and worker (``cartrecovery scheduler|worker`` processes) send a campaign of an
email and an SMS per cart, and some customers buy before their messages go.

Afterwards: every message of a cart that did not buy reached its provider exactly once in
accepted form (a 500 or 429 is retried, no sooner than Retry-After); a send that got no
answer reached the provider once and is never sent again (its outcome is unknown, so the row
says so); no message of a cart that bought reached any provider.
"""

from __future__ import annotations

import hashlib
from datetime import timedelta

import pytest
from harness import (
    EMAIL_STEP,
    SMS_STEP,
    Answer,
    OwnPostgres,
    OwnRedis,
    Product,
    ProviderStandIn,
    Store,
    accept,
    outbox,
    statuses,
    wait_for,
)

RETRY_AFTER = 600  # longer than the worker's own first retry delay (60 s): it must win
PROVIDER_TIMEOUT = 1.0
FAULTS = ("ok", "500", "429", "timeout")

pytestmark = pytest.mark.faults


def fault_of(message_id: str) -> str:
    return FAULTS[hashlib.sha256(message_id.encode()).digest()[0] % len(FAULTS)]


def script(kind: str, message_id: str, nth: int) -> Answer:
    fault = fault_of(message_id)
    if nth == 1 and fault == "500":
        return Answer(500, {"Content-Type": "application/json"}, {"errors": [{"message": "boom"}]})
    if nth == 1 and fault == "429":
        body = (
            {"code": 20429, "message": "Too Many Requests", "status": 429}
            if kind == "twilio"
            else {"errors": [{"message": "too many requests"}]}
        )
        return Answer(
            429, {"Content-Type": "application/json", "Retry-After": str(RETRY_AFTER)}, body
        )
    if nth == 1 and fault == "timeout":
        answer = accept(kind, message_id, nth)
        answer.delay = PROVIDER_TIMEOUT * 4  # answered, but only after the client gave up
        return answer
    return accept(kind, message_id, nth)


@pytest.fixture()
def stack():
    pg, redis = OwnPostgres(), OwnRedis()
    stand_in = ProviderStandIn(script)
    product = Product(pg.url, redis.url, stand_in.url, PROVIDER_TIMEOUT_SECONDS=PROVIDER_TIMEOUT)
    yield pg, redis, stand_in, product
    product.stop_all()
    stand_in.close()
    redis.close()
    pg.drop()


def test_provider_errors_rate_limits_and_timeouts(stack):
    pg, redis, stand_in, product = stack
    store = Store(pg.url, redis.url)
    store.campaign([EMAIL_STEP, SMS_STEP])
    carts = store.abandon_carts(24)
    buyers = set(carts[:4])

    product.start("scheduler", "scheduler")
    # Every cart enrolled (two messages each) and handed to the queue; nobody sends yet.
    wait_for(
        lambda: (
            len([r for r in outbox(pg.db, store.org_id) if r["status"] == "enqueued"])
            == 2 * len(carts)
        ),
        message="all messages enqueued",
    )
    for cart in buyers:
        store.purchase(cart)
    product.start("worker", "worker", "--concurrency", "8")

    def settled():
        rows = outbox(pg.db, store.org_id)
        return all(r["status"] not in ("enqueued", "sending") for r in rows) and rows

    rows = wait_for(settled, timeout=120, message="first round settled")
    retried = [r for r in rows if r["status"] == "scheduled"]
    assert retried and all(fault_of(str(r["message_id"])) in ("500", "429") for r in retried)
    for row in retried:
        wait = row["due_at"] - row["updated_at"]
        if fault_of(str(row["message_id"])) == "429":
            assert wait >= timedelta(seconds=RETRY_AFTER - 1), row["reason"]
        else:
            assert wait >= timedelta(seconds=59), row["reason"]

    # Fast-forward the retries (the waits were checked above), then let the processes finish.
    with pg.db.system() as conn:
        conn.execute(
            "UPDATE app.outbox SET due_at = now() WHERE org_id = %s AND status = 'scheduled'",
            (store.org_id,),
        )
    rows = wait_for(
        lambda: (
            (r := outbox(pg.db, store.org_id))
            and all(x["status"] in ("sent", "failed", "cancelled") for x in r)
            and r
        ),
        timeout=120,
        message="every message settled",
    )
    product.stop("worker")
    product.stop("scheduler")

    received, accepted = stand_in.received(), stand_in.accepted()
    by_fault = {f: [r for r in rows if fault_of(str(r["message_id"])) == f] for f in FAULTS}
    print(
        f"\nmessages {len(rows)}: {dict(statuses(rows))}; "
        f"provider requests {sum(received.values())}, accepted {sum(accepted.values())}; by fault "
        + ", ".join(f"{f}={len(v)}" for f, v in by_fault.items())
    )

    for row in rows:
        message_id = str(row["message_id"])
        if row["external_id"] in buyers:
            assert received[message_id] == 0, "a message went after a purchase"
            assert (row["status"], row["reason"]) == ("cancelled", "cart_converted")
            continue
        fault = fault_of(message_id)
        if fault == "timeout":
            # Sent once, unanswered: never sent again.
            assert received[message_id] == 1
            assert row["status"] == "failed" and row["reason"].startswith("unknown_outcome")
        else:
            assert accepted[message_id] == 1, (fault, row["status"], row["reason"])
            assert received[message_id] == (1 if fault == "ok" else 2)
            assert (row["status"], row["attempts"]) == ("sent", 1 if fault == "ok" else 2)
    # Both providers and every fault were exercised.
    kinds = {(r["kind"], fault_of(r["message_id"])) for r in stand_in.requests}
    assert {(k, f) for k in ("sendgrid", "twilio") for f in FAULTS} <= kinds
    assert all(r["external_id"] not in buyers for r in rows if r["status"] == "sent")
    # Every acknowledged event is stored.
    assert set(store.acknowledged) <= store.stored_event_ids()

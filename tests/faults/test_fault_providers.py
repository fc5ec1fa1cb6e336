"""SendGrid and Twilio answering 500, 429 with Retry-After, and not answering in time, while a
real scheduler and worker (``cartrecovery scheduler|worker`` processes) send a campaign of an
email and an SMS per cart, and some customers buy before their messages go.

Afterwards: every message of a cart that did not buy reached its provider exactly once in
accepted form (a 500 or 429 is retried, no sooner than Retry-After); a send that got no
answer reached the provider once and is never sent again (its outcome is unknown, so the row
says so); no message of a cart that bought reached any provider.
"""

from __future__ import annotations

import json
import re
import shutil
import tempfile
from datetime import timedelta

import pytest
from harness import (
    EMAIL_STEP,
    SMS_STEP,
    Answer,
    Store,
    accept,
    fault_stack,
    free_port,
    outbox,
    statuses,
    wait_for,
)

RETRY_AFTER = 600  # longer than the worker's own first retry delay (60 s): it must win
PROVIDER_TIMEOUT = 1.0
FAULTS = ("ok", "500", "429", "timeout")
RECIPIENTS: dict[str, str] = {}  # message id → email or phone, filled once rows exist

pytestmark = pytest.mark.faults


# message id → its fault, filled once rows exist: each channel's messages (of carts that do
# not buy) take the faults in turn, so every provider meets every fault in every run (drawn
# from a hash of the random ids, a run missed one now and then).
FAULT_OF: dict[str, str] = {}


def fault_of(message_id: str) -> str:
    return FAULT_OF.get(message_id, "ok")


def assign_faults(rows: list[dict], buyers: set) -> None:
    FAULT_OF.clear()
    for channel in ("email", "sms"):
        kept = sorted(
            (r for r in rows if r["channel"] == channel and r["external_id"] not in buyers),
            key=lambda r: str(r["message_id"]),
        )
        for n, row in enumerate(kept):
            FAULT_OF[str(row["message_id"])] = FAULTS[n % len(FAULTS)]


def script(kind: str, message_id: str, nth: int) -> Answer:
    fault = fault_of(message_id)
    if nth == 1 and fault == "500":
        # Providers echo the recipient in errors: the worker's logs must not.
        return Answer(
            500,
            {"Content-Type": "application/json"},
            {"errors": [{"message": "boom", "field": "to", "help": RECIPIENTS.get(message_id)}]},
        )
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
    metrics_dir = tempfile.mkdtemp(prefix="cr-faults-metrics-")
    with fault_stack(
        script,
        PROVIDER_TIMEOUT_SECONDS=PROVIDER_TIMEOUT,
        PROMETHEUS_MULTIPROC_DIR=metrics_dir,
        LOG_LEVEL="DEBUG",
    ) as parts:
        yield parts
    shutil.rmtree(metrics_dir, ignore_errors=True)


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
    enqueued = outbox(pg.db, store.org_id)
    for row in enqueued:
        RECIPIENTS[str(row["message_id"])] = row["recipient"]
    assign_faults(enqueued, buyers)
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
    port = free_port()
    product.start("serve", "serve", "--port", str(port), "--workers", "2")
    scraped = wait_for(lambda: _scrape(f"http://127.0.0.1:{port}/metrics"), message="metrics")
    product.stop("worker")
    product.stop("scheduler")
    product.stop("serve")

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

    # The worker's counts, read through the ingest server's /metrics (multiprocess mode).
    def sample(name, **labels):
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in scraped.splitlines()
            if line.startswith(name + "{") and all(f'{k}="{v}"' in line for k, v in labels.items())
        )

    sent = sum(r["status"] == "sent" for r in rows)
    unknown = sum(r["status"] == "failed" for r in rows)
    assert sample("cartrecovery_messages_total", status="sent") == sent
    assert sample("cartrecovery_provider_errors_total", kind="unknown_outcome") == unknown
    retried = (
        len(by_fault["500"])
        + len(by_fault["429"])
        - sum(r["external_id"] in buyers for r in by_fault["500"] + by_fault["429"])
    )
    assert sample("cartrecovery_provider_errors_total", kind="retryable") == retried
    print(f"metrics: sent {sent}, unknown_outcome {unknown}, retryable errors {retried}")

    # The processes' logs (JSON, DEBUG) hold no recipient, key or token in clear.
    text = product.log("worker") + product.log("scheduler") + product.log("serve")
    lines = [json.loads(line) for line in text.splitlines() if line.startswith("{")]
    assert any(line.get("request_id", "") for line in lines if "message" in line)
    for needle in [*RECIPIENTS.values(), "SG.fault-key", "fault-token", "fault-secret-key"]:
        assert needle not in text, needle
    assert not re.search(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}", text)
    print(f"log lines scanned: {len(lines)}")


def _scrape(url: str) -> str | None:
    import requests

    try:
        response = requests.get(url, timeout=5)
    except requests.RequestException:
        return None
    return response.text if response.status_code == 200 else None

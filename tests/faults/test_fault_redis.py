"""Redis flushed, then down, then restarted empty, with messages waiting in its queue.

A real scheduler and worker (``cartrecovery`` processes) on a redis-server of the test's own.
Jobs are lost with Redis; PostgreSQL still says which messages are due, and the scheduler's
stale pass enqueues them again. Carts tracked while Redis is down are still acknowledged and
stored (Redis holds counters and jobs, not data).

Afterwards: every acknowledged event stored; every message of a cart that did not buy sent
exactly once (counted at the provider stand-in), including those sent before the flush; none
for the carts that bought while their jobs were lost.
"""

from __future__ import annotations

import pytest
from harness import (
    EMAIL_STEP,
    Store,
    fault_stack,
    outbox,
    statuses,
    wait_for,
)

pytestmark = pytest.mark.faults


@pytest.fixture()
def stack():
    with fault_stack() as parts:
        yield parts


def _count(pg, store, status: str) -> int:
    return sum(r["status"] == status for r in outbox(pg.db, store.org_id))


def test_redis_flushed_and_restarted(stack):
    pg, redis, stand_in, product = stack
    store = Store(pg.url, redis.url)
    store.campaign([EMAIL_STEP])
    product.start("scheduler", "scheduler")
    product.start("worker", "worker", "--concurrency", "4")

    before = store.abandon_carts(8)
    wait_for(lambda: _count(pg, store, "sent") == 8, message="first carts' messages sent")

    # Messages pile up in Redis with no worker to take them...
    product.stop("worker")
    queued = store.abandon_carts(12)
    wait_for(lambda: _count(pg, store, "enqueued") == 12, message="second carts enqueued")
    # (Rows are marked first, jobs pushed right after the commit.)
    wait_for(
        lambda: redis.client().llen(f"rq:queue:{product.queue}") == 12,
        message="their jobs in Redis",
    )
    buyers = set(queued[:3])
    for cart in buyers:
        store.purchase(cart)

    # ...and Redis loses everything, then goes away for a while.
    redis.client().flushall()
    redis.stop()
    during = store.abandon_carts(5)  # acknowledged while Redis is down
    redis.start()
    assert redis.client().dbsize() == 0

    product.start("worker", "worker", "--concurrency", "4")
    # The jobs' loss is noticed once their rows have been 'enqueued' longer than the stale
    # interval (5 min): moved on the rows rather than waited for.
    with pg.db.system() as conn:
        conn.execute(
            "UPDATE app.outbox SET enqueued_at = enqueued_at - interval '1 hour' "
            "WHERE org_id = %s AND status = 'enqueued'",
            (store.org_id,),
        )
    expected = len(before) + len(queued) - len(buyers) + len(during)
    rows = wait_for(
        lambda: (
            (r := outbox(pg.db, store.org_id))
            and sum(x["status"] == "sent" for x in r) == expected
            and r
        ),
        timeout=120,
        message="every message of a cart that did not buy sent",
    )
    product.stop("worker")
    product.stop("scheduler")

    received = stand_in.received()
    print(
        f"\nmessages {len(rows)}: {dict(statuses(rows))}; jobs lost with Redis 12, "
        f"buyers {len(buyers)}, tracked while Redis was down {len(during)}; provider requests "
        f"{sum(received.values())} for {len(received)} messages"
    )
    sent = {str(r["message_id"]) for r in rows if r["status"] == "sent"}
    assert set(received) == sent and set(received.values()) == {1}
    for row in rows:
        if row["external_id"] in buyers:
            assert (row["status"], row["reason"]) == ("cancelled", "cart_converted")
    assert {r["external_id"] for r in rows if r["status"] == "sent"} == (
        set(before) | set(queued) | set(during)
    ) - buyers
    assert set(store.acknowledged) <= store.stored_event_ids()

"""kill -9 of a delivery worker in the middle of a batch of sends.

A real scheduler and worker (``cartrecovery`` processes); the provider stand-in holds the
requests so the worker is killed with sends in flight. A second worker then takes over.
Afterwards: every message reached the provider exactly once. The sends that were in flight
when the worker died are settled by the scheduler as ``unknown_outcome`` (the provider got
them; sending again would be the duplicate the design forbids), never re-sent.
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

CARTS = 30
CONCURRENCY = 4

pytestmark = pytest.mark.faults


@pytest.fixture()
def stack():
    with fault_stack() as parts:
        yield parts


def test_kill_9_worker_mid_batch(stack):
    pg, redis, stand_in, product = stack
    store = Store(pg.url, redis.url)
    store.campaign([EMAIL_STEP])
    carts = store.abandon_carts(CARTS)
    product.start("scheduler", "scheduler")
    wait_for(
        lambda: sum(r["status"] == "enqueued" for r in outbox(pg.db, store.org_id)) == CARTS,
        message="all messages enqueued",
    )

    stand_in.hold()
    product.start("worker-1", "worker", "--concurrency", str(CONCURRENCY))
    wait_for(lambda: stand_in.in_flight == CONCURRENCY, message="sends in flight")
    product.kill9("worker-1")
    in_flight = set(stand_in.received())
    stand_in.release()

    product.start("worker-2", "worker", "--concurrency", str(CONCURRENCY))
    wait_for(
        lambda: (
            sum(r["status"] == "sent" for r in outbox(pg.db, store.org_id))
            == CARTS - len(in_flight)
        ),
        timeout=120,
        message="the other messages sent by the second worker",
    )
    rows = outbox(pg.db, store.org_id)
    stuck = {str(r["message_id"]) for r in rows if r["status"] == "sending"}
    assert stuck == in_flight

    # Time passes beyond the longest send (the scheduler's INTERRUPTED_AFTER): moved on the
    # rows rather than waited for.
    with pg.db.system() as conn:
        conn.execute(
            "UPDATE app.outbox SET updated_at = updated_at - interval '1 hour' "
            "WHERE org_id = %s AND status = 'sending'",
            (store.org_id,),
        )
    rows = wait_for(
        lambda: (
            (r := outbox(pg.db, store.org_id))
            and all(x["status"] in ("sent", "failed") for x in r)
            and r
        ),
        message="interrupted sends settled",
    )
    product.stop("worker-2")
    product.stop("scheduler")

    received = stand_in.received()
    print(
        f"\nmessages {len(rows)}: {dict(statuses(rows))}; in flight at the kill {len(in_flight)}"
        f"; provider requests {sum(received.values())} for {len(received)} messages"
    )
    assert len(rows) == CARTS and len({r["external_id"] for r in rows}) == len(carts)
    assert set(received) == {str(r["message_id"]) for r in rows}
    assert set(received.values()) == {1}  # every message reached the provider exactly once
    for row in rows:
        if str(row["message_id"]) in in_flight:
            assert row["status"] == "failed" and row["reason"].startswith("unknown_outcome")
        else:
            assert (row["status"], row["attempts"]) == ("sent", 1)
    assert set(store.acknowledged) <= store.stored_event_ids()

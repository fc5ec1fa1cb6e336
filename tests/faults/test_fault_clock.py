"""The clock jumps forward an hour, for PostgreSQL, the scheduler and the worker alike.

libfaketime is loaded into the fault tests' own PostgreSQL server and into the product's
processes (``cartrecovery scheduler|worker``), all reading one offset file, which the test
changes from ``+0`` to ``+1h`` mid-run: ``now()`` in SQL and the processes' clocks move
together, as a host's clock corrected by NTP would. (The test's own process keeps the real
clock.)

The campaign sends an email at once and an SMS 30 minutes later. At the jump, those SMS fall
due all at once, and a batch of emails is waiting in the queue with no worker: the stale-job
pass (5 min) and the interrupted-send pass (7 min) both see those rows as old. Afterwards:
every message of a cart that did not buy sent exactly once; nothing for a cart after its
purchase; every acknowledged event stored.
"""

from __future__ import annotations

import os
import shutil
import tempfile
import time
from pathlib import Path

import pytest
from harness import (
    EMAIL_STEP,
    SMS_STEP,
    Store,
    fault_stack,
    outbox,
    scheduler_ticks,
    statuses,
    wait_for,
)

LIBFAKETIME = Path("/usr/lib/x86_64-linux-gnu/faketime/libfaketimeMT.so.1")

pytestmark = [
    pytest.mark.faults,
    pytest.mark.skipif(
        not LIBFAKETIME.exists(),
        reason="libfaketime is not installed (apt-get install libfaketime)",
    ),
]


@pytest.fixture()
def clock():
    """An offset file every faked process reads on each clock call."""
    folder = tempfile.mkdtemp(prefix="cr-faults-clock-")
    os.chmod(folder, 0o755)  # PostgreSQL runs as its own user
    offset = Path(folder) / "offset"
    offset.write_text("+0\n")
    offset.chmod(0o644)
    metrics_dir = Path(folder) / "metrics"
    metrics_dir.mkdir()
    env = {
        "LD_PRELOAD": str(LIBFAKETIME),
        "FAKETIME_TIMESTAMP_FILE": str(offset),
        # Re-read the offset file at most once a second (the test waits for the jump to
        # show): reading it on every clock call (FAKETIME_NO_CACHE) made PostgreSQL and
        # the product spend most of the test in system calls.
        "FAKETIME_CACHE_DURATION": "1",
        # Leave monotonic clocks alone: timeouts and sleeps keep real time.
        "DONT_FAKE_MONOTONIC": "1",
    }
    yield offset, env, str(metrics_dir)
    shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture()
def stack(clock):
    _, fake_env, metrics_dir = clock
    with fault_stack(pg_env=fake_env, PROMETHEUS_MULTIPROC_DIR=metrics_dir, **fake_env) as parts:
        yield parts


def _sql_offset(pg) -> float:
    with pg.db.system() as conn:
        db_now = conn.execute("SELECT extract(epoch FROM clock_timestamp()) AS t").fetchone()["t"]
    return float(db_now) - time.time()


def test_clock_jumps_forward_an_hour(stack, clock):
    pg, redis, stand_in, product = stack
    offset_file, _, metrics_dir = clock
    assert abs(_sql_offset(pg)) < 60
    store = Store(pg.url, redis.url)
    sms_later = {**SMS_STEP, "delay_seconds": 1800}
    store.campaign([EMAIL_STEP, sms_later])
    product.start("scheduler", "scheduler")
    product.start("worker", "worker", "--concurrency", "4")

    first = store.abandon_carts(12)
    wait_for(
        lambda: sum(r["status"] == "sent" for r in outbox(pg.db, store.org_id)) == len(first),
        message="first emails sent",
    )
    buyers = set(first[:3])
    for cart in buyers:
        store.purchase(cart)
    # A batch waits in the queue, with no worker, when the clock jumps.
    product.stop("worker")
    waiting = store.abandon_carts(6)
    wait_for(
        lambda: sum(r["status"] == "enqueued" for r in outbox(pg.db, store.org_id)) == len(waiting),
        message="second emails enqueued",
    )

    offset_file.write_text("+1h\n")
    wait_for(lambda: _sql_offset(pg) > 3000, message="PostgreSQL's clock jumped")
    # Several scheduler passes see the jumped clock before any worker runs.
    ticks = scheduler_ticks(metrics_dir)
    wait_for(lambda: scheduler_ticks(metrics_dir) >= ticks + 3, message="3 scheduler passes")
    product.start("worker", "worker", "--concurrency", "4")

    carts = set(first) | set(waiting)
    expected = 2 * len(carts - buyers) + len(buyers & set(first))  # buyers got their email
    rows = wait_for(
        lambda: (
            (r := outbox(pg.db, store.org_id))
            and sum(x["status"] == "sent" for x in r) == expected
            and all(x["status"] in ("sent", "cancelled") for x in r)
            and r
        ),
        timeout=120,
        message="every due message sent",
        describe=lambda: (
            sorted(
                (r["external_id"], r["step_index"], r["status"], r["reason"], str(r["due_at"]))
                for r in outbox(pg.db, store.org_id)
                if r["status"] != "sent"
            ),
            product.log("worker")[-2000:],
            product.log("scheduler")[-2000:],
        ),
    )
    # And nothing more happens on later passes.
    ticks = scheduler_ticks(metrics_dir)
    wait_for(lambda: scheduler_ticks(metrics_dir) >= ticks + 3, message="3 more passes")
    product.stop("worker")
    product.stop("scheduler")
    rows = outbox(pg.db, store.org_id)

    received = stand_in.received()
    print(
        f"\nclock offset {_sql_offset(pg):.0f}s; messages {len(rows)}: {dict(statuses(rows))}; "
        f"provider requests {sum(received.values())} for {len(received)} messages "
        f"({sum(r['kind'] == 'twilio' for r in stand_in.requests)} SMS)"
    )
    assert sum(r["status"] == "sent" for r in rows) == expected
    assert set(received.values()) == {1}
    assert set(received) == {str(r["message_id"]) for r in rows if r["status"] == "sent"}
    for row in rows:
        if row["external_id"] in buyers and row["step_index"] == 1:
            assert (row["status"], row["reason"]) == ("cancelled", "cart_converted")
            assert str(row["message_id"]) not in received
    assert {(r["external_id"], r["step_index"]) for r in rows if r["status"] == "sent"} == {
        (c, s) for c in carts for s in (0, 1) if not (c in buyers and s == 1)
    }
    assert set(store.acknowledged) <= store.stored_event_ids()

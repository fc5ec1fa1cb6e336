"""The scheduler tick: abandon idle carts, enroll them, enqueue due messages, recover lost jobs.

Every step claims rows with ``FOR UPDATE SKIP LOCKED`` in short transactions, so the tick is
safe to run in several processes at once. Jobs are enqueued only after the transaction that
marked their rows 'enqueued' commits; if the process dies in between, or Redis loses the job,
the stale-row pass enqueues it again (Postgres is the source of truth, the job re-checks it).
"""

from __future__ import annotations

import logging
import signal
import threading
import time
from datetime import timedelta

from rq.job import Job, JobStatus

from cartrecovery import applier, logs, outgoing_webhooks, telemetry
from cartrecovery.privacy import retention
from cartrecovery.runtime import Runtime
from cartrecovery.settings import Settings

from . import enrollment, jobs, outbox, webhook_jobs

log = logging.getLogger(__name__)

BATCH_SIZE = 500
STALE_AFTER = timedelta(minutes=5)
# Longer than any send can take (the job timeout), with a margin for clock skew and load.
INTERRUPTED_AFTER = timedelta(seconds=jobs.JOB_TIMEOUT) + timedelta(minutes=5)
PARTITION_CHECK_SECONDS = 3600.0
_ALIVE = {JobStatus.QUEUED, JobStatus.STARTED, JobStatus.SCHEDULED, JobStatus.DEFERRED}

_last_partition_check: float | None = None


def abandon_and_enroll(runtime: Runtime, limit: int = BATCH_SIZE) -> tuple[int, int, int]:
    """Mark idle carts abandoned and enroll them; return (abandoned, enrolled, rows written)."""
    enrolled = written = 0
    with runtime.db.system() as conn:
        carts = enrollment.mark_abandoned(conn, limit)
        for cart in carts:
            outgoing_webhooks.emit(
                conn, cart["org_id"], "cart.abandoned", outgoing_webhooks.cart_data(cart)
            )
            try:
                with conn.transaction():  # a savepoint: one bad campaign spoils one cart only
                    rows = enrollment.enroll(conn, cart)
            except Exception:
                log.exception("enrolling cart %s failed", cart["cart_id"])
                continue
            enrolled += rows > 0
            written += rows
    return len(carts), enrolled, written


def enqueue_due(runtime: Runtime, limit: int = BATCH_SIZE) -> int:
    """Claim due rows, commit, then enqueue their jobs."""
    with runtime.db.system() as conn:
        rows = outbox.claim_due(conn, limit)
    return jobs.enqueue(runtime, rows)


def requeue_stale(
    runtime: Runtime, older_than: timedelta = STALE_AFTER, limit: int = BATCH_SIZE
) -> int:
    """Enqueue again rows stuck in 'enqueued' whose job is no longer alive in Redis."""
    with runtime.db.system() as conn:
        rows = outbox.claim_stale(conn, older_than, limit)
    lost = []
    for row in rows:
        try:
            job = Job.fetch(str(row["message_id"]), connection=runtime.redis)
            alive = job.get_status(refresh=False) in _ALIVE
        except Exception:  # no such job (expired, flushed, never enqueued)
            alive = False
        if not alive:
            lost.append(row)
    if lost:
        log.warning("re-enqueueing %d message(s) whose job was lost", len(lost))
    return jobs.enqueue(runtime, lost)


def fail_interrupted(runtime: Runtime, limit: int = BATCH_SIZE) -> int:
    """Settle sends a dead worker left half done (see ``outbox.fail_interrupted``)."""
    with runtime.db.system() as conn:
        count = outbox.fail_interrupted(conn, INTERRUPTED_AFTER, limit)
    if count:
        log.warning("%d message(s) interrupted during the send marked failed", count)
    return count


def ensure_partitions(runtime: Runtime, force: bool = False) -> bool:
    """Create next month's raw.events partition, at most once an hour per process."""
    global _last_partition_check
    now = time.monotonic()
    recent = (
        _last_partition_check is not None and now - _last_partition_check < PARTITION_CHECK_SECONDS
    )
    if recent and not force:
        return False
    with runtime.db.system() as conn:
        # Two schedulers creating the same partition at once would collide: take turns.
        conn.execute("SELECT pg_advisory_xact_lock(hashtext('raw.ensure_month_partition'))")
        conn.execute("SELECT raw.ensure_month_partition(now() + interval '1 month')")
    _last_partition_check = now
    return True


def tick(
    runtime: Runtime, *, batch_size: int = BATCH_SIZE, stale_after: timedelta = STALE_AFTER
) -> dict:
    """One scheduler pass; returns counts: abandoned, enrolled, scheduled (outbox rows
    written), enqueued, requeued, partitions_checked; first, the webhook changes acknowledged
    so far are applied (``applied``), so the tick sees carts as the stores last described
    them (carts with changes still pending are skipped by the abandonment query). The pass
    has an id of its own on its log lines and on the jobs it enqueues."""
    token = logs.REQUEST_ID.set(logs.new_request_id("tick-"))
    try:
        counts = _tick(runtime, batch_size, stale_after)
        if any(v for k, v in counts.items() if k != "partitions_checked"):
            log.info("tick %s", counts)  # inside the pass: the line carries its id
        return counts
    finally:
        logs.REQUEST_ID.reset(token)


def _tick(runtime: Runtime, batch_size: int, stale_after: timedelta) -> dict:
    applied = applier.apply_pending(runtime.db)
    abandoned, enrolled, scheduled = abandon_and_enroll(runtime, batch_size)
    return {
        "applied": applied,
        "abandoned": abandoned,
        "enrolled": enrolled,
        "scheduled": scheduled,
        "enqueued": enqueue_due(runtime, batch_size),
        "requeued": requeue_stale(runtime, stale_after, batch_size),
        "interrupted": fail_interrupted(runtime, batch_size),
        "partitions_checked": int(ensure_partitions(runtime)),
        "webhooks_enqueued": webhook_jobs.enqueue_due(runtime, batch_size),
        "raw_purged": retention.purge_raw_events_if_due(runtime.db),
    }


def run_forever(settings: Settings, stop: threading.Event | None = None) -> None:
    """Tick every ``settings.scheduler_interval_seconds`` until SIGINT/SIGTERM (or ``stop``).

    A failed tick is logged and the loop goes on: the next tick picks up where it left off.
    """
    runtime = Runtime(settings)
    stop = stop or threading.Event()
    previous = {}
    if threading.current_thread() is threading.main_thread():
        for sig in (signal.SIGINT, signal.SIGTERM):
            previous[sig] = signal.signal(sig, lambda *_: stop.set())
    log.info(
        "scheduler started (every %ss, queue %s)",
        settings.scheduler_interval_seconds,
        settings.queue_name,
    )
    # The applier thread: state of webhooks acknowledged by any process is applied even
    # when no ingest process is left to do it (cartrecovery/applier.py).
    thread = applier.ApplierThread(runtime.db)
    thread.start()
    try:
        while not stop.is_set():
            try:
                tick(runtime)
                telemetry.SCHEDULER_TICKS.labels("ok").inc()
            except Exception:
                log.exception("scheduler tick failed")
                telemetry.SCHEDULER_TICKS.labels("failed").inc()
            stop.wait(settings.scheduler_interval_seconds)
    finally:
        thread.stop()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
        log.info("scheduler stopped")

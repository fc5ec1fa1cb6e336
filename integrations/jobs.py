"""Background work of the integrations, run by the product's RQ workers: the first
historical sync of a store that was just connected (the Shopify install starts one).

The job is enqueued by its import path (``integrations.jobs.first_sync``) on the product's
queue (``CARTRECOVERY_QUEUE``), so whatever enqueues it needs only this module, not the
delivery side. The worker builds its own Runtime from the environment, as it does for sends.
"""

from __future__ import annotations

import logging
from datetime import UTC, datetime, timedelta
from uuid import UUID

import redis
from rq import Queue

from cartrecovery import audit
from cartrecovery.runtime import Runtime
from cartrecovery.settings import Settings
from cartrecovery.tenancy import get_connection

from . import sync

log = logging.getLogger(__name__)

FIRST_SYNC = "integrations.jobs.first_sync"
# How far back a new store's history is imported (Shopify gives the last 60 days of orders
# without the read_all_orders scope).
FIRST_SYNC_DAYS = 30
JOB_TIMEOUT = 3600
FAILURE_TTL = 7 * 24 * 3600

_runtime: Runtime | None = None


def configure(runtime: Runtime | None) -> None:
    """Use ``runtime`` for jobs run in this process (tests); else one from the environment."""
    global _runtime
    _runtime = runtime


def _current() -> Runtime:
    if _runtime is None:
        configure(Runtime(Settings.from_env()))
    return _runtime


def enqueue_first_sync(
    connection: redis.Redis, queue_name: str, connection_id: UUID, days: int = FIRST_SYNC_DAYS
) -> str:
    """Queue the first sync of a connection; returns the job id."""
    since = (datetime.now(UTC) - timedelta(days=days)).replace(microsecond=0)
    job = Queue(queue_name, connection=connection).enqueue(
        FIRST_SYNC,
        str(connection_id),
        since.isoformat(),
        job_timeout=JOB_TIMEOUT,
        result_ttl=0,
        failure_ttl=FAILURE_TTL,
        description=f"first sync of connection {connection_id}",
    )
    return job.id


def first_sync(connection_id: str, since: str) -> list[dict]:
    """Import the connection's history since ``since`` (resumable; a second run of the same
    ``since`` does nothing). Audited like ``cartrecovery sync``."""
    rt = _current()
    connection = get_connection(rt.db, rt.encryption_key, UUID(connection_id))
    if connection is None:
        log.warning("first sync: connection %s is not active any more", connection_id)
        return []
    since_at = sync.parse_since(since)
    details = {"platform": connection.platform, "since": since_at.isoformat(), "first": True}
    actor = "system"
    try:
        results = sync.sync(rt.db, connection, since_at)
    except sync.SyncError as exc:
        audit.record(
            rt.db,
            connection.org_id,
            actor,
            "sync.failed",
            connection_id,
            details | {"error": str(exc)[:500]},
        )
        raise
    summaries = [sync.summary(r) for r in results]
    audit.record(
        rt.db, connection.org_id, actor, "sync.run", connection_id, details | {"results": summaries}
    )
    return summaries

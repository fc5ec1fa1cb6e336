"""The delivery worker: RQ workers on the message queue, without a fork per job.

By default a ``ThreadPoolWorker`` (``delivery/pool_worker.py``) keeps up to ``concurrency``
sends in flight in one process: a send is mostly waiting on the provider, so threads, not
processes, are what it needs. ``simple=True`` runs RQ's SimpleWorker instead: one job at a
time in the main thread (SIGALRM job timeouts), the previous behaviour.

No variant forks a child per job: the jobs are short and I/O-bound, a fork buys little
isolation and costs a lot (the Postgres pool would have to be rebuilt in every child, since
pooled connections must not cross a fork; see docs/BENCHMARKS.md, "Delivery"). Scale out by
running more worker processes.
"""

from __future__ import annotations

import logging

from rq import SimpleWorker

from cartrecovery.runtime import Runtime
from cartrecovery.settings import Settings

from . import jobs
from .pool_worker import ThreadPoolWorker, concurrency_from_env, ensure_pool_size

log = logging.getLogger(__name__)

# Connections beyond one per thread: the main thread and a spare for the pool's own checks.
EXTRA_CONNECTIONS = 2


def run_worker(
    settings: Settings,
    burst: bool = False,
    *,
    concurrency: int | None = None,
    simple: bool = False,
    logging_level: str | None = None,
) -> bool:
    """Work the queue ``settings.queue_name`` (until it is empty and nothing runs if
    ``burst``); must be called from the main thread to handle SIGINT/SIGTERM (warm shutdown:
    in-flight sends finish, no new job is taken).

    ``concurrency``: jobs at once (default ``CARTRECOVERY_WORKER_CONCURRENCY``, else 16); the
    process's Postgres pool is grown to match. ``simple``: RQ's SimpleWorker instead (one job
    at a time). Jobs in this process use a Runtime built from ``settings``. Returns whether
    any job ran.
    """
    runtime = Runtime(settings)
    # RQ writes three INFO lines per job (started, OK, result kept); the jobs log one line per
    # message themselves, so RQ's own logger only shows warnings unless asked otherwise.
    level = logging_level or "WARNING"
    if simple:
        jobs.configure(runtime)
        worker = SimpleWorker([jobs.queue(runtime)], connection=runtime.redis)
        log.info("worker %s on queue %s (simple)", worker.name, settings.queue_name)
        return worker.work(burst=burst, logging_level=level)
    size = concurrency if concurrency is not None else concurrency_from_env()
    if size < 1:
        raise ValueError("concurrency must be at least 1")
    ensure_pool_size(settings.database_url, size + EXTRA_CONNECTIONS)
    jobs.configure(runtime)
    worker = ThreadPoolWorker([jobs.queue(runtime)], connection=runtime.redis, concurrency=size)
    log.info("worker %s on queue %s, %d threads", worker.name, settings.queue_name, size)
    return worker.work(burst=burst, logging_level=level)

"""The delivery worker: an RQ SimpleWorker on the message queue.

SimpleWorker runs jobs in its own process instead of forking one child per job. The jobs are
short and I/O-bound (one row lock, one provider call with a timeout), so a fork per job buys
little isolation and costs a lot: the Postgres pool would have to be rebuilt in every child
(pooled connections must not cross a fork), and throughput here is ~2.5x higher without it.
``job_timeout`` is still enforced (SIGALRM), which is why the worker must run in the main
thread. Scale out by running more worker processes.
"""

from __future__ import annotations

import logging

from rq import SimpleWorker

from cartrecovery.runtime import Runtime
from cartrecovery.settings import Settings

from . import jobs

log = logging.getLogger(__name__)


def run_worker(settings: Settings, burst: bool = False) -> bool:
    """Work the queue ``settings.queue_name`` (until empty if ``burst``), in the main thread.

    Jobs in this process use a Runtime built from ``settings``. Returns whether any job ran.
    """
    runtime = Runtime(settings)
    jobs.configure(runtime)
    worker = SimpleWorker([jobs.queue(runtime)], connection=runtime.redis)
    log.info("worker %s on queue %s", worker.name, settings.queue_name)
    return worker.work(burst=burst, logging_level="WARNING" if burst else "INFO")

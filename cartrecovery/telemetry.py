"""Prometheus metrics of every process (docs/operations.md), and their exposition.

The metric objects live here, below every part, so ingest, delivery and the applier count
into one set of names. Under gunicorn (several worker processes) and with workers and the
scheduler on the same host, set ``PROMETHEUS_MULTIPROC_DIR`` to one empty folder for all of
them (``cartrecovery serve|up`` do): each process writes its samples there and ``/metrics``
sums them. Without it, ``/metrics`` shows the answering process only.

Labels are kept to small, fixed sets: a message's reason is reduced to its kind
(``deferred:quiet_hours`` stays, ``retry 2: sendgrid 500: …`` becomes ``retry``).
"""

from __future__ import annotations

import os
import re

from prometheus_client import (
    CONTENT_TYPE_LATEST,
    CollectorRegistry,
    Counter,
    Gauge,
    Histogram,
    generate_latest,
)
from prometheus_client.core import GaugeMetricFamily

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"

HTTP_LATENCY = Histogram(
    "cartrecovery_http_request_duration_seconds",
    "Time to answer an HTTP request, by route (the URL rule, not the path) and status.",
    ["method", "route", "status"],
    buckets=(0.002, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0),
)
EVENTS_RECEIVED = Counter(
    "cartrecovery_events_received_total",
    "Inbound events acknowledged, by source (platform or api) and outcome (accepted, duplicate).",
    ["source", "outcome"],
)
EVENTS_APPLIED = Counter(
    "cartrecovery_events_applied_total",
    "Inbound events applied to cart, customer and order state, by source.",
    ["source"],
)
# Seconds between the oldest acknowledged event not yet applied and now: 0 while events are
# applied in the acknowledging transaction. An applier that applies events later sets it
# (cartrecovery.telemetry.APPLIER_LAG.set(seconds)) and /api/health/applier reports it.
APPLIER_LAG = Gauge(
    "cartrecovery_applier_lag_seconds",
    "Age of the oldest acknowledged event not yet applied to state.",
    multiprocess_mode="max",
)
MESSAGES = Counter(
    "cartrecovery_messages_total",
    "Outbox messages reaching a status (sent, scheduled, held, cancelled, failed), by channel "
    "and reason kind.",
    ["channel", "status", "reason"],
)
# Completed scheduler passes: a scheduler that stopped ticking shows as a flat line, and tests
# wait for a number of passes instead of sleeping (tests/faults/test_fault_clock.py).
SCHEDULER_TICKS = Counter(
    "cartrecovery_scheduler_ticks_total",
    "Scheduler passes, by outcome (ok, failed).",
    ["outcome"],
)
PROVIDER_ERRORS = Counter(
    "cartrecovery_provider_errors_total",
    "Sends a provider did not accept, by provider and kind (retryable, permanent, "
    "unknown_outcome).",
    ["provider", "kind"],
)

_REASON_KIND = re.compile(r"^[a-z_]+(?::[a-z_]+)?")


def reason_kind(reason: str | None) -> str:
    """A reason reduced to a bounded label: its leading ``word`` or ``word:word``."""
    if not reason:
        return ""
    match = _REASON_KIND.match(reason.strip().lower())
    return match.group(0) if match else "other"


def count_events(
    source: str, accepted: int = 0, duplicates: int = 0, applied: int | None = None
) -> None:
    """Acknowledged inbound events, and those of them applied to state in the acknowledging
    transaction (``applied``, default all accepted). Webhook changes deferred to the applier
    are counted as applied by the applier (``cartrecovery/applier.py``)."""
    if accepted:
        EVENTS_RECEIVED.labels(source, "accepted").inc(accepted)
    applied = accepted if applied is None else applied
    if applied:
        EVENTS_APPLIED.labels(source).inc(applied)
    if duplicates:
        EVENTS_RECEIVED.labels(source, "duplicate").inc(duplicates)


def count_message(channel: str | None, status: str, reason: str | None = None) -> None:
    MESSAGES.labels(channel or "", status, reason_kind(reason)).inc()


class QueueCollector:
    """Queue depth read from Redis at scrape time (RQ's queue and registries)."""

    def __init__(self, redis_client, queue_name: str):
        self.redis, self.queue_name = redis_client, queue_name

    def collect(self):
        from rq import Queue

        family = GaugeMetricFamily(
            "cartrecovery_queue_jobs",
            "Jobs of the message queue, by state (queued, started, failed, scheduled).",
            labels=["queue", "state"],
        )
        try:
            queue = Queue(self.queue_name, connection=self.redis)
            family.add_metric([queue.name, "queued"], queue.count)
            family.add_metric([queue.name, "started"], queue.started_job_registry.count)
            family.add_metric([queue.name, "failed"], queue.failed_job_registry.count)
            family.add_metric([queue.name, "scheduled"], queue.scheduled_job_registry.count)
        except Exception:  # noqa: BLE001 - Redis down: the scrape still answers
            return
        yield family


def exposition(extra_collectors=()) -> tuple[bytes, str]:
    """The text exposition: every process's samples (multiprocess mode) or this process's,
    plus ``extra_collectors`` read now."""
    from prometheus_client import REGISTRY

    extra = CollectorRegistry()
    for collector in extra_collectors:
        extra.register(collector)
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    else:
        registry = REGISTRY
    return generate_latest(registry) + generate_latest(extra), CONTENT_TYPE_LATEST


def mark_process_dead(pid: int) -> None:
    """Gunicorn's ``child_exit``: drop a dead worker's live gauges (multiprocess mode)."""
    if os.environ.get(MULTIPROC_ENV):
        from prometheus_client import multiprocess

        multiprocess.mark_process_dead(pid)

"""Health endpoints for load balancers and operators.

A failing dependency answers 503 with a fixed error word; the exception itself (which may
name hosts, users or paths) goes to the log only.
"""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify
from rq import Queue

from cartrecovery.runtime import Runtime

from .runtime import runtime

log = logging.getLogger(__name__)

bp = Blueprint("health", __name__, url_prefix="/api/health")


@bp.get("")
def health():
    return jsonify({"status": "ok"})


@bp.get("/db")
def health_db():
    try:
        with runtime().db.system() as conn:
            conn.execute("SELECT 1")
    except Exception:  # noqa: BLE001 - the health check reports any failure
        return _down("database unreachable")
    return jsonify({"status": "ok"})


@bp.get("/redis")
def health_redis():
    try:
        runtime().redis.ping()
    except Exception:  # noqa: BLE001
        return _down("redis unreachable")
    return jsonify({"status": "ok"})


@bp.get("/queues")
def health_queues():
    rt = runtime()
    try:
        queue = Queue(rt.settings.queue_name, connection=rt.redis)
        body = {
            "status": "ok",
            "queues": {
                queue.name: {
                    "queued": queue.count,
                    "failed": queue.failed_job_registry.count,
                    "started": queue.started_job_registry.count,
                }
            },
        }
    except Exception:  # noqa: BLE001
        return _down("redis unreachable")
    return jsonify(body)


def applier_lag_seconds(rt: Runtime) -> float:
    """Seconds the oldest acknowledged, not yet applied event has waited.

    Hook for a deferred applier: events are applied in the transaction that acknowledges them
    today, so nothing waits (0). An applier that applies them later replaces this with its
    watermark query (and sets ``cartrecovery.telemetry.APPLIER_LAG``).
    """
    return 0.0


# Above this lag the applier is reported as behind (503), so a load balancer or an alert can
# act on it.
APPLIER_LAG_LIMIT_SECONDS = 60.0


@bp.get("/applier")
def health_applier():
    try:
        lag = applier_lag_seconds(runtime())
    except Exception:  # noqa: BLE001
        return _down("database unreachable")
    if lag > APPLIER_LAG_LIMIT_SECONDS:
        return jsonify({"status": "error", "error": "applier behind", "lag_seconds": lag}), 503
    return jsonify({"status": "ok", "lag_seconds": lag})


def _down(error: str):
    log.warning("health check failed: %s", error, exc_info=True)
    return jsonify({"status": "error", "error": error}), 503

"""Health endpoints for load balancers and operators.

A failing dependency answers 503 with a fixed error word; the exception itself (which may
name hosts, users or paths) goes to the log only.
"""

from __future__ import annotations

import logging

from flask import Blueprint, jsonify
from rq import Queue

from cartrecovery import applier, telemetry

from .runtime import runtime

log = logging.getLogger(__name__)

bp = Blueprint("health", __name__, url_prefix="/api/health")

# Acknowledged webhooks older than this and still not applied: the applier is not keeping up
# (or no process runs it), and /api/health/applier answers 503.
APPLIER_LAG_LIMIT_MS = 30_000.0


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


@bp.get("/applier")
def health_applier():
    """The applier's watermark and lag (cartrecovery/applier.py): events acknowledged but not
    applied yet, the oldest one's age, and the lag of the last minute's applied events."""
    try:
        with runtime().db.system() as conn:
            body = applier.status(conn)
    except Exception:  # noqa: BLE001
        return _down("database unreachable")
    telemetry.APPLIER_LAG.set(body["oldest_pending_ms"] / 1000)
    if body["oldest_pending_ms"] > APPLIER_LAG_LIMIT_MS:
        return jsonify({"status": "lagging", **body}), 503
    return jsonify({"status": "ok", **body})


def _down(error: str):
    log.warning("health check failed: %s", error, exc_info=True)
    return jsonify({"status": "error", "error": error}), 503

"""Health endpoints for load balancers and operators."""

from __future__ import annotations

from flask import Blueprint, jsonify
from rq import Queue

from cartrecovery import applier

from .runtime import runtime

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
    except Exception as exc:  # noqa: BLE001 - the health check reports any failure
        return jsonify({"status": "error", "error": str(exc)}), 503
    return jsonify({"status": "ok"})


@bp.get("/redis")
def health_redis():
    try:
        runtime().redis.ping()
    except Exception as exc:  # noqa: BLE001
        return jsonify({"status": "error", "error": str(exc)}), 503
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
    except Exception as exc:  # noqa: BLE001
        return jsonify({"status": "error", "error": str(exc)}), 503
    return jsonify(body)


@bp.get("/applier")
def health_applier():
    """The applier's watermark and lag (cartrecovery/applier.py): events acknowledged but not
    applied yet, the oldest one's age, and the lag of the last minute's applied events."""
    try:
        with runtime().db.system() as conn:
            body = applier.status(conn)
    except Exception as exc:  # noqa: BLE001
        return jsonify({"status": "error", "error": str(exc)}), 503
    if body["oldest_pending_ms"] > APPLIER_LAG_LIMIT_MS:
        return jsonify({"status": "lagging", **body}), 503
    return jsonify({"status": "ok", **body})

"""``GET /metrics`` (Prometheus text format) and the request timing behind it.

Every request is timed by its URL rule (``/api/v1/carts/<uuid:cart_id>``, never the path
itself: paths carry ids, which would make a time series per cart). See
``cartrecovery/telemetry.py`` for the metrics and multiprocess mode.
"""

from __future__ import annotations

import time

from flask import Blueprint, Flask, Response, g, request

from cartrecovery import telemetry

from .runtime import runtime

bp = Blueprint("metrics", __name__)


@bp.get("/metrics")
def metrics():
    """Prometheus metrics of the ingest processes (and of workers and schedulers sharing
    ``PROMETHEUS_MULTIPROC_DIR``), plus the delivery queue's depth read now."""
    rt = runtime()
    body, content_type = telemetry.exposition(
        [telemetry.QueueCollector(rt.redis, rt.settings.queue_name)]
    )
    return Response(body, content_type=content_type)


def init_app(app: Flask) -> None:
    @app.before_request
    def _start_timer():
        g.request_started = time.perf_counter()

    @app.after_request
    def _observe(response):
        started = g.pop("request_started", None)
        if started is not None:
            route = request.url_rule.rule if request.url_rule is not None else "unmatched"
            telemetry.HTTP_LATENCY.labels(request.method, route, str(response.status_code)).observe(
                time.perf_counter() - started
            )
        return response

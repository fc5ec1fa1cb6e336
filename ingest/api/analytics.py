"""``/api/v1/analytics``: live dashboard numbers, as defined once in cartrecovery.metrics."""

from __future__ import annotations

from datetime import timedelta

from flask import Blueprint, g, jsonify
from pydantic import BaseModel, Field, field_validator

from cartrecovery import metrics

from ..auth import require_key
from ..openapi import request_query
from ..runtime import runtime

bp = Blueprint("analytics", __name__, url_prefix="/api/v1/analytics")

# by_day has one row per day: bound the period so one request cannot ask for decades.
MAX_PERIOD = timedelta(days=366)


class DashboardQuery(BaseModel):
    period: str = Field(default="30d", description="24h, 30d, 2w ... (at most 366 days)")

    @field_validator("period")
    @classmethod
    def _period(cls, value: str) -> str:
        if metrics.parse_period(value) > MAX_PERIOD:
            raise ValueError("period must be at most 366d")
        return value


@bp.get("/dashboard")
@require_key("read")
@request_query(DashboardQuery)
def dashboard(query: DashboardQuery):
    """Headline numbers for the period, then by channel, by campaign and by day.

    carts_tracked, carts_abandoned, messages_sent, carts_recovered, revenue_recovered,
    recovery_rate (carts_recovered / carts_abandoned).
    """
    start = metrics.since(query.period)
    with runtime().db.tenant(g.org_id) as conn:
        body = {
            **metrics.dashboard_metrics(conn, g.org_id, start),
            "period": query.period,
            "since": start.isoformat(),
            "by_channel": metrics.by_channel(conn, g.org_id, start),
            "by_campaign": metrics.by_campaign(conn, g.org_id, start),
            "by_day": metrics.by_day(conn, g.org_id, start),
        }
    return jsonify(body)

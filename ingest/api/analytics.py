"""``/api/v1/analytics``: the dashboard's live numbers (cartrecovery.metrics) and the
warehouse answers (cartrecovery.analytics: attribution, journeys, lift, campaign
performance, smart send time and discount against control), each a thin translation of
HTTP to one core function."""

from __future__ import annotations

from datetime import date, timedelta
from typing import Literal
from uuid import UUID

from flask import Blueprint, g, jsonify
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from cartrecovery import campaigns, metrics, org_settings
from cartrecovery.analytics import attribution, journeys, lift, performance, smart
from cartrecovery.analytics.periods import PRESETS, Period, parse_period

from ..auth import require_key, tenant_transaction
from ..errors import ApiError
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


class PeriodQuery(BaseModel):
    """A reporting period: ``period`` (a preset ending now) or ``from`` and ``to``."""

    model_config = ConfigDict(extra="forbid", populate_by_name=True)

    period: Literal[tuple(PRESETS)] | None = Field(  # type: ignore[valid-type]
        default=None, description="24h, 7d, 30d or 90d, ending now (default 30d)"
    )
    from_date: date | None = Field(
        default=None,
        alias="from",
        description="First day (YYYY-MM-DD) in the org's time zone (store_timezone); with `to`",
    )
    to_date: date | None = Field(
        default=None, alias="to", description="Last day, included; with `from`"
    )

    @model_validator(mode="after")
    def _one_form(self):
        parse_period(self.period, self.from_date, self.to_date)  # PeriodError is a ValueError
        return self

    def resolve(self, conn, org_id) -> Period:
        # Only from/to name days in the org's time zone: a preset ends now, whatever the
        # zone, so it costs no read of the settings.
        zone = None
        if self.from_date is not None or self.to_date is not None:
            zone = org_settings.get_settings(conn, org_id).get("store_timezone")
        return parse_period(self.period, self.from_date, self.to_date, zone)


class AttributionQuery(PeriodQuery):
    model: Literal[attribution.MODELS] = Field(  # type: ignore[valid-type]
        default="last_touch", description="Attribution model (docs/analytics.md)"
    )
    group_by: Literal[tuple(attribution.GROUPS)] = Field(  # type: ignore[valid-type]
        default="channel", description="channel, campaign, step (1-based) or variant"
    )


class JourneysQuery(PeriodQuery):
    limit: int = Field(default=20, ge=1, le=journeys.MAX_LIMIT, description="Most paths")


class LiftQuery(PeriodQuery):
    campaign_id: UUID | None = Field(default=None, description="One campaign (else the org)")


class SmartQuery(PeriodQuery):
    campaign_id: UUID | None = Field(
        default=None, description="One campaign (else every campaign of the org)"
    )


@bp.get("/dashboard")
@require_key("read")
@request_query(DashboardQuery)
def dashboard(query: DashboardQuery):
    """Live headline numbers for the period, then by channel, by campaign and by day.

    carts_tracked, carts_abandoned, messages_sent, carts_recovered, recovery_rate
    (carts_recovered / carts_abandoned); money never adds currencies: revenue_recovered
    counts recoveries in reporting_currency only, revenue_recovered_by_currency all of them.
    """
    start = metrics.since(query.period)
    with runtime().db.tenant(g.org_id) as conn:
        currency = org_settings.reporting_currency(conn, g.org_id)
        body = {
            **metrics.dashboard_metrics(conn, g.org_id, start, currency),
            "period": query.period,
            "since": start.isoformat(),
            "by_channel": metrics.by_channel(conn, g.org_id, start, currency),
            "by_campaign": metrics.by_campaign(conn, g.org_id, start, currency),
            "by_day": metrics.by_day(conn, g.org_id, start, currency),
        }
    return jsonify(body)


@bp.get("/attribution")
@require_key("read")
@request_query(AttributionQuery)
def attribution_report(query: AttributionQuery):
    """Recovered revenue per group under one attribution model, from the warehouse."""
    with runtime().db.tenant(g.org_id) as conn:
        period = query.resolve(conn, g.org_id)
        body = attribution.attribution(conn, g.org_id, query.model, query.group_by, period)
    return jsonify(body)


@bp.get("/journeys")
@require_key("read")
@request_query(JourneysQuery)
def journey_paths(query: JourneysQuery):
    """Touchpoint paths of the period's abandonments, most common first."""
    with runtime().db.tenant(g.org_id) as conn:
        period = query.resolve(conn, g.org_id)
        body = journeys.journeys(conn, g.org_id, period, query.limit)
    return jsonify(body)


@bp.get("/lift")
@require_key("read")
@request_query(LiftQuery)
def holdout_lift(query: LiftQuery):
    """Messaged against held-out carts: recovery rate and revenue lift with 95% intervals.

    With ``campaign_id``, one campaign of the org: another org's campaign or an unknown id
    is a 404, not a lift of zero carts."""
    with runtime().db.tenant(g.org_id) as conn:
        if query.campaign_id is not None and not campaigns.get_campaign(
            conn, g.org_id, query.campaign_id
        ):
            raise ApiError(404, "not_found", "campaign not found")
        period = query.resolve(conn, g.org_id)
        body = lift.lift(conn, g.org_id, period, query.campaign_id)
    return jsonify(body)


@bp.get("/campaigns/<id>/performance")
# The key may come from this process's cache: the tenant transaction confirms it is still
# live (one statement in it instead of a transaction of its own, ingest/auth.py).
@require_key("read", cached=True)
@request_query(PeriodQuery)
def campaign_performance(id: str, query: PeriodQuery):
    """One campaign's funnel per step and variant, its recoveries and its holdout lift."""
    try:
        campaign_id = UUID(id)
    except ValueError:
        raise ApiError(404, "not_found", "campaign not found") from None
    with tenant_transaction() as (conn, _):
        period = query.resolve(conn, g.org_id)
        body = performance.campaign_performance(conn, g.org_id, campaign_id, period)
    if body is None:
        raise ApiError(404, "not_found", "campaign not found")
    return jsonify(body)


@bp.get("/smart")
@require_key("read")
@request_query(SmartQuery)
def smart_report(query: SmartQuery):
    """What smart send time and smart discount changed, per campaign step, against the
    control share that keeps the fixed behaviour (docs/analytics.md)."""
    with runtime().db.tenant(g.org_id) as conn:
        period = query.resolve(conn, g.org_id)
        body = smart.smart(conn, g.org_id, period, query.campaign_id)
    if body is None:
        raise ApiError(404, "not_found", "campaign not found")
    return jsonify(body)

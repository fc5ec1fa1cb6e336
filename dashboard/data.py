"""Database access for the dashboard: one cached ``Database`` per URL, cached query results.

Every tenant query runs inside ``db.tenant(org_id)`` so row-level security limits it to the
signed-in user's org even if a query forgets its ``WHERE org_id``; the user's orgs are read
in the user's own scope (``db.user``). Nothing here uses the system role. Live numbers come
from ``cartrecovery.metrics`` (the one definition of each metric); this module only adds the
listing queries the pages need (latest carts, stored messages, campaigns, the user's orgs).

Results are cached with short TTLs: the tiles refresh every second, so ``LIVE_TTL`` is one
second and many open browser tabs cost one query per second, not one per tab.
"""

from __future__ import annotations

import logging
import os
import threading
import time
from concurrent.futures import Future, ThreadPoolExecutor
from datetime import datetime, timedelta
from uuid import UUID

import redis
import streamlit as st

from cartrecovery import (
    access,
    audit,
    campaigns,
    compliance,
    experiment_results,
    live_tiles,
    metrics,
    previews,
    users,
)
from cartrecovery.analytics import attribution as analytics_attribution
from cartrecovery.analytics import journeys as journeys_mart
from cartrecovery.analytics import lift, performance, periods, timeline
from cartrecovery.analytics import marts as analytics_marts
from cartrecovery.analytics import smart as smart_mart
from cartrecovery.db import Database
from cartrecovery.rendering import TEMPLATES
from cartrecovery.settings import Settings

LIVE_TTL = 1
CHART_TTL = 10
LIST_TTL = 2
ORG_TTL = 30
# Short: a membership removed or changed takes effect within seconds.
MEMBERSHIP_TTL = 5
# The model registry changes when a model is trained (hours apart).
REGISTRY_TTL = 60

log = logging.getLogger(__name__)


def database_url() -> str | None:
    """The database URL from the environment (``DATABASE_URL``), read at run time."""
    return Settings.from_env().database_url


@st.cache_resource(show_spinner=False)
def database(url: str) -> Database:
    """One ``Database`` (and so one pool) per URL for the whole Streamlit server."""
    return Database(url, max_size=5)


@st.cache_resource(show_spinner=False)
def redis_client() -> redis.Redis | None:
    """Redis for the failed sign-in counter (``REDIS_URL``), or None when it is not set."""
    url = Settings.from_env().redis_url
    return redis.Redis.from_url(url) if url else None


@st.cache_data(ttl=MEMBERSHIP_TTL, show_spinner=False)
def user_orgs(url: str, user_id: str) -> list[dict]:
    """The orgs ``user_id`` belongs to, as ``{"org_id": str, "name": str, "role": str}``,
    oldest first (read in the user's own scope)."""
    return [
        {"org_id": str(m.org_id), "name": m.org_name, "role": m.role}
        for m in users.memberships(database(url), user_id)
    ]


@st.cache_data(ttl=LIVE_TTL, show_spinner=False)
def live_snapshot(url: str, org_id: str, period: str) -> dict:
    """Tiles and chart series of the Live page for the last ``period``, from one statement
    (``cartrecovery.live_tiles``): the tiles and charts of one screen always agree."""
    with database(url).tenant(org_id) as conn:
        return live_tiles.live_snapshot(conn, org_id, metrics.parse_period(period))


@st.cache_data(ttl=LIVE_TTL, show_spinner=False)
def latest_events(url: str, org_id: str, limit: int = 15) -> list[dict]:
    """The org's newest inbound events, newest first."""
    with database(url).tenant(org_id) as conn:
        return live_tiles.latest_events(conn, org_id, limit)


@st.cache_data(ttl=LIST_TTL, show_spinner=False)
def latest_carts(url: str, org_id: str, limit: int = 10) -> list[dict]:
    """The org's most recently active carts: status, email, value, currency, last activity."""
    with database(url).tenant(org_id) as conn:
        rows = conn.execute(
            """
            SELECT status, email, total_price, currency, item_count, last_activity_at
            FROM app.carts WHERE org_id = %(org)s
            ORDER BY last_activity_at DESC LIMIT %(limit)s
            """,
            {"org": org_id, "limit": limit},
        ).fetchall()
    return [dict(r) for r in rows]


@st.cache_data(ttl=LIST_TTL, show_spinner=False)
def mailbox(url: str, org_id: str, limit: int = 200) -> list[dict]:
    """Messages the built-in provider stored, newest first, with outbox status/step and the
    cart's value; ``message_id`` is a string."""
    with database(url).tenant(org_id) as conn:
        rows = conn.execute(
            """
            SELECT m.message_id::text AS message_id, m.recipient, m.subject, m.channel,
                   m.stored_at, o.status, o.step_index, c.total_price AS cart_value,
                   c.currency, m.body_html, m.body_text
            FROM app.local_mailbox m
            LEFT JOIN app.outbox o ON o.org_id = m.org_id AND o.message_id = m.message_id
            LEFT JOIN app.carts c ON c.org_id = o.org_id AND c.cart_id = o.cart_id
            WHERE m.org_id = %(org)s
            ORDER BY m.stored_at DESC, m.message_id LIMIT %(limit)s
            """,
            {"org": org_id, "limit": limit},
        ).fetchall()
    return [dict(r) for r in rows]


@st.cache_data(ttl=LIST_TTL, show_spinner=False)
def campaign_list(url: str, org_id: str) -> list[dict]:
    """The org's campaigns (not archived), highest priority first."""
    with database(url).tenant(org_id) as conn:
        found = campaigns.list_campaigns(conn, UUID(org_id), False)
    return [
        {
            "campaign_id": str(c["campaign_id"]),
            "name": c["name"],
            "status": c["status"],
            "priority": c["priority"],
            "steps": len(c["sequence_steps"] or []),
        }
        for c in found
    ]


def _require_writer(db: Database, org_id: str, user_id: str) -> None:
    # Checked here, against the user's current role, not only by hiding controls.
    role = users.role_in(db, org_id, user_id)
    if role is None or not access.allows(role, "write", user=True):
        raise PermissionError("your role cannot change campaigns")


def set_campaign_status(url: str, org_id: str, user_id: str, campaign_id: str, status: str):
    """Activate or pause a campaign as ``user_id``, audited; PermissionError unless the
    user's current role in the org may write (checked here, not only by hiding controls)."""
    db = database(url)
    _require_writer(db, org_id, user_id)
    patch = campaigns.CampaignPatch(status=status)
    with db.tenant(org_id) as conn:
        changed = campaigns.update_campaign(conn, UUID(org_id), UUID(campaign_id), patch)
        if changed is not None:
            audit.insert(
                conn,
                org_id,
                f"user:{user_id}",
                "dashboard.campaigns.status",
                campaign_id,
                {"status": status},
            )
    campaign_list.clear()
    return changed


def stores(url: str, org_id: str) -> list[dict]:
    """The org's store connections (no secrets or credentials), newest first."""
    from cartrecovery import tenancy

    rows = tenancy.list_connections(database(url), UUID(org_id))
    return [{**r, "connection_id": str(r["connection_id"])} for r in rows]


def shopify_install_link(url: str, org_id: str, user_id: str, shop: str) -> str:
    """An install link that connects ``shop`` to this org (``integrations.shopify.oauth``,
    the link ``cartrecovery shopify install-link`` prints), audited. PermissionError unless
    the user's current role in the org is admin (checked here, not only by hiding the
    control: the link binds a store to the org); ValueError for a shop domain that is not
    ``<name>.myshopify.com``."""
    from integrations.shopify.oauth import install_link

    db = database(url)
    role = users.role_in(db, org_id, user_id)
    if role is None or not access.allows(role, "admin", user=True):
        raise PermissionError("only an admin of the org can make install links")
    settings = Settings.from_env()
    link = install_link(settings.app_url, settings.secret_key, org_id, shop)
    audit.record(
        db, org_id, f"user:{user_id}", "dashboard.shopify.install_link", shop.strip().lower()
    )
    return link


def shopify_app_configured() -> bool:
    """Whether this process has the Shopify app's credentials (the install route needs them
    in the ingest process; usually the same environment)."""
    settings = Settings.from_env()
    return bool(settings.shopify_api_key and settings.shopify_api_secret)


def store_webhooks(url: str, org_id: str, connection_id: str) -> dict:
    """What the store's platform has registered against what the product expects (asks the
    platform's API: not cached, run on demand). ``{"managed": False, "reason"}`` when the
    platform has no webhook API or the connection lacks the credentials; ``{"error"}`` when
    the platform could not be asked."""
    from cartrecovery import tenancy
    from cartrecovery.crypto import load_key
    from integrations import webhooks

    settings = Settings.from_env()
    key = load_key(settings.encryption_key, settings.secret_key)
    connection = tenancy.get_connection(database(url), key, UUID(connection_id))
    if connection is None or str(connection.org_id) != org_id:
        return {"managed": False, "reason": "the connection is not active"}
    try:
        registrar = webhooks.registrar_for(connection, settings.app_url, timeout=5, max_attempts=2)
        if registrar is None:
            if webhooks.manual_config(connection, settings.app_url) is not None:
                reason = "declared in the store (`cartrecovery connections verify` prints it)"
            else:
                reason = "no webhook API for this platform, or no API credentials"
            return {"managed": False, "reason": reason}
        return {"managed": True, **webhooks.status(registrar).as_dict()}
    except (webhooks.WebhookError, ValueError) as exc:
        return {"managed": True, "ok": False, "error": str(exc)[:300]}


def campaign(url: str, org_id: str, campaign_id: str) -> dict | None:
    """One campaign as the API shows it (read fresh: the editor starts from it)."""
    with database(url).tenant(org_id) as conn:
        return campaigns.get_campaign(conn, UUID(org_id), UUID(campaign_id))


def save_campaign(url: str, org_id: str, user_id: str, campaign_id: str | None, body: dict) -> dict:
    """Create (``campaign_id`` None) or change a campaign as ``user_id``, audited, with the
    API's validation: pydantic.ValidationError for an invalid body, PermissionError unless
    the user may write, LookupError if the campaign is gone."""
    db = database(url)
    _require_writer(db, org_id, user_id)
    with db.tenant(org_id) as conn:
        if campaign_id is None:
            saved = campaigns.create_campaign(conn, UUID(org_id), body)
            action = "dashboard.campaigns.create"
        else:
            saved = campaigns.update_campaign(conn, UUID(org_id), UUID(campaign_id), body)
            if saved is None:
                raise LookupError(campaign_id)
            action = "dashboard.campaigns.update"
        audit.insert(
            conn,
            org_id,
            f"user:{user_id}",
            action,
            str(saved["campaign_id"]),
            {"name": body.get("name")},
        )
    campaign_list.clear()
    return saved


def templates_by_channel() -> dict[str, list[str]]:
    """The built-in templates a step of each channel may use: email templates are .html,
    push templates .json, SMS templates a .txt without an .html beside it."""
    html = sorted(f.stem for f in TEMPLATES.glob("*.html"))
    return {
        "email": html,
        "sms": sorted(f.stem for f in TEMPLATES.glob("*.txt") if f.stem not in html),
        "push": sorted(f.stem for f in TEMPLATES.glob("*.json")),
    }


@st.cache_data(ttl=LIST_TTL, show_spinner=False)
def preview_carts(url: str, org_id: str) -> list[dict]:
    """Recent carts of the org with items, for rendering a preview on a real cart."""
    with database(url).tenant(org_id) as conn:
        rows = previews.recent_carts(conn, org_id)
    return [{**r, "cart_id": str(r["cart_id"])} for r in rows]


def preview_step(url: str, org_id: str, step: dict, cart_id: str | None) -> dict:
    """``step`` rendered for the cart (or a sample cart) as a send would render it:
    ``{channel, subject, html, text, data}``; RenderError if it does not render."""
    with database(url).tenant(org_id) as conn:
        rendered = previews.render_step(
            conn, org_id, step, Settings.from_env().app_url, UUID(cart_id) if cart_id else None
        )
    return {
        "channel": step.get("channel") or "email",
        "subject": rendered.subject,
        "html": rendered.html,
        "text": rendered.text,
        "data": rendered.data,
    }


# --- the marts (Attribution, Journeys, Insights) ----------------------------------------------
# Every number comes from cartrecovery.analytics, the functions the analytics API answers
# with (docs/analytics.md), so the pages and the API give one answer for the same data.


@st.cache_data(ttl=CHART_TTL, show_spinner=False)
def marts_built_at(url: str, org_id: str) -> datetime | None:
    """When the marts holding the org's carts were built, or None (mart pages not shown)."""
    with database(url).tenant(org_id) as conn:
        return analytics_marts.org_as_of(conn, org_id)


def _campaign_names(conn, org_id: str) -> dict[str, str]:
    return {
        str(c["campaign_id"]): c["name"] for c in campaigns.list_campaigns(conn, UUID(org_id), True)
    }


def _group_label(group_by: str, key, names: dict[str, str]) -> str:
    if key is None:
        return f"unknown {group_by}"
    if group_by == "campaign":
        return names.get(str(key), "unknown campaign")
    if group_by == "step":
        return f"step {key}"
    return str(key)


@st.cache_data(ttl=CHART_TTL, show_spinner=False)
def attribution(url: str, org_id: str, model: str, group_by: str, period: str) -> dict:
    """Recovered revenue under one attribution model for a preset period: the API's answer
    (``totals``: ``GET /api/v1/analytics/attribution``) and the same orders per time bucket,
    group and currency (``rows``: ``{at, group, currency, revenue, recoveries}``; bucket an
    hour up to a week, else a day), with ``start``, ``end`` and ``bucket`` for the axis."""
    window = periods.parse_period(period)
    hourly = window.end - window.start <= timedelta(days=7)
    with database(url).tenant(org_id) as conn:
        totals = analytics_attribution.attribution(conn, org_id, model, group_by, window)
        series = analytics_attribution.attribution_series(
            conn, org_id, model, group_by, window, "hour" if hourly else "day"
        )
        names = _campaign_names(conn, org_id) if group_by == "campaign" else {}
    for row in totals["rows"]:
        row["group"] = _group_label(group_by, row[group_by], names)
    return {
        "totals": totals,
        "rows": [
            {
                "at": datetime.fromisoformat(r["at"]),
                "group": _group_label(group_by, r[group_by], names),
                "currency": r["currency"],
                "revenue": r["revenue"],
                "recoveries": r["recoveries"],
            }
            for r in series["rows"]
        ],
        "start": window.start,
        "end": window.end,
        "bucket": timedelta(hours=1) if hourly else timedelta(days=1),
    }


@st.cache_data(ttl=CHART_TTL, show_spinner=False)
def holdout_lift(url: str, org_id: str, period: str) -> list[dict]:
    """The API's lift answer (``GET /api/v1/analytics/lift``) for the org, then for each
    campaign that messaged or held out carts in the period, each with ``campaign`` (a name)."""
    window = periods.parse_period(period)
    with database(url).tenant(org_id) as conn:
        found = [{"campaign": "All campaigns", **lift.lift(conn, org_id, window)}]
        for campaign_id, name in sorted(_campaign_names(conn, org_id).items(), key=lambda c: c[1]):
            answer = lift.lift(conn, org_id, window, UUID(campaign_id))
            if answer["messaged"]["carts"] or answer["held_out"]["carts"]:
                found.append({"campaign": name, **answer})
    if len(found) == 1 and not (found[0]["messaged"]["carts"] or found[0]["held_out"]["carts"]):
        return []
    return found


@st.cache_data(ttl=CHART_TTL, show_spinner=False)
def journey_paths(url: str, org_id: str, period: str, limit: int = 15) -> list[dict]:
    """The API's touchpoint paths (``GET /api/v1/analytics/journeys``): ``{path: [...],
    carts, recovered, revenue_by_currency}``, most common first."""
    with database(url).tenant(org_id) as conn:
        return journeys_mart.journeys(conn, org_id, periods.parse_period(period), limit)["paths"]


@st.cache_data(ttl=CHART_TTL, show_spinner=False)
def journeys(url: str, org_id: str) -> list[dict]:
    """The latest abandonments with their path and outcome (to pick one cart's timeline)."""
    with database(url).tenant(org_id) as conn:
        return journeys_mart.recent_abandonments(conn, org_id)["carts"]


@st.cache_data(ttl=CHART_TTL, show_spinner=False)
def cart_timeline(url: str, org_id: str, cart_id: str) -> list[dict]:
    """One cart's history as the API gives it (``GET /api/v1/carts/{id}/timeline``)."""
    with database(url).tenant(org_id) as conn:
        found = timeline.cart_timeline(conn, UUID(org_id), UUID(cart_id))
    return found["items"] if found else []


@st.cache_data(ttl=CHART_TTL, show_spinner=False)
def step_performance(url: str, org_id: str, period: str) -> list[dict]:
    """Per campaign, step and variant: messages sent, opened, clicked and last-touch
    recoveries, from each campaign's performance answer
    (``GET /api/v1/analytics/campaigns/{id}/performance``) for the period."""
    window = periods.parse_period(period)
    rows = []
    with database(url).tenant(org_id) as conn:
        for campaign_id, name in sorted(_campaign_names(conn, org_id).items(), key=lambda c: c[1]):
            answer = performance.campaign_performance(conn, org_id, UUID(campaign_id), window)
            for s in answer["steps"] if answer else ():
                rows.append(
                    {
                        "campaign_id": campaign_id,
                        "campaign": name,
                        "step_index": s["step"],
                        "variant": s["variant"],
                        "channel": s["channel"],
                        "sent": s["sent"],
                        "opened": s["opened"],
                        "clicked": s["clicked"],
                        "recoveries": s["recoveries"],
                    }
                )
    return rows


@st.cache_data(ttl=CHART_TTL, show_spinner=False)
def recovery_hours(url: str, org_id: str, period: str) -> list[dict]:
    """Recoveries per hour of day (UTC) of the order: ``{hour, recoveries}``."""
    with database(url).tenant(org_id) as conn:
        return analytics_attribution.recoveries_by_hour(conn, org_id, periods.parse_period(period))[
            "hours"
        ]


@st.cache_data(ttl=CHART_TTL, show_spinner=False)
def smart(url: str, org_id: str, period: str) -> dict:
    """Smart send time and smart discount against their control share, per campaign step:
    the API's answer (``GET /api/v1/analytics/smart``)."""
    with database(url).tenant(org_id) as conn:
        return smart_mart.smart(conn, org_id, periods.parse_period(period))


@st.cache_data(ttl=LIST_TTL, show_spinner=False)
def discount_steps(url: str, org_id: str) -> list[dict]:
    """The (campaign, step) pairs of the org's campaigns that offer a discount."""
    with database(url).tenant(org_id) as conn:
        found = campaigns.list_campaigns(conn, UUID(org_id), True)
    return [
        {"campaign_id": str(c["campaign_id"]), "step_index": i + 1, "discount": s["discount"]}
        for c in found
        for i, s in enumerate(c["sequence_steps"] or [])
        if s.get("discount")
    ]


# --- compliance ------------------------------------------------------------------------------


@st.cache_data(ttl=LIST_TTL, show_spinner=False)
def compliance_overview(url: str, org_id: str) -> dict:
    """Consent and suppression counts, privacy requests and the latest audit rows."""
    with database(url).tenant(org_id) as conn:
        return {
            "consents": compliance.consent_counts(conn, org_id),
            "suppressions": compliance.suppression_counts(conn, org_id),
            "requests": compliance.privacy_requests(conn, org_id),
            "audit": [
                {**r, "audit_id": str(r["audit_id"]), "details": str(r["details"] or "")}
                for r in audit.entries(conn, org_id, limit=200)
            ],
        }


# --- experiments (the same core function as GET /api/v1/experiments/{id}/results) -----------


@st.cache_data(ttl=LIST_TTL, show_spinner=False)
def experiments(url: str, org_id: str) -> list[dict]:
    """The org's experiments that have data (the page is shown only when there is one)."""
    with database(url).tenant(org_id) as conn:
        return experiment_results.list_experiments(conn, org_id)


@st.cache_data(ttl=LIST_TTL, show_spinner=False)
def experiment_counts(url: str, org_id: str, experiment_id: str) -> dict | None:
    """The counts of one experiment (``experiment_results.experiment_counts``), cached on
    what they depend on only: the analysis options are applied to them afterwards
    (:func:`experiment`), so changing an option does not count again. None when the id is
    not an experiment of the org."""
    from cartrecovery.assignment import parse_experiment_id

    parsed = parse_experiment_id(experiment_id)
    if parsed is None:
        return None
    with database(url).tenant(org_id) as conn:
        try:
            return experiment_results.experiment_counts(conn, org_id, parsed)
        except experiment_results.ExperimentNotFound:
            return None


@st.cache_data(ttl=LIST_TTL, show_spinner=False)
def experiment(
    url: str,
    org_id: str,
    experiment_id: str,
    correction: str = "holm",
    difference_type: str = "relative",
    practical_effect: float | None = None,
) -> dict | None:
    """``{"results", "funnel", "summary"}`` of one experiment: ``results`` is exactly what
    ``GET /api/v1/experiments/{id}/results`` answers for the same query (``correction``,
    ``difference_type``, ``practical_effect``), ``funnel`` comes from the same count query
    (:func:`experiment_counts`) and ``summary`` is derived from ``results``
    (``cartrecovery.experiment_results``). None when the id is not an experiment of the org."""
    counted = experiment_counts(url, org_id, experiment_id)
    if counted is None:
        return None
    results, found = experiment_results.analyze(
        counted,
        correction=correction,
        difference_type=difference_type,
        practical_effect=practical_effect,
    )
    return {"results": results, "funnel": found, "summary": experiment_results.summary(results)}


# --- models (ml.overview) --------------------------------------------------------------------


@st.cache_resource(show_spinner=False)
def _registry_reader() -> dict:
    """One background reader of the model registry per Streamlit server."""
    return {
        "lock": threading.Lock(),
        "pool": ThreadPoolExecutor(max_workers=1, thread_name_prefix="model-registry"),
        "future": None,
        "started": 0.0,
        "rows": None,
    }


def _read_registry() -> list[dict]:
    from ml import overview, tracking

    if (
        not os.environ.get("MLFLOW_TRACKING_URI")
        and not (tracking.default_home() / "mlflow" / "mlflow.db").exists()
    ):
        return []  # no store: nothing was ever registered, and no need to load MLflow
    return overview.registry_overview()


def model_registry(wait: bool = False) -> list[dict] | None:
    """Champion and challenger of each registered model (``ml.overview.registry_overview``;
    one registry serves every org). Read in a background thread and again every
    ``REGISTRY_TTL`` seconds: the first read loads MLflow, which takes seconds and must not
    hold up the first render of a page. None until the first read ends, unless ``wait``."""
    state = _registry_reader()
    with state["lock"]:
        future: Future | None = state["future"]
        stale = time.monotonic() - state["started"] > REGISTRY_TTL
        if future is None or (future.done() and stale):
            future = state["future"] = state["pool"].submit(_read_registry)
            state["started"] = time.monotonic()
    if wait:
        future.exception()  # waits
    if future.done():
        try:
            state["rows"] = future.result()
        except Exception:  # noqa: BLE001 (a broken store must not break the dashboard)
            log.exception("reading the model registry failed")
            state["rows"] = state["rows"] or []
    return state["rows"]


@st.cache_data(ttl=CHART_TTL, show_spinner=False)
def scored_shares(url: str, org_id: str) -> list[dict]:
    """Per model and version (or decision: control, fallback, explore) the org's messages
    of the last 30 days it decided, and their share (``ml.overview.scored_shares``)."""
    from ml import overview

    with database(url).tenant(org_id) as conn:
        return overview.scored_shares(conn, org_id)


@st.cache_data(ttl=ORG_TTL, show_spinner=False)
def has_scored_messages(url: str, org_id: str) -> bool:
    """Whether a model (or its control share or fallback) decided a message of the last 30
    days (the window of :func:`scored_shares`) of one of the org's campaigns with a smart
    step: the Models page is shown then, or when a model is registered. Only such campaigns'
    messages are looked at (an index range each), never a scan of the org's whole outbox."""
    with database(url).tenant(org_id) as conn:
        return conn.execute(
            """
            SELECT EXISTS (
              SELECT 1 FROM app.campaigns c
              CROSS JOIN LATERAL jsonb_array_elements(
                CASE WHEN jsonb_typeof(c.sequence_steps) = 'array' THEN c.sequence_steps
                     ELSE '[]'::jsonb END) WITH ORDINALITY AS s(step, number)
              WHERE c.org_id = %(org)s
                AND (s.step @> '{"smart_send_time": true}' OR s.step @> '{"smart_discount": true}')
                AND EXISTS (
                  SELECT 1 FROM app.outbox o
                  WHERE o.org_id = c.org_id AND o.campaign_id = c.campaign_id
                    AND o.step_index = s.number - 1
                    AND (o.send_time_decision IS NOT NULL OR o.discount_decision IS NOT NULL)
                    AND o.created_at > now() - interval '30 days'))
            """,
            {"org": org_id},
        ).fetchone()["exists"]

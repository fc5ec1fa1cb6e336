"""Exports page: the dataset behind each page as CSV, Excel or Parquet (``dashboard.exports``).
Warehouse datasets are offered once the org's marts are built, an experiment's once it has
data, the models' scored shares once the org's messages were scored."""

from __future__ import annotations

import streamlit as st

from dashboard import data, exports
from dashboard.experiments import export_rows
from dashboard.formatting import table

url = data.database_url()
org_id = st.session_state["org_id"]
period = st.session_state.get("period", "24h")


def _live() -> list[dict]:
    snap = data.live_snapshot(url, org_id, period)
    return [
        {
            "at": b["at"],
            "carts_abandoned": b["abandoned"],
            "carts_recovered": b["recovered"],
            "currency": code,
            "revenue_recovered": amount,
        }
        for b in snap["series"]
        for code, amount in (b["revenue"] or {"": 0}).items()
    ]


def _lift_row(r: dict) -> dict:
    """One lift answer as a flat row (the file formats want columns, not nesting)."""
    flat = {"campaign": r["campaign"], "campaign_id": r["campaign_id"]}
    for group in ("messaged", "held_out"):
        flat |= {f"{group}_{k}": v for k, v in r[group].items()}
    keep = ("reporting_currency", "status", "rate_lift", "incremental_recoveries")
    return flat | {k: r[k] for k in keep} | {"incremental_revenue": r["incremental_revenue"]}


DATASETS = {
    "live_series": ("Live: abandoned, recovered and revenue per bucket", _live),
    "latest_events": ("Live: latest events", lambda: data.latest_events(url, org_id, 500)),
    "campaigns": ("Campaigns", lambda: data.campaign_list(url, org_id)),
    "outbox": (
        "Outbox: stored messages",
        lambda: [
            {k: v for k, v in m.items() if k not in ("body_html", "body_text")}
            for m in data.mailbox(url, org_id)
        ],
    ),
    "compliance_consents": (
        "Compliance: consents",
        lambda: data.compliance_overview(url, org_id)["consents"],
    ),
    "compliance_suppressions": (
        "Compliance: suppressions",
        lambda: data.compliance_overview(url, org_id)["suppressions"],
    ),
    "compliance_requests": (
        "Compliance: erasure and export requests",
        lambda: data.compliance_overview(url, org_id)["requests"],
    ),
    "audit_log": ("Compliance: audit log", lambda: data.compliance_overview(url, org_id)["audit"]),
}
if data.marts_built_at(url, org_id) is not None:
    DATASETS |= {
        f"attribution_{model}": (
            f"Attribution: {model.replace('_', ' ')}, by channel, last 30 days",
            lambda model=model: data.attribution(url, org_id, model, "channel", "30d")["rows"],
        )
        for model in ("last_touch", "first_touch", "linear", "time_decay")
    }
    DATASETS |= {
        "holdout_lift": (
            "Attribution: lift against the holdout, last 30 days",
            lambda: [_lift_row(r) for r in data.holdout_lift(url, org_id, "30d")],
        ),
        "journey_paths": (
            "Journeys: touchpoint paths, last 30 days",
            lambda: [
                {**p, "path": " > ".join(p["path"])}
                for p in data.journey_paths(url, org_id, "30d", 500)
            ],
        ),
        "journeys": (
            "Journeys: latest carts",
            lambda: [{**c, "path": " > ".join(c["path"])} for c in data.journeys(url, org_id)],
        ),
        "step_performance": (
            "Insights: steps and variants, last 90 days",
            lambda: data.step_performance(url, org_id, "90d"),
        ),
        "recovery_hours": (
            "Insights: recoveries by hour, last 90 days",
            lambda: data.recovery_hours(url, org_id, "90d"),
        ),
    }


def _experiment(experiment_id: str) -> list[dict]:
    found = data.experiment(url, org_id, experiment_id)
    if found is None:
        return []
    return export_rows(found["results"], found["funnel"], found["summary"])


DATASETS |= {
    f"experiment_{e['experiment_id'].replace(':', '_')}": (
        f"Experiments: {e['label']}",
        lambda experiment_id=e["experiment_id"]: _experiment(experiment_id),
    )
    for e in data.experiments(url, org_id)
}
if data.has_scored_messages(url, org_id):
    DATASETS["models_scored_shares"] = (
        "Models: messages each version decided, last 30 days",
        lambda: data.scored_shares(url, org_id),
    )

st.title("Exports")
st.caption("Every dataset the pages draw, for your own tools. Times are UTC.")
name = st.selectbox(
    "Dataset", list(DATASETS), format_func=lambda n: DATASETS[n][0], key="export_dataset"
)
rows = DATASETS[name][1]()
st.caption(f"{len(rows):,} rows")
if rows:
    st.dataframe(
        table([{k: exports.cell(v) for k, v in r.items()} for r in rows[:20]]),
        hide_index=True,
        width="stretch",
    )
cols = st.columns(len(exports.FORMATS))
for col, (fmt, (label, mime)) in zip(cols, exports.FORMATS.items(), strict=True):
    col.download_button(
        f"Download {label}",
        data=exports.encode(rows, fmt, name) if rows else b"",
        file_name=f"{name}.{fmt}",
        mime=mime,
        disabled=not rows,
        key=f"export_{fmt}",
    )

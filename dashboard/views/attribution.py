"""Attribution page: recovered revenue by channel, campaign, step or variant over time under
one of the four attribution models, and incremental revenue against the holdout, for a
period. The numbers are the analytics API's (``dashboard.data`` calls the functions behind
``/api/v1/analytics/attribution`` and ``/lift``). Definitions: docs/analytics.md. Money is per
currency: one chart per currency, never a sum across them.
"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from dashboard import charts, data
from dashboard.formatting import money, percent, table

MODELS = {
    "last_touch": "Last touch",
    "first_touch": "First touch",
    "linear": "Linear",
    "time_decay": "Time decay",
}
GROUPS = {"channel": "Channel", "campaign": "Campaign", "step": "Step", "variant": "Variant"}
PERIODS = {"24h": "Last 24 hours", "7d": "Last 7 days", "30d": "Last 30 days", "90d": "90 days"}
# The marts are rebuilt every few minutes, not every second: a week shows a demo's first
# hours (hourly bars) and a shop's recent days alike.
DEFAULT_PERIOD = "7d"


def revenue_chart(rows: list[dict], currency: str, found: dict) -> None:
    groups = sorted({r["group"] for r in rows})
    values = [float(r["revenue"]) for r in rows]
    fig = go.Figure(
        [
            go.Bar(
                name=g,
                x=[r["at"] for r in rows if r["group"] == g],
                y=[float(r["revenue"]) for r in rows if r["group"] == g],
                hovertemplate="%{x}: %{y:,.2f} " + currency + "<extra>" + g + "</extra>",
            )
            for g in groups
        ]
    )
    st.plotly_chart(
        charts.time_axis(
            charts.layout(fig, values, barmode="stack", yaxis_title=currency),
            found["start"],
            found["end"],
            found["bucket"],
        ),
        width="stretch",
        key=f"attribution_{currency}",
    )


def _interval(bounds: list | None, currency: str | None) -> str:
    return f"{money(bounds[0], currency)} to {money(bounds[1], currency)}" if bounds else ""


def lift_section(url: str, org_id: str, period: str) -> None:
    st.subheader("Incremental revenue against the holdout")
    rows = data.holdout_lift(url, org_id, period)
    if not rows:
        st.caption(
            "No campaign messaged or held out carts in this period: set a holdout share on a "
            "campaign to measure what the messages add."
        )
        return
    shown = []
    for r in rows:
        ok = r["status"] == "ok"
        currency = r["reporting_currency"]
        shown.append(
            {
                "campaign": r["campaign"],
                "messaged carts": r["messaged"]["carts"],
                "held-out carts": r["held_out"]["carts"],
                "messaged rate": percent(r["messaged"]["rate"]),
                "held-out rate": percent(r["held_out"]["rate"]),
                "incremental recoveries": round(r["incremental_recoveries"], 1) if ok else None,
                "incremental revenue": money(r["incremental_revenue"], currency)
                if ok
                else r["reason"],
                "95% interval": _interval(r["incremental_revenue_ci"], currency) if ok else "",
            }
        )
    st.dataframe(table(shown), hide_index=True, width="stretch")


FEATURES = {"send_time": "Smart send time", "discount": "Smart discount"}


def _points(value: float) -> str:
    return f"{value * 100:+.1f} pts"


def _amounts(by_currency: dict | None) -> str:
    return " · ".join(money(v, k) for k, v in sorted((by_currency or {}).items())) or "-"


def smart_row(s: dict) -> dict:
    """One step and feature of the smart answer as a table row."""
    ok = s["status"] == "ok"
    smart, control = s["smart"], s["control"]
    ci = s["recovery_rate_difference_ci"]
    row = {
        "campaign": s["campaign_name"] or s["campaign_id"],
        "step": s["step"],
        "feature": FEATURES[s["feature"]],
        "smart messages": smart["messages"],
        "control messages": control["messages"],
        "smart recovery rate": percent(smart["recovery_rate"]),
        "control recovery rate": percent(control["recovery_rate"]),
        "difference": _points(s["recovery_rate_difference"]) if ok else s["reason"],
        "95% interval": f"{_points(ci[0])} to {_points(ci[1])}" if ok and ci else "",
        "smart revenue": _amounts(smart["revenue_by_currency"]),
        "control revenue": _amounts(control["revenue_by_currency"]),
        "model decided": f"{sum(smart['decisions'].get(d, 0) for d in ('model', 'explore'))}"
        f" of {smart['messages']}",
    }
    # Every row has every column (the table takes its columns from the first row).
    discount = s["feature"] == "discount"
    row |= {
        "smart discount cost": _amounts(smart["discount_cost_by_currency"]) if discount else "",
        "control discount cost": _amounts(control["discount_cost_by_currency"]) if discount else "",
    }
    return row


def smart_section(url: str, org_id: str, period: str) -> None:
    st.subheader("Smart send time and smart discount vs control")
    found = data.smart(url, org_id, period)
    if not found["steps"]:
        st.caption(
            "No step used smart send time or smart discount in this period. Turn them on per "
            "step in Campaigns; a control share keeps the fixed behaviour for comparison."
        )
        return
    st.caption(
        "Smart: every message the model was asked about (fallbacks included); control: the "
        "share that keeps the step's fixed delay and discount. Recovery: the cart converted "
        "within the attribution window, clicked or not. Definitions: docs/analytics.md."
    )
    st.dataframe(
        table([smart_row(s) for s in found["steps"]]),
        hide_index=True,
        width="stretch",
        key="smart_table",
    )


url = data.database_url()
org_id = st.session_state["org_id"]
st.title("Attribution")
built = data.marts_built_at(url, org_id)
st.caption(f"From the warehouse, built {built:%Y-%m-%d %H:%M} UTC. Definitions: docs/analytics.md.")
cols = st.columns(3)
model = cols[0].radio(
    "Attribution model", list(MODELS), format_func=MODELS.__getitem__, key="attr_model"
)
group_by = cols[1].radio("By", list(GROUPS), format_func=GROUPS.__getitem__, key="attr_group")
period = cols[2].selectbox(
    "Period",
    list(PERIODS),
    index=list(PERIODS).index(DEFAULT_PERIOD),
    format_func=PERIODS.__getitem__,
    key="attr_period",
)
found = data.attribution(url, org_id, model, group_by, period)
rows = found["rows"]
totals = found["totals"]
st.subheader(f"Recovered revenue by {GROUPS[group_by].lower()} ({MODELS[model].lower()})")
if not rows:
    st.caption("No recovered orders in this period (as of the last warehouse build).")
for currency, total in totals["total_revenue_by_currency"].items():
    st.metric(f"Recovered revenue ({currency})", money(total, currency))
    revenue_chart([r for r in rows if r["currency"] == currency], currency, found)
lift_section(url, org_id, period)
smart_section(url, org_id, period)

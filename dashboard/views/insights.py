"""Insights page: recommendations from the marts, each with the number behind it, for a
period (``dashboard.insights`` computes them from each campaign's performance answer, the
recoveries per hour of day and the campaigns' discount steps; the numbers are the analytics
API's, through the same ``cartrecovery.analytics`` functions)."""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from dashboard import charts, data, insights

PERIODS = {"24h": "Last 24 hours", "7d": "Last 7 days", "30d": "Last 30 days", "90d": "90 days"}

url = data.database_url()
org_id = st.session_state["org_id"]
st.title("Insights")
built = data.marts_built_at(url, org_id)
st.caption(
    f"From the warehouse, built {built:%Y-%m-%d %H:%M} UTC. A recommendation needs at least "
    f"{insights.MIN_MESSAGES} messages behind each side of it."
)
period = st.selectbox(
    "Period", list(PERIODS), index=3, format_func=PERIODS.__getitem__, key="ins_period"
)
steps = data.step_performance(url, org_id, period)
hours = data.recovery_hours(url, org_id, period)
found = [
    insights.best_step(steps),
    insights.peak_hours(hours),
    insights.variant_to_retire(steps),
    insights.unpaid_discount(steps, data.discount_steps(url, org_id)),
]
found = [f for f in found if f is not None]
if not found:
    st.info("Not enough recoveries yet for a recommendation. They appear as data arrives.")
for insight in found:
    with st.container(border=True):
        st.metric(insight.title, insight.number)
        st.write(insight.detail)
if hours:
    st.subheader("Recoveries by hour of day (UTC)")
    counts = {h["hour"]: h["recoveries"] for h in hours}
    values = [counts.get(h, 0) for h in range(24)]
    fig = go.Figure(go.Bar(x=list(range(24)), y=values))
    st.plotly_chart(
        charts.layout(fig, values, xaxis_title="hour"), width="stretch", key="insight_hours"
    )

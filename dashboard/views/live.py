"""Live page: headline tiles refreshed every second, charts and the latest carts.

Numbers come from ``cartrecovery.metrics`` through ``dashboard.data``; nothing here
computes a metric.
"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from dashboard import data
from dashboard.formatting import money, percent, table

PERIODS = {"24h": "Last 24 hours", "7d": "Last 7 days", "30d": "Last 30 days"}
EMPTY_HINT = (
    "No activity in this period yet. Carts appear as the store sends events "
    "(webhooks, the tracking snippet, or `POST /api/v1/carts/track`); "
    "`cartrecovery demo` simulates a store."
)


@st.fragment(run_every="1s")
def tiles(url: str, org_id: str, period: str) -> None:
    m = data.live_metrics(url, org_id, period)
    currency = data.display_currency(url, org_id)
    # Two rows of three: six tiles in one row cut labels and amounts off on a laptop screen.
    cols = st.columns(3) + st.columns(3)
    cols[0].metric("Carts tracked", f"{m['carts_tracked']:,}", border=True)
    cols[1].metric("Carts abandoned", f"{m['carts_abandoned']:,}", border=True)
    cols[2].metric("Messages sent", f"{m['messages_sent']:,}", border=True)
    cols[3].metric("Carts recovered", f"{m['carts_recovered']:,}", border=True)
    cols[4].metric("Revenue recovered", money(m["revenue_recovered"], currency), border=True)
    cols[5].metric(
        "Recovery rate",
        percent(m["recovery_rate"]),
        border=True,
        help="Carts recovered / carts abandoned in the period",
    )
    if not any(m[k] for k in ("carts_tracked", "carts_abandoned", "messages_sent")):
        st.caption(EMPTY_HINT)


@st.fragment(run_every="10s")
def charts(url: str, org_id: str, period: str) -> None:
    b = data.breakdowns(url, org_id, period)
    currency = data.display_currency(url, org_id)
    left, right = st.columns(2)
    with left:
        st.subheader("Abandoned vs recovered per day")
        days = [r["day"] for r in b["by_day"]]
        fig = go.Figure(
            [
                go.Bar(name="Abandoned", x=days, y=[r["carts_abandoned"] for r in b["by_day"]]),
                go.Bar(name="Recovered", x=days, y=[r["carts_recovered"] for r in b["by_day"]]),
            ]
        )
        fig.update_layout(
            barmode="group", height=320, margin={"t": 10, "b": 10}, legend={"orientation": "h"}
        )
        st.plotly_chart(fig, width="stretch")
    with right:
        st.subheader("Revenue recovered")
        channel_tab, campaign_tab = st.tabs(["By channel", "By campaign"])
        with channel_tab:
            _revenue_bars(b["by_channel"], "channel", currency)
        with campaign_tab:
            _revenue_bars(b["by_campaign"], "name", currency)


def _revenue_bars(rows: list[dict], label: str, currency: str) -> None:
    if not rows:
        st.caption("No messages in this period yet.")
        return
    fig = go.Figure(
        go.Bar(
            x=[r["revenue_recovered"] for r in rows],
            y=[r[label] for r in rows],
            orientation="h",
            text=[money(r["revenue_recovered"], currency) for r in rows],
            customdata=[[r["messages_sent"], r["carts_recovered"]] for r in rows],
            hovertemplate="%{y}: %{text}<br>sent %{customdata[0]}, "
            "recovered %{customdata[1]}<extra></extra>",
        )
    )
    fig.update_layout(height=280, margin={"t": 10, "b": 10}, xaxis_title=currency)
    st.plotly_chart(fig, width="stretch")


@st.fragment(run_every="2s")
def latest(url: str, org_id: str) -> None:
    st.subheader("Latest carts")
    rows = data.latest_carts(url, org_id)
    if not rows:
        st.caption("No carts yet.")
        return
    shown = [
        {
            "status": r["status"],
            "email": r["email"] or "",
            "value": money(r["total_price"], r["currency"]),
            "items": r["item_count"],
            "last activity": r["last_activity_at"],
        }
        for r in rows
    ]
    st.dataframe(
        table(shown),
        hide_index=True,
        width="stretch",
        column_config={"last activity": st.column_config.DatetimeColumn(format="distance")},
    )


url = data.database_url()
org_id = st.session_state["org_id"]

st.title("Live")
period = st.radio(
    "Period", list(PERIODS), index=2, format_func=PERIODS.__getitem__, horizontal=True, key="period"
)
tiles(url, org_id, period)
charts(url, org_id, period)
latest(url, org_id)

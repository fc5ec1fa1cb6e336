"""Live page: tiles, the charts beside them and the latest events, refreshed every second.

Tiles and charts come from one snapshot (``cartrecovery.live_tiles`` through
``dashboard.data.live_snapshot``): the same window, the same query, the same refresh, so the
numbers of one screen always agree. Nothing here computes a metric.
"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from dashboard import charts, data
from dashboard.formatting import money, percent, table

PERIODS = {"1h": "Last hour", "24h": "Last 24 hours", "7d": "Last 7 days", "30d": "Last 30 days"}
# A demo or a new org has hours of data, not weeks: a day shows it without squeezing it.
DEFAULT_PERIOD = "24h"
EMPTY_HINT = (
    "No activity in this period yet. Carts appear as the store sends events "
    "(webhooks, the tracking snippet, or `POST /api/v1/carts/track`); "
    "`cartrecovery demo` simulates a store."
)


def revenue_text(by_currency: dict) -> str:
    """Recovered revenue per currency, e.g. ``$120.50 · €40.00``; never summed across them."""
    if not by_currency:
        return money(0, "USD")
    return " · ".join(money(amount, code) for code, amount in by_currency.items())


@st.fragment(run_every="1s")
def live(url: str, org_id: str, period: str) -> None:
    snap = data.live_snapshot(url, org_id, period)
    # Two rows of three: six tiles in one row cut labels and amounts off on a laptop screen.
    cols = st.columns(3) + st.columns(3)
    cols[0].metric(
        "Active carts", f"{snap['active_carts']:,}", border=True, help="Carts being shopped now"
    )
    cols[1].metric("Abandoned in the last hour", f"{snap['abandoned_last_hour']:,}", border=True)
    cols[2].metric("Messages sent", f"{snap['messages_sent']:,}", border=True)
    cols[3].metric("Carts recovered", f"{snap['carts_recovered']:,}", border=True)
    cols[4].metric(
        "Revenue recovered",
        revenue_text(snap["revenue_by_currency"]),
        border=True,
        help="Per currency: amounts in different currencies are never added",
    )
    cols[5].metric(
        "Recovery rate",
        percent(snap["recovery_rate"]),
        border=True,
        help=f"Carts recovered / carts abandoned ({snap['carts_abandoned']:,}) in the period",
    )
    st.caption(
        f"{PERIODS[period]}: {snap['start']:%Y-%m-%d %H:%M:%S} to {snap['end']:%H:%M:%S} UTC"
    )
    if not any(snap[k] for k in ("active_carts", "carts_abandoned", "messages_sent")):
        st.caption(EMPTY_HINT)
    left, right = st.columns(2)
    series = snap["series"]
    times = [b["at"] for b in series]
    with left:
        st.subheader("Carts abandoned and recovered")
        abandoned = [b["abandoned"] for b in series]
        recovered = [b["recovered"] for b in series]
        fig = go.Figure(
            [
                go.Bar(name="Abandoned", x=times, y=abandoned),
                go.Bar(name="Recovered", x=times, y=recovered),
            ]
        )
        st.plotly_chart(
            charts.time_axis(
                charts.layout(fig, abandoned + recovered, barmode="group"),
                snap["start"],
                snap["end"],
                snap["bucket"],
            ),
            width="stretch",
            key="live_carts_chart",
        )
    with right:
        st.subheader("Revenue recovered")
        currencies = list(snap["revenue_by_currency"]) or ["USD"]
        fig = go.Figure(
            [
                go.Bar(
                    name=code,
                    x=times,
                    y=[float(b["revenue"].get(code, 0)) for b in series],
                    hovertemplate="%{x}: %{y:,.2f} " + code + "<extra></extra>",
                )
                for code in currencies
            ]
        )
        values = [float(v) for b in series for v in b["revenue"].values()]
        st.plotly_chart(
            # Grouped, not stacked: a stack would add currencies together.
            charts.time_axis(
                charts.layout(fig, values, barmode="group", yaxis_title=" / ".join(currencies)),
                snap["start"],
                snap["end"],
                snap["bucket"],
            ),
            width="stretch",
            key="live_revenue_chart",
        )
    events_tab, carts_tab = st.tabs(["Latest events", "Latest carts"])
    with events_tab:
        events = data.latest_events(url, org_id)
        if events:
            st.dataframe(
                table(events),
                hide_index=True,
                width="stretch",
                column_config={
                    "received_at": st.column_config.DatetimeColumn(format="HH:mm:ss"),
                    "occurred_at": st.column_config.DatetimeColumn(format="HH:mm:ss"),
                },
            )
        else:
            st.caption("No events yet.")
    with carts_tab:
        latest_carts(url, org_id)


def latest_carts(url: str, org_id: str) -> None:
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
    "Period",
    list(PERIODS),
    index=list(PERIODS).index(DEFAULT_PERIOD),
    format_func=PERIODS.__getitem__,
    horizontal=True,
    key="period",
)
live(url, org_id, period)

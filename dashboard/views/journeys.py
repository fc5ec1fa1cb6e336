"""Journeys page: a Sankey of the touchpoint paths abandoned carts took in a period, and one
cart's timeline (its events, messages, their callbacks and its order). The numbers are the
API's (``/api/v1/analytics/journeys`` and ``/api/v1/carts/{id}/timeline``, through the same
``cartrecovery.analytics`` functions). Definitions: docs/analytics.md ("Journeys").
"""

from __future__ import annotations

from datetime import datetime

import plotly.graph_objects as go
import streamlit as st

from dashboard import data
from dashboard.formatting import money, table

PERIODS = {"24h": "Last 24 hours", "7d": "Last 7 days", "30d": "Last 30 days", "90d": "90 days"}
SEPARATOR = " > "


def sankey(paths: list[dict]) -> go.Figure:
    """Nodes are (position, touchpoint), so a path never loops back; every path starts at
    "abandoned" and ends at its outcome; link widths are carts."""
    nodes: dict[tuple[int, str], int] = {}
    links: dict[tuple[int, int], int] = {}

    def node(position: int, label: str) -> int:
        return nodes.setdefault((position, label), len(nodes))

    for p in paths:
        steps = ["abandoned", *p["path"]]
        for i in range(len(steps) - 1):
            key = (node(i, steps[i]), node(i + 1, steps[i + 1]))
            links[key] = links.get(key, 0) + p["carts"]
    labels = [label for (_, label) in sorted(nodes, key=nodes.get)]
    fig = go.Figure(
        go.Sankey(
            node={"label": labels, "pad": 12, "thickness": 14},
            link={
                "source": [s for s, _ in links],
                "target": [t for _, t in links],
                "value": list(links.values()),
            },
        )
    )
    fig.update_layout(height=420, margin={"t": 10, "b": 10, "l": 10, "r": 10})
    return fig


def revenue_text(by_currency: dict | None) -> str:
    return " · ".join(money(v, k) for k, v in sorted((by_currency or {}).items())) or "-"


def describe(item: dict) -> str:
    """One timeline item in words."""
    kind = item["kind"]
    if kind == "event":
        return f"{item['source']} {item['topic']}"
    if kind == "message":
        return f"{item['channel']} step {item['step']} message {item['status']}"
    if kind == "message_event":
        return f"{item['channel']} step {item['step']} {item['type']}"
    return f"order {money(item['total'], item['currency'])}"


def timeline(url: str, org_id: str) -> None:
    st.subheader("One cart's timeline")
    carts = data.journeys(url, org_id)
    if not carts:
        st.caption("No abandoned carts in the warehouse yet.")
        return
    by_id = {c["cart_id"]: c for c in carts}
    chosen = st.selectbox(
        "Cart",
        list(by_id),
        format_func=lambda c: (
            f"{by_id[c]['email'] or 'anonymous'} · {by_id[c]['outcome']} · "
            f"{datetime.fromisoformat(by_id[c]['abandoned_at']):%Y-%m-%d %H:%M}"
        ),
        key="journey_cart",
    )
    cart = by_id[chosen]
    st.caption(f"Path: {SEPARATOR.join(cart['path'])}")
    events = [
        {
            "at": datetime.fromisoformat(i["at"]) if i["at"] else None,
            "kind": i["kind"],
            "detail": describe(i),
        }
        for i in data.cart_timeline(url, org_id, chosen)
    ]
    if not events:
        st.caption("No events recorded for this cart.")
        return
    fig = go.Figure(
        go.Scatter(
            x=[e["at"] for e in events],
            y=[e["kind"] for e in events],
            text=[e["detail"] for e in events],
            mode="markers+text",
            textposition="top center",
            marker={"size": 12},
            hovertemplate="%{x}<br>%{text}<extra></extra>",
        )
    )
    fig.update_layout(height=260, margin={"t": 30, "b": 10, "l": 10, "r": 10})
    st.plotly_chart(fig, width="stretch", key="journey_timeline")
    st.dataframe(table(events), hide_index=True, width="stretch")


url = data.database_url()
org_id = st.session_state["org_id"]
st.title("Journeys")
built = data.marts_built_at(url, org_id)
st.caption(f"From the warehouse, built {built:%Y-%m-%d %H:%M} UTC.")
period = st.selectbox(
    "Period", list(PERIODS), index=1, format_func=PERIODS.__getitem__, key="jr_period"
)
paths = data.journey_paths(url, org_id, period)
st.subheader("Touchpoint paths")
if paths:
    st.plotly_chart(sankey(paths), width="stretch", key="journey_sankey")
    st.dataframe(
        table(
            [
                {
                    "path": SEPARATOR.join(p["path"]),
                    "carts": p["carts"],
                    "recovered": p["recovered"],
                    "revenue": revenue_text(p["revenue_by_currency"]),
                }
                for p in paths
            ]
        ),
        hide_index=True,
        width="stretch",
    )
else:
    st.caption("No abandoned carts in this period (as of the last warehouse build).")
timeline(url, org_id)

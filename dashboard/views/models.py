"""Models page: the champion and challenger of each registered model (``cartrecovery-send-time``,
``cartrecovery-content``) with their held-out metric, and the share of the org's messages of
the last 30 days each version (or the control share, or a fallback) decided
(``ml.overview``; docs/models.md).

One registry serves every org (the models are trained on the message log, not per org); the
scored shares are the org's own messages. The page is in the navigation only when a model is
registered or the org's messages were scored (app.py).
"""

from __future__ import annotations

from datetime import UTC, datetime

import plotly.graph_objects as go
import streamlit as st

from dashboard import charts, data
from dashboard.formatting import percent, table

KINDS = {"send_time": "Send time", "content": "Content (smart discount)"}
DECISIONS = {
    "model": "the model's choice",
    "explore": "exploration (a random choice, to keep learning)",
    "control": "control share (the fixed rule)",
    "fallback": "fallback (no model could score)",
}


def registry_section(rows: list[dict]) -> None:
    st.subheader("Champion and challenger")
    if not rows:
        st.caption(
            "No model is registered yet: `cartrecovery ml train` (or Dagster) trains and "
            "registers them; until then smart steps use the fixed rule."
        )
        return
    st.dataframe(
        table(
            [
                {
                    "model": KINDS.get(r["model"], r["model"]),
                    "registered name": r["name"],
                    "alias": r["alias"],
                    "version": r["version"],
                    "held-out metric": r["metric"],
                    "value": round(r["value"], 4) if r["value"] == r["value"] else None,
                    "registered at (UTC)": datetime.fromtimestamp(
                        r["registered_at_ms"] / 1000, UTC
                    ).strftime("%Y-%m-%d %H:%M"),
                }
                for r in rows
            ]
        ),
        hide_index=True,
        width="stretch",
        key="models_registry",
    )
    st.caption(
        "A challenger becomes champion only when its held-out metric beats the champion's "
        '(docs/models.md, "MLflow"). When both aliases name the same version, the champion '
        "has not been challenged yet."
    )


def shares_section(rows: list[dict]) -> None:
    st.subheader("Messages each version decided (last 30 days)")
    if not rows:
        st.caption("No message of this organization was scored in the last 30 days.")
        return
    shown = [
        {
            "model": KINDS.get(r["model"], r["model"]),
            "version": r["version"] or "",
            "decision": DECISIONS.get(r["decision"], r["decision"]),
            "messages": r["messages"],
            "share": percent(r["share"]),
        }
        for r in rows
    ]
    st.dataframe(table(shown), hide_index=True, width="stretch", key="models_shares")
    fig = go.Figure(
        [
            go.Bar(
                name=f"{r['decision']}" + (f" v{r['version']}" if r["version"] else ""),
                x=[KINDS.get(r["model"], r["model"])],
                y=[r["share"] * 100],
                hovertemplate="%{y:.1f}% of the messages<extra>%{fullData.name}</extra>",
            )
            for r in rows
        ]
    )
    st.plotly_chart(
        charts.layout(
            fig, [r["share"] * 100 for r in rows], barmode="stack", yaxis_title="% of messages"
        ),
        width="stretch",
        key="models_shares_chart",
    )


url = data.database_url()
org_id = st.session_state["org_id"]
st.title("Models")
with st.spinner("Reading the model registry…"):
    registry = data.model_registry(wait=True) or []
registry_section(registry)
shares_section(data.scored_shares(url, org_id))

"""Campaigns page: the org's campaigns with their status; marketers and admins can activate
or pause one (viewers see the list only)."""

from __future__ import annotations

import streamlit as st

from dashboard import data, session
from dashboard.formatting import table

NEXT = {
    "active": ("paused", "Pause"),
    "paused": ("active", "Activate"),
    "draft": ("active", "Activate"),
}


@st.fragment
def campaign_list(url: str, org_id: str) -> None:
    rows = data.campaign_list(url, org_id)
    if not rows:
        st.info("No campaigns yet. Create one with `POST /api/v1/campaigns`.")
        return
    st.dataframe(
        table([{k: r[k] for k in ("name", "status", "priority", "steps")} for r in rows]),
        hide_index=True,
        width="stretch",
    )
    if not session.can_edit():
        return
    st.subheader("Change status")
    for row in rows:
        status, label = NEXT[row["status"]]
        left, right = st.columns([4, 1])
        left.write(f"**{row['name']}** · {row['status']}")
        if right.button(label, key=f"campaign_status_{row['campaign_id']}"):
            try:
                data.set_campaign_status(
                    url, org_id, session.current_user()["user_id"], row["campaign_id"], status
                )
            except PermissionError as exc:
                st.error(str(exc))
                return
            st.rerun()


st.title("Campaigns")
campaign_list(data.database_url(), st.session_state["org_id"])

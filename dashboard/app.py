"""Streamlit entry point: page config, the org selector, and navigation between the views.

Run with ``streamlit run dashboard/app.py`` (``cartrecovery dashboard`` does this) with
``DATABASE_URL`` set. ``CARTRECOVERY_ORG`` (an org id or name) preselects an org; otherwise
the first org is shown. The chosen org lives in ``st.session_state["org_id"]``, which the
views read.
"""

from __future__ import annotations

import os
from uuid import UUID

import streamlit as st

from dashboard import data

st.set_page_config(page_title="Cart recovery", page_icon=":material/shopping_cart:", layout="wide")


def _wanted_org(orgs: list[dict]) -> str | None:
    """The org named by CARTRECOVERY_ORG (id or name), if it exists."""
    wanted = os.environ.get("CARTRECOVERY_ORG", "").strip()
    if not wanted:
        return None
    try:
        wanted = str(UUID(wanted))
    except ValueError:
        pass
    return next((o["org_id"] for o in orgs if wanted in (o["org_id"], o["name"])), None)


url = data.database_url()
if not url:
    st.error("DATABASE_URL is not set. Start the dashboard with `cartrecovery dashboard`.")
    st.stop()

orgs = data.orgs(url)
# The org list is cached for a while; a new session that finds no org, or not the one
# CARTRECOVERY_ORG asks for, reads it once more instead of waiting for the cache to expire.
if "org_id" not in st.session_state and (
    not orgs or (os.environ.get("CARTRECOVERY_ORG") and _wanted_org(orgs) is None)
):
    data.orgs.clear()
    orgs = data.orgs(url)
known = {o["org_id"] for o in orgs}

if not orgs:
    st.info("No organizations yet. Create one with `cartrecovery orgs create NAME`.")
    st.stop()

if st.session_state.get("org_id") not in known:
    st.session_state["org_id"] = _wanted_org(orgs) or orgs[0]["org_id"]

names = {o["org_id"]: o["name"] for o in orgs}
st.sidebar.selectbox("Organization", list(names), format_func=names.__getitem__, key="org_id")

st.navigation(
    [
        st.Page("views/live.py", title="Live", icon=":material/monitoring:", default=True),
        st.Page("views/outbox.py", title="Outbox", icon=":material/outbox:"),
        st.Page("views/stores.py", title="Stores", icon=":material/storefront:"),
    ]
).run()

"""Streamlit entry point: page config, sign-in, the org selector, and navigation.

Run with ``streamlit run dashboard/app.py`` (``cartrecovery dashboard`` does this) with
``DATABASE_URL`` set (and ``REDIS_URL`` to limit failed sign-ins). An unauthenticated session
sees only the sign-in form (dashboard/session.py). A signed-in user sees their own orgs only,
read in their own database scope; the org selector shows when they belong to several.
``CARTRECOVERY_ORG`` (an org id or name) preselects one of them. The chosen org and the
user's role there live in ``st.session_state["org_id"]`` and ``["role"]``, which the views
read; every query of a view runs under row-level security for that org.
"""

from __future__ import annotations

import os
from uuid import UUID

import streamlit as st

from dashboard import data, session

st.set_page_config(page_title="Cart recovery", page_icon=":material/shopping_cart:", layout="wide")


def _wanted_org(orgs: list[dict]) -> str | None:
    """The org named by CARTRECOVERY_ORG (id or name), if the user belongs to it."""
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

user = session.current_user()
if user is None:
    session.sign_in_form(url)
    st.stop()

orgs = data.user_orgs(url, user["user_id"])
if not orgs:
    st.warning("Your account belongs to no organization. Ask an admin to add you.")
    st.button("Sign out", on_click=session.sign_out)
    st.stop()

known = {o["org_id"]: o for o in orgs}
if st.session_state.get("org_id") not in known:
    st.session_state["org_id"] = _wanted_org(orgs) or orgs[0]["org_id"]
if len(orgs) > 1:
    st.sidebar.selectbox(
        "Organization", list(known), format_func=lambda o: known[o]["name"], key="org_id"
    )
else:
    st.sidebar.markdown(f"**{orgs[0]['name']}**")
st.session_state["role"] = known[st.session_state["org_id"]]["role"]
st.sidebar.caption(f"Signed in as `{user['email']}` ({st.session_state['role']})")
st.sidebar.button("Sign out", on_click=session.sign_out, key="sign_out")

# Pages over the warehouse marts show once the org's marts have been built: a page whose
# data does not exist yet is left out rather than shown empty.
warehouse = data.marts_built_at(url, st.session_state["org_id"]) is not None
pages = [
    st.Page("views/live.py", title="Live", icon=":material/monitoring:", default=True),
    st.Page("views/campaigns.py", title="Campaigns", icon=":material/campaign:"),
]
if warehouse:
    pages += [
        st.Page("views/attribution.py", title="Attribution", icon=":material/paid:"),
        st.Page("views/journeys.py", title="Journeys", icon=":material/route:"),
        st.Page("views/insights.py", title="Insights", icon=":material/lightbulb:"),
    ]
# Experiments: once a step with variants (or a holdout) has sent something. Models: once a
# model is registered (read in the background: MLflow loads slowly) or the org's messages
# were scored.
if data.experiments(url, st.session_state["org_id"]):
    pages.append(st.Page("views/experiments.py", title="Experiments", icon=":material/science:"))
if data.model_registry() or data.has_scored_messages(url, st.session_state["org_id"]):
    pages.append(st.Page("views/models.py", title="Models", icon=":material/model_training:"))
pages += [
    st.Page("views/compliance.py", title="Compliance", icon=":material/policy:"),
    st.Page("views/exports.py", title="Exports", icon=":material/download:"),
    st.Page("views/outbox.py", title="Outbox", icon=":material/outbox:"),
    st.Page("views/stores.py", title="Stores", icon=":material/storefront:"),
]
st.navigation(pages).run()

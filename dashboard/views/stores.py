"""Stores page: the org's store connections and, per store on demand, its webhooks as the
platform has them registered against what the product expects (the same comparison as
``cartrecovery connections verify``, which repairs it with ``--fix``)."""

from __future__ import annotations

import streamlit as st

from dashboard import data
from dashboard.formatting import table

url, org_id = data.database_url(), st.session_state["org_id"]
st.title("Stores")
rows = data.stores(url, org_id)
if not rows:
    st.info(
        "No store connected yet. Install the Shopify app (APP_URL/auth/shopify/install?shop=…) "
        "or run `cartrecovery connections add`."
    )
    st.stop()

st.dataframe(
    table(
        [
            {
                "platform": r["platform"],
                "store": r["shop_domain"],
                "status": r["status"],
                "API credentials": "yes" if r["has_credentials"] else "no",
                "connected": r["created_at"],
                "connection": r["connection_id"],
            }
            for r in rows
        ]
    ),
    hide_index=True,
    width="stretch",
)

labels = {r["connection_id"]: f"{r['platform']} · {r['shop_domain']}" for r in rows}
chosen = st.selectbox("Store", list(labels), format_func=labels.__getitem__, key="store")
if st.button("Check webhooks", key="check_webhooks"):
    result = data.store_webhooks(url, org_id, chosen)
    if not result.get("managed"):
        st.info(f"Webhooks not managed here: {result.get('reason')}.")
    elif "error" in result:
        st.error(f"The platform could not be asked: {result['error']}")
    else:
        live = {(h["topic"], h["url"]) for h in result["registered"] if h["active"]}
        shown = [
            {
                "topic": h["topic"],
                "url": h["url"],
                "registered": "yes" if (h["topic"], h["url"]) in live else "MISSING",
            }
            for h in result["expected"]
        ]
        shown += [
            {"topic": h["topic"], "url": h["url"], "registered": "stale (not expected)"}
            for h in result["stale"]
        ]
        st.dataframe(table(shown), hide_index=True, width="stretch")
        if result["ok"]:
            st.success("All expected webhooks are registered.")
        else:
            st.warning(
                f"Webhooks need repair: run `cartrecovery connections verify {chosen} --fix`."
            )

"""Stores page: the org's store connections and, per store on demand, its webhooks as the
platform has them registered against what the product expects (the same comparison as
``cartrecovery connections verify``, which repairs it with ``--fix``). Admins also get a
Shopify install link bound to this org (what ``cartrecovery shopify install-link`` prints)."""

from __future__ import annotations

import streamlit as st

from dashboard import data, session
from dashboard.formatting import table

url, org_id = data.database_url(), st.session_state["org_id"]
st.title("Stores")


def connect_shopify() -> None:
    """Admins only: a shop domain in, the install link that connects it to this org out."""
    with st.expander("Connect a Shopify store", expanded=not rows):
        st.caption(
            "The store's owner opens the link, approves the app on Shopify and lands here with "
            "the store connected to this organization: webhooks registered, history imported. "
            "The link is valid for 24 hours."
        )
        with st.form("shopify_install_link"):
            shop = st.text_input(
                "Shop domain", key="install_shop", placeholder="my-store.myshopify.com"
            )
            submitted = st.form_submit_button("Make install link", key="make_install_link")
        if submitted:
            user_id = st.session_state["user"]["user_id"]
            try:
                link = data.shopify_install_link(url, org_id, user_id, shop)
            except (ValueError, PermissionError) as exc:
                st.error(str(exc))
            else:
                st.code(link, language=None)
                if not data.shopify_app_configured():
                    st.warning(
                        "SHOPIFY_API_KEY and SHOPIFY_API_SECRET are not set here; the install "
                        "route refuses installs until they are set for `cartrecovery serve`."
                    )


rows = data.stores(url, org_id)
if session.can_administer():
    connect_shopify()
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

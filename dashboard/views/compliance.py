"""Compliance page: consent and suppression counts, erasure and export requests with their
status, and the audit log (``cartrecovery.compliance``, ``cartrecovery.audit``)."""

from __future__ import annotations

import streamlit as st

from dashboard import data
from dashboard.formatting import table


def section(title: str, rows: list[dict], empty: str) -> None:
    st.subheader(title)
    if rows:
        st.dataframe(table(rows), hide_index=True, width="stretch")
    else:
        st.caption(empty)


url = data.database_url()
org_id = st.session_state["org_id"]
st.title("Compliance")
overview = data.compliance_overview(url, org_id)
cols = st.columns(3)
consents = overview["consents"]
cols[0].metric(
    "Addresses with consent",
    f"{sum(r['addresses'] for r in consents if r['status'] == 'granted'):,}",
    border=True,
)
cols[1].metric(
    "Consents withdrawn",
    f"{sum(r['addresses'] for r in consents if r['status'] != 'granted'):,}",
    border=True,
)
cols[2].metric(
    "Suppressed addresses",
    f"{sum(r['addresses'] for r in overview['suppressions']):,}",
    border=True,
)
left, right = st.columns(2)
with left:
    section("Consents by channel", consents, "No consent recorded yet.")
with right:
    section("Suppressions by reason", overview["suppressions"], "No address is suppressed.")
section("Erasure and export requests", overview["requests"], "No privacy request yet.")
section("Audit log", overview["audit"], "Nothing audited yet.")

"""Outbox page: what the built-in provider "sent" (app.local_mailbox), newest first, with
the outbox status and a preview of one message."""

from __future__ import annotations

import streamlit as st

from dashboard import data
from dashboard.formatting import money, table


@st.fragment(run_every="3s")
def outbox(url: str, org_id: str) -> None:
    rows = data.mailbox(url, org_id)
    if not rows:
        st.info(
            "No messages stored yet. With no provider keys set, every message the platform "
            "sends is stored here instead, rendered."
        )
        return
    shown = [
        {
            "recipient": r["recipient"],
            "subject": r["subject"] or "",
            "channel": r["channel"],
            "stored_at": r["stored_at"],
            "status": r["status"] or "",
            "step": r["step_index"],
            "cart value": money(r["cart_value"], r["currency"])
            if r["cart_value"] is not None
            else "",
        }
        for r in rows
    ]
    st.dataframe(
        table(shown),
        hide_index=True,
        width="stretch",
        column_config={"stored_at": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss")},
    )
    by_id = {r["message_id"]: r for r in rows}
    chosen = st.selectbox(
        "Preview message",
        list(by_id),
        format_func=lambda mid: _label(by_id[mid]),
        key="preview_message",
    )
    message = by_id.get(chosen) or rows[0]
    st.subheader(message["subject"] or f"({message['channel']} message)")
    st.caption(f"To {message['recipient']} · {message['channel']} · {message['status'] or ''}")
    html_tab, text_tab = st.tabs(["HTML", "Text"])
    with html_tab:
        if message["body_html"]:
            # st.html sanitizes (DOMPurify, no scripts): bodies carry store-supplied data.
            with st.container(border=True):
                st.html(message["body_html"])
        else:
            st.caption("No HTML part.")
    with text_tab:
        if message["body_text"]:
            st.text(message["body_text"])
        else:
            st.caption("No text part.")


def _label(row: dict) -> str:
    stored = row["stored_at"].strftime("%Y-%m-%d %H:%M:%S")
    return f"{stored} · {row['recipient']} · {row['subject'] or row['channel']}"


st.title("Outbox")
outbox(data.database_url(), st.session_state["org_id"])

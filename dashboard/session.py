"""The signed-in session: the sign-in form, sign-out, and what the user may do.

A session holds ``st.session_state["user"]`` (``{"user_id", "email"}``) once signed in, the
chosen org in ``"org_id"`` and the user's role there in ``"role"`` (both set by ``app.py`` on
every run from the user's current memberships). Pages show edit controls only when
:func:`can_edit` says so; the writes behind them check the role again in the database.
"""

from __future__ import annotations

import streamlit as st

from cartrecovery import access, users
from dashboard import data

SESSION_KEYS = ("user", "org_id", "role")


def current_user() -> dict | None:
    return st.session_state.get("user")


def sign_in_form(url: str) -> None:
    """The sign-in form; on success the session holds the user and the app runs again."""
    st.title("Sign in")
    with st.form("sign_in"):
        email = st.text_input("Email", key="sign_in_email", autocomplete="username")
        password = st.text_input(
            "Password", type="password", key="sign_in_password", autocomplete="current-password"
        )
        submitted = st.form_submit_button("Sign in", type="primary")
    st.caption("No account yet? An operator creates one with `cartrecovery users create`.")
    if not submitted:
        return
    try:
        user = users.sign_in(
            data.database(url), data.redis_client(), email, password, st.context.ip_address
        )
    except users.TooManyAttempts as exc:
        st.error(f"Too many failed sign-ins. Try again in {exc.retry_after} seconds.")
        return
    if user is None:
        st.error("Wrong email or password.")
        return
    for key in SESSION_KEYS:
        st.session_state.pop(key, None)
    st.session_state["user"] = {"user_id": str(user.user_id), "email": user.email}
    st.rerun()


def sign_out() -> None:
    """Forget the user (a button callback: the app then shows the sign-in form)."""
    for key in SESSION_KEYS:
        st.session_state.pop(key, None)


def role() -> str | None:
    return st.session_state.get("role")


def can_edit() -> bool:
    """Whether pages may show edit controls: marketers and admins, not viewers."""
    current = role()
    return current is not None and access.allows(current, "write", user=True)


def can_administer() -> bool:
    """Whether pages may show admin controls (store install links): admins only."""
    current = role()
    return current is not None and access.allows(current, "admin", user=True)

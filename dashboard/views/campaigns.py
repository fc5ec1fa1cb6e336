"""Campaigns page: the org's campaigns; marketers and admins activate or pause them, and create
or edit one with the step builder (delay, channel, built-in template with a live preview on a
real cart, subject, variants, discount, the smart send time and smart discount switches with
their control share) and its holdout share. Viewers see the list only.

Saving goes through the same validation as ``POST``/``PATCH /api/v1/campaigns``
(``cartrecovery.campaigns``); a step left on "channel default" gets its channel's built-in
template.
"""

from __future__ import annotations

import pandas as pd
import pydantic
import streamlit as st

from cartrecovery.campaigns import MAX_STEPS, SMART_DEFAULTS
from cartrecovery.rendering import DEFAULT_TEMPLATES, RenderError
from dashboard import data, session
from dashboard.formatting import money, table

NEXT = {
    "active": ("paused", "Pause"),
    "paused": ("active", "Activate"),
    "draft": ("active", "Activate"),
}
NEW = "new"
CHANNELS = ["email", "sms", "push"]
CHANNEL_DEFAULT = "(channel default)"
CUSTOM = "(inline template, kept as is)"
DISCOUNTS = ["none", "percentage", "fixed_amount", "free_shipping"]
UNITS = {"seconds": 1, "minutes": 60, "hours": 3600, "days": 86400}
VARIANT_COLUMNS = ["name", "subject", "template", "weight"]
# Step fields the builder has no widget for: kept as loaded, so saving does not drop them.
KEPT = ("allocation", "min_share", "no_discount_template")
SMART_DISCOUNTS = ("percentage", "fixed_amount")


def campaign_list(url: str, org_id: str) -> list[dict]:
    rows = data.campaign_list(url, org_id)
    if not rows:
        st.info("No campaigns yet." + (" Create one below." if session.can_edit() else ""))
        return rows
    st.dataframe(
        table([{k: r[k] for k in ("name", "status", "priority", "steps")} for r in rows]),
        hide_index=True,
        width="stretch",
    )
    if not session.can_edit():
        return rows
    st.subheader("Change status")
    if refused := st.session_state.pop("campaign_status_refused", None):
        st.error(refused)
    for row in rows:
        status, label = NEXT[row["status"]]
        left, right = st.columns([4, 1])
        left.write(f"**{row['name']}** · {row['status']}")
        # A callback, run before the rerun the click starts, so the list above shows the new
        # status in that same run; an st.rerun() after the change would start a second run,
        # and could replace a page switch the user asked for meanwhile.
        right.button(
            label,
            key=f"campaign_status_{row['campaign_id']}",
            on_click=_change_status,
            args=(url, org_id, row["campaign_id"], status),
        )
    return rows


def _change_status(url: str, org_id: str, campaign_id: str, status: str) -> None:
    try:
        data.set_campaign_status(
            url, org_id, session.current_user()["user_id"], campaign_id, status
        )
    except PermissionError as exc:
        st.session_state["campaign_status_refused"] = str(exc)


# --- the editor ----------------------------------------------------------------------------


def _unit_of(seconds: int) -> tuple[int, str]:
    for unit in ("days", "hours", "minutes"):
        if seconds and seconds % UNITS[unit] == 0:
            return seconds // UNITS[unit], unit
    return seconds, "seconds"


def _window_of(seconds: int) -> tuple[int, str]:
    """A send-time window as the builder shows it: in hours when whole (as it is asked by
    default), else in the largest unit that holds it exactly, so any stored value reads back
    without loss."""
    if seconds % UNITS["hours"] == 0:
        return seconds // UNITS["hours"], "hours"
    return _unit_of(seconds)


def _load(choice: str, current: dict | None) -> None:
    """Put the chosen campaign (or a new one) into the editor's widgets."""
    for key in [k for k in st.session_state if str(k).startswith("ed_") and k != "ed_choice"]:
        del st.session_state[key]
    state = st.session_state
    state["ed_loaded"] = choice
    steps = (current or {}).get("sequence_steps") or [
        {"channel": "email", "delay_seconds": 3600, "subject": "You left something behind"}
    ]
    state["ed_name"] = (current or {}).get("name", "")
    state["ed_priority"] = (current or {}).get("priority", 0)
    state["ed_holdout"] = float(((current or {}).get("experiment") or {}).get("holdout_percent", 0))
    state["ed_nsteps"] = len(steps)
    builtins = data.templates_by_channel()
    for i, step in enumerate(steps):
        amount, unit = _unit_of(step.get("delay_seconds", 0))
        state[f"ed_{i}_delay"] = amount
        state[f"ed_{i}_unit"] = unit
        state[f"ed_{i}_channel"] = step.get("channel", "email")
        template = step.get("template")
        if template in builtins.get(step.get("channel", "email"), []):
            state[f"ed_{i}_template"] = template
        elif template:
            state[f"ed_{i}_template"] = CUSTOM
            state[f"ed_{i}_custom"] = template
        state[f"ed_{i}_subject"] = step.get("subject") or ""
        discount = step.get("discount") or {}
        state[f"ed_{i}_discount"] = discount.get("type", "none")
        state[f"ed_{i}_discount_value"] = float(discount.get("value") or 10)
        if "expires_in_hours" in discount:  # not edited here, but kept
            state[f"ed_{i}_discount_expires"] = discount["expires_in_hours"]
        state[f"ed_{i}_smart_send"] = bool(step.get("smart_send_time", False))
        state[f"ed_{i}_smart_window"], state[f"ed_{i}_smart_window_unit"] = _window_of(
            int(step.get("smart_send_window_seconds", SMART_DEFAULTS["smart_send_window_seconds"]))
        )
        state[f"ed_{i}_smart_discount"] = bool(step.get("smart_discount", False))
        state[f"ed_{i}_smart_margin"] = float(
            step.get("smart_discount_margin", SMART_DEFAULTS["smart_discount_margin"])
        )
        state[f"ed_{i}_smart_control"] = 100 * float(
            step.get("smart_control_share", SMART_DEFAULTS["smart_control_share"])
        )
        state[f"ed_{i}_kept"] = {k: step[k] for k in KEPT if step.get(k) is not None}
        state[f"ed_{i}_variants_init"] = pd.DataFrame(
            [{c: v.get(c) for c in VARIANT_COLUMNS} for v in step.get("variants") or []],
            columns=VARIANT_COLUMNS,
        )


def _smart_editor(i: int, discount: str) -> dict:
    """The step's model-driven switches (docs/models.md); returns the fields to store."""
    state = st.session_state
    window, window_unit = _window_of(SMART_DEFAULTS["smart_send_window_seconds"])
    state.setdefault(f"ed_{i}_smart_window", window)
    state.setdefault(f"ed_{i}_smart_window_unit", window_unit)
    state.setdefault(f"ed_{i}_smart_margin", SMART_DEFAULTS["smart_discount_margin"])
    state.setdefault(f"ed_{i}_smart_control", 100 * SMART_DEFAULTS["smart_control_share"])
    cols = st.columns(2)
    send = cols[0].toggle(
        "Smart send time",
        key=f"ed_{i}_smart_send",
        help="The send-time model picks the moment within the window after the delay "
        "(quiet hours and caps still apply); without a model, the fixed delay.",
    )
    can_discount = discount in SMART_DISCOUNTS
    if not can_discount:
        state[f"ed_{i}_smart_discount"] = False
    smart_discount = cols[1].toggle(
        "Smart discount",
        key=f"ed_{i}_smart_discount",
        disabled=not can_discount,
        help="Offer the discount only when the content model predicts it pays for its cost "
        "(needs a percentage or fixed amount discount); without a model, everyone gets it.",
    )
    fields: dict = {}
    if send:
        # Any whole number of seconds the API takes (1 hour to 7 days; saving checks it).
        amount_col, unit_col = cols[0].columns(2)
        window = amount_col.number_input(
            "Send-time window", min_value=1, step=1, key=f"ed_{i}_smart_window"
        )
        unit = unit_col.selectbox("Window unit", list(UNITS), key=f"ed_{i}_smart_window_unit")
        fields |= {
            "smart_send_time": True,
            "smart_send_window_seconds": int(window) * UNITS[unit],
        }
    if smart_discount:
        margin = cols[1].number_input(
            "Gross margin (share of the cart value)",
            min_value=0.01,
            max_value=0.99,
            step=0.05,
            key=f"ed_{i}_smart_margin",
        )
        fields |= {"smart_discount": True, "smart_discount_margin": float(margin)}
    if fields:
        control = st.number_input(
            "Control share (%)",
            min_value=0.0,
            max_value=50.0,
            key=f"ed_{i}_smart_control",
            help="This share of carts keeps the fixed delay and the full discount rule, so "
            "the analytics can compare.",
        )
        fields["smart_control_share"] = round(float(control) / 100, 4)
    return fields


def _step_editor(i: int) -> dict:
    """The widgets of step ``i``; returns the step as the API takes it."""
    state = st.session_state
    builtins = data.templates_by_channel()
    with st.expander(f"Step {i + 1}", expanded=i == 0):
        cols = st.columns([1, 1, 1])
        delay = cols[0].number_input("Delay after abandonment", min_value=0, key=f"ed_{i}_delay")
        unit = cols[1].selectbox("Unit", list(UNITS), key=f"ed_{i}_unit")
        channel = cols[2].selectbox("Channel", CHANNELS, key=f"ed_{i}_channel")
        options = [CHANNEL_DEFAULT, *builtins[channel]]
        if f"ed_{i}_custom" in state:
            options.append(CUSTOM)
        if state.get(f"ed_{i}_template") not in options:
            state[f"ed_{i}_template"] = CHANNEL_DEFAULT
        template = st.selectbox("Template", options, key=f"ed_{i}_template")
        subject = ""
        if channel != "sms":
            subject = st.text_input(
                "Subject" if channel == "email" else "Title (optional)",
                key=f"ed_{i}_subject",
                help="Jinja2, e.g. `You left {{ cart.item_count }} items`",
            )
        dcols = st.columns(2)
        discount = dcols[0].selectbox("Discount", DISCOUNTS, key=f"ed_{i}_discount")
        value = None
        if discount in ("percentage", "fixed_amount"):
            value = dcols[1].number_input(
                "Percent" if discount == "percentage" else "Amount",
                min_value=0.01,
                key=f"ed_{i}_discount_value",
            )
        smart = _smart_editor(i, discount)
        st.caption("Variants (optional): carts are split between them by weight.")
        variants = st.data_editor(
            state.get(f"ed_{i}_variants_init", pd.DataFrame(columns=VARIANT_COLUMNS)),
            num_rows="dynamic",
            key=f"ed_{i}_variants",
            width="stretch",
            column_config={"weight": st.column_config.NumberColumn(min_value=0.001)},
        )
    step: dict = {"channel": channel, "delay_seconds": int(delay) * UNITS[unit]}
    if template == CUSTOM:
        step["template"] = state[f"ed_{i}_custom"]
    elif template != CHANNEL_DEFAULT:
        step["template"] = template
    if subject.strip():
        step["subject"] = subject.strip()
    if discount != "none":
        step["discount"] = {"type": discount, **({"value": value} if value else {})}
        if f"ed_{i}_discount_expires" in state:
            step["discount"]["expires_in_hours"] = state[f"ed_{i}_discount_expires"]
    step |= smart
    step |= state.get(f"ed_{i}_kept", {})
    rows = [
        {k: v for k, v in r.items() if v is not None and v == v and v != ""}
        for r in variants.to_dict("records")
    ]
    rows = [r for r in rows if r.get("name")]
    if rows:
        step["variants"] = [
            {**r, "weight": float(r["weight"])} if "weight" in r else r for r in rows
        ]
    return step


def _cart_label(cart: dict | None) -> str:
    if cart is None:
        return "Sample cart"
    return f"{cart['email'] or 'anonymous'} · {money(cart['total_price'], cart['currency'])}"


def _preview(url: str, org_id: str, steps: list[dict]) -> None:
    st.subheader("Preview")
    carts = data.preview_carts(url, org_id)
    by_id = {c["cart_id"]: c for c in carts}
    cols = st.columns(2)
    index = cols[0].selectbox(
        "Step", range(len(steps)), format_func=lambda i: f"Step {i + 1}", key="ed_preview_step"
    )
    cart_id = cols[1].selectbox(
        "Cart",
        [None, *by_id],
        format_func=lambda c: _cart_label(by_id.get(c)),
        key="ed_preview_cart",
    )
    step = dict(steps[min(index, len(steps) - 1)])
    variants = step.get("variants") or []
    if variants:
        name = st.selectbox(
            "Variant", ["(step)", *(v["name"] for v in variants)], key="ed_preview_variant"
        )
        chosen = next((v for v in variants if v["name"] == name), None)
        if chosen:
            step.update({k: chosen[k] for k in ("subject", "template") if chosen.get(k)})
    # Previewed as saved: a step left on "channel default" gets its channel's template.
    step.setdefault("template", DEFAULT_TEMPLATES[step["channel"]])
    try:
        shown = data.preview_step(url, org_id, step, cart_id)
    except RenderError as exc:
        st.warning(f"This step does not render yet: {exc}")
        return
    with st.container(border=True):
        if shown["channel"] == "email":
            st.markdown(f"**Subject:** {shown['subject']}")
            st.html(shown["html"])
        elif shown["channel"] == "push":
            payload = shown["data"] or {}
            st.markdown(f"**{payload.get('title', shown['subject'])}**")
            st.text(payload.get("body", shown["text"]))
        else:
            st.text(shown["text"])


def _errors(exc: pydantic.ValidationError) -> str:
    return "\n".join(
        f"- `{'.'.join(str(p) for p in e['loc']) or 'campaign'}`: {e['msg']}" for e in exc.errors()
    )


def editor(url: str, org_id: str, rows: list[dict]) -> None:
    st.subheader("Create or edit")
    names = {r["campaign_id"]: r["name"] for r in rows}
    choice = st.selectbox(
        "Campaign",
        [NEW, *names],
        format_func=lambda c: "New campaign" if c == NEW else names[c],
        key="ed_choice",
    )
    current = data.campaign(url, org_id, choice) if choice != NEW else None
    if st.session_state.get("ed_loaded") != choice:
        _load(choice, current)
    left, right = st.columns([3, 2])
    with left:
        name = st.text_input("Name", key="ed_name")
        cols = st.columns(3)
        priority = cols[0].number_input(
            "Priority", min_value=-1000, max_value=1000, key="ed_priority"
        )
        holdout = cols[1].number_input(
            "Holdout share (%)",
            min_value=0.0,
            max_value=100.0,
            key="ed_holdout",
            help="This share of matching carts gets no message, to measure lift.",
        )
        count = cols[2].number_input("Steps", min_value=1, max_value=MAX_STEPS, key="ed_nsteps")
        steps = [_step_editor(i) for i in range(int(count))]
    with right:
        _preview(url, org_id, steps)
    if not st.button("Save campaign", type="primary", key="ed_save"):
        return
    experiment = {**((current or {}).get("experiment") or {}), "holdout_percent": float(holdout)}
    body: dict = {"name": name.strip(), "priority": int(priority), "sequence_steps": steps}
    if current is not None or holdout:
        body["experiment"] = experiment
    try:
        saved = data.save_campaign(
            url,
            org_id,
            session.current_user()["user_id"],
            None if choice == NEW else choice,
            body,
        )
    except pydantic.ValidationError as exc:
        st.error("The campaign was not saved:\n" + _errors(exc))
        return
    except (PermissionError, LookupError) as exc:
        st.error(f"The campaign was not saved: {exc}")
        return
    st.session_state.pop("ed_loaded", None)
    st.session_state["ed_saved"] = saved["name"]
    st.rerun()


url = data.database_url()
org_id = st.session_state["org_id"]
st.title("Campaigns")
if saved := st.session_state.pop("ed_saved", None):
    st.success(f"Saved {saved!r}.")
rows = campaign_list(url, org_id)
if session.can_edit():
    editor(url, org_id, rows)

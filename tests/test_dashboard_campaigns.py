"""The Campaigns page's step builder, run with AppTest against the test database: a marketer
creates a campaign whose step takes its channel's built-in template, edits a campaign's step
and holdout share, and previews a step on a real cart; a viewer gets no editor."""

from __future__ import annotations

import pytest
from test_dashboard import seed


def _campaigns(db, org_id) -> dict[str, dict]:
    with db.tenant(org_id) as conn:
        rows = conn.execute(
            "SELECT name, status, sequence_steps, experiment FROM app.campaigns"
        ).fetchall()
    return {r["name"]: r for r in rows}


def test_a_marketer_creates_a_campaign_with_a_channel_default_template(dashboard, db, make_org):
    shop = make_org("dash-create")
    at = dashboard(shop.org_id, role="marketer")
    at.switch_page("views/campaigns.py").run(timeout=30)
    assert not at.exception

    at.text_input(key="ed_name").input("Winback SMS")
    at.selectbox(key="ed_0_channel").set_value("sms").run(timeout=30)
    assert at.selectbox(key="ed_0_template").value == "(channel default)"
    assert not [t for t in at.text_input if t.key == "ed_0_subject"]  # SMS: no subject
    at.number_input(key="ed_0_delay").set_value(2)
    at.selectbox(key="ed_0_unit").set_value("hours")
    at.number_input(key="ed_holdout").set_value(10.0)
    at.button(key="ed_save").click().run(timeout=30)

    assert not at.exception and not at.error
    stored = _campaigns(db, shop.org_id)["Winback SMS"]
    assert stored["status"] == "draft"
    assert stored["sequence_steps"] == [
        {"channel": "sms", "delay_seconds": 7200, "template": "sms_reminder"}
    ]
    assert stored["experiment"] == {"holdout_percent": 10.0}
    assert any("Saved 'Winback SMS'" in s.value for s in at.success)
    with db.tenant(shop.org_id) as conn:
        actions = [r["action"] for r in conn.execute("SELECT action FROM app.audit_log").fetchall()]
    assert "dashboard.campaigns.create" in actions


def test_an_invalid_campaign_is_refused_with_the_apis_reason(dashboard, db, make_org):
    shop = make_org("dash-invalid")
    at = dashboard(shop.org_id, role="admin")
    at.switch_page("views/campaigns.py").run(timeout=30)

    at.text_input(key="ed_name").input("No subject")
    at.text_input(key="ed_0_subject").input("")
    at.button(key="ed_save").click().run(timeout=30)

    assert not at.exception
    assert any("an email step needs a subject" in e.value for e in at.error)
    assert _campaigns(db, shop.org_id) == {}


def test_a_marketer_edits_a_step_and_the_holdout_and_previews_a_real_cart(dashboard, db, make_org):
    shop = make_org("dash-edit")
    seed(db, shop.org_id)
    with db.tenant(shop.org_id) as conn:
        conn.execute(
            "UPDATE app.campaigns SET sequence_steps = %s::jsonb",
            (
                '[{"channel": "email", "delay_seconds": 600, "subject": "Hi", '
                '"template": "cart_reminder"}]',
            ),
        )
        conn.execute(
            'UPDATE app.carts SET line_items = \'[{"title": "Blue Kettle", "quantity": 1,'
            ' "price": "40.00"}]\'::jsonb WHERE external_id = \'cart-0\''
        )
        cart_id = conn.execute(
            "SELECT cart_id::text FROM app.carts WHERE external_id = 'cart-0'"
        ).fetchone()["cart_id"]
    at = dashboard(shop.org_id, role="marketer")
    at.switch_page("views/campaigns.py").run(timeout=30)
    campaign_id = at.selectbox(key="ed_choice").options[1]
    at.selectbox(key="ed_choice").select_index(1).run(timeout=30)
    assert at.text_input(key="ed_name").value == "Cart reminder"
    assert at.number_input(key="ed_0_delay").value == 10
    assert at.selectbox(key="ed_0_unit").value == "minutes"

    at.selectbox(key="ed_preview_cart").set_value(cart_id).run(timeout=30)
    assert not at.exception
    html = " ".join(h.proto.body for h in at.get("html"))
    assert "Blue Kettle" in html
    assert any("**Subject:** Hi" in m.value for m in at.markdown)

    at.text_input(key="ed_0_subject").input("Your {{ cart.item_count }} items are waiting")
    at.selectbox(key="ed_0_discount").set_value("percentage").run(timeout=30)
    at.number_input(key="ed_0_discount_value").set_value(15.0)
    at.selectbox(key="ed_0_template").set_value("cart_reminder_discount")
    at.number_input(key="ed_holdout").set_value(20.0)
    at.button(key="ed_save").click().run(timeout=30)

    assert not at.exception and not at.error
    stored = _campaigns(db, shop.org_id)["Cart reminder"]
    assert stored["sequence_steps"] == [
        {
            "channel": "email",
            "delay_seconds": 600,
            "subject": "Your {{ cart.item_count }} items are waiting",
            "template": "cart_reminder_discount",
            "discount": {"type": "percentage", "value": 15.0, "expires_in_hours": 72},
        }
    ]
    assert stored["experiment"] == {"holdout_percent": 20.0}
    assert stored["status"] == "active"
    assert campaign_id


def test_a_viewer_gets_no_editor(dashboard, db, make_org):
    shop = make_org("dash-view-ed")
    seed(db, shop.org_id)
    at = dashboard(shop.org_id, role="viewer")
    at.switch_page("views/campaigns.py").run(timeout=30)
    assert not at.exception
    assert not [w for w in at.selectbox if (w.key or "").startswith("ed_")]
    assert not [w for w in at.text_input if (w.key or "").startswith("ed_")]
    assert not at.toggle and not at.number_input
    assert [b.label for b in at.button] == ["Sign out"]


def test_a_marketer_switches_smart_send_time_and_smart_discount_on_and_reads_them_back(
    dashboard, db, make_org
):
    shop = make_org("dash-smart")
    seed(db, shop.org_id)
    with db.tenant(shop.org_id) as conn:
        conn.execute(
            "UPDATE app.campaigns SET sequence_steps = %s::jsonb",
            (
                '[{"channel": "email", "delay_seconds": 3600, "subject": "Hi", '
                '"template": "cart_reminder_discount", '
                '"discount": {"type": "percentage", "value": 10}}]',
            ),
        )
    at = dashboard(shop.org_id, role="marketer")
    at.switch_page("views/campaigns.py").run(timeout=30)
    at.selectbox(key="ed_choice").select_index(1).run(timeout=30)
    assert at.toggle(key="ed_0_smart_send").value is False
    assert at.toggle(key="ed_0_smart_discount").value is False
    at.toggle(key="ed_0_smart_send").set_value(True).run(timeout=30)
    at.toggle(key="ed_0_smart_discount").set_value(True).run(timeout=30)
    at.number_input(key="ed_0_smart_window").set_value(12)
    at.number_input(key="ed_0_smart_margin").set_value(0.3)
    at.number_input(key="ed_0_smart_control").set_value(20.0)
    at.button(key="ed_save").click().run(timeout=30)

    assert not at.exception and not at.error
    (step,) = _campaigns(db, shop.org_id)["Cart reminder"]["sequence_steps"]
    assert {k: v for k, v in step.items() if k.startswith("smart_")} == {
        "smart_send_time": True,
        "smart_send_window_seconds": 12 * 3600,
        "smart_discount": True,
        "smart_discount_margin": 0.3,
        "smart_control_share": 0.2,
    }

    # Read back when editing, in a new session.
    at = dashboard(shop.org_id, role="admin")
    at.switch_page("views/campaigns.py").run(timeout=30)
    at.selectbox(key="ed_choice").select_index(1).run(timeout=30)
    assert at.toggle(key="ed_0_smart_send").value is True
    assert at.toggle(key="ed_0_smart_discount").value is True
    assert at.number_input(key="ed_0_smart_window").value == 12
    assert at.number_input(key="ed_0_smart_margin").value == 0.3
    assert at.number_input(key="ed_0_smart_control").value == 20.0

    # Without a discount that can be withheld, smart discount cannot be switched on.
    at.selectbox(key="ed_0_discount").set_value("free_shipping").run(timeout=30)
    assert at.toggle(key="ed_0_smart_discount").disabled
    at.toggle(key="ed_0_smart_send").set_value(False).run(timeout=30)
    assert not [w for w in at.number_input if (w.key or "").startswith("ed_0_smart")]
    at.button(key="ed_save").click().run(timeout=30)
    assert not at.exception and not at.error
    (step,) = _campaigns(db, shop.org_id)["Cart reminder"]["sequence_steps"]
    assert not [k for k in step if k.startswith("smart_")]
    assert step["discount"]["type"] == "free_shipping"


@pytest.mark.parametrize(
    ("seconds", "shown"),
    [(5400, (90, "minutes")), (3725, (3725, "seconds")), (36 * 3600, (36, "hours"))],
)
def test_the_send_time_window_reads_back_at_the_precision_the_api_stores(
    dashboard, db, make_org, seconds, shown
):
    shop = make_org("dash-window")
    seed(db, shop.org_id)
    with db.tenant(shop.org_id) as conn:
        conn.execute(
            "UPDATE app.campaigns SET sequence_steps = jsonb_build_array(jsonb_build_object("
            "'channel', 'email', 'delay_seconds', 3600, 'subject', 'Hi', "
            "'template', 'cart_reminder', 'smart_send_time', true, "
            "'smart_send_window_seconds', %s::int))",
            (seconds,),
        )
    at = dashboard(shop.org_id, role="marketer")
    at.switch_page("views/campaigns.py").run(timeout=30)
    at.selectbox(key="ed_choice").select_index(1).run(timeout=30)
    assert not at.exception
    assert (
        at.number_input(key="ed_0_smart_window").value,
        at.selectbox(key="ed_0_smart_window_unit").value,
    ) == shown

    # Saved untouched, the window is the same number of seconds.
    at.button(key="ed_save").click().run(timeout=30)
    assert not at.exception and not at.error
    (step,) = _campaigns(db, shop.org_id)["Cart reminder"]["sequence_steps"]
    assert step["smart_send_window_seconds"] == seconds

    # A window in minutes is stored as such, not rounded to hours.
    at.number_input(key="ed_0_smart_window").set_value(150)
    at.selectbox(key="ed_0_smart_window_unit").set_value("minutes")
    at.button(key="ed_save").click().run(timeout=30)
    assert not at.exception and not at.error
    (step,) = _campaigns(db, shop.org_id)["Cart reminder"]["sequence_steps"]
    assert step["smart_send_window_seconds"] == 150 * 60

    # Outside the API's bounds (1 hour to 7 days), saving is refused with its reason.
    at.number_input(key="ed_0_smart_window").set_value(30)
    at.button(key="ed_save").click().run(timeout=30)
    assert not at.exception
    assert "smart_send_window_seconds" in " ".join(e.value for e in at.error)
    (step,) = _campaigns(db, shop.org_id)["Cart reminder"]["sequence_steps"]
    assert step["smart_send_window_seconds"] == 150 * 60


def test_editing_a_step_keeps_the_fields_the_builder_does_not_show(dashboard, db, make_org):
    shop = make_org("dash-kept")
    seed(db, shop.org_id)
    with db.tenant(shop.org_id) as conn:
        conn.execute(
            "UPDATE app.campaigns SET sequence_steps = %s::jsonb",
            (
                '[{"channel": "email", "delay_seconds": 3600, "subject": "Hi", '
                '"template": "cart_reminder", "allocation": "thompson", "min_share": 0.1, '
                '"variants": [{"name": "a", "weight": 1}, {"name": "b", "weight": 1}]}]',
            ),
        )
    at = dashboard(shop.org_id, role="marketer")
    at.switch_page("views/campaigns.py").run(timeout=30)
    at.selectbox(key="ed_choice").select_index(1).run(timeout=30)
    at.text_input(key="ed_0_subject").input("Still there?")
    at.button(key="ed_save").click().run(timeout=30)
    assert not at.exception and not at.error
    (step,) = _campaigns(db, shop.org_id)["Cart reminder"]["sequence_steps"]
    assert step["subject"] == "Still there?"
    assert (step["allocation"], step["min_share"]) == ("thompson", 0.1)
    assert [v["name"] for v in step["variants"]] == ["a", "b"]

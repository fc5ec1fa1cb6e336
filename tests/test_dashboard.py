"""The Streamlit dashboard, run in process with AppTest against the test database.

Data is written with SQL inside ``db.tenant(...)`` (as the platform would have written it);
the dashboard must show exactly what ``cartrecovery.metrics`` defines, for the signed-in
user's org only.
"""

from __future__ import annotations

import uuid

from streamlit.testing.v1 import AppTest

from cartrecovery import users

SUBJECT = "You left something behind: 4 items"
PASSWORD = "dashboard password"  # the dashboard fixture's (conftest.py)


def sign_in(at: AppTest, email: str, password: str = PASSWORD) -> AppTest:
    at.text_input(key="sign_in_email").input(email)
    at.text_input(key="sign_in_password").input(password)
    return at.button[0].click().run(timeout=30)


def seed(db, org_id) -> None:
    """Four abandoned carts, one of them recovered ($120.50), two emails sent, one stored."""
    with db.tenant(org_id) as conn:
        campaign = conn.execute(
            "INSERT INTO app.campaigns (org_id, name, status) VALUES (%s, 'Cart reminder', "
            "'active') RETURNING campaign_id",
            (org_id,),
        ).fetchone()["campaign_id"]
        carts = []
        for i, status in enumerate(["abandoned", "abandoned", "abandoned", "recovered"]):
            carts.append(
                conn.execute(
                    "INSERT INTO app.carts (org_id, platform, external_id, email, currency, "
                    "total_price, item_count, status, abandoned_at, last_activity_at) "
                    "VALUES (%s, 'custom', %s, %s, 'USD', %s, 2, %s, now(), "
                    "now() - make_interval(mins => %s)) RETURNING cart_id",
                    (org_id, f"cart-{i}", f"shopper{i}@example.com", 40 + i * 40, status, i),
                ).fetchone()["cart_id"]
            )
        messages = []
        for cart in carts[2:]:
            messages.append(
                conn.execute(
                    "INSERT INTO app.outbox (org_id, cart_id, campaign_id, step_index, channel, "
                    "recipient, subject, due_at, status, provider, sent_at) "
                    "VALUES (%s, %s, %s, 0, 'email', 'shopper@example.com', %s, now(), 'sent', "
                    "'local', now()) RETURNING message_id",
                    (org_id, cart, campaign, SUBJECT),
                ).fetchone()["message_id"]
            )
        order = conn.execute(
            "INSERT INTO app.orders (org_id, platform, external_id, cart_id, total_price, "
            "currency) VALUES (%s, 'custom', 'order-1', %s, 120.50, 'USD') RETURNING order_id",
            (org_id, carts[3]),
        ).fetchone()["order_id"]
        conn.execute(
            "INSERT INTO app.recoveries (org_id, cart_id, order_id, message_id, campaign_id, "
            "channel, revenue, currency, clicked_at) "
            "VALUES (%s, %s, %s, %s, %s, 'email', 120.50, 'USD', now())",
            (org_id, carts[3], order, messages[1], campaign),
        )
        conn.execute(
            "INSERT INTO app.local_mailbox (org_id, message_id, channel, recipient, subject, "
            "body_html, body_text) VALUES (%s, %s, 'email', 'shopper@example.com', %s, "
            "'<p>Your <b>cart</b> is waiting</p>', 'Your cart is waiting')",
            (org_id, messages[1], SUBJECT),
        )


def tiles(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_live_tiles_show_the_selected_orgs_metrics(dashboard, db, make_org):
    shop = make_org("dash")
    seed(db, shop.org_id)

    at = dashboard(shop.org_id)

    assert not at.exception
    assert at.session_state["org_id"] == str(shop.org_id)
    assert tiles(at) == {
        "Active carts": "0",
        "Abandoned in the last hour": "4",
        "Messages sent": "2",
        "Carts recovered": "1",
        "Revenue recovered": "$120.50",
        "Recovery rate": "25.0%",
    }
    latest = at.dataframe[0].value
    assert set(latest["email"]) == {f"shopper{i}@example.com" for i in range(4)}
    assert latest.iloc[0]["email"] == "shopper0@example.com"  # most recent activity first
    assert len(at.get("plotly_chart")) >= 2


def test_outbox_page_previews_the_stored_message(dashboard, db, make_org):
    shop = make_org("dash-outbox")
    seed(db, shop.org_id)

    at = dashboard(shop.org_id)
    at.switch_page("views/outbox.py").run(timeout=30)

    assert not at.exception
    assert [h.value for h in at.title] == ["Outbox"]
    table = at.dataframe[0].value
    assert list(table["subject"]) == [SUBJECT]
    assert list(table["status"]) == ["sent"]
    assert list(table["cart value"]) == ["$160.00"]
    assert SUBJECT in [h.value for h in at.subheader]
    assert "Your cart is waiting" in [t.value for t in at.text]


def test_empty_org_shows_zeros_and_no_other_orgs_data(dashboard, db, make_org):
    busy = make_org("dash-busy")
    seed(db, busy.org_id)
    empty = make_org("dash-empty")

    at = dashboard(empty.org_id)

    assert not at.exception
    assert tiles(at) == {
        "Active carts": "0",
        "Abandoned in the last hour": "0",
        "Messages sent": "0",
        "Carts recovered": "0",
        "Revenue recovered": "$0.00",
        "Recovery rate": "0.0%",
    }
    assert any("No activity" in c.value for c in at.caption)

    at.switch_page("views/outbox.py").run(timeout=30)
    assert not at.exception
    assert any("No messages stored yet" in i.value for i in at.info)


def test_switching_org_in_the_sidebar_switches_the_tiles(dashboard, db, make_org):
    busy = make_org("dash-switch-busy")
    seed(db, busy.org_id)
    empty = make_org("dash-switch-empty")

    at = dashboard(empty.org_id, also=[busy.org_id])
    assert tiles(at)["Abandoned in the last hour"] == "0"

    at.sidebar.selectbox(key="org_id").set_value(str(busy.org_id)).run(timeout=30)

    assert not at.exception
    assert tiles(at)["Carts recovered"] == "1"
    assert at.session_state["org_id"] == str(busy.org_id)


# --- sign-in, org isolation, roles -----------------------------------------------------------


def test_an_unauthenticated_session_sees_only_the_sign_in_form(app_test, db, make_org):
    shop = make_org("dash-anon")
    seed(db, shop.org_id)

    at = app_test(shop.org_id).run(timeout=30)

    assert not at.exception
    assert [t.value for t in at.title] == ["Sign in"]
    assert [t.label for t in at.text_input] == ["Email", "Password"]
    assert [b.label for b in at.button] == ["Sign in"]
    assert not at.metric and not at.dataframe and not at.selectbox
    assert not at.sidebar.button and not at.sidebar.markdown and not at.sidebar.caption
    assert "org_id" not in at.session_state
    rendered = " ".join(str(getattr(e, "value", "")) for e in at.main)
    assert "120.50" not in rendered and "shopper" not in rendered


def test_a_wrong_password_keeps_the_form_and_says_nothing_more(app_test, db, org):
    email = f"dash-wrong-{uuid.uuid4().hex[:8]}@example.com"
    users.create_user(db, email, org.org_id, "admin", PASSWORD)

    at = sign_in(app_test().run(timeout=30), email, "not the password")

    assert not at.exception
    assert [e.value for e in at.error] == ["Wrong email or password."]
    assert "user" not in at.session_state and not at.metric


def test_a_user_of_org_b_sees_nothing_of_org_a(dashboard, db, make_org):
    org_a, org_b = make_org("dash-org-a"), make_org("dash-org-b")
    seed(db, org_a.org_id)

    at = dashboard(org_b.org_id, role="marketer")

    assert not at.exception
    assert (
        tiles(at)["Abandoned in the last hour"] == "0" and tiles(at)["Revenue recovered"] == "$0.00"
    )
    assert not at.sidebar.selectbox  # one org: no selector
    with db.system() as conn:
        name_a = conn.execute(
            "SELECT name FROM app.orgs WHERE org_id = %s", (org_a.org_id,)
        ).fetchone()["name"]
    assert name_a not in " ".join(str(getattr(e, "value", "")) for e in at.sidebar)

    # Pointing the session at org A by hand gets org B back: the user is no member of A.
    at.session_state["org_id"] = str(org_a.org_id)
    at.run(timeout=30)
    assert at.session_state["org_id"] == str(org_b.org_id)
    assert tiles(at)["Abandoned in the last hour"] == "0"
    at.switch_page("views/outbox.py").run(timeout=30)
    assert any("No messages stored yet" in i.value for i in at.info)
    at.switch_page("views/campaigns.py").run(timeout=30)
    # The only table is the (empty) variants editor of a new campaign: no campaign of org A.
    assert [d.key for d in at.dataframe] == ["ed_0_variants"]
    assert any("No campaigns yet" in i.value for i in at.info)
    assert at.selectbox(key="ed_choice").options == ["New campaign"]


def test_the_org_selector_lists_only_the_users_orgs(dashboard, db, make_org):
    first, second = make_org("dash-sel-a"), make_org("dash-sel-b")
    stranger = make_org("dash-sel-stranger")

    at = dashboard(first.org_id, role="viewer", also=[second.org_id])

    with db.system() as conn:
        names = {
            r["org_id"]: r["name"]
            for r in conn.execute(
                "SELECT org_id, name FROM app.orgs WHERE org_id = ANY(%s)",
                ([first.org_id, second.org_id, stranger.org_id],),
            ).fetchall()
        }
    options = at.sidebar.selectbox(key="org_id").options
    assert options == [names[first.org_id], names[second.org_id]]
    assert names[stranger.org_id] not in options


def test_a_viewer_sees_no_edit_controls(dashboard, db, make_org):
    shop = make_org("dash-viewer")
    seed(db, shop.org_id)

    at = dashboard(shop.org_id, role="viewer")
    at.switch_page("views/campaigns.py").run(timeout=30)

    assert not at.exception
    assert list(at.dataframe[0].value["name"]) == ["Cart reminder"]
    assert [b.label for b in at.button] == ["Sign out"]


def test_a_marketer_pauses_a_campaign_and_the_audit_log_names_them(dashboard, db, make_org):
    shop = make_org("dash-marketer")
    seed(db, shop.org_id)

    at = dashboard(shop.org_id, role="marketer")
    at.switch_page("views/campaigns.py").run(timeout=30)
    assert sorted(b.label for b in at.button) == ["Pause", "Save campaign", "Sign out"]

    next(b for b in at.button if b.label == "Pause").click().run(timeout=30)

    assert not at.exception
    with db.tenant(shop.org_id) as conn:
        status = conn.execute("SELECT status FROM app.campaigns").fetchone()["status"]
        actors = conn.execute(
            "SELECT actor FROM app.audit_log WHERE action = 'dashboard.campaigns.status'"
        ).fetchall()
    assert status == "paused"
    assert [a["actor"] for a in actors] == [f"user:{at.session_state['user']['user_id']}"]
    assert [b.label for b in at.button if b.label not in ("Sign out", "Save campaign")] == [
        "Activate"
    ]


def test_a_marketer_demoted_meanwhile_is_refused_and_nothing_changes(dashboard, db, make_org):
    shop = make_org("dash-demoted")
    seed(db, shop.org_id)
    at = dashboard(shop.org_id, role="marketer")
    at.switch_page("views/campaigns.py").run(timeout=30)
    with db.tenant(shop.org_id) as conn:  # the role changes while the page is open
        conn.execute(
            "UPDATE app.memberships SET role = 'viewer' WHERE user_id = %s",
            (at.session_state["user"]["user_id"],),
        )

    next(b for b in at.button if b.label == "Pause").click().run(timeout=30)

    assert not at.exception
    assert [e.value for e in at.error] == ["your role cannot change campaigns"]
    with db.tenant(shop.org_id) as conn:
        assert conn.execute("SELECT status FROM app.campaigns").fetchone()["status"] == "active"
        assert not conn.execute(
            "SELECT 1 FROM app.audit_log WHERE action = 'dashboard.campaigns.status'"
        ).fetchall()


def test_sign_out_returns_to_the_sign_in_form(dashboard, make_org):
    shop = make_org("dash-signout")
    at = dashboard(shop.org_id)
    assert at.metric

    at.sidebar.button(key="sign_out").click().run(timeout=30)

    assert not at.exception
    assert [t.value for t in at.title] == ["Sign in"] and not at.metric
    assert "user" not in at.session_state

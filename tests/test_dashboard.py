"""The Streamlit dashboard, run in process with AppTest against the test database.

Data is written with SQL inside ``db.tenant(...)`` (as the platform would have written it);
the dashboard must show exactly what ``cartrecovery.metrics`` defines, for the selected org
only.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

APP = Path(__file__).resolve().parents[1] / "dashboard" / "app.py"
SUBJECT = "You left something behind: 4 items"


@pytest.fixture()
def dashboard(monkeypatch, database_url):
    """An AppTest for the dashboard with DATABASE_URL set; pass the org to preselect."""

    def make(org_id) -> AppTest:
        monkeypatch.setenv("DATABASE_URL", database_url)
        monkeypatch.setenv("CARTRECOVERY_ORG", str(org_id))
        return AppTest.from_file(str(APP), default_timeout=30)

    return make


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

    at = dashboard(shop.org_id).run(timeout=30)

    assert not at.exception
    assert at.sidebar.selectbox(key="org_id").value == str(shop.org_id)
    assert tiles(at) == {
        "Carts tracked": "4",
        "Carts abandoned": "4",
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

    at = dashboard(shop.org_id).run(timeout=30)
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

    at = dashboard(empty.org_id).run(timeout=30)

    assert not at.exception
    assert tiles(at) == {
        "Carts tracked": "0",
        "Carts abandoned": "0",
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

    at = dashboard(empty.org_id).run(timeout=30)
    assert tiles(at)["Carts tracked"] == "0"

    at.sidebar.selectbox(key="org_id").set_value(str(busy.org_id)).run(timeout=30)

    assert not at.exception
    assert tiles(at)["Carts recovered"] == "1"
    assert at.session_state["org_id"] == str(busy.org_id)

"""The Live page's snapshot (cartrecovery/live_tiles.py): tiles and chart series from one
statement over one window, money per currency, and the page showing exactly that."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from decimal import Decimal

from test_dashboard import tiles

from cartrecovery import live_tiles

END = datetime.now(UTC).replace(microsecond=0)


def _history(db, org_id) -> None:
    """Inside the last 24 h: 3 abandoned carts (one 20 min ago), 2 sent messages, recoveries
    of 120.50 USD and 40.00 EUR. Outside it (2 days ago): 1 abandoned cart, 1 sent message,
    a 999 USD recovery. Plus 2 active carts."""
    with db.tenant(org_id) as conn:
        campaign = conn.execute(
            "INSERT INTO app.campaigns (org_id, name, status) VALUES (%s, 'C', 'active') "
            "RETURNING campaign_id",
            (org_id,),
        ).fetchone()["campaign_id"]
        carts = []
        for i, (status, ago) in enumerate(
            [
                ("abandoned", timedelta(minutes=20)),
                ("recovered", timedelta(hours=5)),
                ("recovered", timedelta(hours=7)),
                ("recovered", timedelta(days=2)),
                ("active", None),
                ("active", None),
            ]
        ):
            carts.append(
                conn.execute(
                    "INSERT INTO app.carts (org_id, platform, external_id, status, abandoned_at) "
                    "VALUES (%s, 'api', %s, %s, %s) RETURNING cart_id",
                    (org_id, f"c{i}", status, END - ago if ago else None),
                ).fetchone()["cart_id"]
            )
        for cart, ago in [
            (carts[0], timedelta(minutes=10)),
            (carts[1], timedelta(hours=4)),
            (carts[3], timedelta(days=2)),
        ]:
            conn.execute(
                "INSERT INTO app.outbox (org_id, cart_id, campaign_id, step_index, channel, "
                "due_at, status, sent_at) VALUES (%s, %s, %s, 0, 'email', %s, 'sent', %s)",
                (org_id, cart, campaign, END - ago, END - ago),
            )
        for cart, revenue, currency, ago in [
            (carts[1], "120.50", "USD", timedelta(hours=3)),
            (carts[2], "40.00", "eur", timedelta(hours=6)),
            (carts[3], "999.00", "USD", timedelta(days=2)),
        ]:
            conn.execute(
                "INSERT INTO app.recoveries (org_id, cart_id, order_id, revenue, currency, "
                "recovered_at) VALUES (%s, %s, gen_random_uuid(), %s, %s, %s)",
                (org_id, cart, Decimal(revenue), currency, END - ago),
            )


def test_snapshot_tiles_and_series_agree_over_one_window(db, make_org):
    shop = make_org("live-snapshot")
    _history(db, shop.org_id)
    with db.tenant(shop.org_id) as conn:
        snap = live_tiles.live_snapshot(conn, shop.org_id, timedelta(hours=24), END)

    assert (snap["start"], snap["end"], snap["bucket"]) == (
        END - timedelta(hours=24),
        END,
        timedelta(hours=1),
    )
    assert snap["active_carts"] == 2
    assert snap["abandoned_last_hour"] == 1
    assert snap["carts_abandoned"] == 3
    assert snap["messages_sent"] == 2
    assert snap["carts_recovered"] == 2
    assert snap["revenue_by_currency"] == {"EUR": Decimal("40.00"), "USD": Decimal("120.50")}
    assert snap["recovery_rate"] == round(2 / 3, 4)
    # The charts hold exactly the tiles' numbers.
    series = snap["series"]
    assert sum(b["abandoned"] for b in series) == snap["carts_abandoned"]
    assert sum(b["recovered"] for b in series) == snap["carts_recovered"]
    for code, amount in snap["revenue_by_currency"].items():
        assert sum(b["revenue"].get(code, 0) for b in series) == amount
    assert all(snap["start"] <= b["at"] < snap["end"] for b in series)
    assert [b["at"] for b in series] == sorted(b["at"] for b in series)


def test_an_empty_org_has_zeros_and_no_series(db, make_org):
    shop = make_org("live-empty")
    with db.tenant(shop.org_id) as conn:
        snap = live_tiles.live_snapshot(conn, shop.org_id, timedelta(hours=1))
        assert live_tiles.latest_events(conn, shop.org_id) == []
    assert snap["series"] == [] and snap["revenue_by_currency"] == {}
    assert snap["bucket"] == timedelta(minutes=5)


def test_the_live_page_shows_revenue_per_currency(dashboard, db, make_org):
    shop = make_org("live-page")
    _history(db, shop.org_id)
    at = dashboard(shop.org_id)
    assert not at.exception
    shown = tiles(at)
    assert shown["Revenue recovered"] == "€40.00 · $120.50"
    assert shown["Carts recovered"] == "2" and shown["Active carts"] == "2"
    assert shown["Recovery rate"] == "66.7%"


def test_zero_revenue_charts_start_at_zero(dashboard, make_org):
    import json

    shop = make_org("live-zero")
    at = dashboard(shop.org_id)
    assert not at.exception
    charts = [json.loads(c.proto.spec) for c in at.get("plotly_chart")]
    assert len(charts) == 2
    for spec in charts:
        assert spec["layout"]["yaxis"]["range"] == [0, 1]
        assert spec["layout"]["yaxis"]["rangemode"] == "nonnegative"

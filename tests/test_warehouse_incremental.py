"""Incremental builds give the marts a full refresh gives: late events (a click, then an order
for an old cart; an order in a second currency; an order of the same customer on a new
cart; an order outside the window) are recomputed for the carts and orders they change, and
every mart of the org then equals a `--full-refresh` build row for row
(docs/analytics.md, "Incremental and full builds"). A change of attribution settings makes
the next build a full refresh.

The module's history also holds a crowd of other orgs whose carts use the same emails and
change in the same build (as many stores share one database): each org's customers are its
own, and every one of their marts equals a full build too.

Other test modules write rows of their own orgs to the same database, so every comparison
is filtered by this module's orgs.
"""

from __future__ import annotations

import uuid
from datetime import timedelta

import pytest
from test_warehouse_marts import MARTS, NOW, T0, History

from cartrecovery.org_settings import update_settings
from pipelines.dbt_build import prepare_manifest, run_dbt_build

pytestmark = pytest.mark.slow


def _snapshot(db, org_ids) -> dict[str, list[tuple]]:
    """Every row of every mart of the orgs, without built_at (when each row was written)."""
    out = {}
    with db.system() as conn:
        for mart in MARTS:
            columns = [
                row["column_name"]
                for row in conn.execute(
                    "SELECT column_name FROM information_schema.columns"
                    " WHERE table_schema = 'analytics_marts' AND table_name = %s"
                    " AND column_name <> 'built_at' ORDER BY column_name",
                    (mart,),
                )
            ]
            rows = conn.execute(
                f"SELECT {', '.join(columns)} FROM analytics_marts.{mart}"  # noqa: S608
                " WHERE org_id = ANY(%s)",
                (list(org_ids),),
            ).fetchall()
            out[mart] = sorted(repr(tuple(row.values())) for row in rows)
    return out


def _built_at(db, org_id, cart_id):
    with db.system() as conn:
        return conn.execute(
            "SELECT built_at FROM analytics_marts.fct_journeys WHERE org_id = %s AND cart_id = %s",
            (org_id, cart_id),
        ).fetchone()["built_at"]


def _move_cart(db, org_id, cart_id, abandoned_at) -> None:
    with db.system() as conn:
        conn.execute(
            "UPDATE app.carts SET abandoned_at = %s, source_created_at = %s,"
            " last_activity_at = %s WHERE org_id = %s AND cart_id = %s",
            (
                abandoned_at,
                abandoned_at - timedelta(minutes=40),
                abandoned_at - timedelta(minutes=30),
                org_id,
                cart_id,
            ),
        )


def _contact(db, org_id, cart_id, *, email=None, phone=None, customer_id=None, changed=True):
    """Give a cart another contact (its customer key: email, else customer id, else phone);
    ``changed=False`` keeps its change time before the first build."""
    with db.system() as conn:
        if customer_id is not None:
            conn.execute(
                "INSERT INTO app.customers (org_id, customer_id) VALUES (%s, %s)"
                " ON CONFLICT DO NOTHING",
                (org_id, customer_id),
            )
        conn.execute(
            "UPDATE app.carts SET email = %s, phone = %s, customer_id = %s,"
            " updated_at = CASE WHEN %s THEN now() ELSE now() - interval '1 day' END"
            " WHERE org_id = %s AND cart_id = %s",
            (email, phone, customer_id, changed, org_id, cart_id),
        )


CROWD_ORGS = 30


def _crowd(db) -> list:
    """Orgs of other stores, each with 20 abandoned carts of the same 10 emails (so each
    customer has two carts) over 12 days, one message per cart, clicks on a third and
    orders on a sixth of them: written set-based, stored now (they change in the next
    build too: 360 org-days, past the 300 a day-grain mart takes as literals)."""
    crowd = []
    for n in range(CROWD_ORGS):
        store = History(db, f"wh-crowd-{n}")
        with db.system() as conn:
            conn.execute(
                """
                WITH carts AS (
                  INSERT INTO app.carts (org_id, cart_id, platform, external_id, email,
                    currency, total_price, item_count, status, source_created_at,
                    last_activity_at, abandoned_at)
                  SELECT %(org)s, gen_random_uuid(), 'api', 'crowd-' || i,
                    chr(ascii('p') + i %% 10) || '@example.com', 'USD', 10 + i, 1,
                    'abandoned', %(t0)s - interval '40 minutes', %(t0)s - interval '30 minutes',
                    %(t0)s - make_interval(days => i %% 12, mins => i)
                  FROM generate_series(1, 20) AS i
                  RETURNING org_id, cart_id, email, abandoned_at, external_id
                ), messages AS (
                  INSERT INTO app.outbox (org_id, message_id, cart_id, campaign_id, step_index,
                    channel, recipient, due_at, status, sent_at)
                  SELECT org_id, gen_random_uuid(), cart_id, %(campaign)s, 0, 'email',
                    'someone', abandoned_at + interval '20 minutes', 'sent',
                    abandoned_at + interval '20 minutes'
                  FROM carts
                  RETURNING org_id, message_id, cart_id, sent_at
                ), clicks AS (
                  INSERT INTO app.message_events (org_id, event_key, message_id, cart_id,
                    event_type, occurred_at, payload)
                  SELECT m.org_id, 'k-' || m.message_id, m.message_id, m.cart_id, 'click',
                    m.sent_at + interval '10 minutes', '{}'
                  FROM messages AS m JOIN carts AS c USING (cart_id)
                  WHERE split_part(c.external_id, '-', 2)::int %% 3 = 0
                )
                INSERT INTO app.orders (org_id, order_id, platform, external_id, cart_id,
                  email, total_price, currency, ordered_at)
                SELECT org_id, gen_random_uuid(), 'api', 'order-' || external_id, cart_id,
                  email, 20, 'USD', abandoned_at + interval '2 hours'
                FROM carts WHERE split_part(external_id, '-', 2)::int %% 6 = 0
                """,
                {"org": store.org_id, "t0": T0, "campaign": store.campaign_id},
            )
        crowd.append(store)
    return crowd


@pytest.fixture(scope="module")
def history(db, database_url):
    """Org C before the first build: cart P messaged, not clicked; cart Q clicked and bought
    (USD); cart U clicked 7 days ago; cart V of another customer, never touched."""
    c = History(db, "wh-inc")
    h = {"c": c}
    h["p"] = c.cart("p@example.com", "EUR", "80.00")
    h["mp"] = c.message(h["p"], 0, "email", T0 + timedelta(minutes=20))
    h["q"] = c.cart("q@example.com", "USD", "40.00")
    h["mq"] = c.message(h["q"], 0, "email", T0 + timedelta(minutes=20))
    c.event(h["mq"], h["q"], "click", T0 + timedelta(hours=1))
    c.order(h["q"], "q@example.com", "40.00", "USD", T0 + timedelta(hours=2))
    h["u"] = c.cart("u@example.com", "USD", "60.00")
    _move_cart(db, c.org_id, h["u"], NOW - timedelta(days=7))
    h["mu"] = c.message(h["u"], 0, "email", NOW - timedelta(days=7) + timedelta(minutes=20))
    c.event(h["mu"], h["u"], "click", NOW - timedelta(days=7) + timedelta(hours=1))
    h["v"] = c.cart("v@example.com", "USD", "10.00")
    with db.system() as conn:  # stored long before the build: not a change since
        conn.execute(
            "UPDATE app.carts SET updated_at = now() - interval '1 day'"
            " WHERE org_id = %s AND cart_id = %s",
            (c.org_id, h["v"]),
        )
    # Customers keyed without an email: W by phone, X by customer id; and Y's email stored
    # in capitals (customers are keyed by the lower-cased email).
    h["w"] = c.cart("w@example.com", "USD", "15.00")
    _contact(db, c.org_id, h["w"], phone="+15550100", changed=False)
    h["x_customer"] = uuid.uuid4()
    h["x"] = c.cart("x@example.com", "USD", "16.00")
    _contact(db, c.org_id, h["x"], customer_id=h["x_customer"], changed=False)
    h["y"] = c.cart("y@example.com", "USD", "17.00")
    _contact(db, c.org_id, h["y"], email="Y@Example.COM", changed=False)
    h["crowd"] = _crowd(db)
    prepare_manifest()
    run_dbt_build(database_url, full_refresh=True)
    return h


def test_incremental_build_equals_a_full_refresh(history, db, database_url):
    h, c = history, history["c"]
    untouched_before = _built_at(db, c.org_id, h["v"])

    # Late events for old carts, stored now: a click on P's message and then P's order in
    # EUR (a second currency); a second email message of Q clicked; a new cart of Q's
    # customer bought (matched to Q's touch by email); U's customer buys 6 days after the
    # click (outside the 5-day window: a conversion without a touch).
    c.event(h["mp"], h["p"], "click", T0 + timedelta(hours=1))
    c.order(h["p"], "p@example.com", "80.00", "EUR", T0 + timedelta(hours=3))
    mq2 = c.message(h["q"], 1, "email", T0 + timedelta(hours=24))
    c.event(mq2, h["q"], "click", T0 + timedelta(hours=25))
    q2 = c.cart("q@example.com", "USD", "25.00")
    _move_cart(db, c.org_id, q2, T0 + timedelta(hours=30))
    c.order(q2, "q@example.com", "25.00", "USD", T0 + timedelta(hours=31))
    c.order(h["u"], "u@example.com", "60.00", "USD", NOW - timedelta(days=1))
    # New carts of W, X and Y: their customers' rows (dim_customers) count both carts only
    # if the build finds the old carts by phone, customer id and case-insensitive email.
    w2 = c.cart("w2@example.com", "USD", "5.00")
    _contact(db, c.org_id, w2, phone="+15550100")
    x2 = c.cart("x2@example.com", "USD", "6.00")
    _contact(db, c.org_id, x2, customer_id=h["x_customer"])
    c.cart("y@example.com", "USD", "7.00")
    # In each crowd org, a new cart of its customer q@ (two carts before, the email as org
    # C's customer Q), bought at once.
    for store in h["crowd"]:
        again = store.cart("Q@example.com", "USD", "30.00")
        store.order(again, "q@example.com", "30.00", "USD", T0 + timedelta(hours=5))
    orgs = [c.org_id] + [store.org_id for store in h["crowd"]]

    lines: list[str] = []
    run_dbt_build(database_url, on_line=lines.append)  # incremental
    assert not any("full refresh" in line for line in lines), lines
    incremental = _snapshot(db, orgs)
    # It was incremental: the untouched cart's row is the full build's.
    assert _built_at(db, c.org_id, h["v"]) == untouched_before

    with db.system() as conn:
        outcomes = {
            row["cart_id"]: row["outcome"]
            for row in conn.execute(
                "SELECT o.cart_id, f.outcome FROM analytics_marts.fct_orders f"
                " JOIN app.orders o USING (org_id, order_id) WHERE f.org_id = %s",
                (c.org_id,),
            )
        }
    assert outcomes == {
        h["p"]: "recovered",
        h["q"]: "recovered",
        q2: "recovered",
        h["u"]: "converted_without_touch",
    }

    keys = ["phone:+15550100", f"customer:{h['x_customer']}", "email:y@example.com"]
    with db.system() as conn:
        carts_per_customer = {
            row["customer_key"]: row["carts"]
            for row in conn.execute(
                "SELECT customer_key, carts FROM analytics_marts.dim_customers"
                " WHERE org_id = %s AND customer_key = ANY(%s)",
                (c.org_id, keys),
            )
        }
    assert carts_per_customer == {
        "phone:+15550100": 2,
        f"customer:{h['x_customer']}": 2,
        "email:y@example.com": 2,
    }

    # Each crowd org's q@ has its own three carts, none of another org's.
    with db.system() as conn:
        crowd_carts = conn.execute(
            "SELECT array_agg(DISTINCT carts) AS carts, count(*) AS orgs"
            " FROM analytics_marts.dim_customers"
            " WHERE org_id = ANY(%s) AND customer_key = 'email:q@example.com'",
            ([store.org_id for store in h["crowd"]],),
        ).fetchone()
    assert crowd_carts == {"carts": [3], "orgs": CROWD_ORGS}

    run_dbt_build(database_url, full_refresh=True, tests=False)
    full = _snapshot(db, orgs)
    for mart in MARTS:
        assert incremental[mart] == full[mart], mart
    assert sum(len(rows) for rows in full.values()) > 0


def test_settings_change_makes_the_next_build_a_full_refresh(history, db, database_url):
    c = history["c"]
    with db.tenant(c.org_id) as conn:
        update_settings(conn, c.org_id, {"attribution_half_life_seconds": 3600})
    lines: list[str] = []
    run_dbt_build(database_url, on_line=lines.append)
    assert any("full refresh (attribution settings changed" in line for line in lines), lines
    # The next one, with nothing changed, is incremental again.
    lines.clear()
    run_dbt_build(database_url, on_line=lines.append)
    assert not any("full refresh" in line for line in lines), lines

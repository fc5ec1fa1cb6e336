"""The experiment results' count query (``cartrecovery.experiment_results``) against the
definitions of docs/statistics.md ("Metrics and where the counts come from"), computed here
unit by unit in Python from the same rows: random carts, orders (by cart, by email in any
case, by customer id; before, inside and after the window; two currencies), callbacks of
every kind (repeated, a click on the unsubscribe link, one filed under another cart) and
coupons of every type, for a step experiment and a holdout.
"""

from __future__ import annotations

import random
import uuid
from collections import defaultdict
from datetime import timedelta
from decimal import Decimal

import psycopg
import pytest
from test_experiments import AB_STEP, T0, make_campaign

from cartrecovery import org_settings
from cartrecovery.assignment import ExperimentId
from cartrecovery.experiment_results import COLUMNS, experiment_view, longest_window_seconds

EVENT_TYPES = [
    "click",
    "click",
    "unsubscribe",
    "group_unsubscribe",
    "spamreport",
    "bounce",
    "dropped",
    "undelivered",
    "failed",
    "delivered",
    "delivered",
    "open",
    "open",
    "processed",
]


def _customer_key(email, customer_id, phone=None):
    if email:
        return "email:" + email.lower()
    if customer_id:
        return f"customer:{customer_id}"
    return f"phone:{phone}" if phone else None


def _seed(db, org_id, campaign_id, rng: random.Random) -> dict:
    """Rows written, as dicts, for the hand computation."""
    emails = [f"Shopper{i}@Example.com" for i in range(60)]
    customers = [uuid.uuid4() for _ in range(15)]
    carts, outbox, orders, events, coupons = [], [], [], [], []
    for i in range(240):
        kind = rng.random()
        cart = {
            "cart_id": uuid.uuid4(),
            "email": rng.choice(emails) if kind < 0.7 else None,
            "customer_id": rng.choice(customers) if 0.6 < kind < 0.9 else None,
            "phone": f"+1555000{i:04d}" if kind >= 0.85 else None,
            "abandoned_at": T0 + timedelta(minutes=rng.randrange(0, 600)),
        }
        carts.append(cart)
        status = rng.choices(["sent", "held_out", "failed", "scheduled"], [70, 20, 5, 5])[0]
        message = {
            "message_id": uuid.uuid4(),
            "cart_id": cart["cart_id"],
            "step_index": 0,
            "status": status,
            "variant": rng.choice(["a", "b"]) if status != "held_out" else None,
        }
        outbox.append(message)
        if status == "sent" and rng.random() < 0.3:  # a second step, sent too
            outbox.append({**message, "message_id": uuid.uuid4(), "step_index": 1})
        for _ in range(rng.choice([0, 0, 1, 1, 2, 3])):
            how = rng.random()
            orders.append(
                {
                    "order_id": uuid.uuid4(),
                    "cart_id": cart["cart_id"] if how < 0.5 else None,
                    "email": (cart["email"] or "").upper() if how >= 0.5 else cart["email"],
                    "customer_id": cart["customer_id"],
                    "total_price": Decimal(rng.randrange(1000, 30000)) / 100,
                    "currency": rng.choice(["USD", "USD", "usd", "EUR"]),
                    # before the abandonment, inside the window, or after it
                    "ordered_at": cart["abandoned_at"]
                    + timedelta(seconds=rng.randrange(-2 * 86400, 8 * 86400)),
                }
            )
        if status == "sent":
            for _ in range(rng.randrange(0, 7)):
                event_type = rng.choice(EVENT_TYPES)
                url = None
                if event_type == "click":
                    url = rng.choice(
                        [
                            "https://shop.example.com/products/mug",
                            "https://shop.example.com/u/abc123",
                            None,
                        ]
                    )
                events.append(
                    {
                        "message_id": message["message_id"],
                        # now and then filed under another cart: not this unit's
                        "cart_id": cart["cart_id"] if rng.random() < 0.95 else uuid.uuid4(),
                        "event_type": event_type,
                        "url": url,
                    }
                )
            if rng.random() < 0.3:
                coupons.append(
                    {
                        "message_id": message["message_id"],
                        "type": rng.choice(["percentage", "fixed_amount", "free_shipping"]),
                        "value": Decimal(rng.choice([5, 10, 15, 100])),
                        "order_id": rng.choice(orders)["order_id"]
                        if orders and rng.random() < 0.8
                        else None,
                    }
                )
    with db.system() as conn:
        for customer_id in customers:
            conn.execute(
                "INSERT INTO app.customers (org_id, customer_id) VALUES (%s, %s)",
                (org_id, customer_id),
            )
        for c in carts:
            conn.execute(
                "INSERT INTO app.carts (org_id, cart_id, platform, external_id, email, "
                "customer_id, phone, currency, total_price, status, last_activity_at, "
                "abandoned_at) VALUES (%s, %s, 'api', %s, %s, %s, %s, 'USD', 50, 'abandoned', "
                "%s, %s)",
                (
                    org_id,
                    c["cart_id"],
                    str(c["cart_id"]),
                    c["email"],
                    c["customer_id"],
                    c["phone"],
                    c["abandoned_at"] - timedelta(minutes=30),
                    c["abandoned_at"],
                ),
            )
        for m in outbox:
            conn.execute(
                "INSERT INTO app.outbox (org_id, message_id, cart_id, campaign_id, step_index, "
                "channel, recipient, variant, due_at, status, sent_at, created_at) VALUES "
                "(%s, %s, %s, %s, %s, 'email', 'x@example.com', %s, %s, %s, %s, %s)",
                (
                    org_id,
                    m["message_id"],
                    m["cart_id"],
                    campaign_id,
                    m["step_index"],
                    m["variant"],
                    T0,
                    m["status"],
                    T0 if m["status"] == "sent" else None,
                    T0,
                ),
            )
        for o in orders:
            conn.execute(
                "INSERT INTO app.orders (org_id, order_id, platform, external_id, cart_id, "
                "email, customer_id, total_price, currency, ordered_at) VALUES "
                "(%s, %s, 'api', %s, %s, %s, %s, %s, %s, %s)",
                (
                    org_id,
                    o["order_id"],
                    str(o["order_id"]),
                    o["cart_id"],
                    o["email"],
                    o["customer_id"],
                    o["total_price"],
                    o["currency"],
                    o["ordered_at"],
                ),
            )
        for n, e in enumerate(events):
            conn.execute(
                "INSERT INTO app.message_events (org_id, event_key, message_id, cart_id, "
                "event_type, url, occurred_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (
                    org_id,
                    f"e{n}",
                    e["message_id"],
                    e["cart_id"],
                    e["event_type"],
                    e["url"],
                    T0 + timedelta(hours=1),
                ),
            )
        for n, k in enumerate(coupons):
            conn.execute(
                "INSERT INTO app.coupons (org_id, message_id, code, type, value, platform, "
                "order_id, redeemed_at) VALUES (%s, %s, %s, %s, %s, 'api', %s, %s)",
                (
                    org_id,
                    k["message_id"],
                    f"CODE{n}",
                    k["type"],
                    k["value"],
                    k["order_id"],
                    T0 if k["order_id"] else None,
                ),
            )
    return {
        "carts": carts,
        "outbox": outbox,
        "orders": orders,
        "events": events,
        "coupons": coupons,
    }


def _first_order(cart, orders, window):
    key = _customer_key(cart["email"], cart["customer_id"], cart["phone"])
    found = [
        o
        for o in orders
        if (o["cart_id"] == cart["cart_id"] or _customer_key(o["email"], o["customer_id"]) == key)
        and cart["abandoned_at"] <= o["ordered_at"] <= cart["abandoned_at"] + window
    ]
    return min(found, key=lambda o: (o["ordered_at"], o["order_id"]), default=None)


def _expected(rows: dict, units: list[tuple[str, dict, dict | None]], window) -> dict:
    """Per arm: n, sums and sums of squares of each metric, revenue per currency, delivered
    and opened, from ``units`` = [(arm, cart, message or None)]."""
    by_id = {o["order_id"]: o for o in rows["orders"]}
    arms: dict = defaultdict(lambda: defaultdict(Decimal))
    currencies: dict = defaultdict(lambda: defaultdict(Decimal))
    for arm, cart, message in units:
        counts = arms[arm]
        counts["n"] += 1
        first = _first_order(cart, rows["orders"], window)
        if first is not None:
            currency = first["currency"].upper()
            revenue = first["total_price"] if currency == "USD" else Decimal(0)
            counts["converted"] += 1
            counts["revenue"] += revenue
            counts["revenue_squares"] += revenue * revenue
            currencies[arm][currency] += first["total_price"]
        if message is None:
            continue
        mine = [
            e
            for e in rows["events"]
            if e["message_id"] == message["message_id"] and e["cart_id"] == cart["cart_id"]
        ]
        types = {e["event_type"] for e in mine}
        counts["clicked"] += any(
            e["event_type"] == "click" and "/u/" not in (e["url"] or "") for e in mine
        )
        counts["unsubscribed"] += bool(types & {"unsubscribe", "group_unsubscribe"})
        counts["complained"] += "spamreport" in types
        counts["bounced"] += bool(types & {"bounce", "dropped", "undelivered", "failed"})
        counts["delivered"] += "delivered" in types
        counts["opened"] += "open" in types
        for k in rows["coupons"]:
            order = by_id.get(k["order_id"])
            if k["message_id"] != message["message_id"] or order is None:
                continue
            cost = Decimal(0)
            if order["currency"].upper() == "USD":
                if k["type"] == "fixed_amount":
                    cost = k["value"]
                elif k["type"] == "percentage" and k["value"] < 100:
                    cost = order["total_price"] * k["value"] / (100 - k["value"])
            counts["discount"] += cost
            counts["discount_squares"] += cost * cost
    return {"arms": arms, "currencies": currencies}


def _check(results, funnel, expected) -> None:
    for v in results["variations"]:
        counts = expected["arms"][v["name"]]
        assert v["units"] == counts["n"], v["name"]
        for key, got in v["metrics"].items():
            total, squares = COLUMNS[key]
            assert got["n"] == counts["n"]
            assert got["sum"] == pytest.approx(float(counts[total])), (v["name"], key)
            if squares:
                assert got["sum_squares"] == pytest.approx(float(counts[squares])), key
        assert {c: Decimal(a) for c, a in v["revenue_by_currency"].items()} == dict(
            expected["currencies"][v["name"]]
        )
    for row in funnel:
        counts = expected["arms"][row["variant"]]
        assert row["recovered"] == counts["converted"]
        if "delivered" in row:
            assert (row["delivered"], row["opened"], row["clicked"]) == (
                counts["delivered"],
                counts["opened"],
                counts["clicked"],
            )


@pytest.mark.parametrize("seed", [13, 2026])
def test_the_count_query_gives_the_definitions_numbers(db, make_org, seed):
    org = make_org(f"exp-counts-{seed}")
    campaign_id = make_campaign(
        db, org.org_id, [AB_STEP, {**AB_STEP, "delay_seconds": 3600}], {"holdout_percent": 20}
    )
    rows = _seed(db, org.org_id, campaign_id, random.Random(seed))
    with db.tenant(org.org_id) as conn:
        window = timedelta(
            seconds=longest_window_seconds(org_settings.get_settings(conn, org.org_id))
        )
        step, step_funnel = experiment_view(conn, org.org_id, ExperimentId(campaign_id, 0))
        holdout, holdout_funnel = experiment_view(conn, org.org_id, ExperimentId(campaign_id, None))
    carts = {c["cart_id"]: c for c in rows["carts"]}

    sent = [m for m in rows["outbox"] if m["step_index"] == 0 and m["status"] == "sent"]
    expected = _expected(rows, [(m["variant"], carts[m["cart_id"]], m) for m in sent], window)
    assert sum(a["n"] for a in expected["arms"].values()) > 100
    # Every metric is non-zero in each arm, so none is checked only against 0.
    for arm in ("a", "b"):
        for total, _ in COLUMNS.values():
            assert expected["arms"][arm][total] > 0, (arm, total)
    _check(step, step_funnel, expected)

    groups: dict = {}
    for m in rows["outbox"]:
        if m["status"] in ("sent", "held_out"):
            held = groups.get(m["cart_id"]) == "holdout" or m["status"] == "held_out"
            groups[m["cart_id"]] = "holdout" if held else "messaged"
    expected = _expected(rows, [(arm, carts[c], None) for c, arm in groups.items()], window)
    _check(holdout, holdout_funnel, expected)


def test_a_failed_count_query_raises_its_own_error(db, make_org):
    """When the count query fails (here: a table it reads stays locked past lock_timeout),
    its own error reaches the caller (the API answers an OperationalError with 503, retry),
    not an error from restoring the planner settings in the aborted transaction."""
    org = make_org("exp-counts-locked")
    campaign_id = make_campaign(db, org.org_id, [AB_STEP])
    with db.system() as locker:
        locker.execute("LOCK TABLE app.coupons IN ACCESS EXCLUSIVE MODE")
        with pytest.raises(psycopg.errors.LockNotAvailable):
            with db.tenant(org.org_id) as conn:
                conn.execute("SET LOCAL lock_timeout = '200ms'")
                experiment_view(conn, org.org_id, ExperimentId(campaign_id, 0))


def test_the_count_settings_hold_for_the_count_query_only(db, make_org):
    """The planner settings of the count query are back to the transaction's own after it."""
    org = make_org("exp-counts-settings")
    campaign_id = make_campaign(db, org.org_id, [AB_STEP])
    names = ("jit", "work_mem", "enable_mergejoin")
    read = "SELECT " + ", ".join(f"current_setting('{n}') AS {n}" for n in names)
    with db.tenant(org.org_id) as conn:
        conn.execute("SET LOCAL work_mem = '5MB'")
        before = conn.execute(read).fetchone()
        experiment_view(conn, org.org_id, ExperimentId(campaign_id, 0))
        assert conn.execute(read).fetchone() == before
        assert before["work_mem"] == "5MB"

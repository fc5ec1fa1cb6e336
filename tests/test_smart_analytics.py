"""Smart send time and smart discount against their control share (cartrecovery/analytics/
smart.py): a hand-built history with known arms gives the exact numbers through
``GET /api/v1/analytics/smart`` and on the dashboard's Attribution page; another org's
campaign is a 404.

Step 1 uses smart send time: 40 carts in the smart arm (30 model, 5 explore, 5 fallback),
12 of them recovered (10 × 100 USD, 2 × 50 EUR), 8 clicked; 40 control carts, 6 recovered
(6 × 100 USD), 4 clicked. Step 2 uses smart discount on 10 + 10 of those carts (too few:
not meaningful), with redeemed codes of known and unknown cost.
"""

from __future__ import annotations

import math
import uuid
from datetime import timedelta

import pytest
from api_contract import ContractClient
from psycopg import sql
from psycopg.types.json import Jsonb
from scipy import stats as sps
from test_dashboard_pages import _page
from test_warehouse_marts import T0, History

from cartrecovery import tenancy
from ingest.openapi import build_document
from pipelines.dbt_build import prepare_manifest, run_dbt_build

pytestmark = pytest.mark.slow


def _decide(db, org_id, message_id, **columns) -> None:
    with db.system() as conn:
        for name, value in columns.items():
            conn.execute(
                sql.SQL(
                    "UPDATE app.outbox SET {} = %s WHERE org_id = %s AND message_id = %s"
                ).format(sql.Identifier(name)),
                (value, org_id, message_id),
            )


def _coupon(db, org_id, message_id, cart_id, order_id, kind: str, value: str) -> None:
    with db.system() as conn:
        conn.execute(
            "INSERT INTO app.coupons (org_id, message_id, cart_id, code, type, value, platform,"
            " redeemed_at, order_id) VALUES (%s, %s, %s, %s, %s, %s, 'api', %s, %s)",
            (
                org_id,
                message_id,
                cart_id,
                f"CODE-{uuid.uuid4().hex[:8]}",
                kind,
                value,
                T0 + timedelta(hours=2),
                order_id,
            ),
        )


@pytest.fixture(scope="module")
def history(db, database_url):
    h = History(db, "smart")
    with db.system() as conn:
        steps = [
            {"channel": "email", "delay_seconds": 1200, "smart_send_time": True},
            {
                "channel": "email",
                "delay_seconds": 86400,
                "smart_discount": True,
                "discount": {"type": "percentage", "value": 20},
            },
        ]
        conn.execute(
            "UPDATE app.campaigns SET sequence_steps = %s WHERE org_id = %s",
            (Jsonb(steps), h.org_id),
        )
    carts = {"smart": [], "control": []}
    orders = {}
    for arm in ("smart", "control"):
        for i in range(40):
            email = f"{arm}-{i}@example.com"
            cart = h.cart(email, "USD", "100.00")
            first = h.message(cart, 0, "email", T0 + timedelta(minutes=20))
            if arm == "smart":
                decision = "model" if i < 30 else "explore" if i < 35 else "fallback:no_model"
            else:
                decision = "control"
            _decide(db, h.org_id, first, send_time_decision=decision)
            if i < (8 if arm == "smart" else 4):
                h.event(first, cart, "click", T0 + timedelta(hours=1))
            recovered = i < (12 if arm == "smart" else 6)
            if recovered:
                currency, total = (
                    ("EUR", "50.00") if arm == "smart" and i >= 10 else ("USD", "100.00")
                )
                orders[(arm, i)] = h.order(cart, email, total, currency, T0 + timedelta(hours=2))
            second = h.message(cart, 1, "email", T0 + timedelta(hours=24))
            carts[arm].append((cart, first, second))
    # Smart discount on step 2: smart carts 0-3 and 20-25 (the model offered the code to
    # 0, 1, 20, 21), control carts 0-9.
    for i in (0, 1, 2, 3, 20, 21, 22, 23, 24, 25):
        _decide(
            db,
            h.org_id,
            carts["smart"][i][2],
            discount_decision="model",
            discount_offered=i in (0, 1, 20, 21),
        )
    for i in range(10):
        _decide(db, h.org_id, carts["control"][i][2], discount_decision="control")
    # Redeemed codes: control 20% and 10% off 100 USD orders (after the discount: cost 25.00
    # and 11.11), smart 5 USD fixed (5.00) and free shipping (unknown).
    for arm, i, kind, value in (
        ("control", 0, "percentage", "20"),
        ("control", 1, "percentage", "10"),
        ("smart", 0, "fixed_amount", "5"),
        ("smart", 1, "free_shipping", "0"),
    ):
        cart, _, second = carts[arm][i]
        _coupon(db, h.org_id, second, cart, orders[(arm, i)], kind, value)
    prepare_manifest()
    run_dbt_build(database_url, full_refresh=True)
    h.key = tenancy.create_api_key(db, h.org_id, "read")
    return h


def _welch(n1, s1, ss1, n0, s0, ss0, proportion: bool) -> tuple[float, list[float]]:
    """Difference of means (1 − 0) with its 95% Welch interval, written out."""
    m1, m0 = s1 / n1, s0 / n0
    if proportion:
        v1, v0 = m1 * (1 - m1), m0 * (1 - m0)
    else:
        v1, v0 = (ss1 - s1 * s1 / n1) / (n1 - 1), (ss0 - s0 * s0 / n0) / (n0 - 1)
    se2 = v1 / n1 + v0 / n0
    dof = se2**2 / ((v1 / n1) ** 2 / (n1 - 1) + (v0 / n0) ** 2 / (n0 - 1))
    half = sps.t.ppf(0.975, dof) * math.sqrt(se2)
    return m1 - m0, [m1 - m0 - half, m1 - m0 + half]


def test_the_api_gives_the_hand_computed_numbers(app, client, history):
    api = ContractClient(app, client, build_document(app))
    headers = {"Authorization": f"Bearer {history.key}"}
    answer = api.get("/api/v1/analytics/smart?period=7d", headers=headers)
    assert answer.status_code == 200, answer.get_json()
    body = answer.get_json()
    assert body["as_of"] is not None and body["reporting_currency"] == "USD"
    by_key = {(s["step"], s["feature"]): s for s in body["steps"]}
    assert set(by_key) == {(1, "send_time"), (2, "discount")}

    send_time = by_key[(1, "send_time")]
    assert send_time["campaign_name"] == "Reminder" and send_time["status"] == "ok"
    assert send_time["smart"] == {
        "messages": 40,
        "sent": 40,
        "clicks": 8,
        "click_rate": 0.2,
        "recoveries": 12,
        "recovery_rate": 0.3,
        "revenue_by_currency": {"EUR": 100.0, "USD": 1000.0},
        "revenue": 1000.0,
        "decisions": {"model": 30, "explore": 5, "fallback": 5},
        "discounts_offered": None,
        "discounts_redeemed": None,
        "discount_cost_by_currency": None,
        "discount_cost_unknown": None,
    }
    assert send_time["control"]["recoveries"] == 6
    assert send_time["control"]["recovery_rate"] == 0.15
    assert send_time["control"]["revenue_by_currency"] == {"USD": 600.0}
    assert send_time["control"]["decisions"] == {"control": 40}
    rate, rate_ci = _welch(40, 12, 12, 40, 6, 6, proportion=True)
    assert send_time["recovery_rate_difference"] == pytest.approx(0.15)
    assert send_time["recovery_rate_difference"] == pytest.approx(rate)
    assert send_time["recovery_rate_difference_ci"] == pytest.approx(rate_ci)
    # Revenue per message in USD (the EUR orders count 0): 1000/40 against 600/40.
    revenue, revenue_ci = _welch(40, 1000, 10 * 100**2, 40, 600, 6 * 100**2, proportion=False)
    assert send_time["revenue_per_message_difference"] == pytest.approx(10.0)
    assert send_time["revenue_per_message_difference_ci"] == pytest.approx(revenue_ci)
    assert revenue == pytest.approx(10.0)

    discount = by_key[(2, "discount")]
    assert discount["status"] == "not_meaningful" and "below 30" in discount["reason"]
    assert discount["recovery_rate_difference"] is None
    assert discount["recovery_rate_difference_ci"] is None
    smart, control = discount["smart"], discount["control"]
    assert (smart["messages"], smart["recoveries"], smart["discounts_offered"]) == (10, 4, 4)
    assert (control["messages"], control["recoveries"], control["discounts_offered"]) == (
        10,
        6,
        10,
    )
    assert smart["revenue_by_currency"] == {"USD": 400.0}
    assert smart["discounts_redeemed"] == 2 and smart["discount_cost_unknown"] == 1
    assert smart["discount_cost_by_currency"] == {"USD": 5.0}
    assert control["discounts_redeemed"] == 2 and control["discount_cost_unknown"] == 0
    assert control["discount_cost_by_currency"] == {"USD": pytest.approx(36.11)}

    # One campaign: the same steps; the period before the carts: none.
    one = api.get(
        f"/api/v1/analytics/smart?period=30d&campaign_id={history.campaign_id}", headers=headers
    ).get_json()
    assert [(s["step"], s["feature"]) for s in one["steps"]] == [(1, "send_time"), (2, "discount")]
    assert api.get("/api/v1/analytics/smart?period=24h", headers=headers).get_json()["steps"] == []


def test_another_orgs_campaign_is_not_found(client, history, make_org):
    other = make_org("smart-other")
    for campaign in (history.campaign_id, uuid.uuid4()):
        answer = client.get(
            f"/api/v1/analytics/smart?period=7d&campaign_id={campaign}", headers=other.headers
        )
        assert answer.status_code == 404
        assert answer.get_json()["error"]["code"] == "not_found"
    # The other org sees no step of this one without a campaign filter either.
    assert client.get("/api/v1/analytics/smart", headers=other.headers).get_json()["steps"] == []
    bad = client.get("/api/v1/analytics/smart?campaign_id=nope", headers=other.headers)
    assert bad.status_code == 400


def test_the_attribution_page_shows_the_apis_numbers(dashboard, client, history):
    at = _page(dashboard(history.org_id), "views/attribution.py")
    at.selectbox(key="attr_period").set_value("7d").run(timeout=60)
    assert not at.exception
    assert "Smart send time and smart discount vs control" in [s.value for s in at.subheader]
    shown = next(d.value for d in at.dataframe if "smart recovery rate" in d.value.columns)
    rows = {(r["step"], r["feature"]): r for r in shown.to_dict("records")}
    send_time = rows[(1, "Smart send time")]
    assert (send_time["smart messages"], send_time["control messages"]) == (40, 40)
    assert (send_time["smart recovery rate"], send_time["control recovery rate"]) == (
        "30.0%",
        "15.0%",
    )
    assert send_time["difference"] == "+15.0 pts"
    api = client.get(
        "/api/v1/analytics/smart?period=7d",
        headers={"Authorization": f"Bearer {history.key}"},
    ).get_json()
    low, high = next(s for s in api["steps"] if s["feature"] == "send_time")[
        "recovery_rate_difference_ci"
    ]
    assert send_time["95% interval"] == f"{low * 100:+.1f} pts to {high * 100:+.1f} pts"
    assert send_time["smart revenue"] == "€100.00 · $1,000.00"
    assert send_time["model decided"] == "35 of 40"
    discount = rows[(2, "Smart discount")]
    assert "not yet meaningful" in discount["difference"]
    assert discount["smart discount cost"] == "$5.00"
    assert discount["control discount cost"] == "$36.11"

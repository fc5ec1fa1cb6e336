"""The warehouse marts on a hand-built history: attribution per model computed by hand,
revenue per currency, settings followed after a rebuild, incremental models picking up late
rows, tenant isolation of the marts, and `cartrecovery warehouse build`.

Other test modules write rows of their own orgs to the same database, so every assertion is
filtered by this module's orgs.
"""

from __future__ import annotations

import json
import os
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal
from pathlib import Path

import pytest
import yaml
from click.testing import CliRunner
from psycopg.types.json import Jsonb

from cartrecovery import tenancy
from cartrecovery.org_settings import DEFAULTS, update_settings
from pipelines.commands import warehouse
from pipelines.dbt_build import prepare_manifest, run_dbt_build
from pipelines.dbt_env import dbt_env

pytestmark = pytest.mark.slow

NOW = datetime.now(UTC).replace(microsecond=0)
T0 = NOW - timedelta(days=3)  # when the carts were abandoned
MARTS = (
    "fct_attribution",
    "fct_attribution_daily",
    "fct_touches",
    "fct_messages",
    "fct_message_funnel",
    "fct_cart_events",
    "fct_orders",
    "fct_recoveries",
    "fct_journeys",
    "fct_journeys_daily",
    "fct_journey_paths",
    "fct_holdout_lift",
    "fct_holdout_carts",
    "fct_holdout_carts_daily",
    "fct_experiment_counts",
    "fct_experiment_counts_daily",
    "fct_discount_redemptions",
    "dim_customers",
    "dim_campaigns",
    "fct_carts",
    "fct_abandoned_carts",
)


class History:
    """Writes one org's carts, messages, callbacks and orders the way the app stores them."""

    def __init__(self, db, name: str):
        self.db = db
        self.org_id = tenancy.create_org(db, f"{name}-{uuid.uuid4().hex[:6]}")
        self.campaign_id = uuid.uuid4()
        with db.system() as conn:
            conn.execute(
                "INSERT INTO app.campaigns (org_id, campaign_id, name, status, sequence_steps)"
                " VALUES (%s, %s, 'Reminder', 'active', %s)",
                (
                    self.org_id,
                    self.campaign_id,
                    Jsonb(
                        [
                            {"channel": "email", "delay_seconds": 1200},
                            {"channel": "email", "delay_seconds": 86400},
                            {"channel": "sms", "delay_seconds": 129600},
                        ]
                    ),
                ),
            )

    def cart(self, email: str, currency: str, total: str) -> uuid.UUID:
        cart_id = uuid.uuid4()
        with self.db.system() as conn:
            conn.execute(
                "INSERT INTO app.carts (org_id, cart_id, platform, external_id, email, currency,"
                " total_price, item_count, status, source_created_at, last_activity_at,"
                " abandoned_at) VALUES (%s, %s, 'api', %s, %s, %s, %s, 1, 'abandoned', %s, %s,"
                " %s)",
                (
                    self.org_id,
                    cart_id,
                    f"web-{cart_id.hex[:8]}",
                    email,
                    currency,
                    Decimal(total),
                    T0 - timedelta(minutes=40),
                    T0 - timedelta(minutes=30),
                    T0,
                ),
            )
        return cart_id

    def message(self, cart_id, step_index: int, channel: str, sent_at: datetime) -> uuid.UUID:
        message_id = uuid.uuid4()
        with self.db.system() as conn:
            conn.execute(
                "INSERT INTO app.outbox (org_id, message_id, cart_id, campaign_id, step_index,"
                " channel, recipient, due_at, status, sent_at)"
                " VALUES (%s, %s, %s, %s, %s, %s, 'someone', %s, 'sent', %s)",
                (
                    self.org_id,
                    message_id,
                    cart_id,
                    self.campaign_id,
                    step_index,
                    channel,
                    sent_at,
                    sent_at,
                ),
            )
        return message_id

    def event(self, message_id, cart_id, event_type: str, at: datetime, restore=False) -> None:
        payload = {"source": "restore_link", "channel": "email"} if restore else {}
        with self.db.system() as conn:
            conn.execute(
                "INSERT INTO app.message_events (org_id, event_key, message_id, cart_id,"
                " event_type, occurred_at, payload) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                (
                    self.org_id,
                    f"k-{uuid.uuid4().hex}",
                    message_id,
                    cart_id,
                    event_type,
                    at,
                    Jsonb(payload),
                ),
            )

    def order(self, cart_id, email: str, total: str, currency: str, at: datetime) -> uuid.UUID:
        order_id = uuid.uuid4()
        with self.db.system() as conn:
            conn.execute(
                "INSERT INTO app.orders (org_id, order_id, platform, external_id, cart_id, email,"
                " total_price, currency, ordered_at) VALUES (%s, %s, 'api', %s, %s, %s, %s, %s,"
                " %s)",
                (
                    self.org_id,
                    order_id,
                    f"order-{order_id.hex[:8]}",
                    cart_id,
                    email,
                    Decimal(total),
                    currency,
                    at,
                ),
            )
        return order_id

    def raw_event(self, cart_id, received_at: datetime, occurred_at: datetime) -> uuid.UUID:
        event_id = uuid.uuid4()
        with self.db.system() as conn:
            conn.execute(
                "INSERT INTO raw.events (org_id, event_id, received_at, source, topic, cart_id,"
                " dedup_key, occurred_at, payload) VALUES (%s, %s, %s, 'api', 'cart_updated',"
                " %s, %s, %s, %s)",
                (
                    self.org_id,
                    event_id,
                    received_at,
                    cart_id,
                    f"late:{event_id}",
                    occurred_at,
                    Jsonb({"event": "cart_updated", "cart_data": {"currency": "usd"}}),
                ),
            )
        return event_id


def _rows(db, sql: str, *params) -> list[dict]:
    with db.system() as conn:
        return conn.execute(sql, params).fetchall()


def _attribution(db, org_id) -> dict[tuple[str, uuid.UUID], tuple[float, Decimal, str]]:
    return {
        (row["model"], row["message_id"]): (row["credit"], row["revenue"], row["currency"])
        for row in _rows(
            db,
            "SELECT model, message_id, credit, revenue, currency"
            " FROM analytics_marts.fct_attribution WHERE org_id = %s",
            org_id,
        )
    }


def _revenue_by_model_and_currency(db, org_id) -> dict[tuple[str, str], Decimal]:
    return {
        (row["model"], row["currency"]): row["revenue"]
        for row in _rows(
            db,
            "SELECT model, currency, sum(revenue) AS revenue FROM analytics_marts.fct_attribution"
            " WHERE org_id = %s GROUP BY model, currency",
            org_id,
        )
    }


@pytest.fixture(scope="module")
def scenario(db, database_url):
    """Org A: cart X abandoned, two email steps both clicked, an SMS clicked after the order,
    then a 120 USD order; cart Y bought without a touch; cart Z (EUR) recovered by one email.
    Org B: two email clicks 36 h and 12 h before a 200 USD order. Then one full build."""
    a = History(db, "wh-a")
    s = {"a": a}
    s["x"] = a.cart("x@example.com", "USD", "120.00")
    s["m1"] = a.message(s["x"], 0, "email", T0 + timedelta(minutes=20))
    s["m2"] = a.message(s["x"], 1, "email", T0 + timedelta(hours=24))
    s["m3"] = a.message(s["x"], 2, "sms", T0 + timedelta(hours=36))
    a.event(s["m1"], s["x"], "delivered", T0 + timedelta(minutes=21))
    a.event(s["m1"], s["x"], "open", T0 + timedelta(minutes=50))
    a.event(s["m1"], s["x"], "click", T0 + timedelta(hours=1))
    a.event(s["m1"], s["x"], "click", T0 + timedelta(hours=2))  # only the first counts
    a.event(s["m2"], s["x"], "click", T0 + timedelta(hours=25), restore=True)
    a.event(s["m3"], s["x"], "click", T0 + timedelta(hours=38))  # after the order
    s["o1"] = a.order(s["x"], "x@example.com", "120.00", "USD", T0 + timedelta(hours=37))
    s["y"] = a.cart("y@example.com", "USD", "30.00")
    s["o2"] = a.order(s["y"], "y@example.com", "30.00", "USD", T0 + timedelta(hours=2))
    s["z"] = a.cart("z@example.com", "EUR", "50.00")
    s["m4"] = a.message(s["z"], 0, "email", T0 + timedelta(minutes=20))
    a.event(s["m4"], s["z"], "click", T0 + timedelta(hours=1))
    s["o3"] = a.order(s["z"], "z@example.com", "50.00", "EUR", T0 + timedelta(hours=3))
    s["late_event_received_at"] = NOW - timedelta(minutes=5)
    a.raw_event(s["x"], s["late_event_received_at"], T0 - timedelta(minutes=35))

    b = History(db, "wh-b")
    s["b"] = b
    s["w"] = b.cart("w@example.com", "USD", "200.00")
    s["m5"] = b.message(s["w"], 0, "email", T0 + timedelta(minutes=20))
    s["m6"] = b.message(s["w"], 1, "email", T0 + timedelta(hours=24))
    b.event(s["m5"], s["w"], "click", T0 + timedelta(hours=1))
    b.event(s["m6"], s["w"], "click", T0 + timedelta(hours=25))
    s["o4"] = b.order(s["w"], "w@example.com", "200.00", "USD", T0 + timedelta(hours=37))

    prepare_manifest()
    run_dbt_build(database_url, full_refresh=True)
    return s


def test_attribution_per_model_computed_by_hand(scenario, db):
    s = scenario
    got = _attribution(db, s["a"].org_id)
    usd, eur = Decimal("120.00"), Decimal("50.00")
    # Touches of order o1: m1 clicked 36 h before it, m2 12 h before; m3's click came after.
    # time_decay (half-life 24 h): 2^-1.5 and 2^-0.5, normalised to 1/3 and 2/3.
    expected = {
        ("last_touch", s["m1"]): (0.0, Decimal(0)),
        ("last_touch", s["m2"]): (1.0, usd),
        ("first_touch", s["m1"]): (1.0, usd),
        ("first_touch", s["m2"]): (0.0, Decimal(0)),
        ("linear", s["m1"]): (0.5, Decimal("60.00")),
        ("linear", s["m2"]): (0.5, Decimal("60.00")),
        ("time_decay", s["m1"]): (1 / 3, Decimal("40.00")),
        ("time_decay", s["m2"]): (2 / 3, Decimal("80.00")),
        **{(model, s["m4"]): (1.0, eur) for model in ("last_touch", "first_touch", "linear")},
        ("time_decay", s["m4"]): (1.0, eur),
    }
    assert set(got) == set(expected)
    for key, (credit, revenue) in expected.items():
        assert got[key][0] == pytest.approx(credit, abs=1e-12), key
        assert got[key][1] == pytest.approx(revenue, abs=Decimal("0.000001")), key
        assert got[key][2] == ("EUR" if key[1] == s["m4"] else "USD")
    # Revenue per currency, never one sum across currencies: the same under every model.
    totals = _revenue_by_model_and_currency(db, s["a"].org_id)
    for model in ("last_touch", "first_touch", "linear", "time_decay"):
        assert totals[(model, "USD")] == pytest.approx(usd, abs=Decimal("0.00001"))
        assert totals[(model, "EUR")] == pytest.approx(eur, abs=Decimal("0.00001"))


def test_orders_recoveries_and_reporting_currency(scenario, db):
    s = scenario
    orders = {
        row["order_id"]: row
        for row in _rows(
            db, "SELECT * FROM analytics_marts.fct_orders WHERE org_id = %s", s["a"].org_id
        )
    }
    assert {k: (v["outcome"], v["eligible_touch_count"]) for k, v in orders.items()} == {
        s["o1"]: ("recovered", 2),
        s["o2"]: ("converted_without_touch", 0),
        s["o3"]: ("recovered", 1),
    }
    # Reporting currency defaults to the currency of most orders: USD (2 of 3).
    assert orders[s["o1"]]["is_reporting_currency"] is True
    assert orders[s["o3"]]["is_reporting_currency"] is False

    recoveries = {
        row["order_id"]: row
        for row in _rows(
            db, "SELECT * FROM analytics_marts.fct_recoveries WHERE org_id = %s", s["a"].org_id
        )
    }
    assert set(recoveries) == {s["o1"], s["o3"]}
    o1 = recoveries[s["o1"]]
    assert (o1["cart_id"], o1["message_id"], o1["step_index"], o1["revenue"]) == (
        s["x"],
        s["m2"],
        2,
        Decimal("120.00"),
    )
    assert o1["clicked_at"] == T0 + timedelta(hours=25)
    assert o1["campaign_name"] == "Reminder"


def test_messages_touches_journeys_and_counts(scenario, db):
    s = scenario
    org = s["a"].org_id
    messages = {
        row["message_id"]: row
        for row in _rows(db, "SELECT * FROM analytics_marts.fct_messages WHERE org_id = %s", org)
    }
    m1 = messages[s["m1"]]
    assert (m1["is_sent"], m1["is_delivered"], m1["is_opened"], m1["is_clicked"]) == (
        True,
        True,
        True,
        True,
    )
    assert (m1["step_index"], m1["click_count"], m1["variant"]) == (1, 2, "default")
    assert messages[s["m2"]]["is_clicked"] and not messages[s["m2"]]["is_delivered"]

    touches = {
        row["message_id"]: row
        for row in _rows(db, "SELECT * FROM analytics_marts.fct_touches WHERE org_id = %s", org)
    }
    assert set(touches) == {s["m1"], s["m2"], s["m3"], s["m4"]}
    assert touches[s["m1"]]["touched_at"] == T0 + timedelta(hours=1)
    assert not touches[s["m3"]]["is_credited"]  # its click came after the order

    journeys = {
        row["cart_id"]: row
        for row in _rows(db, "SELECT * FROM analytics_marts.fct_journeys WHERE org_id = %s", org)
    }
    assert journeys[s["x"]]["path"] == (
        "email:step1:click > email:step2:click > sms:step3:click > recovered"
    )
    assert journeys[s["y"]]["path"] == "converted"
    assert journeys[s["z"]]["outcome"] == "recovered"
    paths = {
        row["path"]: row
        for row in _rows(
            db, "SELECT * FROM analytics_marts.fct_journey_paths WHERE org_id = %s", org
        )
    }
    assert paths["email:step1:click > recovered"]["revenue_by_currency"] == {"EUR": 50.0}
    assert paths["converted"]["recovered"] == 0

    funnel = _rows(
        db,
        "SELECT step_index, channel, sum(messages_sent) AS sent,"
        " sum(messages_clicked) AS clicked FROM analytics_marts.fct_message_funnel"
        " WHERE org_id = %s GROUP BY 1, 2 ORDER BY 1",
        org,
    )
    assert [(r["step_index"], r["channel"], r["sent"], r["clicked"]) for r in funnel] == [
        (1, "email", 2, 2),
        (2, "email", 1, 1),
        (3, "sms", 1, 1),
    ]

    counts = {
        (row["step_index"], row["variant"], row["metric"]): row
        for row in _rows(
            db, "SELECT * FROM analytics_marts.fct_experiment_counts WHERE org_id = %s", org
        )
    }
    clicked = counts[(1, "default", "clicked")]
    assert (clicked["n"], clicked["sum"], clicked["sum_squares"]) == (2, 2, 2)
    revenue = counts[(1, "default", "revenue")]
    # Cart x's 120 USD counts; cart z's order is in EUR: it converts but adds nothing to the
    # USD revenue metric.
    assert (revenue["currency"], revenue["n"], revenue["sum"], revenue["sum_squares"]) == (
        "USD",
        2,
        Decimal("120.00"),
        Decimal("14400.0000"),
    )
    assert counts[(1, "default", "converted")]["sum"] == 2

    # No held-out carts yet: the lift model still builds, and says it is not meaningful.
    (lift,) = _rows(
        db,
        "SELECT * FROM analytics_marts.fct_holdout_lift WHERE org_id = %s AND scope = 'org'",
        org,
    )
    assert (lift["messaged_carts"], lift["held_out_carts"], lift["is_meaningful"]) == (
        2,
        0,
        False,
    )
    assert lift["held_out_rate"] is None

    campaigns = _rows(db, "SELECT * FROM analytics_marts.dim_campaigns WHERE org_id = %s", org)
    assert [(c["channels"], c["step_count"]) for c in campaigns] == [(["email", "sms"], 3)]
    customers = {
        row["customer_key"]: row
        for row in _rows(db, "SELECT * FROM analytics_marts.dim_customers WHERE org_id = %s", org)
    }
    assert customers["email:x@example.com"]["recovered_orders"] == 1


def test_marts_are_isolated_per_org(scenario, db):
    """The application role reads marts under row-level security, like the app tables."""
    a, b = scenario["a"], scenario["b"]
    for mart in MARTS:
        with db.tenant(b.org_id) as conn:
            rows = conn.execute(
                f"SELECT DISTINCT org_id FROM analytics_marts.{mart}"  # noqa: S608
            ).fetchall()
        assert a.org_id not in {r["org_id"] for r in rows}, mart
    with db.tenant(b.org_id) as conn:
        seen = conn.execute("SELECT DISTINCT org_id FROM analytics_marts.fct_attribution")
        assert [r["org_id"] for r in seen.fetchall()] == [b.org_id]
    with db.tenant(a.org_id) as conn:
        assert conn.execute("SELECT count(*) AS n FROM analytics_marts.fct_orders").fetchone() == {
            "n": 3
        }


def test_settings_and_late_rows_are_followed_by_the_next_build(scenario, db, database_url):
    s = scenario
    a, b = s["a"], s["b"]
    with db.tenant(a.org_id) as conn:
        update_settings(conn, a.org_id, {"attribution_half_life_seconds": 43200})
    with db.tenant(b.org_id) as conn:
        update_settings(conn, b.org_id, {"attribution_windows_seconds": {"email": 86400}})
    # Rows that arrive after the build: a raw event committed late (received before the
    # newest one the incremental model holds, inside the lookback) and a late open on m2.
    late_event = a.raw_event(s["x"], s["late_event_received_at"] - timedelta(hours=1), T0)
    a.event(s["m2"], s["x"], "open", T0 + timedelta(hours=24, minutes=30))

    run_dbt_build(database_url)  # incremental

    got = _attribution(db, a.org_id)
    # Half-life 12 h: 2^-3 and 2^-1, normalised to 0.2 and 0.8.
    assert got[("time_decay", s["m1"])][0] == pytest.approx(0.2, abs=1e-12)
    assert got[("time_decay", s["m2"])][1] == pytest.approx(Decimal("96.00"))
    # Org B's email window is now 1 day: the click 36 h before the order no longer counts.
    got_b = _attribution(db, b.org_id)
    assert {key for key in got_b} == {
        (model, s["m6"]) for model in ("last_touch", "first_touch", "linear", "time_decay")
    }
    assert all(value[1] == Decimal("200.00") for value in got_b.values())

    assert _rows(
        db,
        "SELECT event_id FROM analytics_marts.fct_cart_events WHERE org_id = %s AND event_id = %s",
        a.org_id,
        late_event,
    ) == [{"event_id": late_event}]
    (m2,) = _rows(
        db,
        "SELECT is_opened, open_count FROM analytics_marts.fct_messages WHERE message_id = %s",
        s["m2"],
    )
    assert m2 == {"is_opened": True, "open_count": 1}
    # The merge key keeps one row per message and event after the re-read lookback window.
    assert _rows(
        db,
        "SELECT count(*) AS n, count(DISTINCT message_id) AS distinct_n"
        " FROM analytics_marts.fct_messages WHERE org_id = %s",
        a.org_id,
    ) == [{"n": 4, "distinct_n": 4}]


def test_dbt_defaults_match_org_settings():
    project = yaml.safe_load(
        (Path(__file__).resolve().parents[1] / "dbt" / "dbt_project.yml").read_text()
    )
    variables = project["vars"]
    assert variables["attribution_window_defaults"] == DEFAULTS["attribution_windows_seconds"]
    assert variables["attribution_touch_default"] == DEFAULTS["attribution_touch"]
    assert variables["attribution_half_life_default"] == DEFAULTS["attribution_half_life_seconds"]


def test_warehouse_build_command(scenario, database_url):
    runner = CliRunner()
    ok = runner.invoke(
        warehouse, ["build", "--select", "stg_app__orgs"], env={"DATABASE_URL": database_url}
    )
    assert ok.exit_code == 0, ok.output
    assert "stg_app__orgs" in ok.output and "Completed successfully" in ok.output

    missing = f"cr_missing_{uuid.uuid4().hex[:8]}"
    bad_url = database_url.replace(dbt_env(database_url)["DBT_POSTGRES_DBNAME"], missing, 1)
    failed = runner.invoke(
        warehouse, ["build", "--select", "stg_app__orgs"], env={"DATABASE_URL": bad_url}
    )
    assert failed.exit_code == 1
    assert "dbt build failed" in failed.output


def test_dbt_docs_generate(scenario, database_url, tmp_path):
    import subprocess

    from pipelines.dbt_build import DBT_PROJECT_DIR, dbt_executable

    proc = subprocess.run(
        [
            dbt_executable(),
            "docs",
            "generate",
            "--project-dir",
            str(DBT_PROJECT_DIR),
            "--profiles-dir",
            str(DBT_PROJECT_DIR),
            "--target-path",
            str(tmp_path),
            "--log-path",
            str(tmp_path),
        ],
        env={**os.environ, **dbt_env(database_url)},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    catalog = json.loads((tmp_path / "catalog.json").read_text())
    assert "model.cartrecovery.fct_attribution" in catalog["nodes"]

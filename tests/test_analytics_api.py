"""The analytics API and exports on a hand-built history after a real warehouse build:
attribution per model computed by hand, the API's numbers equal to the marts', journeys,
holdout lift with its intervals, campaign performance, a cart's timeline, exports read back
with openpyxl and Polars, tenant isolation and period validation.

Other test modules write rows of their own orgs to the same database; every assertion here is
about this module's orgs.
"""

from __future__ import annotations

import io
import math
import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import numpy as np
import openpyxl
import polars as pl
import pytest
from psycopg.types.json import Jsonb
from scipy import stats as sps
from test_warehouse_marts import T0, History

from cartrecovery import tenancy
from cartrecovery.analytics import frames
from cartrecovery.org_settings import update_settings
from pipelines.dbt_build import prepare_manifest, run_dbt_build

pytestmark = pytest.mark.slow

MODELS = ("last_touch", "first_touch", "linear", "time_decay")
GROUPS = ("channel", "campaign", "step", "variant")
USD, EUR = 120.0, 50.0
MESSAGED, MESSAGED_CONVERTED = 40, 12
HELD_OUT, HELD_OUT_CONVERTED = 30, 6
HOLDOUT_ORDER = "100.00"


def allow_held_out_status(db) -> None:
    """Outbox rows with status held_out are how delivery records a held-out cart; until the
    delivery migration that allows the status is merged, widen the check for this database."""
    with db.system() as conn:
        check = conn.execute(
            "SELECT conname, pg_get_constraintdef(oid) AS def FROM pg_constraint"
            " WHERE conrelid = 'app.outbox'::regclass AND contype = 'c'"
            " AND pg_get_constraintdef(oid) LIKE '%%scheduled%%'"
        ).fetchone()
        if check and "held_out" not in check["def"]:
            conn.execute(f'ALTER TABLE app.outbox DROP CONSTRAINT "{check["conname"]}"')
            conn.execute(
                "ALTER TABLE app.outbox ADD CONSTRAINT outbox_status_check CHECK (status IN"
                " ('scheduled', 'enqueued', 'sending', 'sent', 'held', 'cancelled', 'failed',"
                " 'held_out'))"
            )


class Store(History):
    def __init__(self, db, name: str):
        super().__init__(db, name)
        self.headers = {
            "Authorization": f"Bearer {tenancy.create_api_key(db, self.org_id, 'admin')}"
        }

    def campaign(self, name: str) -> uuid.UUID:
        campaign_id = uuid.uuid4()
        with self.db.system() as conn:
            conn.execute(
                "INSERT INTO app.campaigns (org_id, campaign_id, name, status, sequence_steps)"
                " VALUES (%s, %s, %s, 'active', %s)",
                (
                    self.org_id,
                    campaign_id,
                    name,
                    Jsonb([{"channel": "email", "delay_seconds": 600}]),
                ),
            )
        return campaign_id

    def outbox(self, cart_id, campaign_id, status: str) -> None:
        with self.db.system() as conn:
            conn.execute(
                "INSERT INTO app.outbox (org_id, cart_id, campaign_id, step_index, channel,"
                " recipient, due_at, status, sent_at) VALUES (%s, %s, %s, 0, 'email', 'someone',"
                " %s, %s, %s)",
                (
                    self.org_id,
                    cart_id,
                    campaign_id,
                    T0 + timedelta(minutes=10),
                    status,
                    T0 + timedelta(minutes=10) if status == "sent" else None,
                ),
            )


@pytest.fixture(scope="module")
def history(db, database_url):
    """Org A: cart X (USD 120) with two email steps clicked 36 h and 12 h before its order and
    an SMS clicked after it; cart Y bought without a touch (USD 30); cart Z (EUR 50)
    recovered by one email. A second campaign H with 40 messaged carts (12 bought) and 30
    held-out carts (6 bought), none clicked, orders of USD 100. Org B: one recovered cart.
    Then one full build."""
    allow_held_out_status(db)
    a = Store(db, "an-a")
    s = {"a": a}
    s["x"] = a.cart("x@example.com", "USD", "120.00")
    s["m1"] = a.message(s["x"], 0, "email", T0 + timedelta(minutes=20))
    s["m2"] = a.message(s["x"], 1, "email", T0 + timedelta(hours=24))
    s["m3"] = a.message(s["x"], 2, "sms", T0 + timedelta(hours=36))
    a.event(s["m1"], s["x"], "delivered", T0 + timedelta(minutes=21))
    a.event(s["m1"], s["x"], "click", T0 + timedelta(hours=1))
    a.event(s["m2"], s["x"], "click", T0 + timedelta(hours=25), restore=True)
    a.event(s["m3"], s["x"], "click", T0 + timedelta(hours=38))  # after the order
    s["o1"] = a.order(s["x"], "x@example.com", "120.00", "USD", T0 + timedelta(hours=37))
    s["y"] = a.cart("y@example.com", "USD", "30.00")
    a.order(s["y"], "y@example.com", "30.00", "USD", T0 + timedelta(hours=2))
    s["z"] = a.cart("z@example.com", "EUR", "50.00")
    s["m4"] = a.message(s["z"], 0, "email", T0 + timedelta(minutes=20))
    a.event(s["m4"], s["z"], "click", T0 + timedelta(hours=1))
    a.order(s["z"], "z@example.com", "50.00", "EUR", T0 + timedelta(hours=3))

    s["h"] = a.campaign("Holdout test")
    for group, carts, converted in (
        ("sent", MESSAGED, MESSAGED_CONVERTED),
        ("held_out", HELD_OUT, HELD_OUT_CONVERTED),
    ):
        for i in range(carts):
            email = f"{group}-{i}@example.com"
            cart = a.cart(email, "USD", HOLDOUT_ORDER)
            a.outbox(cart, s["h"], group)
            if i < converted:
                a.order(cart, email, HOLDOUT_ORDER, "USD", T0 + timedelta(hours=2))

    b = Store(db, "an-b")
    s["b"] = b
    s["w"] = b.cart("w@example.com", "USD", "200.00")
    s["m5"] = b.message(s["w"], 0, "email", T0 + timedelta(minutes=20))
    b.event(s["m5"], s["w"], "click", T0 + timedelta(hours=1))
    b.order(s["w"], "w@example.com", "200.00", "USD", T0 + timedelta(hours=5))

    prepare_manifest()
    run_dbt_build(database_url, full_refresh=True)
    return s


def _get(client, url, headers):
    response = client.get(url, headers=headers)
    assert response.status_code == 200, (url, response.get_json())
    return response.get_json()


def _marts(db, sql: str, *params) -> list[dict]:
    with db.system() as conn:
        return conn.execute(sql, params).fetchall()


# --- attribution ----------------------------------------------------------------------------


EXPECTED_BY_STEP = {
    # model → {step: (credited recoveries, revenue per currency)}: cart X's clicks were 36 h
    # (step 1) and 12 h (step 2) before its USD 120 order; cart Z's (EUR 50) one click, step 1.
    "last_touch": {1: (1.0, {"EUR": EUR}), 2: (1.0, {"USD": USD})},
    "first_touch": {1: (2.0, {"EUR": EUR, "USD": USD})},
    "linear": {1: (1.5, {"EUR": EUR, "USD": 60.0}), 2: (0.5, {"USD": 60.0})},
    # half-life 24 h: weights 2^-1.5 and 2^-0.5, i.e. 1/3 and 2/3.
    "time_decay": {1: (4 / 3, {"EUR": EUR, "USD": 40.0}), 2: (2 / 3, {"USD": 80.0})},
}


@pytest.mark.parametrize("model", MODELS)
def test_attribution_per_model_computed_by_hand(client, history, model):
    a = history["a"]
    body = _get(client, f"/api/v1/analytics/attribution?model={model}&group_by=step", a.headers)
    assert body["model"] == model and body["group_by"] == "step"
    assert body["reporting_currency"] == "USD"  # most of org A's orders
    assert body["as_of"] is not None and body["period"]["label"] == "30d"
    got = {
        row["step"]: (row["recoveries"], row["revenue_by_currency"], row["recovered_revenue"])
        for row in body["rows"]
    }
    expected = EXPECTED_BY_STEP[model]
    assert set(got) == set(expected)
    for step, (recoveries, money) in expected.items():
        assert got[step][0] == pytest.approx(recoveries)
        assert got[step][1] == pytest.approx(money)
        # The single number counts only orders in the reporting currency.
        assert got[step][2] == pytest.approx(money.get("USD", 0.0))
    assert body["total_recovered_revenue"] == pytest.approx(USD)
    assert body["total_revenue_by_currency"] == pytest.approx({"EUR": EUR, "USD": USD})
    assert body["total_recoveries"] == pytest.approx(2.0)


@pytest.mark.parametrize("group_by", GROUPS)
@pytest.mark.parametrize("model", MODELS)
def test_attribution_equals_the_mart(client, db, history, model, group_by):
    a = history["a"]
    column = {"channel": "channel", "campaign": "campaign_id", "step": "step_index"}.get(
        group_by, "variant"
    )
    rows = _marts(
        db,
        f"SELECT {column}::text AS key, currency, sum(credit) AS credit, sum(revenue) AS revenue"  # noqa: S608
        " FROM analytics_marts.fct_attribution WHERE org_id = %s AND model = %s"
        " AND credit > 0 AND ordered_at >= now() - interval '30 days' GROUP BY 1, 2",
        a.org_id,
        model,
    )
    expected: dict[str, dict] = {}
    for row in rows:
        group = expected.setdefault(row["key"], {"recoveries": 0.0, "money": {}})
        group["recoveries"] += row["credit"]
        group["money"][row["currency"]] = float(row["revenue"])
    body = _get(
        client, f"/api/v1/analytics/attribution?model={model}&group_by={group_by}", a.headers
    )
    got = {str(row[group_by]): row for row in body["rows"]}
    assert set(got) == set(expected)
    for key, group in expected.items():
        assert got[key]["recoveries"] == pytest.approx(group["recoveries"])
        assert got[key]["revenue_by_currency"] == pytest.approx(group["money"])


# --- journeys, lift, performance, timeline ---------------------------------------------------


def test_journeys_count_paths_like_the_mart(client, db, history):
    a = history["a"]
    body = _get(client, "/api/v1/analytics/journeys?period=7d&limit=50", a.headers)
    paths = {" > ".join(p["path"]): p for p in body["paths"]}
    x = paths["email:step1:click > email:step2:click > sms:step3:click > recovered"]
    assert (x["carts"], x["recovered"], x["revenue_by_currency"]) == (1, 1, {"USD": USD})
    assert paths["held_out > converted"]["carts"] == HELD_OUT_CONVERTED
    # No order yet, but the longest window (5 days) is still open.
    assert paths["held_out > open"]["carts"] == HELD_OUT - HELD_OUT_CONVERTED
    assert paths["email:step1 > converted"]["revenue_by_currency"] == {}
    mart = _marts(
        db,
        "SELECT path, count(*) AS carts FROM analytics_marts.fct_journeys"
        " WHERE org_id = %s AND abandoned_at >= now() - interval '7 days' GROUP BY path",
        a.org_id,
    )
    assert {r["path"]: r["carts"] for r in mart} == {k: v["carts"] for k, v in paths.items()}
    limited = _get(client, "/api/v1/analytics/journeys?limit=1", a.headers)
    assert [p["carts"] for p in limited["paths"]] == [MESSAGED - MESSAGED_CONVERTED]


def _welch(n1: int, k1: int, n0: int, k0: int, amount: float) -> tuple[float, float]:
    """95% Welch interval of the revenue-per-cart difference, from the raw samples."""
    treated = np.array([amount] * k1 + [0.0] * (n1 - k1))
    control = np.array([amount] * k0 + [0.0] * (n0 - k0))
    v1, v0 = treated.var(ddof=1) / n1, control.var(ddof=1) / n0
    dof = (v1 + v0) ** 2 / (v1**2 / (n1 - 1) + v0**2 / (n0 - 1))
    half = sps.t.ppf(0.975, dof) * math.sqrt(v1 + v0)
    diff = treated.mean() - control.mean()
    return diff - half, diff + half


def test_lift_of_the_holdout_campaign(client, history):
    a = history["a"]
    body = _get(client, f"/api/v1/analytics/lift?campaign_id={history['h']}", a.headers)
    assert body["status"] == "ok" and body["reason"] is None
    assert body["messaged"]["carts"] == MESSAGED
    assert body["held_out"]["carts"] == HELD_OUT
    assert (body["messaged"]["recoveries"], body["held_out"]["recoveries"]) == (12, 6)
    p1, p0 = MESSAGED_CONVERTED / MESSAGED, HELD_OUT_CONVERTED / HELD_OUT
    assert body["rate_lift"] == pytest.approx(p1 - p0)
    half = 1.959964 * math.sqrt(p1 * (1 - p1) / MESSAGED + p0 * (1 - p0) / HELD_OUT)
    assert body["rate_lift_ci"] == pytest.approx([p1 - p0 - half, p1 - p0 + half], rel=1e-5)
    assert body["incremental_recoveries"] == pytest.approx((p1 - p0) * MESSAGED)
    assert body["revenue_per_cart_lift"] == pytest.approx(100 * (p1 - p0))
    low, high = _welch(MESSAGED, MESSAGED_CONVERTED, HELD_OUT, HELD_OUT_CONVERTED, 100.0)
    assert body["revenue_per_cart_lift_ci"] == pytest.approx([low, high])
    assert body["incremental_revenue"] == pytest.approx(100 * (p1 - p0) * MESSAGED)
    assert body["incremental_revenue_ci"] == pytest.approx([low * MESSAGED, high * MESSAGED])
    assert body["reporting_currency"] == "USD"


def test_lift_equals_the_mart_and_says_when_it_is_not_meaningful(client, db, history):
    a = history["a"]
    org = _get(client, "/api/v1/analytics/lift?period=90d", a.headers)
    (mart,) = _marts(
        db,
        "SELECT * FROM analytics_marts.fct_holdout_lift WHERE org_id = %s AND scope = 'org'",
        a.org_id,
    )
    assert org["messaged"]["carts"] == mart["messaged_carts"] == MESSAGED + 2  # with X and Z
    assert org["held_out"]["carts"] == mart["held_out_carts"]
    assert org["rate_lift"] == pytest.approx(mart["rate_lift"])
    assert org["incremental_revenue"] == pytest.approx(mart["incremental_revenue"])
    assert org["rate_lift_ci"] == pytest.approx(
        [mart["rate_lift_low"], mart["rate_lift_high"]], rel=1e-5
    )

    few = _get(client, f"/api/v1/analytics/lift?campaign_id={a.campaign_id}", a.headers)
    assert few["status"] == "not_meaningful" and "30" in few["reason"]
    assert few["held_out"]["carts"] == 0 and few["messaged"]["carts"] == 2
    assert few["rate_lift"] is None and few["incremental_revenue_ci"] is None


def test_campaign_performance(client, history):
    a = history["a"]
    body = _get(
        client, f"/api/v1/analytics/campaigns/{a.campaign_id}/performance?period=7d", a.headers
    )
    steps = {row["step"]: row for row in body["steps"]}
    assert (steps[1]["sent"], steps[1]["delivered"], steps[1]["clicked"]) == (2, 1, 2)
    assert steps[1]["revenue_by_currency"] == {"EUR": EUR}  # last touch of cart Z
    assert steps[1]["recovered_revenue"] == 0.0  # EUR is not the reporting currency
    assert (steps[2]["sent"], steps[2]["recoveries"], steps[2]["recovered_revenue"]) == (
        1,
        1.0,
        USD,
    )
    assert steps[3]["channel"] == "sms" and steps[3]["recoveries"] == 0.0
    assert body["lift"]["status"] == "not_meaningful"

    holdout = _get(client, f"/api/v1/analytics/campaigns/{history['h']}/performance", a.headers)
    (row,) = holdout["steps"]
    assert (row["sent"], row["held_out"], row["click_rate"]) == (MESSAGED, HELD_OUT, 0.0)
    assert holdout["lift"]["status"] == "ok"


def test_cart_timeline_is_in_time_order(client, history):
    a = history["a"]
    body = _get(client, f"/api/v1/carts/{history['x']}/timeline", a.headers)
    kinds = [(item["kind"], item.get("type") or item.get("status")) for item in body["items"]]
    assert kinds == [
        ("message", "sent"),
        ("message_event", "delivered"),
        ("message_event", "click"),
        ("message", "sent"),
        ("message_event", "click"),
        ("message", "sent"),
        ("order", None),
        ("message_event", "click"),
    ]
    times = [item["at"] for item in body["items"]]
    assert times == sorted(times)
    assert body["items"][-2]["total"] == USD and body["items"][-2]["currency"] == "USD"


# --- exports --------------------------------------------------------------------------------

MART_OF = {
    "carts": ("fct_carts", ""),
    "recoveries": ("fct_attribution", " AND model = 'linear'"),
    "messages": ("fct_messages", ""),
    "journeys": ("fct_journeys", ""),
    "experiment_counts": ("fct_experiment_counts", ""),
}


@pytest.mark.parametrize("dataset", list(MART_OF))
def test_exports_open_and_match_row_counts(client, db, history, dataset):
    a = history["a"]
    mart, extra = MART_OF[dataset]
    (count,) = _marts(
        db,
        f"SELECT count(*) AS n FROM analytics_marts.{mart} WHERE org_id = %s{extra}",  # noqa: S608
        a.org_id,
    )
    assert count["n"] > 0
    query = "?model=linear" if dataset == "recoveries" else ""
    frames_read = {}
    for fmt in ("csv", "xlsx", "parquet"):
        response = client.get(f"/api/v1/exports/{dataset}.{fmt}{query}", headers=a.headers)
        assert response.status_code == 200, response.get_json()
        assert f'filename="{dataset}.{fmt}"' in response.headers["Content-Disposition"]
        data = response.get_data()
        if fmt == "csv":
            frames_read[fmt] = pl.read_csv(io.BytesIO(data), infer_schema_length=None)
        elif fmt == "parquet":
            frames_read[fmt] = pl.read_parquet(io.BytesIO(data))
        else:
            sheet = openpyxl.load_workbook(io.BytesIO(data), read_only=True).active
            rows = list(sheet.iter_rows(values_only=True))
            frames_read[fmt] = pl.DataFrame(
                [dict(zip(rows[0], r, strict=True)) for r in rows[1:]], infer_schema_length=None
            )
    for frame in frames_read.values():
        assert frame.height == count["n"]
    assert frames_read["csv"].columns == frames_read["parquet"].columns
    assert frames_read["xlsx"].columns == frames_read["parquet"].columns
    if dataset == "recoveries":
        revenue = frames_read["parquet"].group_by("currency").agg(pl.col("revenue").sum())
        assert dict(revenue.iter_rows()) == pytest.approx({"USD": USD, "EUR": EUR})
        assert frames_read["csv"]["revenue"].sum() == pytest.approx(USD + EUR)


def test_export_assets_write_the_api_exports_per_org(client, database_url, history, tmp_path):
    """The Dagster export assets, materialized in process for orgs A and B, write one Parquet
    file per dataset (and per model for recoveries) under each org's folder, row for row the
    API's export; neither org's file holds the other's rows."""
    import dagster as dg

    from pipelines.export_assets import ExportStore, export_assets
    from pipelines.resources import PostgresDatabase

    a, b = history["a"], history["b"]
    orgs = [str(a.org_id), str(b.org_id)]
    result = dg.materialize(
        export_assets,
        resources={
            "database": PostgresDatabase(database_url=database_url),
            "export_store": ExportStore(home=str(tmp_path)),
        },
        run_config={"ops": {f"exports__{name}": {"config": {"org_ids": orgs}} for name in MART_OF}},
    )
    assert result.success
    for store in (a, b):
        folder = tmp_path / "exports" / str(store.org_id)
        written = sorted(p.name for p in folder.iterdir())
        assert written == sorted(
            [f"{d}.parquet" for d in MART_OF if d != "recoveries"]
            + [f"recoveries_{m}.parquet" for m in MODELS]
        )
        for dataset in MART_OF:
            for model in MODELS if dataset == "recoveries" else (None,):
                name = f"recoveries_{model}" if model else dataset
                frame = pl.read_parquet(folder / f"{name}.parquet")
                query = f"?model={model}" if model else ""
                response = client.get(
                    f"/api/v1/exports/{dataset}.parquet{query}", headers=store.headers
                )
                api = pl.read_parquet(io.BytesIO(response.get_data()))
                assert frame.height == api.height, (store.org_id, name)
                assert frame.columns == api.columns
                assert frame.equals(api), (store.org_id, name)
    a_messages = pl.read_parquet(tmp_path / "exports" / str(a.org_id) / "messages.parquet")
    assert a_messages.height > 1 and str(history["m5"]) not in a_messages["message_id"]
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert materialized == {f"exports/{d}" for d in MART_OF}


def test_export_requests_that_cannot_be_served(client, history):
    h = history["a"].headers
    cases = {
        "/api/v1/exports/recoveries.csv": 400,  # the model is required
        "/api/v1/exports/carts.csv?model=linear": 400,  # and refused elsewhere
        "/api/v1/exports/experiment_counts.csv?period=7d": 400,  # all time only
        "/api/v1/exports/carts.csv?period=1y": 400,
        "/api/v1/exports/nothing.csv": 404,
        "/api/v1/exports/carts.json": 404,
    }
    for url, status in cases.items():
        response = client.get(url, headers=h)
        assert response.status_code == status, url
        assert response.get_json()["error"]["code"] in ("validation_error", "not_found")


def test_a_period_limits_an_export(client, history):
    h = history["a"].headers
    day = (T0 - timedelta(days=2)).date().isoformat()
    empty = client.get(f"/api/v1/exports/journeys.csv?from={day}&to={day}", headers=h)
    assert empty.status_code == 200
    assert pl.read_csv(io.BytesIO(empty.get_data())).height == 0
    recent = client.get("/api/v1/exports/journeys.parquet?period=7d", headers=h)
    assert pl.read_parquet(io.BytesIO(recent.get_data())).height == 3 + MESSAGED + HELD_OUT


def test_frames_load_a_mart_into_arrow_for_duckdb(database_url, history):
    a, b = history["a"], history["b"]
    table = frames.load_mart(database_url, a.org_id, "fct_attribution")
    assert set(table.column("org_id").to_pylist()) == {str(a.org_id)}
    answer = frames.duckdb_query(
        "SELECT model, currency, sum(revenue) AS revenue FROM attribution"
        " GROUP BY ALL ORDER BY ALL",
        attribution=table,
    ).to_pylist()
    assert {(r["model"], r["currency"]): r["revenue"] for r in answer} == pytest.approx(
        {(m, c): v for m in MODELS for c, v in (("EUR", EUR), ("USD", USD))}
    )
    # Row-level security holds through ADBC too: org B's frame has only org B's rows.
    theirs = frames.load_mart(database_url, b.org_id, "fct_attribution", {"org_id": "org_id::text"})
    assert set(theirs.column("org_id").to_pylist()) == {str(b.org_id)}


# --- tenants, periods, before the first build -----------------------------------------------


def test_tenant_b_sees_none_of_tenant_a(client, history):
    a, b = history["a"], history["b"]
    attribution = _get(client, "/api/v1/analytics/attribution?group_by=campaign", b.headers)
    assert [row["campaign"] for row in attribution["rows"]] == [str(b.campaign_id)]
    assert attribution["total_revenue_by_currency"] == {"USD": 200.0}
    journeys = _get(client, "/api/v1/analytics/journeys", b.headers)
    assert [p["path"] for p in journeys["paths"]] == [["email:step1:click", "recovered"]]
    for url in (
        # Every analytics answer about one campaign: A's campaign is unknown to B.
        f"/api/v1/analytics/lift?campaign_id={history['h']}",
        f"/api/v1/analytics/lift?campaign_id={a.campaign_id}&period=7d",
        f"/api/v1/analytics/campaigns/{a.campaign_id}/performance",
        f"/api/v1/analytics/campaigns/{history['h']}/performance",
        f"/api/v1/carts/{history['x']}/timeline",
    ):
        response = client.get(url, headers=b.headers)
        assert response.status_code == 404, url
        assert response.get_json()["error"]["code"] == "not_found"
    # B's own campaign still answers (zero carts in its holdout, not meaningful).
    own = _get(client, f"/api/v1/analytics/lift?campaign_id={b.campaign_id}", b.headers)
    assert own["campaign_id"] == str(b.campaign_id) and own["held_out"]["carts"] == 0
    exported = client.get("/api/v1/exports/messages.parquet", headers=b.headers)
    assert pl.read_parquet(io.BytesIO(exported.get_data()))["message_id"].to_list() == [
        str(history["m5"])
    ]


def test_an_unknown_campaign_is_404(client, history):
    h = history["a"].headers
    unknown = uuid.uuid4()
    for url in (
        f"/api/v1/analytics/lift?campaign_id={unknown}",
        f"/api/v1/analytics/campaigns/{unknown}/performance",
        "/api/v1/analytics/campaigns/not-a-uuid/performance",
    ):
        response = client.get(url, headers=h)
        assert response.status_code == 404, url
        assert response.get_json()["error"]["code"] == "not_found"
    # A malformed campaign_id in the query is a validation error, as for any parameter.
    response = client.get("/api/v1/analytics/lift?campaign_id=nope", headers=h)
    assert response.status_code == 400


@pytest.mark.parametrize(
    "query",
    [
        "period=1y",
        "period=2w",
        "period=",
        "period=30d&from=2026-11-01&to=2026-11-02",
        "from=2026-11-01",
        "to=2026-11-01",
        "from=2026-11-02&to=2026-11-01",
        "from=yesterday&to=2026-11-01",
        "from=2024-01-01&to=2026-01-01",
        "since=30d",
        "model=best_touch",
        "group_by=country",
    ],
)
def test_bad_periods_and_parameters_are_400(client, history, query):
    response = client.get(f"/api/v1/analytics/attribution?{query}", headers=history["a"].headers)
    assert response.status_code == 400, query
    assert response.get_json()["error"]["code"] == "validation_error"


def test_from_to_dates_are_days_in_the_org_time_zone(client, db, history):
    a = history["a"]
    with db.tenant(a.org_id) as conn:
        update_settings(conn, a.org_id, {"store_timezone": "Pacific/Auckland"})
    try:
        ordered = (T0 + timedelta(hours=37)).astimezone(ZoneInfo("Pacific/Auckland"))  # o1
        day = ordered.date().isoformat()
        body = _get(
            client,
            f"/api/v1/analytics/attribution?model=last_touch&group_by=step&from={day}&to={day}",
            a.headers,
        )
        assert body["period"]["label"] == f"{day}/{day}"
        start = datetime.fromisoformat(body["period"]["start"])
        assert start.astimezone(ordered.tzinfo).hour == 0
        assert body["total_revenue_by_currency"].get("USD") == USD
    finally:
        with db.tenant(a.org_id) as conn:
            update_settings(conn, a.org_id, {"store_timezone": None})


def test_before_the_first_build_answers_are_empty(client, history, monkeypatch):
    monkeypatch.setenv("DBT_POSTGRES_SCHEMA", f"never_built_{uuid.uuid4().hex[:6]}")
    h = history["a"].headers
    attribution = _get(client, "/api/v1/analytics/attribution", h)
    assert attribution["as_of"] is None and attribution["rows"] == []
    assert _get(client, "/api/v1/analytics/journeys", h)["paths"] == []
    assert _get(client, "/api/v1/analytics/lift", h)["status"] == "not_built"
    response = client.get("/api/v1/exports/carts.csv", headers=h)
    assert response.status_code == 409
    assert response.get_json()["error"]["code"] == "not_built"


def test_as_of_is_the_build_time(client, db, history):
    body = _get(client, "/api/v1/analytics/attribution", history["a"].headers)
    (mart,) = _marts(
        db,
        "SELECT max(built_at) AS built_at FROM analytics_marts.fct_attribution WHERE org_id = %s",
        history["a"].org_id,
    )
    assert datetime.fromisoformat(body["as_of"]) == mart["built_at"]
    assert mart["built_at"] > datetime.now(UTC) - timedelta(hours=1)


# --- whole days from the day-grain marts, edge days from the detail marts --------------------


def test_split_cuts_a_period_into_edges_and_whole_days():
    from cartrecovery.analytics.buckets import split
    from cartrecovery.analytics.periods import Period

    day = datetime(2026, 11, 10, tzinfo=UTC)
    parts = split(Period("p", day + timedelta(hours=5), day + timedelta(days=3, hours=2)))
    assert (parts["edge1_end"], parts["days_start"]) == (day + timedelta(days=1),) * 2
    assert (parts["days_end"], parts["edge2_start"]) == (day + timedelta(days=3),) * 2
    aligned = split(Period("p", day, day + timedelta(days=2)))
    assert aligned["edge1_end"] == aligned["start"] == aligned["days_start"] == day
    assert aligned["edge2_start"] == aligned["end"] == aligned["days_end"]
    # Within one day, or across one midnight only: the detail mart alone.
    for start, end in (
        (day + timedelta(hours=1), day + timedelta(hours=9)),
        (day + timedelta(hours=20), day + timedelta(days=1, hours=3)),
    ):
        inside = split(Period("p", start, end))
        assert (inside["start"], inside["edge1_end"]) == (start, end)
        assert inside["days_start"] == inside["days_end"]
        assert inside["edge2_start"] == inside["end"] == end


def _edges(history) -> list:
    """Periods whose ends fall inside days that hold org A's orders, clicks and
    abandonments, so edge days and whole days both carry rows."""
    from cartrecovery.analytics.periods import Period

    now = datetime.now(UTC)
    return [
        Period("a", T0 - timedelta(hours=1), now),
        Period("b", T0 + timedelta(hours=2, minutes=30), now),
        Period("c", T0 - timedelta(days=2), T0 + timedelta(hours=36, minutes=30)),
        Period("d", T0 + timedelta(minutes=5), T0 + timedelta(hours=3)),
        Period("e", T0 - timedelta(days=1, hours=7), T0 + timedelta(days=1, hours=14)),
    ]


def test_day_grain_answers_equal_the_detail_marts(db, history):
    """For periods cut anywhere, attribution, journeys and lift (whole days from the
    day-grain marts, edge days from the detail marts) equal sums over the detail marts."""
    from cartrecovery.analytics import attribution, journeys, lift

    a = history["a"]
    for period in _edges(history):
        bounds = (a.org_id, period.start, period.end)
        with db.tenant(a.org_id) as conn:
            for model in MODELS:
                body = attribution.attribution(conn, a.org_id, model, "step", period)
                rows = _marts(
                    db,
                    "SELECT step_index, currency, sum(credit) AS credit, sum(revenue) AS revenue"
                    " FROM analytics_marts.fct_attribution WHERE org_id = %s AND model = %s"
                    " AND credit > 0 AND ordered_at >= %s AND ordered_at < %s GROUP BY 1, 2",
                    a.org_id,
                    model,
                    period.start,
                    period.end,
                )
                expected: dict = {}
                for row in rows:
                    group = expected.setdefault(row["step_index"], [0.0, {}])
                    group[0] += row["credit"]
                    group[1][row["currency"]] = float(row["revenue"])
                got = {r["step"]: r for r in body["rows"]}
                assert set(got) == set(expected), (period.label, model)
                for step, (credit, money) in expected.items():
                    assert got[step]["recoveries"] == pytest.approx(credit), (period.label, model)
                    assert got[step]["revenue_by_currency"] == pytest.approx(money)
            paths = journeys.journeys(conn, a.org_id, period, 500)["paths"]
            mart = _marts(
                db,
                "SELECT path, count(*) AS carts, count(*) FILTER (WHERE is_recovered) AS rec"
                " FROM analytics_marts.fct_journeys WHERE org_id = %s AND abandoned_at >= %s"
                " AND abandoned_at < %s GROUP BY path",
                *bounds,
            )
            assert {" > ".join(p["path"]): (p["carts"], p["recovered"]) for p in paths} == {
                r["path"]: (r["carts"], r["rec"]) for r in mart
            }, period.label
            body = lift.lift(conn, a.org_id, period, history["h"])
            mart = _marts(
                db,
                "SELECT lift_group, count(*) AS carts, count(*) FILTER (WHERE is_converted)"
                " AS rec FROM analytics_marts.fct_holdout_carts WHERE org_id = %s"
                " AND abandoned_at >= %s AND abandoned_at < %s AND campaign_id = %s"
                " GROUP BY 1",
                *bounds,
                history["h"],
            )
            counts = {r["lift_group"]: (r["carts"], r["rec"]) for r in mart}
            for group in ("messaged", "held_out"):
                assert (body[group]["carts"], body[group]["recoveries"]) == counts.get(
                    group, (0, 0)
                ), (period.label, group)


def test_campaign_funnel_equals_the_messages_mart(db, history):
    from cartrecovery.analytics import performance

    a = history["a"]
    for campaign in (a.campaign_id, history["h"]):
        for period in _edges(history):
            with db.tenant(a.org_id) as conn:
                body = performance.campaign_performance(conn, a.org_id, campaign, period)
            mart = _marts(
                db,
                "SELECT step_index, variant, count(*) FILTER (WHERE is_sent) AS sent,"
                " count(*) FILTER (WHERE is_clicked) AS clicked,"
                " count(*) FILTER (WHERE is_held_out) AS held_out"
                " FROM analytics_marts.fct_messages WHERE org_id = %s AND campaign_id = %s"
                " AND (is_sent OR is_held_out) AND coalesce(sent_at, due_at) >= %s"
                " AND coalesce(sent_at, due_at) < %s GROUP BY 1, 2",
                a.org_id,
                campaign,
                period.start,
                period.end,
            )
            funnel = {
                (r["step"], r["variant"]): (r["sent"], r["clicked"], r["held_out"])
                for r in body["steps"]
                if r["sent"] or r["held_out"]
            }
            assert funnel == {
                (r["step_index"], r["variant"]): (r["sent"], r["clicked"], r["held_out"])
                for r in mart
            }, (campaign, period.label)


def test_campaign_performance_in_one_statement_equals_its_parts(db, history):
    """Campaign performance reads its steps, its lift and the reporting currency in one
    statement once every mart is built: the lift equals ``lift.lift``'s own queries and the
    currency ``marts.reporting_currency``'s, for every edge case of the period."""
    from cartrecovery.analytics import lift, marts, performance

    a = history["a"]
    for campaign in (a.campaign_id, history["h"]):
        for period in _edges(history):
            with db.tenant(a.org_id) as conn:
                body = performance.campaign_performance(conn, a.org_id, campaign, period)
                alone = lift.lift(conn, a.org_id, period, campaign)
                currency = marts.reporting_currency(conn, a.org_id)
            assert body["lift"] == alone, (period.label, campaign)
            assert body["reporting_currency"] == currency == "USD"
    assert body["lift"]["status"] == "ok"  # campaign H: 30 held-out carts


def test_campaign_performance_of_an_org_the_build_holds_no_order_of(db, history):
    """An org created after the build has no order flagged in its reporting currency: the
    currency comes from its settings, as ``marts.reporting_currency`` reads it."""
    from cartrecovery.analytics import performance

    late = Store(db, "an-late")
    campaign = late.campaign("After the build")
    with db.system() as conn:
        update_settings(conn, late.org_id, {"reporting_currency": "EUR"})
    with db.tenant(late.org_id) as conn:
        body = performance.campaign_performance(conn, late.org_id, campaign, _edges(history)[0])
    assert body["as_of"] is not None and body["steps"] == []
    assert body["reporting_currency"] == body["lift"]["reporting_currency"] == "EUR"
    assert body["lift"]["status"] == "not_meaningful"
    assert body["lift"]["messaged"]["carts"] == body["lift"]["held_out"]["carts"] == 0

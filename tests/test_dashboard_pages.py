"""Every dashboard page run with AppTest over a built warehouse: pages render, their numbers
equal the marts' (and the API's) for the same data, a viewer sees no edit controls, and a
user of another org sees nothing of this one.

One module-scoped history (the warehouse tests' ``History``) and one dbt build; other test
modules write rows of their own orgs to the same database, so everything here is per org.
"""

from __future__ import annotations

import csv
import io
import uuid
from datetime import timedelta
from decimal import Decimal

import pyarrow.parquet as pq
import pytest
from test_dashboard import seed, tiles
from test_warehouse_marts import T0, History

from cartrecovery import audit, consents, suppressions, tenancy
from dashboard import exports, insights
from pipelines.dbt_build import prepare_manifest, run_dbt_build

pytestmark = pytest.mark.slow

MART_PAGES = ("views/attribution.py", "views/journeys.py", "views/insights.py")
ALL_PAGES = (
    "views/live.py",
    "views/campaigns.py",
    *MART_PAGES,
    "views/compliance.py",
    "views/exports.py",
    "views/outbox.py",
)


@pytest.fixture(scope="module")
def shop(db, database_url):
    """An org with carts X (USD, two clicked emails then a 120 USD order) and Z (EUR, one
    clicked email then a 50 EUR order), a consent, a suppression and an audit row; then
    one warehouse build."""
    a = History(db, "dash-pages")
    x = a.cart("x@example.com", "USD", "120.00")
    m1 = a.message(x, 0, "email", T0 + timedelta(minutes=20))
    m2 = a.message(x, 1, "email", T0 + timedelta(hours=24))
    a.event(m1, x, "click", T0 + timedelta(hours=1))
    a.event(m2, x, "click", T0 + timedelta(hours=25))
    a.order(x, "x@example.com", "120.00", "USD", T0 + timedelta(hours=37))
    z = a.cart("z@example.com", "EUR", "50.00")
    m4 = a.message(z, 0, "email", T0 + timedelta(minutes=20))
    a.event(m4, z, "click", T0 + timedelta(hours=1))
    a.order(z, "z@example.com", "50.00", "EUR", T0 + timedelta(hours=3))
    with db.tenant(a.org_id) as conn:
        consents.record_consent(
            conn, a.org_id, channel="email", address="x@example.com", status="granted", source="api"
        )
        consents.record_consent(
            conn, a.org_id, channel="email", address="z@example.com", status="granted", source="api"
        )
        consents.record_consent(
            conn,
            a.org_id,
            channel="email",
            address="z@example.com",
            status="withdrawn",
            source="api",
        )
        suppressions.suppress(conn, a.org_id, "email", "bounced@example.com", "bounce")
        audit.insert(conn, a.org_id, "user:someone", "campaigns.update", "secret-target-a")
    prepare_manifest()
    run_dbt_build(database_url, full_refresh=True)
    return a


def _mart_revenue(db, org_id, model: str) -> dict[str, Decimal]:
    with db.system() as conn:
        rows = conn.execute(
            "SELECT currency, sum(revenue) AS revenue FROM analytics_marts.fct_attribution"
            " WHERE org_id = %s AND model = %s GROUP BY currency",
            (org_id, model),
        ).fetchall()
    return {r["currency"]: r["revenue"] for r in rows}


def _api(client, db, org_id, path: str) -> dict:
    """``GET path`` with a fresh read key of the org: what the API answers for the same data."""
    key = tenancy.create_api_key(db, org_id, "read")
    response = client.get(path, headers={"Authorization": f"Bearer {key}"})
    assert response.status_code == 200, response.get_json()
    return response.get_json()


def _page(at, page: str):
    return at.switch_page(page).run(timeout=60)


def test_every_page_renders(dashboard, shop):
    at = dashboard(shop.org_id)
    for page in ALL_PAGES:
        _page(at, page)
        assert not at.exception, (page, at.exception)
        assert at.title, page


def test_attribution_equals_the_marts_and_the_api_under_each_model(dashboard, db, shop, client):
    at = _page(dashboard(shop.org_id), "views/attribution.py")
    at.selectbox(key="attr_period").set_value("7d").run(timeout=60)
    for model in ("last_touch", "first_touch", "linear", "time_decay"):
        at.radio(key="attr_model").set_value(model).run(timeout=60)
        assert not at.exception
        shown = {m.label: m.value for m in at.metric}
        expected = _mart_revenue(db, shop.org_id, model)
        assert expected == {"EUR": Decimal("50.00"), "USD": Decimal("120.00")}
        assert shown == {
            "Recovered revenue (EUR)": "€50.00",
            "Recovered revenue (USD)": "$120.00",
        }
        api = _api(
            client, db, shop.org_id, f"/api/v1/analytics/attribution?model={model}&period=7d"
        )
        assert api["total_revenue_by_currency"] == {"EUR": 50.0, "USD": 120.0}
    # By step, linear: the USD order splits between steps 1 and 2 (60 each).
    at.radio(key="attr_group").set_value("step").run(timeout=60)
    usd = next(c for c in at.get("plotly_chart") if "USD" in c.proto.spec)
    assert "step 1" in usd.proto.spec and "step 2" in usd.proto.spec
    assert any(
        "not yet meaningful" in str(v) or "No campaign holds" in str(v)
        for v in [c.value for c in at.caption] + [d.value.to_string() for d in at.dataframe]
    )


def test_journeys_show_the_api_paths_and_one_carts_timeline(dashboard, db, shop, client):
    at = _page(dashboard(shop.org_id), "views/journeys.py")
    at.selectbox(key="jr_period").set_value("7d").run(timeout=60)
    assert not at.exception
    with db.system() as conn:
        paths = conn.execute(
            "SELECT path, carts FROM analytics_marts.fct_journey_paths WHERE org_id = %s",
            (shop.org_id,),
        ).fetchall()
    api = _api(client, db, shop.org_id, "/api/v1/analytics/journeys?period=7d&limit=15")
    table = at.dataframe[0].value
    shown = dict(zip(table["path"], table["carts"], strict=True))
    assert shown == {r["path"]: r["carts"] for r in paths}
    assert shown == {" > ".join(p["path"]): p["carts"] for p in api["paths"]}
    assert len(paths) >= 1
    assert at.get("plotly_chart")  # the Sankey
    # The chosen cart's timeline is the API's, item for item.
    cart_id = at.selectbox(key="journey_cart").value
    items = _api(client, db, shop.org_id, f"/api/v1/carts/{cart_id}/timeline")["items"]
    timeline = at.dataframe[1].value
    assert list(timeline["kind"]) == [i["kind"] for i in items]
    assert {"message", "message_event", "order"} <= set(timeline["kind"])
    assert any(d.endswith(" click") for d in timeline["detail"])


def test_compliance_counts_and_audit_log(dashboard, shop):
    at = _page(dashboard(shop.org_id), "views/compliance.py")
    assert not at.exception
    assert tiles(at) == {
        "Addresses with consent": "1",
        "Consents withdrawn": "1",
        "Suppressed addresses": "1",
    }
    assert "campaigns.update" in list(at.dataframe[-1].value["action"])


def test_exports_offer_every_format_and_encode_the_rows():
    rows = [
        {
            "group": "email",
            "currency": "USD",
            "revenue": Decimal("60.50"),
            "at": T0,
            "id": uuid.uuid4(),
        },
        {
            "group": "sms",
            "currency": "EUR",
            "revenue": Decimal("1.25"),
            "at": T0,
            "id": uuid.uuid4(),
        },
    ]
    text = exports.encode(rows, "csv").decode()
    parsed = list(csv.DictReader(io.StringIO(text)))
    assert [r["revenue"] for r in parsed] == ["60.50", "1.25"]
    table = pq.read_table(io.BytesIO(exports.encode(rows, "parquet")))
    assert table.column("revenue").to_pylist() == [Decimal("60.50"), Decimal("1.25")]
    assert exports.encode(rows, "xlsx")[:2] == b"PK"  # a zip: the xlsx container


def test_exports_page_lists_the_warehouse_datasets(dashboard, shop):
    at = _page(dashboard(shop.org_id), "views/exports.py")
    assert not at.exception
    options = at.selectbox(key="export_dataset").options
    assert any("Attribution" in o for o in options) and any("Journeys" in o for o in options)
    at.selectbox(key="export_dataset").set_value("attribution_linear").run(timeout=60)
    assert not at.exception
    assert [b.proto.label for b in at.get("download_button")] == [
        "Download CSV",
        "Download Excel",
        "Download Parquet",
    ]


def test_a_viewer_sees_no_edit_controls_on_any_page(dashboard, shop):
    at = dashboard(shop.org_id, role="viewer")
    for page in ALL_PAGES:
        _page(at, page)
        assert not at.exception, page
        assert [b.label for b in at.button] == ["Sign out"], page
        assert not [w for w in at.text_input if (w.key or "").startswith("ed_")], page


def test_another_org_sees_nothing_of_this_one(dashboard, db, shop):
    other = tenancy.create_org(db, f"dash-pages-other-{uuid.uuid4().hex[:6]}")
    at = dashboard(other, role="admin")
    assert not at.exception
    # Its marts hold nothing: the warehouse pages are not offered at all.
    for page in MART_PAGES:
        with pytest.raises(Exception):  # noqa: B017, PT011 (AppTest raises for unknown pages)
            at.switch_page(page).run(timeout=60)
    at = dashboard(other, role="admin")
    _page(at, "views/compliance.py")
    assert not at.exception
    assert set(tiles(at).values()) == {"0"}
    rendered = " ".join(str(d.value.to_string()) for d in at.dataframe)
    assert "secret-target-a" not in rendered and "campaigns.update" not in rendered
    _page(at, "views/exports.py")
    options = at.selectbox(key="export_dataset").options
    assert not any("Attribution" in o for o in options)


def test_live_tiles_equal_the_api(dashboard, db, make_org, client):
    org = make_org("dash-live-api")
    seed(db, org.org_id)
    api = client.get("/api/v1/analytics/dashboard?period=24h", headers=org.headers).get_json()
    at = dashboard(org.org_id)
    shown = tiles(at)
    assert shown["Messages sent"] == str(api["messages_sent"]) == "2"
    assert shown["Carts recovered"] == str(api["carts_recovered"]) == "1"
    assert shown["Recovery rate"] == f"{api['recovery_rate']:.1%}" == "25.0%"
    assert shown["Revenue recovered"] == "$120.50"


def test_insights_from_rows():
    rows = [
        {
            "campaign_id": "c",
            "campaign": "C",
            "step_index": 1,
            "variant": "a",
            "sent": 40,
            "opened": 0,
            "clicked": 0,
            "recoveries": 8,
        },
        {
            "campaign_id": "c",
            "campaign": "C",
            "step_index": 1,
            "variant": "b",
            "sent": 40,
            "opened": 0,
            "clicked": 0,
            "recoveries": 2,
        },
        {
            "campaign_id": "c",
            "campaign": "C",
            "step_index": 2,
            "variant": "",
            "sent": 50,
            "opened": 0,
            "clicked": 0,
            "recoveries": 5,
        },
    ]
    assert insights.best_step(rows).number == "12.5%"  # step 1: 10 / 80
    retire = insights.variant_to_retire(rows)
    assert retire.number == "5.0%" and "'b'" in retire.detail
    unpaid = insights.unpaid_discount(rows, [{"campaign_id": "c", "step_index": 2}])
    assert unpaid.number == "10.0% vs 12.5%"
    assert insights.unpaid_discount(rows, [{"campaign_id": "c", "step_index": 1}]) is None
    hours = [
        {"hour": 9, "recoveries": 6},
        {"hour": 20, "recoveries": 3},
        {"hour": 3, "recoveries": 1},
    ]
    assert insights.peak_hours(hours, top=1).number == "60%"
    assert insights.best_step([{**rows[0], "sent": 5}]) is None  # too few messages


def test_insights_count_the_apis_recoveries(dashboard, db, shop, client):
    at = _page(dashboard(shop.org_id), "views/insights.py")
    assert not at.exception
    api = _api(client, db, shop.org_id, "/api/v1/analytics/attribution?model=last_touch&period=90d")
    assert api["total_recoveries"] == 2
    shown = {m.label: m.value for m in at.metric}
    assert shown["When recoveries happen"] == "100%"  # 2 orders, at most 3 distinct hours
    assert any("of 2 recoveries" in str(m.value) for m in at.markdown)

"""The dbt project built through Dagster and directly, against the session's real Postgres.

One module-scoped build serves the assertions: dbt parse, a Dagster materialization and a
direct `dbt build` take several seconds each. Other test modules write rows of their own orgs
to the same database, so every assertion is filtered by this module's org.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from decimal import Decimal

import dagster as dg
import psycopg
import pytest
from conftest import fixture_bytes
from psycopg.types.json import Jsonb

from cartrecovery import tenancy
from pipelines.dbt_build import DbtError, prepare_manifest, run_dbt_build
from pipelines.dbt_env import dbt_env

pytestmark = pytest.mark.slow

NOW = datetime.now(UTC).replace(microsecond=0)


def _fixture(name: str) -> dict:
    return json.loads(fixture_bytes(name))


class Store:
    """A small but realistic history for one org, written the way the app writes it."""

    def __init__(self, db):
        self.org_id = tenancy.create_org(db, f"dbt-{uuid.uuid4().hex[:6]}")
        self.campaign_id = uuid.uuid4()
        self.carts = {
            name: uuid.uuid4() for name in ("recovered", "lost", "open", "bought", "active")
        }
        self.message_id = uuid.uuid4()
        self.order_id = uuid.uuid4()
        checkout = _fixture("shopify_checkouts_create.json")
        self.abandoned_at = NOW - timedelta(days=2)
        self.sent_at = self.abandoned_at + timedelta(minutes=20)
        self.clicked_at = self.sent_at + timedelta(minutes=30)
        self.ordered_at = self.sent_at + timedelta(hours=2)

        with db.system() as conn:
            conn.execute(
                "INSERT INTO app.campaigns (org_id, campaign_id, name, status, sequence_steps)"
                " VALUES (%s, %s, 'Checkout reminder', 'active', %s)",
                (
                    self.org_id,
                    self.campaign_id,
                    Jsonb(
                        [
                            {"channel": "email", "delay_seconds": 1200},
                            {"channel": "sms", "delay_seconds": 86400},
                        ]
                    ),
                ),
            )
            carts = [
                # name, platform, external id, status, total, currency, started, abandoned,
                # converted
                (
                    "recovered",
                    "shopify",
                    checkout["token"],
                    "recovered",
                    "71.82",
                    "USD",
                    self.abandoned_at - timedelta(minutes=40),
                    self.abandoned_at,
                    self.ordered_at,
                ),
                (
                    "lost",
                    "api",
                    "web-lost",
                    "abandoned",
                    "19.99",
                    "EUR",
                    NOW - timedelta(days=10, minutes=45),
                    NOW - timedelta(days=10),
                    None,
                ),
                (
                    "open",
                    "api",
                    "web-open",
                    "abandoned",
                    "5.00",
                    "EUR",
                    NOW - timedelta(hours=2),
                    NOW - timedelta(hours=1),
                    None,
                ),
                (
                    "bought",
                    "api",
                    "web-bought",
                    "converted",
                    "42.00",
                    "EUR",
                    NOW - timedelta(hours=5),
                    None,
                    NOW - timedelta(hours=4),
                ),
                (
                    "active",
                    "shopify",
                    "chk-active",
                    "active",
                    "12.50",
                    "USD",
                    NOW - timedelta(minutes=5),
                    None,
                    None,
                ),
            ]
            for (
                name,
                platform,
                external,
                status,
                total,
                currency,
                started,
                abandoned,
                converted,
            ) in carts:
                conn.execute(
                    "INSERT INTO app.carts (org_id, cart_id, platform, external_id, email,"
                    " currency, total_price, item_count, status, source_created_at,"
                    " last_activity_at, abandoned_at, converted_at)"
                    " VALUES (%s, %s, %s, %s, %s, %s, %s, 2, %s, %s, %s, %s, %s)",
                    (
                        self.org_id,
                        self.carts[name],
                        platform,
                        external,
                        f"{name}@example.com",
                        currency,
                        Decimal(total),
                        status,
                        started,
                        started + timedelta(minutes=5),
                        abandoned,
                        converted,
                    ),
                )
            # The shopper's browser said mobile (tracking request; tests/test_device.py).
            conn.execute(
                "UPDATE app.carts SET device = 'mobile' WHERE org_id = %s AND cart_id = %s",
                (self.org_id, self.carts["recovered"]),
            )
            enrollment_id = conn.execute(
                "INSERT INTO app.enrollments (org_id, cart_id, campaign_id) VALUES (%s, %s, %s)"
                " RETURNING enrollment_id",
                (self.org_id, self.carts["recovered"], self.campaign_id),
            ).fetchone()["enrollment_id"]
            conn.execute(
                "INSERT INTO app.outbox (org_id, message_id, enrollment_id, cart_id,"
                " campaign_id, step_index, channel, recipient, due_at, status, provider,"
                " sent_at) VALUES (%s, %s, %s, %s, %s, 0, 'email', 'recovered@example.com',"
                " %s, 'sent', 'sendgrid', %s)",
                (
                    self.org_id,
                    self.message_id,
                    enrollment_id,
                    self.carts["recovered"],
                    self.campaign_id,
                    self.sent_at,
                    self.sent_at,
                ),
            )
            lost_sent = NOW - timedelta(days=9, hours=23)
            for step, channel, status, sent_at in (
                (0, "email", "sent", lost_sent),
                (1, "sms", "cancelled", None),
            ):
                conn.execute(
                    "INSERT INTO app.outbox (org_id, cart_id, campaign_id, step_index, channel,"
                    " due_at, status, sent_at) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                    (
                        self.org_id,
                        self.carts["lost"],
                        self.campaign_id,
                        step,
                        channel,
                        lost_sent,
                        status,
                        sent_at,
                    ),
                )
            for event_type, at in (
                ("delivered", self.sent_at + timedelta(seconds=5)),
                ("click", self.clicked_at),
            ):
                conn.execute(
                    "INSERT INTO app.message_events (org_id, event_key, message_id, cart_id,"
                    " event_type, url, occurred_at) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                    (
                        self.org_id,
                        f"sg-{uuid.uuid4().hex}",
                        self.message_id,
                        self.carts["recovered"],
                        event_type,
                        "https://shop.example/restore" if event_type == "click" else None,
                        at,
                    ),
                )
            order = _fixture("shopify_orders_create.json")
            conn.execute(
                "INSERT INTO app.orders (org_id, order_id, platform, external_id, cart_id,"
                " email, checkout_token, total_price, currency, financial_status, ordered_at)"
                " VALUES (%s, %s, 'shopify', %s, %s, %s, %s, %s, 'USD', 'paid', %s)",
                (
                    self.org_id,
                    self.order_id,
                    str(order["id"]),
                    self.carts["recovered"],
                    order["email"],
                    order["checkout_token"],
                    Decimal(order["total_price"]),
                    self.ordered_at,
                ),
            )
            conn.execute(
                "INSERT INTO app.orders (org_id, platform, external_id, cart_id, total_price,"
                " currency, ordered_at) VALUES (%s, 'api', 'web-order-1', %s, 42.00, 'EUR', %s)",
                (self.org_id, self.carts["bought"], NOW - timedelta(hours=4)),
            )
            conn.execute(
                "INSERT INTO app.recoveries (org_id, cart_id, order_id, message_id, campaign_id,"
                " channel, revenue, currency, clicked_at, recovered_at)"
                " VALUES (%s, %s, %s, %s, %s, 'email', %s, 'USD', %s, %s)",
                (
                    self.org_id,
                    self.carts["recovered"],
                    self.order_id,
                    self.message_id,
                    self.campaign_id,
                    Decimal(order["total_price"]),
                    self.clicked_at,
                    self.ordered_at + timedelta(seconds=2),
                ),
            )
            raw_events = [
                (
                    "shopify",
                    "checkouts/create",
                    self.carts["recovered"],
                    _fixture("shopify_checkouts_create.json"),
                ),
                (
                    "shopify",
                    "checkouts/update",
                    self.carts["recovered"],
                    _fixture("shopify_checkouts_update_completed.json"),
                ),
                ("shopify", "orders/create", self.carts["recovered"], order),
                (
                    "api",
                    "order_completed",
                    self.carts["bought"],
                    {
                        "event": "order_completed",
                        "cart_data": {
                            "cart_id": "web-bought",
                            "email": "bought@example.com",
                            "total_price": 42.0,
                            "currency": "eur",
                            "line_items": [{"sku": "A", "quantity": 2}],
                            "order": {"order_id": "web-order-1"},
                        },
                        "timestamp": (NOW - timedelta(hours=4)).isoformat(),
                    },
                ),
            ]
            for source, topic, cart_id, payload in raw_events:
                conn.execute(
                    "INSERT INTO raw.events (org_id, event_id, source, topic, cart_id,"
                    " dedup_key, occurred_at, payload) VALUES (%s, %s, %s, %s, %s, %s, %s, %s)",
                    (
                        self.org_id,
                        uuid.uuid4(),
                        source,
                        topic,
                        cart_id,
                        f"{topic}:{uuid.uuid4().hex}",
                        NOW - timedelta(hours=1),
                        Jsonb(payload),
                    ),
                )


def _rows(db, sql: str, *params) -> list[dict]:
    with db.system() as conn:
        return conn.execute(sql, params).fetchall()


@pytest.fixture(scope="module")
def built(db, database_url):
    """Prepare the manifest, load the definitions, write a store's history, materialize."""
    prepare_manifest()
    from pipelines.analytics import analytics_dbt_assets
    from pipelines.definitions import defs
    from pipelines.resources import PostgresDatabase, dbt_cli

    store = Store(db)
    result = dg.materialize(
        [analytics_dbt_assets],
        resources={"dbt": dbt_cli(), "database": PostgresDatabase(database_url=database_url)},
        raise_on_error=False,
    )
    return defs, store, result


def test_definitions_hold_dbt_assets_job_and_schedule(built):
    defs, _, _ = built
    keys = {key.to_user_string() for key in defs.resolve_all_asset_keys()}
    assert {
        "marts/fct_carts",
        "marts/fct_abandoned_carts",
        "marts/fct_recoveries",
        "staging/stg_shopify__checkouts",
        "raw/events",
    } <= keys
    job = defs.resolve_job_def("analytics_job")
    assert dg.AssetKey(["marts", "fct_recoveries"]) in job.asset_layer.executable_asset_keys
    schedule = defs.resolve_schedule_def("analytics_every_15_minutes")
    assert schedule.cron_schedule == "*/15 * * * *"
    assert schedule.job_name == "analytics_job"


def test_materialize_builds_marts_and_passes_checks(built, db):
    _, store, result = built
    assert result.success
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {"marts/fct_carts", "marts/fct_recoveries", "staging/stg_app__carts"} <= materialized
    # dbt's data tests arrive as asset checks; none of error severity may fail.
    checks = result.get_asset_check_evaluations()
    assert any(c.check_name.startswith("unique_together_fct_recoveries") for c in checks)
    failed = [c for c in checks if not c.passed and c.severity == dg.AssetCheckSeverity.ERROR]
    assert failed == []

    (recovery,) = _rows(
        db, "SELECT * FROM analytics_marts.fct_recoveries WHERE org_id = %s", store.org_id
    )
    assert recovery["cart_id"] == store.carts["recovered"]
    assert recovery["order_id"] == store.order_id
    assert recovery["message_id"] == store.message_id
    assert recovery["campaign_id"] == store.campaign_id
    assert recovery["campaign_name"] == "Checkout reminder"
    assert recovery["channel"] == "email"
    assert recovery["revenue"] == Decimal("71.82")
    assert recovery["currency"] == "USD"
    assert recovery["clicked_at"] == store.clicked_at
    assert recovery["hours_from_message_to_order"] == Decimal("2.00")

    carts = {
        row["cart_id"]: row
        for row in _rows(
            db, "SELECT * FROM analytics_marts.fct_carts WHERE org_id = %s", store.org_id
        )
    }
    by_name = {name: carts[cart_id] for name, cart_id in store.carts.items()}
    flags = {
        name: (
            row["status"],
            row["is_abandoned"],
            row["is_converted"],
            row["is_recovered"],
            row["messages_sent"],
        )
        for name, row in by_name.items()
    }
    assert flags == {
        "recovered": ("recovered", True, True, True, 1),
        "lost": ("abandoned", True, False, False, 1),
        "open": ("abandoned", True, False, False, 0),
        "bought": ("converted", False, True, False, 0),
        "active": ("active", False, False, False, 0),
    }
    assert by_name["recovered"]["order_id"] == store.order_id
    assert by_name["recovered"]["messages_clicked"] == 1
    assert by_name["recovered"]["first_message_sent_at"] == store.sent_at
    assert by_name["recovered"]["events_received"] == 3
    assert by_name["bought"]["events_received"] == 1
    assert by_name["recovered"]["cart_value"] == Decimal("71.82")

    outcomes = {
        row["cart_id"]: row["outcome"]
        for row in _rows(
            db, "SELECT * FROM analytics_marts.fct_abandoned_carts WHERE org_id = %s", store.org_id
        )
    }
    assert outcomes == {
        store.carts["recovered"]: "recovered",
        store.carts["lost"]: "lost",
        store.carts["open"]: "open",
    }

    checkouts = _rows(
        db,
        "SELECT * FROM analytics_staging.stg_shopify__checkouts WHERE org_id = %s"
        " ORDER BY is_completed",
        store.org_id,
    )
    assert [(c["checkout_total"], c["is_completed"], c["email"]) for c in checkouts] == [
        (Decimal("71.82"), False, "jane.doe@example.com"),
        (Decimal("71.82"), True, "jane.doe@example.com"),
    ]
    (tracked,) = _rows(
        db,
        "SELECT * FROM analytics_staging.stg_tracking__cart_events WHERE org_id = %s",
        store.org_id,
    )
    assert (
        tracked["event_name"],
        tracked["cart_total"],
        tracked["currency"],
        tracked["has_order"],
        tracked["line_item_count"],
    ) == ("order_completed", Decimal("42.0"), "EUR", True, 1)


def test_run_dbt_build_refreshes_marts(built, db, database_url):
    _, store, _ = built
    late_cart = uuid.uuid4()
    with db.system() as conn:
        conn.execute(
            "INSERT INTO app.carts (org_id, cart_id, platform, external_id, total_price,"
            " status, abandoned_at) VALUES (%s, %s, 'api', 'web-late', 9.99, 'abandoned', %s)",
            (store.org_id, late_cart, NOW - timedelta(minutes=30)),
        )
    run_dbt_build(database_url)
    rows = _rows(
        db,
        "SELECT outcome FROM analytics_marts.fct_abandoned_carts"
        " WHERE org_id = %s AND cart_id = %s",
        store.org_id,
        late_cart,
    )
    assert rows == [{"outcome": "open"}]


def test_run_dbt_build_raises_with_dbts_output(database_url):
    missing = f"cr_missing_{uuid.uuid4().hex[:8]}"
    bad_url = database_url.replace(dbt_env(database_url)["DBT_POSTGRES_DBNAME"], missing, 1)
    with pytest.raises(DbtError) as error:
        run_dbt_build(bad_url, select=["stg_app__orgs"])
    assert missing in error.value.output


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        (
            "postgresql://alice:s%40cret@db.internal:6543/shop?sslmode=require",
            {
                "DBT_POSTGRES_HOST": "db.internal",
                "DBT_POSTGRES_PORT": "6543",
                "DBT_POSTGRES_USER": "alice",
                "DBT_ENV_SECRET_POSTGRES_PASSWORD": "s@cret",
                "DBT_POSTGRES_DBNAME": "shop",
                "DBT_POSTGRES_SSLMODE": "require",
            },
        ),
        (
            "postgresql://postgres:@/cartrecovery?host=/tmp/pg%20data",
            {
                "DBT_POSTGRES_HOST": "/tmp/pg data",
                "DBT_POSTGRES_PORT": "5432",
                "DBT_POSTGRES_USER": "postgres",
                "DBT_ENV_SECRET_POSTGRES_PASSWORD": "",
                "DBT_POSTGRES_DBNAME": "cartrecovery",
            },
        ),
    ],
)
def test_dbt_env_reads_tcp_and_socket_urls(url, expected):
    assert dbt_env(url) == expected


def test_dbt_env_rejects_urls_without_database():
    with pytest.raises(ValueError):
        dbt_env("postgresql://postgres@localhost:5432")
    with pytest.raises(ValueError):
        dbt_env("mysql://root@localhost/shop")


def test_definitions_hold_sensor_nightly_full_build_and_checks(built):
    defs, _, _ = built
    sensor = defs.resolve_sensor_def("new_raw_events_sensor")
    assert sensor.job_name == "analytics_job"
    nightly = defs.resolve_schedule_def("analytics_nightly_full_build")
    assert nightly.job_name == "analytics_full_refresh_job"
    assert nightly.cron_schedule == "0 3 * * *"
    for job_name in ("analytics_job", "analytics_full_refresh_job"):
        assert defs.resolve_job_def(job_name).tags["cartrecovery/warehouse"] == "build"
    check_names = {key.name for key in defs.resolve_asset_graph().asset_check_keys}
    assert {
        "fct_cart_events_is_fresh",
        "fct_orders_row_count",
        "fct_messages_row_count",
        "attribution_credits_sum_to_one",
    } <= check_names


def test_sensor_requests_a_build_once_per_new_event(built, database_url):
    from pipelines.analytics import new_raw_events_sensor
    from pipelines.resources import PostgresDatabase

    resources = {"database": PostgresDatabase(database_url=database_url)}
    with dg.build_sensor_context(resources=resources) as context:
        first = new_raw_events_sensor(context)
        assert isinstance(first, dg.RunRequest)
        again = new_raw_events_sensor(context)  # same cursor: nothing new arrived
        assert isinstance(again, dg.SkipReason)
    _, store, _ = built
    with dg.build_sensor_context(resources=resources, cursor=context.cursor) as later:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                "INSERT INTO raw.events (org_id, event_id, source, topic, dedup_key, payload,"
                " received_at) VALUES (%s, %s, 'api', 'cart_viewed', %s, '{}', now() + '1 s')",
                (store.org_id, uuid.uuid4(), uuid.uuid4().hex),
            )
        request = new_raw_events_sensor(later)
        assert isinstance(request, dg.RunRequest)
        assert request.run_key != first.run_key


def test_checks_materialize_with_postgres_storage(built, database_url, tmp_path):
    """The warehouse checks run after the dbt build, in a Dagster instance whose storage is
    the product's PostgreSQL (schema dagster), and pass on the built marts."""
    from pipelines.analytics import analytics_dbt_assets
    from pipelines.checks import warehouse_checks
    from pipelines.dagster_instance import prepare_dagster_home
    from pipelines.resources import PostgresDatabase, dbt_cli

    home = prepare_dagster_home(tmp_path / "dagster", database_url)
    with dg.DagsterInstance.from_config(str(home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        # Warehouse builds queue behind each other instead of overlapping.
        limits = instance.get_concurrency_config().run_queue_config.tag_concurrency_limits
        assert limits == [{"key": "cartrecovery/warehouse", "limit": 1}]
        result = dg.materialize(
            [analytics_dbt_assets, *warehouse_checks],
            instance=instance,
            resources={
                "dbt": dbt_cli(),
                "database": PostgresDatabase(database_url=database_url),
            },
            selection=dg.AssetSelection.assets(
                *(
                    dg.AssetKey(["marts", name])
                    for name in ("fct_cart_events", "fct_orders", "fct_messages", "fct_attribution")
                )
            ),
            raise_on_error=False,
        )
        assert result.success
        evaluations = {c.check_name: c.passed for c in result.get_asset_check_evaluations()}
        assert {
            name: evaluations.get(name)
            for name in (
                "fct_cart_events_is_fresh",
                "fct_orders_row_count",
                "fct_messages_row_count",
                "attribution_credits_sum_to_one",
            )
        } == {
            "fct_cart_events_is_fresh": True,
            "fct_orders_row_count": True,
            "fct_messages_row_count": True,
            "attribution_credits_sum_to_one": True,
        }
        assert [run.run_id for run in instance.get_runs()] == [result.run_id]
    with psycopg.connect(database_url) as conn:
        tables = conn.execute(
            "SELECT count(*) FROM information_schema.tables WHERE table_schema = 'dagster'"
        ).fetchone()[0]
    assert tables > 0


def test_attribution_credit_check_fails_on_bad_credits(built, database_url):
    """The credits check can fail: a row whose credit breaks the sum is reported."""
    from pipelines.checks import attribution_credits_sum_to_one
    from pipelines.resources import PostgresDatabase

    database = PostgresDatabase(database_url=database_url)
    bad_org = uuid.uuid4()
    with psycopg.connect(database_url) as conn:
        conn.execute(
            "INSERT INTO analytics_marts.fct_attribution (org_id, order_id, message_id, model,"
            " credit) VALUES (%s, %s, %s, 'linear', 0.5)",
            (bad_org, uuid.uuid4(), uuid.uuid4()),
        )
        try:
            # The check reads through its own connection: commit, evaluate, remove the row.
            conn.commit()
            result = attribution_credits_sum_to_one(database=database)
        finally:
            conn.execute(
                "DELETE FROM analytics_marts.fct_attribution WHERE org_id = %s", (bad_org,)
            )
            conn.commit()
    assert result.passed is False
    assert result.metadata["order_models_off"].value >= 1


def test_definitions_hold_the_model_training(built):
    defs, _, _ = built
    keys = {key.to_user_string() for key in defs.resolve_all_asset_keys()}
    assert {"ml_message_log", "send_time_model", "content_model"} <= keys
    assert defs.resolve_schedule_def("ml_weekly_training").job_name == "ml_training_job"
    assert defs.resolve_sensor_def("ml_new_data_sensor").job_name == "ml_training_job"
    check_names = {key.name for key in defs.resolve_asset_graph().asset_check_keys}
    assert {"send_time_metric_is_finite", "content_metric_is_finite"} <= check_names


def test_the_model_features_read_the_marts(built, database_url):
    import polars as pl

    from ml.features import MESSAGE_COLUMNS, load_messages

    _, store, result = built
    assert result.success
    log = load_messages(database_url)
    assert log.columns == list(MESSAGE_COLUMNS)
    mine = log.filter(pl.col("cart_key") == str(store.carts["recovered"]))
    assert mine.height == 1
    message = mine.row(0, named=True)
    assert message["clicked"] and message["recovered"]
    assert message["sent_at"] == int(store.sent_at.timestamp())
    assert message["abandoned_at"] == int(store.abandoned_at.timestamp())
    assert message["cart_value"] == pytest.approx(71.82)
    assert message["propensity"] is None  # sent before any model scored it
    assert message["device"] == "mobile"  # app.carts.device through staging and fct_carts


def test_the_sensors_build_runs_the_models_without_tests(built, database_url):
    """The sensor asks for models only: no dbt data or unit test runs, and the views,
    created by the whole build before from this very project, are left as they are."""
    from pipelines.analytics import analytics_dbt_assets, new_raw_events_sensor
    from pipelines.dbt_build import views_are_current
    from pipelines.resources import PostgresDatabase, dbt_cli

    database = PostgresDatabase(database_url=database_url)
    with dg.build_sensor_context(resources={"database": database}) as context:
        request = new_raw_events_sensor(context)
    assert isinstance(request, dg.RunRequest)
    assert views_are_current(database_url)
    result = dg.materialize(
        [analytics_dbt_assets],
        resources={"dbt": dbt_cli(), "database": database},
        run_config=request.run_config,
        raise_on_error=False,
    )
    assert result.success
    materialized = {e.asset_key.to_user_string() for e in result.get_asset_materialization_events()}
    assert {"marts/fct_carts", "marts/fct_attribution_daily"} <= materialized
    assert not any(key.startswith("staging/") for key in materialized)
    assert result.get_asset_check_evaluations() == []

"""`cartrecovery demo`'s setup (cli/demo.py): idempotent across runs, through core services."""

from __future__ import annotations

import pytest

from cartrecovery import campaigns, tenancy
from cartrecovery.org_settings import get_settings
from cli import demo
from cli.services import Services


def test_demo_setup_is_idempotent(database_url, db, monkeypatch, tmp_path):
    monkeypatch.setenv("SECRET_KEY", "demo-test-secret")
    monkeypatch.delenv("ENCRYPTION_KEY", raising=False)
    svc = Services(home=tmp_path, database_url=database_url, redis_url=None)
    said: list[str] = []

    first = demo.prepare(svc)
    created = demo.ensure_campaign(svc, first, said.append)
    assert said == [f"demo campaign {demo.CAMPAIGN!r} created"]
    assert created["status"] == "active" and created["sequence_steps"] == demo.STEPS
    with db.tenant(first.org_id) as conn:
        settings = get_settings(conn, first.org_id)
        campaigns.update_campaign(conn, first.org_id, created["campaign_id"], {"status": "paused"})
    assert settings["abandonment_timeout_seconds"] == demo.TIMEOUT_SECONDS
    assert (settings["quiet_hours"]["start"], settings["quiet_hours"]["end"]) == ("00:00", "24:00")

    second = demo.prepare(svc)
    again = demo.ensure_campaign(svc, second, said.append)
    assert (second.org_id, second.connection_id, second.secret) == (
        first.org_id,
        first.connection_id,
        first.secret,
    )
    assert tenancy.verify_api_key(db, first.api_key) is None  # the older demo key is revoked
    assert tenancy.verify_api_key(db, second.api_key).org_id == first.org_id
    assert again["campaign_id"] == created["campaign_id"] and again["status"] == "active"
    assert said[-1] == f"demo campaign {demo.CAMPAIGN!r} reactivated"
    with db.tenant(first.org_id) as conn:
        names = [c["name"] for c in campaigns.list_campaigns(conn, first.org_id)]
    assert names.count(demo.CAMPAIGN) == 1


def test_demo_user_signs_in_with_the_printed_credentials(database_url, db, monkeypatch, tmp_path):
    from cartrecovery import users

    monkeypatch.setenv("SECRET_KEY", "demo-test-secret")
    svc = Services(home=tmp_path, database_url=database_url, redis_url=None)
    store = demo.prepare(svc)
    email, password = demo.demo_user(svc, store)
    assert demo.demo_user(svc, store) == (email, password)  # the same on every run
    user = users.authenticate(db, email, password)
    assert user is not None and user.membership(store.org_id).role == "admin"


def test_first_recovery_is_announced_once_it_is_recorded(database_url, db, make_org):
    import time as clock

    shop = make_org("demo-first")
    watch = demo.FirstRecovery(db, shop.org_id, clock.monotonic())
    assert watch.check(clock.monotonic()) is None and watch.seen is None
    with db.tenant(shop.org_id) as conn:
        cart = conn.execute(
            "INSERT INTO app.carts (org_id, platform, external_id, status) "
            "VALUES (%s, 'api', 'c1', 'recovered') RETURNING cart_id",
            (shop.org_id,),
        ).fetchone()["cart_id"]
        order = conn.execute(
            "INSERT INTO app.orders (org_id, platform, external_id, cart_id, total_price, "
            "currency) VALUES (%s, 'api', 'o1', %s, 42.00, 'USD') RETURNING order_id",
            (shop.org_id, cart),
        ).fetchone()["order_id"]
        conn.execute(
            "INSERT INTO app.recoveries (org_id, cart_id, order_id, revenue, currency) "
            "VALUES (%s, %s, %s, 42.00, 'USD')",
            (shop.org_id, cart, order),
        )
    line = watch.check(clock.monotonic() + 5)
    assert line is not None and "first recovery" in line and "42.00 USD" in line
    assert watch.seen is not None


def test_a_url_is_announced_only_when_its_server_answers():
    import threading

    from conftest import wait_for
    from werkzeug.serving import make_server

    from cli.stack import announce_when_up

    said: list[str] = []
    stopping = threading.Event()

    # A port that is reserved but not served yet.
    def healthy(environ, start_response):
        start_response("200 OK", [("Content-Type", "text/plain")])
        return [b"ok"]

    server = make_server("127.0.0.1", 0, healthy)
    url = f"http://127.0.0.1:{server.server_port}"
    thread = announce_when_up("thing", url, f"{url}/health", said.append, stopping)
    try:
        wait_for(lambda: thread.is_alive(), timeout=5)
        assert said == []  # the socket listens but nothing answers: not announced
        serving = threading.Thread(target=server.serve_forever, daemon=True)
        serving.start()
        wait_for(lambda: said, timeout=30, message="never announced")
        assert said == [f"thing       {url}"]
    finally:
        stopping.set()
        server.shutdown()
        server.server_close()


@pytest.mark.slow
def test_the_demo_trains_first_models_after_its_first_warehouse_build(
    database_url, monkeypatch, tmp_path
):
    """What `demo` runs at start: the first warehouse build, then (once) the training, in a
    child process, into the MLflow store under the data folder; bounded by joins."""
    import threading

    from mlflow import MlflowClient

    from ml import tracking
    from ml.content import NAME as CONTENT
    from ml.send_time import NAME as SEND_TIME

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    svc = Services(home=tmp_path, database_url=database_url, redis_url=None)
    env = svc.child_env()
    said: list[str] = []
    stop = threading.Event()
    trainers: list[threading.Thread] = []
    builds = demo.warehouse_builds(
        svc,
        said.append,
        stop,
        None,
        after_first=lambda: trainers.append(demo.first_models(env, said.append, stop)),
    )
    try:
        builds.join(timeout=600)
        assert not builds.is_alive(), said
        assert len(trainers) == 1, said
        trainers[0].join(timeout=600)
        assert not trainers[0].is_alive(), said
    finally:
        stop.set()
    assert said[0].startswith("warehouse: first build done"), said
    (line,) = [s for s in said if s.startswith("models:")]
    assert line.startswith("models: first models trained on the simulator's truth"), line
    assert f"{SEND_TIME} v1" in line and f"{CONTENT} v1" in line
    # The registry too: MlflowClient otherwise reads the process-wide registry URI, which an
    # earlier test's ml.tracking.client() may have pointed at its own store.
    store = tracking.local_uri(tmp_path)
    client = MlflowClient(tracking_uri=store, registry_uri=store)
    for name in (SEND_TIME, CONTENT):
        assert tracking.champion_version(client, name) == "1", (name, said)


def test_stopping_the_demo_stops_the_training(database_url, monkeypatch, tmp_path):
    import threading

    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    env = Services(home=tmp_path, database_url=database_url, redis_url=None).child_env()
    said: list[str] = []
    stop = threading.Event()
    trainer = demo.first_models(env, said.append, stop)
    stop.set()
    trainer.join(timeout=60)
    assert not trainer.is_alive()
    assert said == []  # a stop is not a failure worth a line
    assert not (tmp_path / "mlflow" / "artifacts").exists() or not any(
        (tmp_path / "mlflow" / "artifacts").iterdir()
    )

"""The send-time and content models: training as Dagster assets into a temporary MLflow
store, the promotion rule, delivery scoring with the champion (and its fallbacks), quiet
hours per channel, and the models against the simulator's known truth."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import dagster as dg
import numpy as np
import pytest
from click.testing import CliRunner
from psycopg.types.json import Jsonb
from pydantic import ValidationError

from cartrecovery.campaigns import SequenceStep
from cartrecovery.consents import record_consent
from cartrecovery.org_settings import update_settings
from delivery import enrollment, gate, smart
from ml import evaluation, overview, scoring, tracking, training
from ml.content import NAME as CONTENT
from ml.send_time import NAME as SEND_TIME
from ml.send_time import SendTimeModel
from pipelines.ml_assets import MlflowStore, ml_assets, ml_checks
from pipelines.resources import PostgresDatabase
from simulator import truth

EMAIL_STEP = {
    "channel": "email",
    "delay_seconds": 3600,
    "subject": "Still there?",
    "template": "cart_reminder",
}


@pytest.fixture()
def mlflow_home(tmp_path, monkeypatch) -> Path:
    """A temporary MLflow store (SQLite under CARTRECOVERY_HOME) and no loaded models."""
    monkeypatch.setenv("CARTRECOVERY_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    scoring.reset()
    yield tmp_path
    scoring.reset()


@pytest.fixture(scope="module")
def sim_log():
    return training.simulated_log(customers=1500, carts_per_customer=6, seed=4)


def _cart(db, org_id, *, total="80.00", abandoned_ago=60):
    with db.system() as conn:
        return conn.execute(
            "INSERT INTO app.carts (org_id, platform, external_id, email, total_price, "
            "currency, status, abandoned_at, last_activity_at, item_count) VALUES (%s, "
            "'custom', %s, %s, %s, 'USD', 'abandoned', date_trunc('second', now()) - "
            "make_interval(secs => %s), now() - make_interval(secs => %s), 2) RETURNING *",
            (
                org_id,
                uuid.uuid4().hex,
                f"{uuid.uuid4().hex[:8]}@example.com",
                total,
                abandoned_ago,
                abandoned_ago + 60,
            ),
        ).fetchone()


def _campaign(db, org_id, steps):
    with db.system() as conn:
        conn.execute(
            "INSERT INTO app.campaigns (org_id, name, status, sequence_steps) "
            "VALUES (%s, 'c', 'active', %s)",
            (org_id, Jsonb(steps)),
        )


def _enroll(db, org_id, cart) -> dict:
    with db.tenant(org_id) as conn:
        assert enrollment.enroll(conn, cart) == 1
        return conn.execute(
            "SELECT * FROM app.outbox WHERE org_id = %s AND cart_id = %s",
            (org_id, cart["cart_id"]),
        ).fetchone()


def _register(model_kind: str, log, home: Path, *, explore: float | None = None):
    train, heldout = training.split(log)
    fitted = training.fit(model_kind, train)
    if explore is not None:
        fitted.explore = explore
    metrics = training.evaluate(model_kind, fitted, heldout)
    return training.register(model_kind, fitted, train, heldout, metrics, source="test", home=home)


# --- training, registry, promotion ---------------------------------------------------------


def test_training_assets_register_models_in_a_temporary_store(mlflow_home):
    result = dg.materialize(
        [*ml_assets, *ml_checks],
        resources={
            "mlflow_store": MlflowStore(home=str(mlflow_home)),
            "database": PostgresDatabase(database_url="postgresql://unused@/unused"),
        },
        run_config={
            "ops": {"ml_message_log": {"config": {"source": "simulated", "customers": 300}}}
        },
    )
    assert result.success
    checks = {e.check_name: e.passed for e in result.get_asset_check_evaluations()}
    assert checks == {"send_time_metric_is_finite": True, "content_metric_is_finite": True}
    client = tracking.client(mlflow_home)
    for name in (SEND_TIME, CONTENT):
        assert tracking.champion_version(client, name) == "1"
        assert tracking.champion_version(client, name, tracking.CHALLENGER) == "1"
        run = client.get_run(client.get_model_version(name, "1").run_id)
        assert run.data.params["source"] == "dagster"
        assert "train_seconds" in run.data.metrics
    assert (mlflow_home / "mlflow" / "mlflow.db").exists()
    assert list((mlflow_home / "mlflow" / "artifacts").iterdir())
    summary = result.output_for_node("send_time_model")
    assert summary["promoted"] is True and summary["version"] == "1"


def test_promotion_only_when_the_challenger_is_better(mlflow_home, sim_log):
    # A model trained on inverted outcomes ranks held-out carts worse than chance.
    train, heldout = training.split(sim_log)
    inverted = train.with_columns(recovered=~train["recovered"], clicked=~train["clicked"])
    poor = training.fit("send_time", inverted)
    good = training.fit("send_time", train)
    poor_metrics = training.evaluate("send_time", poor, heldout)
    good_metrics = training.evaluate("send_time", good, heldout)
    assert good_metrics["heldout_auc_recovery"] > poor_metrics["heldout_auc_recovery"]

    first = training.register(
        "send_time", poor, train, heldout, poor_metrics, source="test", home=mlflow_home
    )
    assert (first.version, first.promoted) == ("1", True)  # no champion yet
    champion = scoring.Champion(SEND_TIME, check_seconds=0)
    assert champion.get()[1] == "1"

    better = training.register(
        "send_time", good, train, heldout, good_metrics, source="test", home=mlflow_home
    )
    assert (better.version, better.promoted, better.champion_version) == ("2", True, "1")
    assert better.champion_value == pytest.approx(poor_metrics["heldout_auc_recovery"])
    assert champion.get()[1] == "2"  # the process follows the alias

    worse = training.register(
        "send_time", poor, train, heldout, poor_metrics, source="test", home=mlflow_home
    )
    assert (worse.version, worse.promoted) == ("3", False)
    client = tracking.client(mlflow_home)
    assert tracking.champion_version(client, SEND_TIME) == "2"
    assert tracking.champion_version(client, SEND_TIME, tracking.CHALLENGER) == "3"
    assert client.get_model_version(SEND_TIME, "3").tags["promoted"] == "false"
    assert champion.get()[1] == "2"
    listed = {r["alias"]: r for r in overview.registry_overview(mlflow_home)}
    assert (listed["champion"]["version"], listed["challenger"]["version"]) == ("2", "3")
    assert listed["champion"]["value"] == pytest.approx(good_metrics["heldout_auc_recovery"])


# --- delivery -----------------------------------------------------------------------------


def test_delivery_sends_at_the_champions_time_and_records_its_version(
    db, org, mlflow_home, sim_log
):
    registered = _register("send_time", sim_log, mlflow_home, explore=0.0)
    step = {**EMAIL_STEP, "smart_send_time": True, "smart_control_share": 0}
    _campaign(db, org.org_id, [step])
    cart = _cart(db, org.org_id)
    row = _enroll(db, org.org_id, cart)

    assert row["send_time_decision"] == "model"
    assert (row["send_time_model"], row["send_time_model_version"]) == (
        SEND_TIME,
        registered.version,
    )
    assert row["send_time_propensity"] == 1.0 and row["send_time_explored"] is False
    # The instant the champion itself rates best among the window's hours (email: quiet
    # hours do not hold it by default, so every hour is allowed).
    model = tracking.load(SEND_TIME)
    fixed = cart["abandoned_at"] + timedelta(seconds=3600)
    candidates = int(fixed.timestamp()) + np.arange(25) * 3600
    features = smart.model_row(cart, "email", None, "UTC", 0.0)
    _, q = model.predict(model.candidate_rows(features, candidates))
    assert row["due_at"] == datetime.fromtimestamp(int(candidates[np.argmax(q)]), UTC)
    assert row["model_scoring"]["fixed_due_at"] == fixed.isoformat()
    assert row["model_scoring"]["candidates"] == 25


def test_exploration_records_a_propensity_below_one(db, org, mlflow_home, sim_log):
    _register("send_time", sim_log, mlflow_home, explore=1.0)
    _campaign(db, org.org_id, [{**EMAIL_STEP, "smart_send_time": True, "smart_control_share": 0}])
    row = _enroll(db, org.org_id, _cart(db, org.org_id))
    assert row["send_time_decision"] == "explore" and row["send_time_explored"] is True
    assert 0 < row["send_time_propensity"] < 1


def test_without_a_model_the_fixed_delay_is_used(db, org, mlflow_home):
    _campaign(db, org.org_id, [{**EMAIL_STEP, "smart_send_time": True, "smart_control_share": 0}])
    cart = _cart(db, org.org_id)
    row = _enroll(db, org.org_id, cart)
    assert row["due_at"] == cart["abandoned_at"] + timedelta(seconds=3600)
    assert row["send_time_decision"] == "fallback:no_model"
    assert row["send_time_model_version"] is None


def test_a_control_share_keeps_the_fixed_delay(db, org, mlflow_home, sim_log):
    _register("send_time", sim_log, mlflow_home)
    _campaign(db, org.org_id, [{**EMAIL_STEP, "smart_send_time": True, "smart_control_share": 0.5}])
    decisions = []
    for _ in range(12):
        cart = _cart(db, org.org_id)
        row = _enroll(db, org.org_id, cart)
        decisions.append(row["send_time_decision"])
        if row["send_time_decision"] == "control":
            assert row["due_at"] == cart["abandoned_at"] + timedelta(seconds=3600)
    assert "control" in decisions and {"model", "explore"} & set(decisions)
    with db.tenant(org.org_id) as conn:
        shares = overview.scored_shares(conn, org.org_id)
    assert {r["decision"] for r in shares} == set(decisions)
    assert sum(r["messages"] for r in shares) == 12
    assert sum(r["share"] for r in shares) == pytest.approx(1.0)
    assert {r["version"] for r in shares if r["decision"] != "control"} == {"1"}


def test_a_broken_model_file_falls_back_instead_of_failing(db, org, mlflow_home, sim_log):
    _register("send_time", sim_log, mlflow_home)
    pickles = list((mlflow_home / "mlflow" / "artifacts").rglob("python_model.pkl"))
    assert pickles
    for path in pickles:
        path.write_bytes(b"not a pickle")
    _campaign(db, org.org_id, [{**EMAIL_STEP, "smart_send_time": True, "smart_control_share": 0}])
    cart = _cart(db, org.org_id)
    row = _enroll(db, org.org_id, cart)
    assert row["status"] == "scheduled"
    assert row["due_at"] == cart["abandoned_at"] + timedelta(seconds=3600)
    assert row["send_time_decision"].startswith("fallback:load_failed")
    assert row["send_time_model_version"] == "1"


def test_smart_discount_withholds_the_code_when_it_does_not_pay(db, org, mlflow_home, sim_log):
    registered = _register("content", sim_log, mlflow_home)
    step = {
        **EMAIL_STEP,
        "template": "cart_reminder_discount",
        "discount": {"type": "percentage", "value": 15},
        "smart_discount": True,
        "smart_control_share": 0,
        # A margin barely above the discount: no predicted uplift pays for the code.
        "smart_discount_margin": 0.16,
    }
    SequenceStep.model_validate(step)
    _campaign(db, org.org_id, [step])
    row = _enroll(db, org.org_id, _cart(db, org.org_id))
    assert (row["discount_decision"], row["discount_offered"]) == ("model", False)
    assert row["content_model_version"] == registered.version
    assert row["template"] == "cart_reminder"  # the built-in reminder without a code
    scored = row["model_scoring"]
    assert scored["discount_rate"] == 0.15
    assert scored["uplift"] == pytest.approx(
        scored["p_recovery_code"] - scored["p_recovery_no_code"]
    )


def test_a_message_without_the_code_is_sent_without_creating_one(
    db, org, settings, mlflow_home, sim_log
):
    from cartrecovery.runtime import Runtime
    from cartrecovery.settings import with_overrides
    from delivery import jobs

    _register("content", sim_log, mlflow_home)
    step = {
        **EMAIL_STEP,
        "template": "cart_reminder_discount",
        "discount": {"type": "percentage", "value": 15},
        "smart_discount": True,
        "smart_control_share": 0,
        "smart_discount_margin": 0.16,
    }
    _campaign(db, org.org_id, [step])
    cart = _cart(db, org.org_id)
    row = _enroll(db, org.org_id, cart)
    assert row["discount_offered"] is False
    with db.tenant(org.org_id) as conn:
        record_consent(
            conn,
            org.org_id,
            channel="email",
            address=cart["email"],
            status="granted",
            source="checkout",
        )
    with db.system() as conn:
        conn.execute(
            "UPDATE app.outbox SET status = 'enqueued', due_at = now() WHERE message_id = %s",
            (row["message_id"],),
        )
    jobs.configure(Runtime(with_overrides(settings, sendgrid_api_key=None)))
    try:
        assert jobs.send_message(str(org.org_id), str(row["message_id"])) == "sent"
    finally:
        jobs.configure(None)
    with db.system() as conn:
        coupons = conn.execute(
            "SELECT count(*) AS n FROM app.coupons WHERE message_id = %s", (row["message_id"],)
        ).fetchone()["n"]
        body = conn.execute(
            "SELECT body_html FROM app.local_mailbox WHERE message_id = %s", (row["message_id"],)
        ).fetchone()["body_html"]
    assert coupons == 0
    assert "SAVE-" not in body


def test_smart_discount_needs_a_priced_discount():
    with pytest.raises(ValidationError, match="smart_discount"):
        SequenceStep.model_validate({**EMAIL_STEP, "smart_discount": True})
    with pytest.raises(ValidationError, match="smart_discount"):
        SequenceStep.model_validate(
            {**EMAIL_STEP, "smart_discount": True, "discount": {"type": "free_shipping"}}
        )
    with pytest.raises(ValidationError):
        SequenceStep.model_validate({**EMAIL_STEP, "smart_control_share": 0.9})


# --- quiet hours by channel ---------------------------------------------------------------


def test_quiet_hours_hold_sms_and_not_email_by_default(db, org):
    phone, email = "+12125550123", "night-owl@example.com"
    with db.tenant(org.org_id) as conn:
        for channel, address in (("sms", phone), ("email", email)):
            record_consent(
                conn,
                org.org_id,
                channel=channel,
                address=address,
                status="granted",
                source="checkout",
            )
    with db.system() as conn:
        cart = conn.execute(
            "INSERT INTO app.carts (org_id, platform, external_id, email, phone, total_price, "
            "currency, status, abandoned_at, last_activity_at) VALUES (%s, 'custom', %s, %s, %s,"
            " 42, 'USD', 'abandoned', %s, %s) RETURNING *",
            (
                org.org_id,
                uuid.uuid4().hex,
                email,
                phone,
                datetime(2026, 1, 16, 7, 0, tzinfo=UTC),
                datetime(2026, 1, 16, 7, 0, tzinfo=UTC),
            ),
        ).fetchone()
    at = datetime(2026, 1, 16, 8, 0, tzinfo=UTC)  # 03:00 in New York
    with db.tenant(org.org_id) as conn:
        sms = gate.check(
            conn,
            {
                "org_id": org.org_id,
                "message_id": uuid.uuid4(),
                "cart_id": cart["cart_id"],
                "channel": "sms",
                "recipient": phone,
            },
            cart,
            now=at,
        )
        mail = gate.check(
            conn,
            {
                "org_id": org.org_id,
                "message_id": uuid.uuid4(),
                "cart_id": cart["cart_id"],
                "channel": "email",
                "recipient": email,
            },
            cart,
            now=at,
        )
        assert (sms.status, sms.reason) == ("deferred", "deferred:quiet_hours")
        assert sms.due_at == datetime(2026, 1, 16, 13, 0, tzinfo=UTC)  # 08:00 New York
        assert mail is None
        # An org that lists email holds it too.
        update_settings(
            conn,
            org.org_id,
            {"quiet_hours": {"start": "08:00", "end": "21:00", "channels": ["email", "sms"]}},
        )
        held = gate.check(
            conn,
            {
                "org_id": org.org_id,
                "message_id": uuid.uuid4(),
                "cart_id": cart["cart_id"],
                "channel": "email",
                "recipient": email,
            },
            cart,
            now=at,
        )
        assert held.reason == "deferred:quiet_hours"


def test_quiet_hours_channels_are_validated(client, org):
    bad = client.patch(
        "/api/v1/settings", headers=org.headers, json={"quiet_hours": {"channels": ["fax"]}}
    )
    assert bad.status_code in (400, 422) and "error" in bad.get_json()
    ok = client.patch(
        "/api/v1/settings", headers=org.headers, json={"quiet_hours": {"channels": ["sms"]}}
    )
    assert ok.status_code == 200 and ok.get_json()["quiet_hours"]["channels"] == ["sms"]


# --- against the truth --------------------------------------------------------------------


def test_send_time_model_beats_the_fixed_delay_on_the_truth():
    pop = truth.population(1500, seed=11)
    log = truth.simulate_messages(pop, truth.carts(pop, 9000, seed=12), seed=13)
    model = SendTimeModel.train(log)
    value = evaluation.send_time_value(model, pop, truth.carts(pop, 1500, seed=14))
    assert value["recovery_model"] > value["recovery_fixed"]
    assert value["recovery_oracle"] >= value["recovery_model"]


def test_one_cart_scoring_equals_the_batch_features_and_models(sim_log):
    """Delivery's per-message path (FeatureSpace.cart_columns, folded linear models) gives
    what the one feature definition and the fitted pipelines give for the same rows."""
    from ml.content import ContentModel
    from ml.features import CONTENT_FEATURES, SEND_TIME_FEATURES, UPLIFT_FEATURES, rows_of

    train, heldout = training.split(sim_log)
    send, content = SendTimeModel.train(train), ContentModel.train(train)
    rows = {
        k: np.array(v, dtype=object if v.dtype.kind in "OU" else v.dtype)
        for k, v in rows_of(heldout.head(60)).items()
    }
    # Unknown customer, store, device and zone; a window across a daylight-saving change
    # (Europe/Berlin, 2026-10-25 01:00 UTC; abandoned the evening before).
    rows["customer_key"][0], rows["store_key"][1], rows["device"][2] = "new", "new", "tablet"
    rows["timezone"][3], rows["abandoned_at"][3] = "Europe/Berlin", 1792872000
    rows["timezone"][4] = "Nowhere/Unknown"
    for i in range(len(rows["sent_at"])):
        cart = {k: v[i] for k, v in rows.items() if k != "sent_at"}
        candidates = truth.window_instants(int(cart["abandoned_at"]))
        batch = send.candidate_rows(cart, candidates)
        expected = send.space.columns(batch)
        got = send.space.cart_columns(cart, candidates)
        names = {*SEND_TIME_FEATURES, *CONTENT_FEATURES, *UPLIFT_FEATURES, "customer_code_evidence"}
        for name in names:
            assert np.allclose(np.broadcast_to(got[name], len(candidates)), expected[name]), name
        assert np.allclose(send.recovery_at(cart, candidates), send.predict(batch)[1])
        one = {k: np.asarray([v]) for k, v in cart.items()} | {"sent_at": candidates[:1]}
        p_code, p_none = content.predict(one)
        assert np.allclose(content.predict_one(cart, int(candidates[0])), (p_code[0], p_none[0]))


def test_code_evidence_reads_conversions_after_clicks_with_and_without_a_code():
    from ml.features import code_evidence

    conversion, strength = (0.5, 0.4), 5.0
    # Per customer: clicks, clicks on coded messages, recoveries with a code, without.
    evidence = code_evidence(
        np.array([0, 2, 2, 2, 6]),
        np.array([0, 1, 1, 0, 3]),
        np.array([0, 1, 0, 0, 3]),
        np.array([0, 0, 1, 2, 0]),
        conversion,
        strength,
    )
    assert evidence[0] == 0  # no history: everyone's
    assert evidence[1] > 0  # bought after the coded click, not after the plain one
    assert evidence[2] < 0 and evidence[3] < 0  # bought without a code
    assert evidence[4] > evidence[1]  # the same story told three times weighs more
    assert np.all(code_evidence(np.ones(2), np.ones(2), np.ones(2), np.zeros(2), (0, 0.4), 5) == 0)


def test_code_evidence_is_higher_for_customers_the_truth_makes_sensitive():
    from ml.features import FeatureSpace

    pop = truth.population(3000, seed=21)
    log = truth.simulate_messages(pop, truth.carts(pop, 18000, seed=22), seed=23)
    space = FeatureSpace.fit(log)
    keys = np.array(list(space.customer_index))
    customers = np.array([int(k[1:]) for k in keys])
    totals = space.customer_totals
    evidence = space._code_evidence(
        totals[:, 1], space.customer_code_clicks, totals[:, 4], totals[:, 5]
    )
    sensitive = pop.discount_sensitivity[customers] > 0.5
    assert evidence[sensitive].mean() > evidence[~sensitive].mean()


def test_a_content_model_saved_before_the_code_evidence_still_scores(db, org, mlflow_home, sim_log):
    """A registered content model whose feature space predates the customer's code evidence
    (no clicks-on-coded-messages table) loads and scores as it did: evidence 0."""
    from ml.content import DESIGN, _matrix, _proba
    from ml.features import rows_of

    train, heldout = training.split(sim_log)
    fitted = training.fit("content", train)
    for name in ("customer_code_clicks", "code_conversion", "conversion_strength"):
        fitted.space.__dict__.pop(name, None)  # as unpickled from an older version
    rows = rows_of(heldout)
    n = heldout.height
    columns = fitted.space.columns(rows)
    assert not columns["customer_code_evidence"].any()
    p_code, p_none = fitted.predict(rows)
    assert np.allclose(p_code, _proba(fitted.outcome, _matrix(columns, np.ones(n))))
    assert len(DESIGN) == _matrix(columns, np.ones(n)).shape[1]
    metrics = training.evaluate("content", fitted, heldout)
    training.register("content", fitted, train, heldout, metrics, source="test", home=mlflow_home)
    step = {
        **EMAIL_STEP,
        "template": "cart_reminder_discount",
        "discount": {"type": "percentage", "value": 15},
        "smart_discount": True,
        "smart_control_share": 0,
    }
    _campaign(db, org.org_id, [step])
    row = _enroll(db, org.org_id, _cart(db, org.org_id))
    assert row["discount_decision"] == "model"
    assert row["discount_offered"] in (True, False)


def test_a_content_model_saved_before_the_log_value_terms_scores_with_its_own_inputs(sim_log):
    """A content model pickled when the code acted through the device and the linear cart
    value (no ``design`` of its own) scores with those inputs, in batch and per message."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    from ml.content import DESIGN, DESIGN_LINEAR_VALUE, ContentModel, _matrix, _proba
    from ml.features import FeatureSpace, rows_of

    train, heldout = training.split(sim_log)
    space = FeatureSpace.fit(train)
    rows = rows_of(train)
    columns = space.columns(rows, history_only=True)
    code = (rows["discount_rate"] > 0).astype(float)
    old = make_pipeline(StandardScaler(), LogisticRegression(max_iter=1000))
    old.fit(_matrix(columns, code, DESIGN_LINEAR_VALUE), rows["recovered"].astype(int))
    model = ContentModel(space, old)
    del model.__dict__["design"]  # as unpickled from then
    assert model.names == DESIGN_LINEAR_VALUE != DESIGN
    held = rows_of(heldout.head(40))
    n = 40
    held_columns = space.columns(held)
    p_code, p_none = model.predict(held)
    assert np.allclose(p_none, _proba(old, _matrix(held_columns, np.zeros(n), DESIGN_LINEAR_VALUE)))
    for i in (0, 17, 39):
        cart = {k: v[i] for k, v in held.items() if k != "sent_at"}
        assert np.allclose(model.predict_one(cart, int(held["sent_at"][i])), (p_code[i], p_none[i]))


def test_qini_ranks_true_uplift_above_chance():
    pop = truth.population(1000, seed=5)
    cart_set = truth.carts(pop, 8000, seed=6)
    log = truth.simulate_messages(pop, cart_set, seed=7).sort("cart_key")
    order = np.argsort(np.char.add("k", np.arange(cart_set.size).astype(str)))
    kwargs = dict(abandoned_at=cart_set.abandoned_at[order], cart_value=cart_set.cart_value[order])
    sent = log["sent_at"].to_numpy()
    args = (pop, cart_set.customer[order], sent, cart_set.channel[order])
    uplift = (
        truth.true_probabilities(*args, np.full(cart_set.size, 0.15), **kwargs)[1]
        - truth.true_probabilities(*args, np.zeros(cart_set.size), **kwargs)[1]
    )
    treated, outcome = log["discount_offered"].to_numpy(), log["recovered"].to_numpy()
    assert evaluation.qini_coefficient(uplift, treated, outcome)[0] > 0
    assert (
        evaluation.qini_coefficient(uplift, treated, outcome)[0]
        > evaluation.qini_coefficient(-uplift, treated, outcome)[0]
    )


def test_off_policy_estimates_on_logged_exploration(sim_log):
    train, heldout = training.split(sim_log)
    model = SendTimeModel.train(train)
    estimate = evaluation.off_policy(model, heldout)
    assert estimate["rows"] == heldout.height
    # The fixed delay is what the logging policy did 90% of the time.
    assert estimate["matches_fixed"] > 0.85 * heldout.height
    assert 0 <= estimate["ips_fixed"] <= 1 and np.isfinite(estimate["dr_model"])


# --- command line -------------------------------------------------------------------------


def test_ml_train_and_evaluate_commands(mlflow_home):
    from cli.main import main

    runner = CliRunner()
    trained = runner.invoke(
        main, ["ml", "train", "--source", "simulated", "--customers", "300", "--model", "all"]
    )
    assert trained.exit_code == 0, trained.output
    assert SEND_TIME in trained.stdout and CONTENT in trained.stdout
    assert "promoted" in trained.stdout.splitlines()[0]
    evaluated = runner.invoke(
        main,
        ["ml", "evaluate", "--json", "--customers", "300", "--carts", "300", "--no-off-policy"],
    )
    assert evaluated.exit_code == 0, evaluated.output
    report = json.loads(evaluated.stdout)
    assert report["send_time"]["champion_version"] == "1"
    truth_value = report["send_time"]["simulated_truth"]
    assert {"recovery_fixed", "recovery_model", "relative_gain"} <= set(truth_value)
    assert {"margin_always", "margin_model"} <= set(report["content"]["simulated_truth"])

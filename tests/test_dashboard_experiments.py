"""The Experiments and Models pages, run with AppTest: they render, their numbers equal the
API's (``GET /api/v1/experiments/{id}/results``) and ``ml.overview``'s for the same data, a
viewer sees no edit controls, another org sees nothing of this one, and a signed-out session
sees only the sign-in form.
"""

from __future__ import annotations

import csv
import io
import uuid

import pytest
from test_experiments import AB_STEP, STEP, make_campaign, seed_arm

from cartrecovery import stats
from dashboard import data, exports
from dashboard.experiments import effect, export_rows
from ml import overview, scoring, training

EXPERIMENTS = "views/experiments.py"
MODELS = "views/models.py"


def _page(at, page: str):
    return at.switch_page(page).run(timeout=60)


def _events(db, org_id, campaign_id, variant, event_type, count) -> None:
    """A ``event_type`` callback on the first ``count`` sent messages of ``variant``."""
    with db.system() as conn:
        conn.execute(
            "INSERT INTO app.message_events (org_id, event_key, message_id, cart_id, event_type,"
            " occurred_at)"
            " SELECT org_id, %(type)s || ':' || message_id, message_id, cart_id, %(type)s, now()"
            " FROM (SELECT * FROM app.outbox WHERE org_id = %(org)s AND campaign_id = %(c)s"
            " AND variant = %(v)s ORDER BY message_id LIMIT %(n)s) o",
            {"type": event_type, "org": org_id, "c": campaign_id, "v": variant, "n": count},
        )


@pytest.fixture()
def ab_test(db, make_org):
    """An org whose campaign's step 1 splits 400 messages between variants a and b: a
    recovers 20 and b 44, a was clicked 40 times and b 70; delivered and open callbacks on
    some of each."""
    org = make_org("dash-exp")
    campaign_id = make_campaign(db, org.org_id, [AB_STEP])
    seed_arm(db, org.org_id, campaign_id, "a", 400, conversions=20, clicks=40)
    seed_arm(db, org.org_id, campaign_id, "b", 400, conversions=44, clicks=70, eur=4)
    _events(db, org.org_id, campaign_id, "a", "delivered", 390)
    _events(db, org.org_id, campaign_id, "b", "delivered", 380)
    _events(db, org.org_id, campaign_id, "a", "open", 150)
    _events(db, org.org_id, campaign_id, "b", "open", 170)
    org.campaign_id = campaign_id
    return org


def _frames(at, column: str) -> list:
    return [d.value for d in at.dataframe if column in d.value.columns]


def _frame(at, column: str):
    """The one table of the page with ``column``."""
    (found,) = _frames(at, column)
    return found


def test_the_experiments_page_shows_the_apis_numbers(dashboard, client, ab_test):
    experiment_id = f"{ab_test.campaign_id}:step:1"
    api = client.get(f"/api/v1/experiments/{experiment_id}/results", headers=ab_test.headers)
    assert api.status_code == 200
    api = api.get_json()

    at = _page(dashboard(ab_test.org_id), EXPERIMENTS)
    assert not at.exception
    assert at.selectbox(key="exp_choice").value == experiment_id

    funnel = _frame(at, "recovery rate")
    by_variant = {r["variant"]: r for r in funnel.to_dict("records")}
    for v in api["variations"]:
        row = by_variant[v["name"]]
        assert row["sent"] == v["units"] == 400
        assert row["clicked"] == v["metrics"]["click_rate"]["sum"]
        assert row["recovered"] == v["metrics"]["recovery_rate"]["sum"]
    # Counted here from what the fixture wrote.
    assert {k: (r["delivered"], r["opened"]) for k, r in by_variant.items()} == {
        "a": (390, 150),
        "b": (380, 170),
    }
    assert (by_variant["a"]["recovered"], by_variant["b"]["recovered"]) == (20, 44)

    lift = _frame(at, "status").to_dict("records")
    comparison = next(
        c for c in api["comparisons"] if c["variation"] == "b" and c["metric"] == "recovery_rate"
    )
    assert [r["variant"] for r in lift] == ["b"]
    assert lift[0]["lift"] == effect(comparison["expected"], True) == "+120.0%"
    assert lift[0]["interval"] == (
        f"{effect(comparison['ci'][0], True)} to {effect(comparison['ci'][1], True)}"
    )
    assert lift[0]["p-value"] == f"{comparison['p_value']:.3g}"
    # The sequential engine reports no chance to win: the page's is the bayesian engine's
    # on the same counts.
    bayes = stats.compare(
        "proportion",
        stats.ArmStats(400, 20),
        stats.ArmStats(400, 44),
        stats.CompareSettings(engine="bayesian"),
    )
    assert lift[0]["chance to win"] == f"{bayes.chance_to_win:.1%}"
    assert lift[0]["status"].startswith("continue")  # 400 of the 2,000 units per arm

    captions = " ".join(c.value for c in at.caption)
    assert api["method"] in captions
    assert api["reason"] in " ".join(i.value for i in at.info)
    assert not at.warning  # no SRM
    assert len(at.get("plotly_chart")) == 2  # funnel and lift interval

    # The CSV download holds the page's table.
    button = at.get("download_button")[0]
    assert button.proto.label == "Download CSV"
    rows = list(csv.DictReader(io.StringIO(_csv(ab_test.org_id, experiment_id))))
    assert {(r["variant"], r["sent"], r["recovered"]) for r in rows} == {
        ("a", "400", "20"),
        ("b", "400", "44"),
    }


def _csv(org_id, experiment_id) -> str:
    found = data.experiment.__wrapped__(data.database_url(), str(org_id), experiment_id)
    return exports.encode(
        export_rows(found["results"], found["funnel"], found["summary"]), "csv"
    ).decode()


def test_the_pages_analysis_options_ask_what_the_api_answers(dashboard, client, ab_test):
    """A non-default query (Benjamini–Hochberg, absolute effects, a practical effect) chosen
    on the page gives the API's numbers for the same query string."""
    experiment_id = f"{ab_test.campaign_id}:step:1"
    api = client.get(
        f"/api/v1/experiments/{experiment_id}/results"
        "?correction=bh&difference_type=absolute&practical_effect=0.5",
        headers=ab_test.headers,
    )
    assert api.status_code == 200
    api = api.get_json()
    assert api["difference_type"] == "absolute"
    assert "Benjamini–Hochberg" in api["method"]

    at = _page(dashboard(ab_test.org_id, role="viewer"), EXPERIMENTS)  # any role may ask
    assert at.selectbox(key="exp_correction").value == "holm"
    assert at.selectbox(key="exp_difference").value == "relative"
    at.selectbox(key="exp_correction").set_value("bh")
    at.selectbox(key="exp_difference").set_value("absolute")
    at.toggle(key="exp_practical_on").set_value(True).run(timeout=60)
    at.number_input(key="exp_practical_absolute").set_value(0.5).run(timeout=60)
    assert not at.exception

    assert api["method"] in " ".join(c.value for c in at.caption)
    lift = _frame(at, "status").to_dict("records")
    comparison = next(
        c for c in api["comparisons"] if c["variation"] == "b" and c["metric"] == "recovery_rate"
    )
    assert lift[0]["lift"] == effect(comparison["expected"], False)
    assert lift[0]["interval"] == (
        f"{effect(comparison['ci'][0], False)} to {effect(comparison['ci'][1], False)}"
    )
    assert lift[0]["adjusted p-value"] == f"{comparison['adjusted_p_value']:.3g}"
    boxes = [*at.info, *at.success, *at.error]
    assert api["reason"] in " ".join(b.value for b in boxes)
    found = data.experiment.__wrapped__(
        data.database_url(),
        str(ab_test.org_id),
        experiment_id,
        correction="bh",
        difference_type="absolute",
        practical_effect=0.5,
    )
    assert found["results"] == api


def test_a_skewed_split_warns_and_the_decision_says_check_setup(dashboard, db, client, make_org):
    org = make_org("dash-exp-srm")
    campaign_id = make_campaign(db, org.org_id, [AB_STEP])
    seed_arm(db, org.org_id, campaign_id, "a", 3000, conversions=150)
    seed_arm(db, org.org_id, campaign_id, "b", 2200, conversions=300)
    api = client.get(
        f"/api/v1/experiments/{campaign_id}:step:1/results", headers=org.headers
    ).get_json()
    assert api["decision"] == "check_setup"

    at = _page(dashboard(org.org_id), EXPERIMENTS)
    assert not at.exception
    assert "Sample ratio mismatch" in at.warning[0].value
    assert f"{api['srm']['p_value']:.2g}" in at.warning[0].value
    assert api["reason"] in at.error[0].value


def test_a_holdout_experiment_shows_carts_and_recoveries(dashboard, db, make_org, client):
    org = make_org("dash-exp-holdout")
    campaign_id = make_campaign(db, org.org_id, [STEP], {"holdout_percent": 50})
    seed_arm(db, org.org_id, campaign_id, "messaged", 60, conversions=9)
    seed_arm(db, org.org_id, campaign_id, "held", 50, conversions=4)
    with db.system() as conn:  # the second group was held out, not messaged
        conn.execute(
            "UPDATE app.outbox SET status = 'held_out', variant = NULL, sent_at = NULL"
            " WHERE org_id = %s AND variant = 'held'",
            (org.org_id,),
        )
    api = client.get(
        f"/api/v1/experiments/{campaign_id}:holdout/results", headers=org.headers
    ).get_json()
    at = _page(dashboard(org.org_id), EXPERIMENTS)
    assert not at.exception
    assert at.selectbox(key="exp_choice").value == f"{campaign_id}:holdout"
    shown = {r["variant"]: r for r in _frame(at, "recovery rate").to_dict("records")}
    for v in api["variations"]:
        assert shown[v["name"]]["carts"] == v["units"]
        assert shown[v["name"]]["recovered"] == v["metrics"]["recovery_rate"]["sum"]
    assert (shown["holdout"]["carts"], shown["messaged"]["carts"]) == (50, 60)


def test_a_viewer_reads_experiments_without_edit_controls(dashboard, ab_test):
    at = _page(dashboard(ab_test.org_id, role="viewer"), EXPERIMENTS)
    assert not at.exception
    assert [b.label for b in at.button] == ["Sign out"]
    assert not at.text_input and not at.number_input
    assert _frame(at, "recovery rate").shape[0] == 2


def test_another_org_sees_no_experiments_and_signed_out_sees_only_sign_in(
    dashboard, app_test, ab_test, make_org
):
    other = make_org("dash-exp-other")
    at = dashboard(other.org_id)
    with pytest.raises(Exception):  # noqa: B017, PT011 (AppTest raises for unknown pages)
        at.switch_page(EXPERIMENTS).run(timeout=60)
    assert data.experiments.__wrapped__(data.database_url(), str(other.org_id)) == []

    # Signed out, asking for the page runs the sign-in form only.
    at = app_test(ab_test.org_id).run(timeout=30)
    at.switch_page(EXPERIMENTS).run(timeout=30)
    assert not at.exception
    assert [t.value for t in at.title] == ["Sign in"]
    assert not at.dataframe and not at.get("plotly_chart") and not at.selectbox


# --- Models -----------------------------------------------------------------------------------


@pytest.fixture()
def mlflow_home(tmp_path, monkeypatch):
    """A temporary MLflow store (SQLite under CARTRECOVERY_HOME); the dashboard's registry
    reader forgotten, so it reads this store."""
    monkeypatch.setenv("CARTRECOVERY_HOME", str(tmp_path))
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    scoring.reset()
    data._registry_reader.clear()  # noqa: SLF001
    yield tmp_path
    data._registry_reader.clear()  # noqa: SLF001
    scoring.reset()


def _register(kind: str, log, home, *, invert: bool = False):
    train, heldout = training.split(log)
    if invert:  # worse than chance on held-out carts: registered as challenger only
        train = train.with_columns(recovered=~train["recovered"], clicked=~train["clicked"])
    fitted = training.fit(kind, train)
    metrics = training.evaluate(kind, fitted, heldout)
    return training.register(kind, fitted, train, heldout, metrics, source="test", home=home)


def _scored(db, org_id, decisions: list[tuple[str, str | None]]) -> None:
    """One cart and sent message per (send-time decision, model version) of a campaign whose
    step has smart send time on, as delivery records them (sent: a scheduled row would be
    enqueued by other tests' scheduler ticks, which serve every org)."""
    campaign_id = make_campaign(db, org_id, [{**STEP, "smart_send_time": True}])
    with db.system() as conn:
        for decision, version in decisions:
            cart_id = conn.execute(
                "INSERT INTO app.carts (org_id, platform, external_id, email, currency,"
                " total_price, status, last_activity_at, abandoned_at) VALUES (%s, 'api', %s,"
                " 'm@example.com', 'USD', 50, 'abandoned', now(), now()) RETURNING cart_id",
                (org_id, uuid.uuid4().hex),
            ).fetchone()["cart_id"]
            conn.execute(
                "INSERT INTO app.outbox (org_id, cart_id, campaign_id, step_index, channel,"
                " recipient, due_at, status, sent_at, send_time_decision,"
                " send_time_model_version) VALUES (%s, %s, %s, 0, 'email', 'm@example.com',"
                " now(), 'sent', now(), %s, %s)",
                (org_id, cart_id, campaign_id, decision, version),
            )


def test_the_models_page_shows_the_registry_and_the_orgs_scored_shares(
    dashboard, db, make_org, mlflow_home
):
    log = training.simulated_log(customers=300, carts_per_customer=4, seed=7)
    _register("send_time", log, mlflow_home)
    second = _register("send_time", log, mlflow_home, invert=True)
    assert (second.version, second.promoted) == ("2", False)
    org, other = make_org("dash-models"), make_org("dash-models-other")
    _scored(db, org.org_id, [("model", "1")] * 3 + [("control", None)])

    at = _page(dashboard(org.org_id), MODELS)
    assert not at.exception
    registry = _frame(at, "alias").to_dict("records")
    expected = overview.registry_overview(mlflow_home)
    assert [(r["alias"], r["version"], r["value"]) for r in registry] == [
        (r["alias"], r["version"], round(r["value"], 4)) for r in expected
    ]
    assert [(r["alias"], r["version"]) for r in registry] == [
        ("champion", "1"),
        ("challenger", "2"),
    ]
    shares = _frame(at, "decision").to_dict("records")
    with db.tenant(org.org_id) as conn:
        direct = overview.scored_shares(conn, org.org_id)
    assert [(r["messages"], r["share"]) for r in shares] == [
        (r["messages"], f"{r['share']:.1%}") for r in direct
    ]
    assert [(r["messages"], r["share"]) for r in shares] == [(3, "75.0%"), (1, "25.0%")]

    # The registry serves every org; the other org's messages were never scored.
    at = _page(dashboard(other.org_id, role="viewer"), MODELS)
    assert not at.exception
    assert [b.label for b in at.button] == ["Sign out"]
    assert len(_frame(at, "alias")) == 2
    assert not _frames(at, "decision")
    assert any("No message of this organization" in c.value for c in at.caption)


def test_without_models_the_page_shows_only_when_messages_were_scored(
    dashboard, db, make_org, mlflow_home
):
    org = make_org("dash-no-models")
    at = dashboard(org.org_id)
    assert data.model_registry(wait=True) == []
    at.run(timeout=30)
    with pytest.raises(Exception):  # noqa: B017, PT011 (AppTest raises for unknown pages)
        at.switch_page(MODELS).run(timeout=60)

    # A smart step without a model: its messages fall back to the fixed rule, recorded.
    scored = make_org("dash-fallback")
    _scored(db, scored.org_id, [("fallback", None)] * 2)
    at = _page(dashboard(scored.org_id), MODELS)
    assert not at.exception
    assert any("No model is registered" in c.value for c in at.caption)
    assert [(r["messages"], r["share"]) for r in _frame(at, "decision").to_dict("records")] == [
        (2, "100.0%")
    ]


def test_the_exports_page_offers_each_experiments_table(dashboard, ab_test):
    at = _page(dashboard(ab_test.org_id), "views/exports.py")
    options = at.selectbox(key="export_dataset").options
    (listed,) = data.experiments.__wrapped__(data.database_url(), str(ab_test.org_id))
    assert [o for o in options if o.startswith("Experiments:")] == [
        f"Experiments: {listed['label']}"
    ]
    key = f"experiment_{ab_test.campaign_id}_step_1"
    at.selectbox(key="export_dataset").set_value(key).run(timeout=60)
    assert not at.exception
    shown = at.dataframe[0].value
    assert sorted(zip(shown["variant"], shown["sent"], shown["recovered"], strict=True)) == [
        ("a", 400, 20),
        ("b", 400, 44),
    ]


def _view(engine: str, a: tuple[int, int], b: tuple[int, int]) -> dict:
    """The parts of a result view ``summary`` reads, from the engine on two arms."""
    from cartrecovery.experiment_results import HOLDOUT_METRICS

    arms = [("a", *a), ("b", *b)]
    variations = [
        stats.Variation(
            name,
            1.0,
            n,
            {
                "recovery_rate": stats.ArmStats(n, converted),
                "revenue_per_recipient": stats.ArmStats(n, 0.0, 0.0),
            },
        )
        for name, n, converted in arms
    ]
    analysis = stats.analyze_experiment(
        variations, HOLDOUT_METRICS, stats.CompareSettings(engine=engine)
    )
    return {
        "engine": engine,
        "control": "a",
        "difference_type": "relative",
        "metrics": [{"key": m.key, "role": m.role} for m in HOLDOUT_METRICS],
        "variations": [
            {"name": v.name, "metrics": {"recovery_rate": {"n": v.units, "sum": c}}}
            for v, (_, _, c) in zip(variations, arms, strict=True)
        ],
        **analysis.to_dict(),
    }


def test_the_summary_names_the_sequential_status_and_the_chance_to_win():
    from cartrecovery.experiment_results import summary

    (row,) = summary(_view("sequential", (2500, 125), (2500, 250)))
    assert row["status"] == "stopped: crossed the boundary, better than control"
    assert row["p_value"] < 0.05 and row["ci_low"] > 0
    (row,) = summary(_view("sequential", (2500, 250), (2500, 125)))
    assert row["status"] == "stopped: crossed the boundary, worse than control"
    (row,) = summary(_view("sequential", (2500, 125), (2500, 130)))
    assert row["status"] == "continue: inside the boundary, look again later"
    (row,) = summary(_view("sequential", (300, 15), (300, 40)))
    assert row["status"].startswith("continue: 300 of the 2,000")
    (row,) = summary(_view("frequentist", (2500, 125), (2500, 250)))
    assert row["status"].startswith("fixed horizon")
    # The bayesian engine's own chance to win, and the same number computed for the others.
    bayes = summary(_view("bayesian", (2500, 125), (2500, 250)))[0]
    assert bayes["p_value"] is None
    assert bayes["chance_to_win"] == pytest.approx(
        summary(_view("sequential", (2500, 125), (2500, 250)))[0]["chance_to_win"]
    )
    assert bayes["chance_to_win"] > 0.99

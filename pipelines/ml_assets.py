"""Model training as assets: the message log (from the marts, or the simulator's truth), then
the send-time and content models trained, evaluated on the newest carts held out, registered
in MLflow and promoted by the rule (ml/tracking.py). A weekly schedule and a sensor on enough
new sent messages start ``ml_training_job``; asset checks require each challenger's held-out
metric to be present and finite. docs/models.md describes the models.
"""

# No `from __future__ import annotations`: Dagster reads resource type hints at definition.
import math

import dagster as dg
import polars as pl

from ml import tracking, training
from ml.content import NAME as CONTENT_NAME
from ml.send_time import NAME as SEND_TIME_NAME
from pipelines.resources import PostgresDatabase

# New sent messages since the last training that make the sensor ask for another.
NEW_MESSAGES_FOR_TRAINING = 5000


class MlflowStore(dg.ConfigurableResource):
    """Where runs and models are kept: ``home`` is the data folder whose ``mlflow/`` holds the
    local store, unless ``MLFLOW_TRACKING_URI`` names another (ml/tracking.py)."""

    home: str | None = None

    def path(self):
        from pathlib import Path

        return Path(self.home) if self.home else None


class MessageLogConfig(dg.Config):
    source: str = "warehouse"  # or "simulated"
    customers: int = 2000  # simulated only
    carts_per_customer: int = 6
    seed: int = 0


@dg.asset(group_name="ml", description="Sent messages with their outcomes (ml/features.py).")
def ml_message_log(config: MessageLogConfig, database: PostgresDatabase) -> pl.DataFrame:
    if config.source == "simulated":
        return training.simulated_log(config.customers, config.carts_per_customer, config.seed)
    if config.source != "warehouse":
        raise ValueError("source must be warehouse or simulated")
    from ml.features import load_messages

    return load_messages(database.database_url, database.dbt_schema)


def _train(context, model: str, log: pl.DataFrame, store: MlflowStore, source: str) -> dict:
    if log.height < training.MIN_MESSAGES:
        # A young install: nothing to learn yet. Not a failure; the asset check shows that
        # no challenger exists.
        reason = f"{log.height} logged messages, {training.MIN_MESSAGES} needed"
        context.add_output_metadata({"skipped": reason})
        return {"model": model, "skipped": reason}
    summary = training.train(model, log, source=source, home=store.path())
    context.add_output_metadata(
        {
            "version": summary.version,
            summary.metric: summary.value,
            "champion_before": summary.champion_version or "none",
            "promoted": summary.promoted,
            "train_rows": summary.train_rows,
        }
    )
    return training.summary_dict(summary)


@dg.asset(group_name="ml", description="Send-time model: trained, evaluated, registered.")
def send_time_model(
    context: dg.AssetExecutionContext, ml_message_log: pl.DataFrame, mlflow_store: MlflowStore
) -> dict:
    return _train(context, "send_time", ml_message_log, mlflow_store, _source(context))


@dg.asset(group_name="ml", description="Content (discount uplift) model: trained, registered.")
def content_model(
    context: dg.AssetExecutionContext, ml_message_log: pl.DataFrame, mlflow_store: MlflowStore
) -> dict:
    return _train(context, "content", ml_message_log, mlflow_store, _source(context))


def _source(context) -> str:
    return context.run.tags.get("ml/source", "dagster")


def _challenger_check(name: str, metric: str, store: MlflowStore) -> dg.AssetCheckResult:
    mlflow_client = tracking.client(store.path())
    version = tracking.champion_version(mlflow_client, name, tracking.CHALLENGER)
    if version is None:
        return dg.AssetCheckResult(passed=False, metadata={"problem": "no challenger"})
    tags = mlflow_client.get_model_version(name, version).tags
    try:
        value = float(tags.get(metric, "nan"))
    except ValueError:
        value = float("nan")
    return dg.AssetCheckResult(
        passed=math.isfinite(value),
        metadata={"version": version, metric: value if math.isfinite(value) else str(value)},
    )


@dg.asset_check(asset=send_time_model, description="The challenger's held-out AUC is finite.")
def send_time_metric_is_finite(mlflow_store: MlflowStore) -> dg.AssetCheckResult:
    from ml.send_time import METRIC

    return _challenger_check(SEND_TIME_NAME, METRIC, mlflow_store)


@dg.asset_check(asset=content_model, description="The challenger's held-out Qini is finite.")
def content_metric_is_finite(mlflow_store: MlflowStore) -> dg.AssetCheckResult:
    from ml.content import METRIC

    return _challenger_check(CONTENT_NAME, METRIC, mlflow_store)


ml_assets = [ml_message_log, send_time_model, content_model]
ml_checks = [send_time_metric_is_finite, content_metric_is_finite]

ml_training_job = dg.define_asset_job(
    name="ml_training_job",
    selection=dg.AssetSelection.assets(*ml_assets),
    description="Train, evaluate, register and promote the send-time and content models.",
)

ml_weekly_schedule = dg.ScheduleDefinition(
    name="ml_weekly_training",
    job=ml_training_job,
    cron_schedule="0 4 * * 1",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)


@dg.sensor(job=ml_training_job, minimum_interval_seconds=3600)
def ml_new_data_sensor(context: dg.SensorEvaluationContext, database: PostgresDatabase):
    """Train again once :data:`NEW_MESSAGES_FOR_TRAINING` more messages were sent. The cursor
    is the count of sent messages at the last request."""
    sent = database.fetch("SELECT count(*) AS n FROM app.outbox WHERE sent_at IS NOT NULL")[0]["n"]
    before = int(context.cursor or 0)
    if sent - before < NEW_MESSAGES_FOR_TRAINING:
        return dg.SkipReason(f"{sent - before} new sent messages since the last training")
    context.update_cursor(str(sent))
    return dg.RunRequest(run_key=f"ml-sent-{sent}")


def ml_resources() -> dict:
    # home None: $CARTRECOVERY_HOME (or .cartrecovery) when the run starts.
    return {"mlflow_store": MlflowStore()}

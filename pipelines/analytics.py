"""The dbt models and tests as Dagster assets and checks, the jobs that build them, the
sensor that builds on new raw events, and the schedules."""

# No `from __future__ import annotations` here: Dagster reads the context, config and
# resource type hints at definition time, and string annotations hide them.
import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from pipelines.dagster_instance import WAREHOUSE_RUN_TAG
from pipelines.dbt_build import BuildPlan, incremental_exclusions, record_views_built
from pipelines.dbt_env import dbt_environment
from pipelines.dbt_project import dbt_project
from pipelines.resources import PostgresDatabase

DBT_OP = "analytics_dbt"


class DbtBuildConfig(dg.Config):
    """``full_refresh`` rebuilds incremental models from scratch (the nightly job does).
    ``run_tests`` false skips the data and unit tests and, when the project is unchanged
    since the views were created, the views (the sensor's incremental builds)."""

    full_refresh: bool = False
    run_tests: bool = True


@dbt_assets(manifest=dbt_project.manifest_path, project=dbt_project, name=DBT_OP)
def analytics_dbt_assets(
    context: dg.AssetExecutionContext,
    config: DbtBuildConfig,
    dbt: DbtCliResource,
    database: PostgresDatabase,
):
    """`dbt build` of the selected models: staging views, intermediate views, marts tables
    (event-sized ones incremental), with their data tests and unit tests (reported as asset
    checks)."""
    # What changed since the last whole build, or a full refresh when that is unknown or the
    # attribution settings changed (pipelines/dbt_build.py, docs/analytics.md).
    plan = BuildPlan(
        database.database_url, full_refresh=config.full_refresh, whole=_whole_build(context)
    )
    args = ["build", *(["--full-refresh"] if plan.full_refresh else [])]
    if not plan.full_refresh and not config.run_tests:
        args += incremental_exclusions(database.database_url, tests=False)
    # The subprocess and dbt's in-process adapter take their environment when cli() starts
    # them, so the connection variables only need to be set around that call.
    with dbt_environment(database.database_url, extra=plan.env):
        invocation = dbt.cli(args, context=context)
    yield from invocation.stream()
    # stream() raised if dbt failed; a whole build re-created the views of this project.
    plan.record()
    if "config.materialized:view" not in args and _whole_build(context):
        record_views_built(database.database_url)


def _whole_build(context: dg.AssetExecutionContext) -> bool:
    return set(context.selected_asset_keys) == set(analytics_dbt_assets.keys)


analytics_job = dg.define_asset_job(
    name="analytics_job",
    selection=dg.AssetSelection.assets(analytics_dbt_assets),
    tags={WAREHOUSE_RUN_TAG: "build"},
    description="Incremental dbt build: staging → intermediate → marts, with data and unit "
    "tests and the warehouse checks.",
)

analytics_full_refresh_job = dg.define_asset_job(
    name="analytics_full_refresh_job",
    # The export files (pipelines/export_assets.py, group "exports") follow the nightly build.
    selection=dg.AssetSelection.assets(analytics_dbt_assets) | dg.AssetSelection.groups("exports"),
    config={"ops": {DBT_OP: {"config": {"full_refresh": True}}}},
    tags={WAREHOUSE_RUN_TAG: "build"},
    description="dbt build --full-refresh: every incremental model rebuilt from scratch, then "
    "the export files written from the new marts.",
)

# The sensor below builds as soon as events arrive; this fixed-interval schedule stays for
# deployments that prefer it and is off by default.
analytics_schedule = dg.ScheduleDefinition(
    name="analytics_every_15_minutes",
    job=analytics_job,
    cron_schedule="*/15 * * * *",
    default_status=dg.DefaultScheduleStatus.STOPPED,
)

nightly_full_build_schedule = dg.ScheduleDefinition(
    name="analytics_nightly_full_build",
    job=analytics_full_refresh_job,
    cron_schedule="0 3 * * *",
    execution_timezone="UTC",
    default_status=dg.DefaultScheduleStatus.RUNNING,
    description="Nightly full rebuild: picks up deleted source rows and changed settings in "
    "incremental models.",
)


@dg.sensor(
    job=analytics_job,
    minimum_interval_seconds=60,
    default_status=dg.DefaultSensorStatus.RUNNING,
)
def new_raw_events_sensor(context: dg.SensorEvaluationContext, database: PostgresDatabase):
    """Request an incremental build when an inbound event arrived since the last request.

    The cursor is the arrival time of the newest event seen; the run key repeats it, so a
    sensor tick evaluated twice does not start two builds."""
    newest = database.newest_raw_event_at()
    if newest is None:
        return dg.SkipReason("no inbound events yet")
    cursor = newest.isoformat()
    if context.cursor == cursor:
        return dg.SkipReason(f"no inbound events since {cursor}")
    context.update_cursor(cursor)
    # Models only: the data and unit tests run in the nightly full build.
    return dg.RunRequest(
        run_key=f"raw-events-{cursor}",
        run_config={"ops": {DBT_OP: {"config": {"run_tests": False}}}},
    )

"""The dbt models and tests as Dagster assets and checks, the job that builds them and its
schedule."""

# No `from __future__ import annotations` here: Dagster reads the context and resource type
# hints at definition time, and string annotations hide them.
import dagster as dg
from dagster_dbt import DbtCliResource, dbt_assets

from pipelines.dbt_env import dbt_environment
from pipelines.dbt_project import dbt_project
from pipelines.resources import PostgresDatabase


@dbt_assets(manifest=dbt_project.manifest_path, project=dbt_project, name="analytics_dbt")
def analytics_dbt_assets(
    context: dg.AssetExecutionContext, dbt: DbtCliResource, database: PostgresDatabase
):
    """`dbt build` of the selected models: staging views, intermediate views, marts tables,
    with their data tests and unit tests (reported as asset checks)."""
    # The subprocess and dbt's in-process adapter take their environment when cli() starts
    # them, so the connection variables only need to be set around that call.
    with dbt_environment(database.database_url):
        invocation = dbt.cli(["build"], context=context)
    yield from invocation.stream()


analytics_job = dg.define_asset_job(
    name="analytics_job",
    selection=dg.AssetSelection.assets(analytics_dbt_assets),
    description="dbt build: staging → intermediate → marts, with data and unit tests.",
)

analytics_schedule = dg.ScheduleDefinition(
    name="analytics_every_15_minutes",
    job=analytics_job,
    cron_schedule="*/15 * * * *",
    default_status=dg.DefaultScheduleStatus.RUNNING,
)

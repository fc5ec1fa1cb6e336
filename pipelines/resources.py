"""Resources of the code location; values that vary by deployment are read at run time."""

from __future__ import annotations

import dagster as dg
from dagster_dbt import DbtCliResource

from pipelines.dbt_build import DBT_PROJECT_DIR, dbt_executable
from pipelines.dbt_project import dbt_project


class PostgresDatabase(dg.ConfigurableResource):
    """The product database (the one ``DATABASE_URL`` names); dbt reads and builds in it."""

    database_url: str


def dbt_cli() -> DbtCliResource:
    """dbt run from the venv's own executable, so it works without the venv on PATH."""
    return DbtCliResource(
        project_dir=dbt_project,
        profiles_dir=str(DBT_PROJECT_DIR),
        dbt_executable=dbt_executable(),
    )


def default_resources() -> dict[str, dg.ConfigurableResource]:
    """The resources ``definitions.py`` binds; DATABASE_URL is resolved when a run starts."""
    return {
        "dbt": dbt_cli(),
        "database": PostgresDatabase(database_url=dg.EnvVar("DATABASE_URL")),
    }

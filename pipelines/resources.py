"""Resources of the code location, one set per deployment environment.

``CARTRECOVERY_ENV`` chooses the set when the definitions load (``local``, the default, or
``prod``: dbt's prod target, which requires SSL); connection strings are ``dg.EnvVar`` and
are only resolved when a run, sensor or check starts.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

import dagster as dg
import psycopg
from dagster_dbt import DbtCliResource
from psycopg import sql
from psycopg.rows import dict_row

from pipelines.dbt_build import DBT_PROJECT_DIR, dbt_executable
from pipelines.dbt_project import dbt_project

ENVIRONMENTS = ("local", "prod")


class PostgresDatabase(dg.ConfigurableResource):
    """The product database (the one ``DATABASE_URL`` names); dbt reads and builds in it.

    ``dbt_schema`` is the dbt target schema; marts live in ``<dbt_schema>_marts``."""

    database_url: str
    dbt_schema: str = "analytics"

    def marts_table(self, name: str) -> sql.Composed:
        return sql.Identifier(f"{self.dbt_schema}_marts", name)

    def fetch(self, query: str | sql.Composable, params: Sequence[Any] = ()) -> list[dict]:
        """Rows of one read-only query, as dicts (a short-lived connection per call)."""
        with psycopg.connect(self.database_url, row_factory=dict_row, autocommit=True) as conn:
            return conn.execute(query, params).fetchall()

    def newest_raw_event_at(self) -> datetime | None:
        """When the newest inbound event (store, tracking API, provider callback, click)
        arrived; None before the first."""
        row = self.fetch(
            "SELECT greatest((SELECT max(received_at) FROM raw.events),"
            " (SELECT max(received_at) FROM app.message_events)) AS newest"
        )[0]
        return row["newest"]


def dbt_cli(target: str = "dev") -> DbtCliResource:
    """dbt run from the venv's own executable, so it works without the venv on PATH."""
    return DbtCliResource(
        project_dir=dbt_project,
        profiles_dir=str(DBT_PROJECT_DIR),
        dbt_executable=dbt_executable(),
        target=target,
    )


def resources_for(environment: str) -> dict[str, dg.ConfigurableResource]:
    """The resources of ``environment`` (local or prod)."""
    if environment not in ENVIRONMENTS:
        raise ValueError(f"CARTRECOVERY_ENV must be one of {', '.join(ENVIRONMENTS)}")
    return {
        "dbt": dbt_cli("prod" if environment == "prod" else "dev"),
        "database": PostgresDatabase(database_url=dg.EnvVar("DATABASE_URL")),
    }


def default_resources() -> dict[str, dg.ConfigurableResource]:
    """The local set (kept for callers that do not choose an environment)."""
    return resources_for("local")

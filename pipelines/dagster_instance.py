"""Where Dagster keeps its runs, event log and schedules.

With a ``DATABASE_URL``, Dagster's storage goes to that PostgreSQL database, in a schema of
its own (``dagster``): its tables include an ``alembic_version`` that must not meet the
app's in ``public``. dagster-postgres needs psycopg2 (its event log fails through
psycopg 3), so the URL gets the ``postgresql+psycopg2`` scheme. Without a URL, Dagster keeps
its default SQLite storage under ``DAGSTER_HOME``.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql

DAGSTER_SCHEMA = "dagster"
# Builds of one warehouse must not overlap (two dbt runs would rebuild the same tables): the
# warehouse jobs carry this tag, and the instance runs one tagged run at a time.
WAREHOUSE_RUN_TAG = "cartrecovery/warehouse"


def psycopg2_url(database_url: str, schema: str = DAGSTER_SCHEMA) -> str:
    """``database_url`` with the scheme SQLAlchemy maps to psycopg2 and ``schema`` as the
    search path. A unix-socket URL (``postgresql://u:@/db?host=/dir``) keeps its ``host``
    query parameter, which psycopg2 understands."""
    scheme, sep, rest = database_url.partition("://")
    if not sep or not scheme.startswith(("postgresql", "postgres")):
        raise ValueError("database URL must start with postgresql://")
    joiner = "&" if "?" in rest else "?"
    options = quote(f"-csearch_path={schema}", safe="")
    return f"postgresql+psycopg2://{rest}{joiner}options={options}"


def instance_config(database_url: str | None) -> dict:
    """The ``dagster.yaml`` content for ``database_url`` (None: Dagster's defaults)."""
    config: dict = {
        "telemetry": {"enabled": False},
        "concurrency": {
            "runs": {"tag_concurrency_limits": [{"key": WAREHOUSE_RUN_TAG, "limit": 1}]}
        },
    }
    if database_url:
        config["storage"] = {"postgres": {"postgres_url": psycopg2_url(database_url)}}
    return config


def prepare_dagster_home(home: Path, database_url: str | None) -> Path:
    """Write ``home/dagster.yaml`` for ``database_url`` (creating Dagster's schema there) and
    return ``home``; the CLI sets ``DAGSTER_HOME`` to it before starting ``dagster dev``."""
    home.mkdir(parents=True, exist_ok=True)
    if database_url:
        with psycopg.connect(database_url, autocommit=True) as conn:
            conn.execute(
                sql.SQL("CREATE SCHEMA IF NOT EXISTS {}").format(sql.Identifier(DAGSTER_SCHEMA))
            )
    # JSON is YAML: no YAML writer needed for a file this small.
    (home / "dagster.yaml").write_text(json.dumps(instance_config(database_url), indent=2))
    return home

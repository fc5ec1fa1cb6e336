"""The database connection handed to dbt, as the environment variables dbt/profiles.yml reads."""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator, Mapping
from contextlib import contextmanager

from psycopg.conninfo import conninfo_to_dict

HOST = "DBT_POSTGRES_HOST"
PORT = "DBT_POSTGRES_PORT"
USER = "DBT_POSTGRES_USER"
# The DBT_ENV_SECRET_ prefix makes dbt scrub the value from its logs.
PASSWORD = "DBT_ENV_SECRET_POSTGRES_PASSWORD"
DBNAME = "DBT_POSTGRES_DBNAME"
SSLMODE = "DBT_POSTGRES_SSLMODE"

_environ_lock = threading.Lock()


def dbt_env(database_url: str) -> dict[str, str]:
    """Turn a PostgreSQL URL into the variables ``dbt/profiles.yml`` reads.

    Accepts ``postgresql://user:pw@host:port/db`` (also ``postgresql+driver://``, as
    SQLAlchemy spells it) and the unix-socket form of the embedded server,
    ``postgresql://postgres:@/db?host=/path/to/dir``, whose socket directory becomes the host.
    Missing parts get libpq's usual defaults (localhost, 5432, user postgres, no password).
    Raises ValueError when the URL cannot be parsed or names no database.
    """
    scheme, sep, rest = database_url.partition("://")
    if not sep or not scheme.startswith(("postgresql", "postgres")):
        raise ValueError("database URL must start with postgresql://")
    try:
        params = conninfo_to_dict(f"postgresql://{rest}")
    except Exception as exc:  # psycopg raises ProgrammingError for malformed URLs
        raise ValueError(f"cannot parse database URL: {exc}") from None
    dbname = params.get("dbname")
    if not dbname:
        raise ValueError("database URL names no database")
    env = {
        HOST: str(params.get("host") or "localhost"),
        PORT: str(params.get("port") or "5432"),
        USER: str(params.get("user") or "postgres"),
        PASSWORD: str(params.get("password") or ""),
        DBNAME: str(dbname),
    }
    if params.get("sslmode"):
        env[SSLMODE] = str(params["sslmode"])
    return env


@contextmanager
def dbt_environment(
    database_url: str, extra: Mapping[str, str] | None = None
) -> Iterator[Mapping[str, str]]:
    """Set the dbt connection variables in ``os.environ`` for the duration of the block.

    ``DbtCliResource`` builds the dbt subprocess environment (and its in-process adapter) from
    ``os.environ`` only, so this is how a URL resolved at run time reaches dbt; ``extra``
    variables (the build plan's) are set alongside. The previous
    values are restored on exit; a lock keeps concurrent blocks in one process from mixing.
    """
    overrides = {**dbt_env(database_url), **(extra or {})}
    with _environ_lock:
        saved = {key: os.environ.get(key) for key in overrides}
        os.environ.update(overrides)
        try:
            yield overrides
        finally:
            for key, value in saved.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value

"""Marts as Arrow data, for DuckDB and Polars: heavy ad-hoc and feature queries.

Rows come from PostgreSQL through ADBC (``adbc-driver-postgresql``: binary COPY into Arrow
record batches, several times faster than row-by-row through psycopg) and are read under the
same row-level security as the API: the connection runs as ``cartrecovery_app`` with the org
set, so a frame never holds another org's rows. DuckDB then queries the Arrow tables in
process (it cannot reach PostgreSQL itself here: its ``postgres`` extension is downloaded at
run time). ``numeric`` columns must be cast in SQL (ADBC returns them as an opaque type).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager
from uuid import UUID

import adbc_driver_postgresql.dbapi as adbc
import duckdb
import polars as pl
import pyarrow as pa
from psycopg import sql

from cartrecovery.db import APP_ROLE

from . import marts


def _scope(org_id: UUID | str) -> str:
    return (
        sql.SQL("SELECT set_config('role', {}, false), set_config('app.org_id', {}, false)")
        .format(sql.Literal(APP_ROLE), sql.Literal(str(org_id)))
        .as_string()
    )


@contextmanager
def record_batches(
    database_url: str, org_id: UUID | str, query: str
) -> Iterator[pa.RecordBatchReader]:
    """Stream the rows of ``query`` (plain SQL, values already bound as literals, e.g.
    ``psycopg.sql`` composed with ``sql.Literal`` and ``as_string()``) as Arrow record batches,
    seeing only ``org_id``'s rows. The reader is valid inside the block."""
    with adbc.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute(_scope(org_id))
        cur.fetchall()
        cur.execute(query)
        yield cur.fetch_record_batch()


def read_arrow(database_url: str, org_id: UUID | str, query: str) -> pa.Table:
    """:func:`record_batches` read whole into one Arrow table."""
    with record_batches(database_url, org_id, query) as reader:
        return reader.read_all()


def load_mart(
    database_url: str, org_id: UUID | str, mart: str, columns: dict[str, str] | None = None
) -> pa.Table:
    """One mart of one org as an Arrow table. ``columns`` maps output names to SQL
    expressions over the mart (cast numerics there, e.g. ``{"revenue":
    "revenue::float8"}``); None reads every column, numerics as float8 and uuids as text."""
    if columns is None:
        columns = _default_columns(database_url, mart)
    select = sql.SQL(", ").join(
        sql.SQL("{} AS {}").format(sql.SQL(expression), sql.Identifier(name))
        for name, expression in columns.items()
    )
    query = sql.SQL("SELECT {} FROM {} WHERE org_id = {}").format(
        select, marts.table(mart), sql.Literal(str(org_id))
    )
    return read_arrow(database_url, org_id, query.as_string())


def _default_columns(database_url: str, mart: str) -> dict[str, str]:
    query = (
        sql.SQL(
            "SELECT column_name, data_type FROM information_schema.columns"
            " WHERE table_schema = {} AND table_name = {} ORDER BY ordinal_position"
        )
        .format(sql.Literal(marts.schema()), sql.Literal(mart))
        .as_string()
    )
    with adbc.connect(database_url) as conn, conn.cursor() as cur:
        cur.execute(query)
        described = cur.fetchall()
    if not described:
        raise LookupError(f"mart {mart} does not exist (run `cartrecovery warehouse build`)")
    casts = {"numeric": "::float8", "uuid": "::text", "ARRAY": "::text[]", "jsonb": "::text"}
    return {
        name: sql.Identifier(name).as_string() + casts.get(kind, "") for name, kind in described
    }


def duckdb_query(query: str, **tables: pa.Table | pl.DataFrame) -> pa.Table:
    """Run ``query`` in an in-memory DuckDB where each keyword is a table (Arrow or Polars)
    of that name; the answer as Arrow."""
    with duckdb.connect() as con:
        for name, frame in tables.items():
            con.register(name, frame)
        return con.sql(query).to_arrow_table()

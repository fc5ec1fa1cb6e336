"""Streamed exports of the marts: ``carts``, ``recoveries`` (one attribution model),
``messages``, ``journeys`` and ``experiment_counts`` as CSV, Excel or Parquet.

Nothing holds a whole export in memory: CSV rows come from a server-side cursor in batches
and are written out batch by batch; Parquet is written row group by row group from Arrow
record batches (:mod:`.frames`, ADBC) to a temporary file, then streamed; Excel is written by
xlsxwriter in ``constant_memory`` mode (one row at a time) to a temporary file, then
streamed. Every export reads under row-level security for one org.
"""

from __future__ import annotations

import csv
import io
import os
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime
from decimal import Decimal
from uuid import UUID

import pyarrow.parquet as pq
import xlsxwriter
from psycopg import sql
from psycopg.rows import tuple_row

from cartrecovery.db import Database

from . import frames, marts
from .attribution import MODELS
from .periods import Period

FORMATS = {
    "csv": "text/csv; charset=utf-8",
    "xlsx": "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
    "parquet": "application/vnd.apache.parquet",
}
BATCH_ROWS = 10_000
CHUNK_BYTES = 1 << 16
# Excel's sheet limit is 1,048,576 rows including the header: longer exports go on to a
# second sheet.
XLSX_SHEET_ROWS = 1_048_575


@dataclass(frozen=True)
class Dataset:
    mart: str
    columns: tuple[str, ...]  # SQL select expressions, numerics cast to float8
    time_column: str | None  # what a period filters on; None: all time only
    order_by: str


DATASETS: dict[str, Dataset] = {
    "carts": Dataset(
        "fct_carts",
        (
            "cart_id::text AS cart_id",
            "cart_external_id",
            "platform",
            "email",
            "currency",
            "status",
            "cart_value::float8 AS cart_value",
            "item_count",
            "messages_sent",
            "messages_clicked",
            "is_abandoned",
            "is_converted",
            "is_recovered",
            "order_id::text AS order_id",
            "started_at",
            "abandoned_at",
            "converted_at",
            "recovered_at",
        ),
        "started_at",
        "started_at, cart_id",
    ),
    "recoveries": Dataset(
        "fct_attribution",
        (
            "order_id::text AS order_id",
            "message_id::text AS message_id",
            "coalesce(order_cart_id, touched_cart_id)::text AS cart_id",
            "campaign_id::text AS campaign_id",
            "model",
            "channel",
            "variant",
            "step_index",
            "touch_position",
            "touch_count",
            "credit",
            "revenue::float8 AS revenue",
            "order_total::float8 AS order_total",
            "currency",
            "is_reporting_currency",
            "touched_at",
            "ordered_at",
        ),
        "ordered_at",
        "ordered_at, order_id, touch_position",
    ),
    "messages": Dataset(
        "fct_messages",
        (
            "message_id::text AS message_id",
            "cart_id::text AS cart_id",
            "campaign_id::text AS campaign_id",
            "channel",
            "variant",
            "status",
            "step_index",
            "is_sent",
            "is_held_out",
            "is_delivered",
            "is_opened",
            "is_clicked",
            "open_count",
            "click_count",
            "due_at",
            "sent_at",
            "first_opened_at",
            "first_clicked_at",
        ),
        "coalesce(sent_at, due_at)",
        "coalesce(sent_at, due_at), message_id",
    ),
    "journeys": Dataset(
        "fct_journeys",
        (
            "cart_id::text AS cart_id",
            "order_id::text AS order_id",
            "path",
            "outcome",
            "messages_sent",
            "messages_clicked",
            "revenue::float8 AS revenue",
            "currency",
            "is_held_out",
            "abandoned_at",
            "ordered_at",
        ),
        "abandoned_at",
        "abandoned_at, cart_id",
    ),
    "experiment_counts": Dataset(
        "fct_experiment_counts",
        (
            "campaign_id::text AS campaign_id",
            "step_index",
            "variant",
            "metric",
            "currency",
            "n",
            "sum::float8 AS sum",
            "sum_squares::float8 AS sum_squares",
        ),
        None,
        "campaign_id, step_index, variant, metric",
    ),
}


class ExportError(ValueError):
    """The export cannot be made as asked (the message says why)."""


def export_query(
    dataset: str, org_id: UUID | str, period: Period | None = None, model: str | None = None
) -> str:
    """The SELECT of one export as plain SQL (values bound as quoted literals, so psycopg
    and ADBC run the same text). ``period`` limits rows by the dataset's time column (None:
    all time); ``model`` is required for ``recoveries`` only. Raises ExportError."""
    spec = DATASETS.get(dataset)
    if spec is None:
        raise ExportError(f"dataset must be one of {', '.join(DATASETS)}")
    where = [sql.SQL("org_id = {}").format(sql.Literal(str(org_id)))]
    if dataset == "recoveries":
        if model not in MODELS:
            raise ExportError(f"model must be one of {', '.join(MODELS)}")
        where.append(sql.SQL("model = {}").format(sql.Literal(model)))
    elif model is not None:
        raise ExportError("model applies to the recoveries export only")
    if period is not None:
        if spec.time_column is None:
            raise ExportError(f"{dataset} is all time: it takes no period")
        where.append(
            sql.SQL("{col} >= {start} AND {col} < {end}").format(
                col=sql.SQL(spec.time_column),
                start=sql.Literal(period.start),
                end=sql.Literal(period.end),
            )
        )
    return (
        sql.SQL("SELECT {} FROM {} WHERE {} ORDER BY {}")
        .format(
            sql.SQL(", ").join(sql.SQL(c) for c in spec.columns),
            marts.table(spec.mart),
            sql.SQL(" AND ").join(where),
            sql.SQL(spec.order_by),
        )
        .as_string()
    )


def is_built(db: Database, org_id: UUID | str, dataset: str) -> bool:
    with db.tenant(org_id) as conn:
        return marts.as_of(conn, DATASETS[dataset].mart) is not None


def _cell(value):
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, UUID):
        return str(value)
    return value


def _rows(db: Database, org_id: UUID | str, query: str) -> Iterator[tuple[list[str], list]]:
    """(column names, a batch of rows) from a server-side cursor, batch after batch."""
    with db.tenant(org_id) as conn:
        with conn.cursor(name="export", row_factory=tuple_row) as cur:
            cur.itersize = BATCH_ROWS
            cur.execute(query)
            names = [d.name for d in cur.description]
            yielded = False
            while batch := cur.fetchmany(BATCH_ROWS):
                yielded = True
                yield names, batch
            if not yielded:
                yield names, []


def csv_stream(db: Database, org_id: UUID | str, query: str) -> Iterator[bytes]:
    """The export as CSV (header first; ISO 8601 times), one chunk per batch of rows."""
    header_done = False
    for names, batch in _rows(db, org_id, query):
        out = io.StringIO()
        writer = csv.writer(out, lineterminator="\n")
        if not header_done:
            writer.writerow(names)
            header_done = True
        writer.writerows(
            [v.isoformat() if isinstance(v, datetime) else _cell(v) for v in row] for row in batch
        )
        yield out.getvalue().encode()


def _file_chunks(path: str) -> Iterator[bytes]:
    try:
        with open(path, "rb") as f:
            while chunk := f.read(CHUNK_BYTES):
                yield chunk
    finally:
        os.unlink(path)


def xlsx_stream(db: Database, org_id: UUID | str, query: str) -> Iterator[bytes]:
    """The export as an Excel workbook, written row by row (constant memory) to a temporary
    file, then streamed. Times are in UTC."""
    fd, path = tempfile.mkstemp(prefix="cartrecovery-export-", suffix=".xlsx")
    os.close(fd)
    try:
        workbook = xlsxwriter.Workbook(
            path,
            {"constant_memory": True, "remove_timezone": True, "tmpdir": tempfile.gettempdir()},
        )
        when = workbook.add_format({"num_format": "yyyy-mm-dd hh:mm:ss"})
        sheet, row_index, sheets = None, 0, 0
        for names, batch in _rows(db, org_id, query):
            if sheet is None:
                sheets += 1
                sheet = workbook.add_worksheet(f"data{sheets}" if sheets > 1 else "data")
                sheet.write_row(0, 0, names)
                row_index = 1
            for row in batch:
                if row_index > XLSX_SHEET_ROWS:
                    sheets += 1
                    sheet = workbook.add_worksheet(f"data{sheets}")
                    sheet.write_row(0, 0, names)
                    row_index = 1
                for col, value in enumerate(row):
                    if isinstance(value, datetime):
                        sheet.write_datetime(row_index, col, value, when)
                    elif value is not None:
                        sheet.write(row_index, col, _cell(value))
                row_index += 1
        workbook.close()
    except BaseException:
        os.unlink(path)
        raise
    return _file_chunks(path)


def write_parquet(
    database_url: str, org_id: UUID | str, query: str, path: str | os.PathLike
) -> int:
    """Write the export to the Parquet file ``path``, Arrow record batch (ADBC) after record
    batch as row groups, so memory holds one batch; return the number of rows."""
    rows = 0
    with frames.record_batches(database_url, org_id, query) as reader:
        with pq.ParquetWriter(path, reader.schema) as writer:
            for batch in reader:
                writer.write_batch(batch)
                rows += batch.num_rows
    return rows


def parquet_stream(database_url: str, org_id: UUID | str, query: str) -> Iterator[bytes]:
    """The export as Parquet (:func:`write_parquet`) to a temporary file, then streamed."""
    fd, path = tempfile.mkstemp(prefix="cartrecovery-export-", suffix=".parquet")
    os.close(fd)
    try:
        write_parquet(database_url, org_id, query, path)
    except BaseException:
        os.unlink(path)
        raise
    return _file_chunks(path)

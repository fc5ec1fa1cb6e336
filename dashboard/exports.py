"""The datasets behind each page as CSV, Excel and Parquet files.

Rows are the same dicts the pages draw; they are made file-friendly first: ids and json as
text, money kept exact (Parquet: decimal; CSV: its text; Excel: a number, Excel has no
decimal type), times in UTC (Excel cannot store a time zone, so its cells are UTC wall time).
"""

from __future__ import annotations

import io
import json
from datetime import UTC, datetime
from decimal import Decimal
from uuid import UUID

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pa_csv
import pyarrow.parquet as pq

FORMATS = {
    "csv": ("CSV", "text/csv"),
    "xlsx": ("Excel", "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet"),
    "parquet": ("Parquet", "application/vnd.apache.parquet"),
}


def cell(value):
    if isinstance(value, UUID):
        return str(value)
    if isinstance(value, dict | list | tuple):
        return json.dumps(value, default=str, sort_keys=True)
    return value


def arrow(rows: list[dict]) -> pa.Table:
    """Rows as an Arrow table (every row's keys, in first-seen order)."""
    return pa.Table.from_pylist([{k: cell(v) for k, v in r.items()} for r in rows])


def _excel_cell(value):
    if isinstance(value, Decimal):
        return float(value)
    if isinstance(value, datetime) and value.tzinfo is not None:
        return value.astimezone(UTC).replace(tzinfo=None)
    return cell(value)


def encode(rows: list[dict], fmt: str, sheet: str = "data") -> bytes:
    """``rows`` as a ``csv``, ``xlsx`` or ``parquet`` file."""
    out = io.BytesIO()
    if fmt == "csv":
        pa_csv.write_csv(arrow(rows), out)
    elif fmt == "parquet":
        pq.write_table(arrow(rows), out)
    elif fmt == "xlsx":
        frame = pd.DataFrame([{k: _excel_cell(v) for k, v in r.items()} for r in rows])
        with pd.ExcelWriter(out, engine="xlsxwriter") as writer:
            frame.to_excel(writer, sheet_name=sheet[:31], index=False)
    else:
        raise ValueError(f"unknown format {fmt!r}")
    return out.getvalue()

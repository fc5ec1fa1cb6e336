"""``/api/v1/exports/{dataset}.{format}``: streamed exports of the warehouse marts
(cartrecovery.analytics.exports): CSV, Excel (xlsx) or Parquet."""

from __future__ import annotations

from typing import Literal

from flask import Blueprint, Response, g, stream_with_context
from pydantic import Field

from cartrecovery.analytics import exports
from cartrecovery.analytics.attribution import MODELS

from ..auth import require_key
from ..errors import ApiError
from ..openapi import request_query
from ..runtime import runtime
from .analytics import PeriodQuery

bp = Blueprint("exports", __name__, url_prefix="/api/v1/exports")


class ExportQuery(PeriodQuery):
    """Without period or from/to, an export holds all time."""

    model: Literal[MODELS] | None = Field(  # type: ignore[valid-type]
        default=None, description="Attribution model: required for recoveries, refused otherwise"
    )


@bp.get("/<dataset>.<format>")
@require_key("read")
@request_query(ExportQuery)
def export(dataset: str, format: str, query: ExportQuery):  # noqa: A002 (the path's name)
    """One dataset (carts, recoveries, messages, journeys, experiment_counts) as a file,
    streamed: CSV, Excel or Parquet."""
    if dataset not in exports.DATASETS or format not in exports.FORMATS:
        raise ApiError(
            404,
            "not_found",
            f"exports are {', '.join(exports.DATASETS)} as {', '.join(exports.FORMATS)}",
        )
    db = runtime().db
    period = None
    if query.period or query.from_date:
        with db.tenant(g.org_id) as conn:
            period = query.resolve(conn, g.org_id)
    try:
        sql = exports.export_query(dataset, g.org_id, period, query.model)
    except exports.ExportError as exc:
        raise ApiError(400, "validation_error", str(exc)) from None
    if not exports.is_built(db, g.org_id, dataset):
        raise ApiError(409, "not_built", "the warehouse has not been built yet")
    if format == "csv":
        body = stream_with_context(exports.csv_stream(db, g.org_id, sql))
    elif format == "xlsx":
        body = exports.xlsx_stream(db, g.org_id, sql)
    else:
        body = exports.parquet_stream(db.url, g.org_id, sql)
    return Response(
        body,
        mimetype=exports.FORMATS[format].split(";")[0],
        headers={"Content-Disposition": f'attachment; filename="{dataset}.{format}"'},
        content_type=exports.FORMATS[format],
    )

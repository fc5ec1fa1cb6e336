"""``/api/v1/experiments/{id}/results``: how the variants of a campaign step, or a campaign's
holdout group, are doing (``cartrecovery.experiment_results``; guide in docs/statistics.md).

An experiment id is ``<campaign_id>:step:<n>`` (step n from 1, a step with two or more
variants) or ``<campaign_id>:holdout`` (a campaign with ``experiment.holdout_percent`` > 0).
"""

from __future__ import annotations

from typing import Literal

from flask import Blueprint, g, jsonify
from pydantic import BaseModel, ConfigDict, Field

from cartrecovery import experiment_results
from cartrecovery.assignment import parse_experiment_id

from ..auth import require_key
from ..errors import ApiError
from ..openapi import request_query
from ..runtime import runtime

bp = Blueprint("experiments", __name__, url_prefix="/api/v1/experiments")


class ResultsQuery(BaseModel):
    model_config = ConfigDict(extra="forbid")

    correction: Literal["holm", "bh"] = Field(
        default="holm",
        description="Multiple-comparison correction of the goal p-values over variants × goal "
        "metrics: holm (Holm–Bonferroni, default) or bh (Benjamini–Hochberg). The bayesian "
        "engine has no p-values and applies none.",
    )
    difference_type: Literal["relative", "absolute"] = Field(
        default="relative",
        description="Effects as (B − A) / |A| (relative, default) or B − A (absolute).",
    )
    practical_effect: float | None = Field(
        default=None,
        gt=0,
        le=10,
        description="The smallest effect worth acting on, in the unit of difference_type "
        "(e.g. 0.02 = ±2%). When every variant's interval lies inside it the decision is "
        "stop_no_difference; without it that decision is never made.",
    )


@bp.get("/<id>/results")
@require_key("read")
@request_query(ResultsQuery)
def results(id: str, query: ResultsQuery):
    """Results of one experiment: per variant the sufficient statistics of every metric
    (recovery rate, revenue per recipient in the reporting currency, click rate; guardrails:
    unsubscribe, spam complaint and bounce rates, discount cost), the org's engine's
    comparison of each variant with control (the first variant, or the holdout group), SRM,
    corrected p-values and a plain-words decision: keep_running, ship <variant>,
    stop_no_difference or check_setup (SRM)."""
    experiment = parse_experiment_id(id)
    if experiment is None:
        raise ApiError(
            404,
            "not_found",
            "experiment not found: ids are <campaign_id>:step:<n> or <campaign_id>:holdout",
            {"experiment_id": id},
        )
    with runtime().db.tenant(g.org_id) as conn:
        try:
            body = experiment_results.experiment_results(
                conn,
                g.org_id,
                experiment,
                correction=query.correction,
                difference_type=query.difference_type,
                practical_effect=query.practical_effect,
            )
        except experiment_results.ExperimentNotFound as exc:
            raise ApiError(404, "not_found", str(exc), {"experiment_id": id}) from None
    return jsonify(body)

"""What the Experiments page writes and exports, from a result view of
``cartrecovery.experiment_results`` (kept apart from the page so tests can import it)."""

from __future__ import annotations


def effect(value: float | None, relative: bool) -> str:
    if value is None:
        return "open"
    return f"{value:+.1%}" if relative else f"{value:+.4g}"


def p_text(value: float | None) -> str:
    return "" if value is None else f"{value:.3g}"


def export_rows(results: dict, found: list[dict], summary: list[dict]) -> list[dict]:
    """The page's table: one row per variant, funnel and (treatments) lift, unformatted."""
    by_variant = {r["variant"]: r for r in summary}
    rows = []
    for row in found:
        lift = by_variant.get(row["variant"], {})
        rows.append(
            {
                "experiment_id": results["experiment_id"],
                "variant": row["variant"],
                "control": row["variant"] == results["control"],
                **{k: v for k, v in row.items() if k != "variant"},
                "metric": lift.get("metric"),
                "lift": lift.get("lift"),
                "ci_low": lift.get("ci_low"),
                "ci_high": lift.get("ci_high"),
                "p_value": lift.get("p_value"),
                "adjusted_p_value": lift.get("adjusted_p_value"),
                "chance_to_win": lift.get("chance_to_win"),
                "status": lift.get("status"),
                "engine": results["engine"],
                "srm_p_value": results["srm"]["p_value"],
                "decision": results["decision"],
            }
        )
    return rows

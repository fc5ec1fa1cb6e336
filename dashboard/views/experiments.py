"""Experiments page: per campaign step (variants) or campaign holdout, the funnel of each
variant, the lift on the primary metric with its interval, the chance to win, where the
sequential test stands, an SRM warning and the plain-words decision, with the method named.

The numbers are those of ``GET /api/v1/experiments/{id}/results`` for the query chosen under
"Analysis options" (the API's options, its defaults preselected): the page calls the same core
function (``cartrecovery.experiment_results``) through ``dashboard.data.experiment``.
The page is in the navigation only when the org has an experiment with data (app.py).
Reading a result: docs/statistics.md, "In plain words".
"""

from __future__ import annotations

import plotly.graph_objects as go
import streamlit as st

from cartrecovery.experiment_results import CORRECTIONS
from dashboard import charts, data, exports
from dashboard.experiments import effect, export_rows, p_text
from dashboard.formatting import money, percent, table

STAGES = ("sent", "delivered", "opened", "clicked", "recovered")
DECISIONS = {
    "keep_running": "Keep running",
    "stop_no_difference": "Stop: no difference worth acting on",
    "check_setup": "Check the setup",
}
METRIC_NAMES = {
    "recovery_rate": "recovery rate",
    "revenue_per_recipient": "revenue per recipient",
    "click_rate": "click rate",
    "unsubscribe_rate": "unsubscribe rate",
    "spam_complaint_rate": "spam complaint rate",
    "bounce_rate": "bounce rate",
    "discount_cost": "discount cost",
}


DIFFERENCES = {"relative": "relative (B − A) / |A|", "absolute": "absolute B − A"}


def query_options() -> dict:
    """The options of ``GET /api/v1/experiments/{id}/results`` (docs/statistics.md), asked
    here with the API's defaults preselected; reading them is open to every role."""
    with st.expander("Analysis options"):
        cols = st.columns(3)
        correction = cols[0].selectbox(
            "Multiple-comparison correction",
            list(CORRECTIONS),
            format_func=CORRECTIONS.__getitem__,
            key="exp_correction",
            help="Applied to the goal p-values over variants × goal metrics. The bayesian "
            "engine has no p-values and applies none.",
        )
        difference = cols[1].selectbox(
            "Effects as",
            list(DIFFERENCES),
            format_func=DIFFERENCES.__getitem__,
            key="exp_difference",
        )
        relative = difference == "relative"
        practical = None
        if cols[2].toggle(
            "Smallest effect worth acting on",
            key="exp_practical_on",
            help="When every variant's interval lies inside ± this effect the decision is "
            "to stop: no difference worth acting on. Without it that decision is never made.",
        ):
            # The API takes a share (0.02 = ±2%) for relative effects: asked in percent here.
            value = cols[2].number_input(
                "± percent" if relative else "± absolute",
                min_value=0.01 if relative else 0.0001,
                max_value=1000.0 if relative else 10.0,
                value=2.0 if relative else 0.01,
                format="%.2f" if relative else "%.4f",
                key=f"exp_practical_{difference}",
            )
            practical = float(value) / 100 if relative else float(value)
    return {"correction": correction, "difference_type": difference, "practical_effect": practical}


def decision_box(results: dict) -> None:
    label = results["decision"]
    if label.startswith("ship "):
        st.success(f"**Ship {results['variant']}.** {results['reason']}")
    elif label == "check_setup":
        st.error(f"**{DECISIONS[label]}.** {results['reason']}")
    else:
        st.info(f"**{DECISIONS.get(label, label)}.** {results['reason']}")


def funnel_section(results: dict, found: list[dict]) -> None:
    step = results["kind"] == "step"
    stages = STAGES if step else ("units", "recovered")
    st.subheader("Funnel" if step else "Carts and recoveries")
    values = [row[s] for row in found for s in stages]
    fig = go.Figure(
        [
            go.Bar(
                name=row["variant"],
                x=[s if step else ("carts" if s == "units" else s) for s in stages],
                y=[row[s] for s in stages],
            )
            for row in found
        ]
    )
    st.plotly_chart(
        charts.layout(fig, values, barmode="group"), width="stretch", key="exp_funnel_chart"
    )
    shown = []
    for row in found:
        units = row["units"] or 0
        line = {"variant": row["variant"]}
        if step:
            line |= {s: row[s] for s in STAGES}
            line["click rate"] = percent(row["clicked"] / units if units else 0)
        else:
            line["carts"] = units
            line["recovered"] = row["recovered"]
        line["recovery rate"] = percent(row["recovered"] / units if units else 0)
        shown.append(line)
    st.dataframe(table(shown), hide_index=True, width="stretch", key="exp_funnel")


def lift_section(results: dict, summary: list[dict]) -> None:
    relative = results["difference_type"] == "relative"
    metric = METRIC_NAMES.get(summary[0]["metric"], summary[0]["metric"]) if summary else ""
    st.subheader(f"Lift on {metric} against {results['control']}")
    shown = [
        {
            "variant": r["variant"],
            "lift": effect(r["lift"], relative),
            "interval": f"{effect(r['ci_low'], relative)} to {effect(r['ci_high'], relative)}",
            "p-value": p_text(r["p_value"]),
            "adjusted p-value": p_text(r["adjusted_p_value"]),
            "chance to win": percent(r["chance_to_win"]),
            "status": r["status"],
        }
        for r in summary
    ]
    st.dataframe(table(shown), hide_index=True, width="stretch", key="exp_lift")
    if results["engine"] != "bayesian":
        st.caption(
            "Chance to win: the bayesian engine's (flat prior) on the same counts, shown beside "
            f"the {results['engine']} test that decides."
        )
    # The interval chart: one point per treatment, its interval as error bars, 0 marked.
    scale = 100 if relative else 1
    lows = [r["ci_low"] for r in summary]
    highs = [r["ci_high"] for r in summary]
    fig = go.Figure(
        go.Scatter(
            x=[r["lift"] * scale for r in summary],
            y=[r["variant"] for r in summary],
            mode="markers",
            marker={"size": 12},
            error_x={
                "type": "data",
                "symmetric": False,
                "array": [
                    (h - r["lift"]) * scale if h is not None else 0
                    for h, r in zip(highs, summary, strict=True)
                ],
                "arrayminus": [
                    (r["lift"] - lo) * scale if lo is not None else 0
                    for lo, r in zip(lows, summary, strict=True)
                ],
            },
            hovertemplate="%{y}: %{x:+.2f}" + ("%" if relative else "") + "<extra></extra>",
        )
    )
    fig.add_vline(x=0, line_dash="dash", line_color="grey")
    fig.update_layout(
        height=120 + 50 * len(summary),
        margin={"t": 10, "b": 10, "l": 10, "r": 10},
        xaxis_title=f"lift ({'%' if relative else 'absolute'}) with its interval",
    )
    st.plotly_chart(fig, width="stretch", key="exp_lift_chart")


def all_metrics(results: dict) -> None:
    relative = results["difference_type"] == "relative"
    with st.expander("Every metric and guardrail"):
        st.dataframe(
            table(
                [
                    {
                        "variant": c["variation"],
                        "metric": METRIC_NAMES.get(c["metric"], c["metric"]),
                        "role": c["role"],
                        "effect": effect(c["expected"], relative),
                        "interval": f"{effect(c['ci'][0], relative)} to "
                        f"{effect(c['ci'][1], relative)}",
                        "p-value": p_text(c.get("p_value")),
                        "chance to win": percent(c["chance_to_win"])
                        if "chance_to_win" in c
                        else "",
                        "guardrail breached": "yes" if c.get("breached") else "",
                    }
                    for c in results["comparisons"]
                ]
            ),
            hide_index=True,
            width="stretch",
        )
        revenue = [
            {"variant": v["name"], "revenue": money(amount, code)}
            for v in results["variations"]
            for code, amount in sorted(v["revenue_by_currency"].items())
        ]
        if revenue:
            st.caption(
                f"Revenue per recipient is measured in {results['reporting_currency']} only; "
                "recovered revenue per currency (never added across currencies):"
            )
            st.dataframe(table(revenue), hide_index=True, width="stretch")


url = data.database_url()
org_id = st.session_state["org_id"]
st.title("Experiments")
listed = data.experiments(url, org_id)
if not listed:
    st.info("No experiment has data yet.")
    st.stop()
labels = {e["experiment_id"]: e["label"] for e in listed}
chosen = st.selectbox("Experiment", list(labels), format_func=labels.__getitem__, key="exp_choice")
options = query_options()
found = data.experiment(url, org_id, chosen, **options)
if found is None:
    st.warning("This experiment is gone (its campaign or step was changed).")
    st.stop()
results, funnel, summary = found["results"], found["funnel"], found["summary"]
st.caption(f"**Method.** {results['method']} Guide: docs/statistics.md.")
if results["srm"]["mismatch"]:
    st.warning(
        f"Sample ratio mismatch: the split of recipients does not match the configured "
        f"weights (p = {results['srm']['p_value']:.2g}). Results cannot be trusted until the "
        "assignment is fixed."
    )
decision_box(results)
funnel_section(results, funnel)
lift_section(results, summary)
all_metrics(results)
st.download_button(
    "Download CSV",
    exports.encode(export_rows(results, funnel, summary), "csv"),
    file_name=f"experiment-{results['experiment_id'].replace(':', '-')}.csv",
    mime="text/csv",
    key="exp_csv",
)

"""Plotly figures shared by the pages: one look, and axes that never go below zero.

Plotly centres an all-zero series on 0 and draws an axis from -1 to 1; counts and money are
never negative, so every value axis here starts at 0 (``rangemode="tozero"`` alone does not
prevent the negative half when every value is 0).
"""

from __future__ import annotations

from datetime import datetime, timedelta

import plotly.graph_objects as go

HEIGHT = 320


def layout(fig: go.Figure, values: list[float], *, value_axis: str = "y", **kwargs) -> go.Figure:
    """Common layout; the value axis starts at 0 and shows at least 0..1."""
    top = max([float(v) for v in values if v is not None] or [0])
    axis = {"rangemode": "nonnegative"}
    if top <= 0:
        axis["range"] = [0, 1]
    fig.update_layout(
        height=kwargs.pop("height", HEIGHT),
        margin={"t": 10, "b": 10, "l": 10, "r": 10},
        legend={"orientation": "h"},
        **{f"{value_axis}axis": axis},
        **kwargs,
    )
    return fig


def time_axis(fig: go.Figure, start: datetime, end: datetime, bucket: timedelta) -> go.Figure:
    """Show the whole period on the time axis, bars one bucket wide: a single bar would
    otherwise stretch over the chart and its axis zoom to milliseconds."""
    bars = [t for t in fig.data if t.type == "bar"]
    # Side by side within the bucket when grouped; all at the bucket's start when stacked.
    side_by_side = fig.layout.barmode == "group" and len(bars) > 1
    width = bucket.total_seconds() * 1000 * 0.9 / (len(bars) if side_by_side else 1)
    for i, trace in enumerate(bars):
        trace.update(width=width, offset=width * i if side_by_side else 0)
    fig.update_xaxes(type="date", range=[start, end])
    return fig

"""A period cut into the whole UTC days the day-grain marts hold and the partial days at its
edges, which only the detail marts can answer.

``fct_attribution_daily``, ``fct_journeys_daily``, ``fct_holdout_carts_daily`` and
``fct_message_funnel`` sum their detail mart per UTC day (``day_start`` / ``period_start``).
A query for ``[start, end)`` reads the days wholly inside it from the day-grain mart and
``[start, first whole day)`` and ``[end of the last whole day, end)`` from the detail mart,
then adds the parts: the same sums as reading every detail row, over about a thousand rows
instead of tens of thousands for 30 days. A period shorter than a day boundary to the next
reads the detail mart only. Periods in an org's time zone need no special case: every range
here is in absolute time.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from .periods import Period

DAY = timedelta(days=1)


def _floor_day(moment: datetime) -> datetime:
    moment = moment.astimezone(UTC)
    return moment.replace(hour=0, minute=0, second=0, microsecond=0)


def split(period: Period) -> dict[str, datetime]:
    """Query parameters: ``start``, ``edge1_end`` (the detail range before the first whole
    day), ``days_start``, ``days_end`` (the whole days, ``[days_start, days_end)`` by their
    start), ``edge2_start`` and ``end`` (the detail range after them). Empty ranges have
    equal ends, so one SQL text serves every period."""
    start, end = period.start, period.end
    first = _floor_day(start)
    if first < start:
        first += DAY
    last = _floor_day(end)
    if first >= last:  # no whole day inside: everything from the detail mart
        return {
            "start": start,
            "edge1_end": end,
            "days_start": first,
            "days_end": first,
            "edge2_start": end,
            "end": end,
        }
    return {
        "start": start,
        "edge1_end": first,
        "days_start": first,
        "days_end": last,
        "edge2_start": last,
        "end": end,
    }

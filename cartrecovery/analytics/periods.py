"""The reporting period of an analytics answer: a preset (``24h``, ``7d``, ``30d``, ``90d``)
ending now, or ``from``/``to`` calendar dates in the org's time zone (``store_timezone``),
both days included. Anything else is refused (:class:`PeriodError`, a ValueError), so the
API answers 400 rather than guessing.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

PRESETS: dict[str, timedelta] = {
    "24h": timedelta(hours=24),
    "7d": timedelta(days=7),
    "30d": timedelta(days=30),
    "90d": timedelta(days=90),
}
DEFAULT = "30d"
# A from/to range may cover at most this many days (a bound on what one request scans).
MAX_DAYS = 366


class PeriodError(ValueError):
    """The period cannot be understood; the message says what is accepted."""


@dataclass(frozen=True)
class Period:
    """``[start, end)`` in UTC, and how the caller named it (``label``)."""

    label: str
    start: datetime
    end: datetime

    def to_dict(self) -> dict:
        return {"label": self.label, "start": self.start.isoformat(), "end": self.end.isoformat()}


def _zone(name: str | None) -> ZoneInfo:
    try:
        return ZoneInfo(name or "UTC")
    except (ZoneInfoNotFoundError, ValueError):
        return ZoneInfo("UTC")


def _date(name: str, value: str | date) -> date:
    if isinstance(value, date):
        return value
    try:
        return date.fromisoformat(value)
    except (TypeError, ValueError):
        raise PeriodError(f"{name} must be a date like 2026-11-30") from None


def parse_period(
    period: str | None = None,
    from_date: str | date | None = None,
    to_date: str | date | None = None,
    time_zone: str | None = "UTC",
    now: datetime | None = None,
) -> Period:
    """The period named by ``period`` (a preset) or by ``from_date``/``to_date`` (both
    given, ``from_date <= to_date``, at most :data:`MAX_DAYS` days, days from midnight in
    ``time_zone``); neither means the default ``30d``. Giving both forms is refused."""
    if from_date is not None or to_date is not None:
        if period is not None:
            raise PeriodError("give period or from/to, not both")
        if from_date is None or to_date is None:
            raise PeriodError("from and to go together")
        first, last = _date("from", from_date), _date("to", to_date)
        if first > last:
            raise PeriodError("from must not be after to")
        if (last - first).days + 1 > MAX_DAYS:
            raise PeriodError(f"from/to may cover at most {MAX_DAYS} days")
        zone = _zone(time_zone)
        start = datetime.combine(first, time(0), zone).astimezone(UTC)
        end = datetime.combine(last + timedelta(days=1), time(0), zone).astimezone(UTC)
        return Period(f"{first.isoformat()}/{last.isoformat()}", start, end)
    label = DEFAULT if period is None else period
    if label not in PRESETS:
        raise PeriodError(f"period must be one of {', '.join(PRESETS)} (or give from and to)")
    end = (now or datetime.now(UTC)).astimezone(UTC)
    return Period(label, end - PRESETS[label], end)

"""The analytics period: presets ending now, from/to days in the org's zone, refusals."""

from __future__ import annotations

from datetime import UTC, date, datetime, timedelta

import pytest

from cartrecovery.analytics.periods import PeriodError, parse_period

NOW = datetime(2026, 3, 29, 12, 0, tzinfo=UTC)


@pytest.mark.parametrize(
    ("label", "length"),
    [("24h", timedelta(hours=24)), ("7d", timedelta(days=7)), ("90d", timedelta(days=90))],
)
def test_presets_end_now(label, length):
    period = parse_period(label, now=NOW)
    assert (period.label, period.start, period.end) == (label, NOW - length, NOW)


def test_nothing_means_30_days():
    assert parse_period(now=NOW).start == NOW - timedelta(days=30)


def test_days_are_local_midnights_across_a_dst_change():
    # Europe/Paris moves to summer time on 2026-03-29: that day has 23 hours.
    period = parse_period(None, "2026-03-28", "2026-03-29", "Europe/Paris")
    assert period.start == datetime(2026, 3, 27, 23, 0, tzinfo=UTC)
    assert period.end == datetime(2026, 3, 29, 22, 0, tzinfo=UTC)
    assert period.label == "2026-03-28/2026-03-29"
    one_day = parse_period(None, date(2026, 3, 29), date(2026, 3, 29), "Europe/Paris")
    assert one_day.end - one_day.start == timedelta(hours=23)


def test_an_unknown_zone_is_read_as_utc():
    period = parse_period(None, "2026-01-01", "2026-01-01", "Not/AZone")
    assert period.start == datetime(2026, 1, 1, tzinfo=UTC)


@pytest.mark.parametrize(
    ("period", "first", "last"),
    [
        ("1y", None, None),
        ("30D", None, None),
        ("", None, None),
        ("30d", "2026-01-01", "2026-01-02"),
        (None, "2026-01-01", None),
        (None, None, "2026-01-01"),
        (None, "2026-01-02", "2026-01-01"),
        (None, "01/02/2026", "2026-01-03"),
        (None, "2025-01-01", "2026-01-02"),  # 367 days
    ],
)
def test_anything_else_is_refused(period, first, last):
    with pytest.raises(PeriodError):
        parse_period(period, first, last)

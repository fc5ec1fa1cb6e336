"""Quiet hours: pure time logic, exact UTC instants, across time zones and DST changes."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from delivery.quiet_hours import (
    is_allowed,
    location_for_address,
    location_for_phone,
    location_for_zone,
    next_allowed,
    region_rules,
    window,
    zones_for_country,
)

FLORIDA = {"US-FL": {"start": "08:00", "end": "20:00"}}


def utc(*args) -> datetime:
    return datetime(*args, tzinfo=UTC)


def test_new_york_number_at_22_30_waits_for_08_00_new_york():
    where = location_for_phone("+12125550123")
    assert where.zones == ("America/New_York",) and where.country == "US"
    # 2026-01-15 22:30 EST (UTC-5) = 2026-01-16 03:30 UTC → 08:00 EST = 13:00 UTC.
    assert next_allowed(utc(2026, 1, 16, 3, 30), where.zones) == utc(2026, 1, 16, 13, 0)


def test_sydney_number_early_morning_waits_for_08_00_sydney():
    where = location_for_phone("+61291234567")
    assert where.zones == ("Australia/Sydney",)
    # 2026-01-15 06:00 AEDT (UTC+11) = 2026-01-14 19:00 UTC → 08:00 AEDT = 21:00 UTC.
    assert next_allowed(utc(2026, 1, 14, 19, 0), where.zones) == utc(2026, 1, 14, 21, 0)


def test_uk_number_in_summer_time():
    where = location_for_phone("+442079460000")
    assert where.zones == ("Europe/London",) and where.country == "GB"
    # 13:00 BST is allowed as is.
    assert next_allowed(utc(2026, 7, 1, 12, 0), where.zones) == utc(2026, 7, 1, 12, 0)
    # 21:15 BST (20:15 UTC) is too late → 08:00 BST next day = 07:00 UTC.
    assert next_allowed(utc(2026, 7, 1, 20, 15), where.zones) == utc(2026, 7, 2, 7, 0)
    # The end is exclusive: 21:00 BST exactly is closed, 20:59 open.
    assert next_allowed(utc(2026, 7, 1, 19, 59), where.zones) == utc(2026, 7, 1, 19, 59)
    assert next_allowed(utc(2026, 7, 1, 20, 0), where.zones) == utc(2026, 7, 2, 7, 0)


def test_spring_forward_in_new_york():
    # 2026-03-08 02:00 EST → 03:00 EDT. At 23:00 EST on the 7th (04:00 UTC on the 8th) the
    # next 08:00 is already in EDT (UTC-4): 12:00 UTC, not 13:00.
    assert next_allowed(utc(2026, 3, 8, 4, 0), ["America/New_York"]) == utc(2026, 3, 8, 12, 0)
    # The day before, still EST.
    assert next_allowed(utc(2026, 3, 7, 4, 0), ["America/New_York"]) == utc(2026, 3, 7, 13, 0)


def test_fall_back_in_london():
    # 2026-10-25 02:00 BST → 01:00 GMT. At 22:00 BST on the 24th (21:00 UTC) the next 08:00
    # is GMT: 08:00 UTC, not 07:00.
    assert next_allowed(utc(2026, 10, 24, 21, 0), ["Europe/London"]) == utc(2026, 10, 25, 8, 0)


def test_window_opening_inside_the_skipped_hour():
    # 02:30 does not exist in New York on 2026-03-08; the window opens when clocks show 03:00
    # EDT (07:00 UTC) and the instant is inside the window.
    rule = {"start": "02:30", "end": "05:00"}
    got = next_allowed(utc(2026, 3, 8, 5, 0), ["America/New_York"], rule)
    assert got == utc(2026, 3, 8, 7, 0)
    assert is_allowed(got, ["America/New_York"], [window(rule)])


def test_number_spanning_zones_uses_the_window_allowed_in_all():
    where = location_for_phone("+61412345678")  # an Australian mobile: any zone of AU
    assert {"Australia/Perth", "Australia/Sydney", "Indian/Cocos"} <= set(where.zones)
    # At 00:00 UTC (2026-01-15) Cocos (UTC+6:30) shows 06:30; 08:00 there is 01:30 UTC, when
    # Lord Howe (UTC+11) shows 12:30: the first instant allowed everywhere.
    assert next_allowed(utc(2026, 1, 15, 0, 0), where.zones) == utc(2026, 1, 15, 1, 30)
    # 10:00 UTC is 21:00 on Lord Howe: closed there, so closed for the number.
    assert not is_allowed(utc(2026, 1, 15, 10, 0), where.zones, [window(None)])


def test_florida_rule_is_stricter():
    where = location_for_phone("+13055550123")
    assert where.subdivision == "US-FL"
    rules = region_rules(FLORIDA, where)
    # 20:30 EST: fine by the default window, too late in Florida → 08:00 EST.
    at = utc(2026, 1, 16, 1, 30)
    assert next_allowed(at, where.zones) == at
    assert next_allowed(at, where.zones, None, rules) == utc(2026, 1, 16, 13, 0)
    # A New York number is not in Florida.
    assert region_rules(FLORIDA, location_for_phone("+12125550123")) == []


def test_country_rule_and_subdivision_rule_both_apply():
    where = location_for_address("US", "FL")
    assert where.subdivision == "US-FL" and "America/New_York" in where.zones
    rules = region_rules({**FLORIDA, "US": {"start": "09:00", "end": "21:00"}}, where)
    assert len(rules) == 2


def test_windows_that_wrap_past_midnight_and_whole_day():
    night = {"start": "22:00", "end": "06:00"}
    assert next_allowed(utc(2026, 1, 15, 23, 0), ["UTC"], night) == utc(2026, 1, 15, 23, 0)
    assert next_allowed(utc(2026, 1, 15, 3, 0), ["UTC"], night) == utc(2026, 1, 15, 3, 0)
    assert next_allowed(utc(2026, 1, 15, 12, 0), ["UTC"], night) == utc(2026, 1, 15, 22, 0)
    always = {"start": "00:00", "end": "24:00"}
    assert next_allowed(utc(2026, 1, 15, 3, 0), ["UTC"], always) == utc(2026, 1, 15, 3, 0)


def test_other_locations():
    assert location_for_zone("Europe/Paris", "timezone").country == "FR"
    assert location_for_zone("Not/AZone", "timezone") is None
    assert location_for_phone("+447700900123") is None  # reserved for drama, not valid
    assert location_for_phone("not a number") is None
    assert zones_for_country("FR") == ("Europe/Paris",)
    assert location_for_address("XX", None) is None


def test_bad_input():
    with pytest.raises(ValueError):
        next_allowed(datetime(2026, 1, 1, 12, 0), ["UTC"])  # naive
    with pytest.raises(ValueError):
        window({"start": "25:00", "end": "21:00"})
    with pytest.raises(ValueError):
        # One-hour windows in two zones 12 hours apart never overlap.
        next_allowed(
            utc(2026, 1, 15, 0, 0), ["UTC", "Etc/GMT-12"], {"start": "09:00", "end": "10:00"}
        )

"""Quiet hours: when a message may reach a recipient, in the recipient's local time.

Pure functions only (no database, no clock): the gate works out the recipient's time zones and
region and asks :func:`next_allowed` for the first instant at or after ``now`` that is inside
the org's sending window in *every* candidate zone and inside every stricter regional window
that applies. Several zones come from a phone number that spans zones (an Australian mobile)
or a country with several zones; allowing only instants that are fine in all of them is the
conservative reading of "the recipient's local time".

A window is ``{"start": "08:00", "end": "21:00"}``: sending allowed from start (inclusive) to
end (exclusive), local wall-clock time; ``"24:00"`` as end means midnight at the end of the day,
so ``00:00``–``24:00`` allows any time; start later than end wraps past midnight. Local times
come from :mod:`zoneinfo`, so DST changes are handled: on the day clocks jump, "08:00" is the
08:00 that the recipient's clock actually shows.
"""

from __future__ import annotations

import importlib.resources
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta
from functools import cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import phonenumbers
from phonenumbers import geocoder
from phonenumbers import timezone as phone_timezone

DEFAULT_WINDOW = {"start": "08:00", "end": "21:00"}
# How far ahead to look for an allowed instant; windows repeat daily, so a week is plenty.
SEARCH_DAYS = 8
_MIDNIGHT_END = "24:00"

# phonenumbers names North American regions ("Florida", "Chicago, IL") but not by ISO 3166-2
# code; region rules are keyed by code, so US/CA names are mapped here.
_NANP_SUBDIVISIONS = {
    "US": {
        "Alabama": "AL",
        "Alaska": "AK",
        "Arizona": "AZ",
        "Arkansas": "AR",
        "California": "CA",
        "Colorado": "CO",
        "Connecticut": "CT",
        "Delaware": "DE",
        "Florida": "FL",
        "Georgia": "GA",
        "Hawaii": "HI",
        "Idaho": "ID",
        "Illinois": "IL",
        "Indiana": "IN",
        "Iowa": "IA",
        "Kansas": "KS",
        "Kentucky": "KY",
        "Louisiana": "LA",
        "Maine": "ME",
        "Maryland": "MD",
        "Massachusetts": "MA",
        "Michigan": "MI",
        "Minnesota": "MN",
        "Mississippi": "MS",
        "Missouri": "MO",
        "Montana": "MT",
        "Nebraska": "NE",
        "Nevada": "NV",
        "New Hampshire": "NH",
        "New Jersey": "NJ",
        "New Mexico": "NM",
        "New York": "NY",
        "North Carolina": "NC",
        "North Dakota": "ND",
        "Ohio": "OH",
        "Oklahoma": "OK",
        "Oregon": "OR",
        "Pennsylvania": "PA",
        "Rhode Island": "RI",
        "South Carolina": "SC",
        "South Dakota": "SD",
        "Tennessee": "TN",
        "Texas": "TX",
        "Utah": "UT",
        "Vermont": "VT",
        "Virginia": "VA",
        "Washington": "WA",
        "West Virginia": "WV",
        "Wisconsin": "WI",
        "Wyoming": "WY",
        "Washington D.C.": "DC",
        "District of Columbia": "DC",
    },
    "CA": {
        "Alberta": "AB",
        "British Columbia": "BC",
        "Manitoba": "MB",
        "New Brunswick": "NB",
        "Newfoundland and Labrador": "NL",
        "Nova Scotia": "NS",
        "Ontario": "ON",
        "Prince Edward Island": "PE",
        "Quebec": "QC",
        "Saskatchewan": "SK",
        "Northwest Territories": "NT",
        "Nunavut": "NU",
        "Yukon": "YT",
    },
}


@dataclass(frozen=True)
class Window:
    """Allowed local sending hours: ``start <= t < end`` (wrapping past midnight if
    ``start > end``); ``end`` None means midnight at the end of the day."""

    start: time
    end: time | None

    def allows(self, local: time) -> bool:
        local = local.replace(tzinfo=None, fold=0)
        if self.end is None:
            return local >= self.start
        if self.start <= self.end:
            return self.start <= local < self.end
        return local >= self.start or local < self.end

    @property
    def always(self) -> bool:
        return self.start == time(0) and self.end is None


@dataclass(frozen=True)
class Location:
    """What is known about where a recipient is: candidate zones, ISO country, subdivision."""

    zones: tuple[str, ...] = ()
    country: str | None = None
    subdivision: str | None = None  # ISO 3166-2, e.g. "US-FL"
    source: str | None = None  # phone, timezone, address, store


def parse_clock(value: str) -> time | None:
    """``"HH:MM"`` → time; ``"24:00"`` → None (end of day). ValueError otherwise."""
    text = str(value).strip()
    if text == _MIDNIGHT_END:
        return None
    hours, sep, minutes = text.partition(":")
    if not sep or len(minutes) != 2 or not hours.isdigit() or not minutes.isdigit():
        raise ValueError(f"{value!r} is not a HH:MM time")
    h, m = int(hours), int(minutes)
    if not (0 <= h <= 23 and 0 <= m <= 59):
        raise ValueError(f"{value!r} is not a HH:MM time")
    return time(h, m)


def window(value: Window | Mapping | None) -> Window:
    """A :class:`Window` from ``{"start", "end"}`` (the org's default if None)."""
    if isinstance(value, Window):
        return value
    value = value or DEFAULT_WINDOW
    start = parse_clock(value.get("start", DEFAULT_WINDOW["start"]))
    if start is None:
        raise ValueError("start cannot be 24:00")
    return Window(start, parse_clock(value.get("end", DEFAULT_WINDOW["end"])))


def _windows(value) -> list[Window]:
    if value is None:
        return []
    if isinstance(value, (Window, Mapping)):
        return [window(value)]
    return [window(v) for v in value]


def _zones(tz_names: Iterable[str]) -> list[ZoneInfo]:
    zones = []
    for name in tz_names:
        try:
            zones.append(ZoneInfo(name))
        except (ZoneInfoNotFoundError, ValueError):
            continue
    return zones


def _local_starts(zone: ZoneInfo, rule: Window, around: datetime) -> Iterable[datetime]:
    """UTC instants at which ``rule`` opens in ``zone`` on the days around ``around``."""
    first = around.astimezone(zone).date() - timedelta(days=1)
    for offset in range(SEARCH_DAYS + 1):
        local = datetime.combine(first + timedelta(days=offset), rule.start, tzinfo=zone)
        opens = local.astimezone(UTC)
        if opens.astimezone(zone).replace(tzinfo=None) != local.replace(tzinfo=None):
            # The start falls in the hour skipped when clocks go forward: the window opens
            # the moment the clock jumps past it.
            opens = _transition(zone, local.replace(fold=1).astimezone(UTC), opens)
        yield opens


def _transition(zone: ZoneInfo, before: datetime, after: datetime) -> datetime:
    """The first instant in (before, after] with ``after``'s UTC offset (whole seconds)."""
    target = after.astimezone(zone).utcoffset()
    lo, hi = int(min(before, after).timestamp()), int(max(before, after).timestamp())
    while hi - lo > 1:
        mid = (lo + hi) // 2
        if datetime.fromtimestamp(mid, zone).utcoffset() == target:
            hi = mid
        else:
            lo = mid
    return datetime.fromtimestamp(hi, UTC)


def is_allowed(at_utc: datetime, tz_names: Sequence[str], rules: Sequence[Window]) -> bool:
    """Whether ``at_utc`` is inside every rule in every zone."""
    zones = _zones(tz_names)
    return all(rule.allows(at_utc.astimezone(z).time()) for z in zones for rule in rules)


def next_allowed(
    now_utc: datetime,
    tz_names: Sequence[str],
    window: Window | Mapping | None = None,
    region_rule: Window | Mapping | Sequence | None = None,
) -> datetime:
    """The first instant at or after ``now_utc`` allowed by ``window`` and ``region_rule``
    (one window or several, all must hold) in every zone of ``tz_names``.

    Returns ``now_utc`` itself when sending is allowed now. Unknown zone names are ignored;
    with no usable zone, UTC is used. Raises ValueError when no instant in the next
    :data:`SEARCH_DAYS` days satisfies every zone (windows that never overlap).
    """
    if now_utc.tzinfo is None:
        raise ValueError("now_utc must be timezone-aware")
    now_utc = now_utc.astimezone(UTC)
    rules = _windows(window if window is not None else DEFAULT_WINDOW) + _windows(region_rule)
    rules = [r for r in rules if not r.always]
    names = [z.key for z in _zones(tz_names)] or ["UTC"]
    if not rules or is_allowed(now_utc, names, rules):
        return now_utc
    # The allowed set is an intersection of daily intervals closed at their start, so its
    # earliest point after now is the opening of some rule in some zone.
    candidates = sorted(
        {
            start
            for z in _zones(names)
            for rule in rules
            for start in _local_starts(z, rule, now_utc)
            if start > now_utc
        }
    )
    for candidate in candidates:
        if is_allowed(candidate, names, rules):
            return candidate
    raise ValueError(f"no instant allowed in all of {names} within {SEARCH_DAYS} days")


# ---- where is the recipient ---------------------------------------------------------------


def location_for_phone(e164: str | None) -> Location | None:
    """Zones, country and (US/CA) subdivision of a phone number, or None if unknown."""
    if not e164:
        return None
    try:
        number = phonenumbers.parse(e164, None)
    except phonenumbers.NumberParseException:
        return None
    if not phonenumbers.is_valid_number(number):
        return None
    zones = tuple(z for z in phone_timezone.time_zones_for_number(number) if z != "Etc/Unknown")
    country = phonenumbers.region_code_for_number(number)
    if not zones and country:
        zones = zones_for_country(country)
    if not zones:
        return None
    subdivision = None
    names = _NANP_SUBDIVISIONS.get(country or "")
    if names:
        description = geocoder.description_for_number(number, "en")
        # "Florida" or "Chicago, IL"
        code = names.get(description) or description.rpartition(", ")[2]
        if code in names.values():
            subdivision = f"{country}-{code}"
    return Location(zones, country, subdivision, "phone")


@cache
def _zone_table() -> dict[str, tuple[str, ...]]:
    """ISO country code → zones, from the tz database's zone.tab (shipped by ``tzdata``)."""
    text = importlib.resources.files("tzdata.zoneinfo").joinpath("zone.tab").read_text()
    table: dict[str, list[str]] = {}
    for line in text.splitlines():
        if line.startswith("#") or not line.strip():
            continue
        fields = line.split("\t")
        if len(fields) >= 3:
            table.setdefault(fields[0].upper(), []).append(fields[2])
    return {k: tuple(v) for k, v in table.items()}


def zones_for_country(country: str | None) -> tuple[str, ...]:
    """Every zone of an ISO 3166-1 country (``()`` if unknown)."""
    return _zone_table().get((country or "").upper(), ())


def country_for_zone(name: str | None) -> str | None:
    """The country a zone belongs to (None for UTC and unknown names)."""
    if not name:
        return None
    for country, zones in _zone_table().items():
        if name in zones:
            return country
    return None


def location_for_zone(name: str | None, source: str) -> Location | None:
    """A Location from an IANA zone name (None if it is not one)."""
    if not name or not _zones([name]):
        return None
    return Location((name,), country_for_zone(name), None, source)


def location_for_address(country: str | None, province: str | None) -> Location | None:
    """A Location from an address' ISO country and province/state code."""
    country = (country or "").strip().upper() or None
    zones = zones_for_country(country)
    if not zones:
        return None
    province = (province or "").strip().upper()
    subdivision = f"{country}-{province}" if province else None
    return Location(zones, country, subdivision, "address")


def region_rules(regions: Mapping | None, location: Location) -> list[Window]:
    """The stricter regional windows that apply to ``location``: its country's and its
    subdivision's (both if both are configured)."""
    regions = regions or {}
    found = []
    for key in (location.country, location.subdivision):
        if key and key in regions:
            found.append(window(regions[key]))
    return found

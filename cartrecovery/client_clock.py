"""Timestamps from clients' clocks (the tracking API, the snippet, custom shops).

A cart update older than the stored one never rolls the cart back (see ``carts``), so a
timestamp from a clock set in the future would lock the cart: every later, real update looks
older and is ignored. The snippet sends the shopper's browser clock, which can be wrong.

A timestamp more than :data:`MAX_SKEW` ahead of the server's clock is therefore clamped to
the server's clock at receipt, and the answer says so. Clamping rather than refusing: the
event itself is good (a shopper cannot fix their clock, and refusing would lose the cart),
and receipt time keeps the order in which the events arrived, the best order left.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

MAX_SKEW = timedelta(minutes=5)


def clamp_future(value: datetime, now: datetime | None = None) -> tuple[datetime, bool]:
    """``(value, False)`` when ``value`` is at most :data:`MAX_SKEW` ahead of ``now`` (the
    server clock by default), else ``(now, True)``. ``value`` must be timezone-aware."""
    now = now or datetime.now(UTC)
    if value - now > MAX_SKEW:
        return now, True
    return value, False

"""Fixed-window rate limits counted in Redis (publishable keys per client IP, failed
sign-ins per email and client IP).

A bucket's counter for a window lives under a key that names the window, so it expires by
itself once the window is over. When Redis cannot be reached, requests are let through:
Redis holds counters, not data, and a limiter outage must not stop carts being tracked or
people signing in.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass

import redis

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class RateLimit:
    """``limit`` requests per ``window_seconds`` (a fixed window)."""

    limit: int = 60
    window_seconds: int = 60


def _window(bucket: str, rate: RateLimit, now: float) -> tuple[int, str]:
    window = int(now // rate.window_seconds)
    return window, f"cartrecovery:ratelimit:{bucket}:{window}"


def _retry_after(window: int, rate: RateLimit, now: float) -> int:
    return max(1, math.ceil((window + 1) * rate.window_seconds - now))


def hit_rate_limit(
    client: redis.Redis, bucket: str, rate: RateLimit, now: float | None = None
) -> int | None:
    """Count one request in ``bucket``'s current window.

    Returns None while the bucket is within its limit, else the seconds until the window
    ends (for ``Retry-After``).
    """
    now = time.time() if now is None else now
    window, key = _window(bucket, rate, now)
    try:
        pipe = client.pipeline(transaction=True)
        pipe.incr(key)
        # The key names its window, so it may expire as soon as that window is over.
        pipe.expireat(key, (window + 1) * rate.window_seconds + 1)
        count = pipe.execute()[0]
    except redis.RedisError:
        log.warning("rate limiter unavailable; request let through", exc_info=True)
        return None
    if count <= rate.limit:
        return None
    return _retry_after(window, rate, now)


def rate_limited(
    client: redis.Redis, bucket: str, rate: RateLimit, now: float | None = None
) -> int | None:
    """Whether ``bucket`` has used up its current window, without counting anything: None
    if not, else the seconds until the window ends. (For limits on failures only: check
    before the attempt, :func:`hit_rate_limit` after a failed one.)"""
    now = time.time() if now is None else now
    window, key = _window(bucket, rate, now)
    try:
        count = int(client.get(key) or 0)
    except redis.RedisError:
        log.warning("rate limiter unavailable; request let through", exc_info=True)
        return None
    return _retry_after(window, rate, now) if count >= rate.limit else None

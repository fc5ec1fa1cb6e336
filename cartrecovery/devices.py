"""The device class of a shopper's browser (``desktop``, ``mobile`` or ``tablet``) from its
User-Agent string (docs/models.md, "Features": the send-time and content models segment by
it).

Classified with the ``user-agents`` package over ``ua-parser``'s maintained rules. Anything
that is not a browser of a person (a store server's HTTP library, a crawler, an empty string)
is ``None``: unknown, never a guess. Results are cached per string: a store's shoppers send
few distinct user agents, and parsing one costs about a millisecond.
"""

from __future__ import annotations

from functools import lru_cache

DEVICE_CLASSES = ("desktop", "mobile", "tablet")
MAX_USER_AGENT = 1000  # longer strings are not browsers; parsing them is wasted work


def device_class(user_agent: str | None) -> str | None:
    """``desktop``, ``mobile``, ``tablet`` or None (unknown) for a User-Agent string."""
    if not user_agent or len(user_agent) > MAX_USER_AGENT:
        return None
    return _classify(user_agent)


@lru_cache(maxsize=4096)
def _classify(user_agent: str) -> str | None:
    from user_agents import parse  # its regex tables load on first use, not at import

    parsed = parse(user_agent)
    if parsed.is_bot:
        return None
    if parsed.is_tablet:
        return "tablet"
    if parsed.is_mobile:
        return "mobile"
    if parsed.is_pc:
        return "desktop"
    return None

"""Store platforms by name, from the ``cartrecovery.adapters`` entry-point group, so a
pip-installed package can add a platform without touching this repository.

This is the one table of platforms: the CLI (``connections add``, ``sync``), the connections
API, the webhook routes, historical sync and coupon issuing all ask it. An entry point names
either a :class:`~integrations.platform.Platform` (the built-in packages) or an ``Adapter``
subclass (a platform with webhooks only).
"""

from __future__ import annotations

import logging
from functools import cache
from importlib.metadata import entry_points

from .base import Adapter
from .platform import CUSTOM_PATH, Platform, webhook_only

GROUP = "cartrecovery.adapters"
log = logging.getLogger(__name__)

__all__ = [
    "CUSTOM_PATH",
    "GROUP",
    "adapters",
    "get_adapter",
    "platform",
    "platforms",
    "reload",
    "resolve",
    "webhook_urls",
]


@cache
def platforms() -> dict[str, Platform]:
    """Every installed platform by its name."""
    found: dict[str, Platform] = {}
    for ep in entry_points(group=GROUP):
        try:
            value = ep.load()
        except Exception:  # a broken third-party package must not take ingest down
            log.exception("could not load adapter %s", ep.name)
            continue
        if isinstance(value, Platform):
            if value.name != ep.name:
                log.error("entry point %s names platform %r", ep.name, value.name)
                continue
            found[ep.name] = value
        elif isinstance(value, type) and issubclass(value, Adapter):
            found[ep.name] = webhook_only(ep.name, value)
        else:
            log.error("entry point %s is neither a Platform nor an Adapter subclass", ep.name)
    return found


@cache
def _aliases() -> dict[str, str]:
    table = platforms()
    return {alias: p.name for p in table.values() for alias in p.aliases if alias not in table}


def resolve(name: str) -> str | None:
    """The platform's name for ``name`` (itself, or the platform it is an alias of), None
    when nothing installed answers to it. Case-insensitive."""
    name = (name or "").strip().lower()
    if name in platforms():
        return name
    return _aliases().get(name)


def platform(name: str) -> Platform | None:
    resolved = resolve(name)
    return platforms()[resolved] if resolved else None


def adapters() -> dict[str, type[Adapter]]:
    """The webhook adapter class of every installed platform."""
    return {name: p.adapter for name, p in platforms().items()}


def coupon_credentials() -> dict[str, tuple[str, ...]]:
    """Platform → the credential keys its coupon API needs, for platforms that create codes."""
    return {
        name: p.coupon_credentials
        for name, p in platforms().items()
        if p.coupon_client is not None and p.coupon_credentials
    }


def get_adapter(name: str) -> Adapter | None:
    found = platform(name)
    return found.adapter() if found else None


def reload() -> None:
    """Forget the cached entry points (after installing a package at run time, in tests)."""
    platforms.cache_clear()
    _aliases.cache_clear()


def webhook_urls(app_url: str, name: str, connection_id) -> dict[str, str]:
    """What a store of platform ``name`` must be told to post to, topic → absolute URL
    (the custom route of the connection for a platform that is not installed)."""
    found = platform(name)
    if found is None:
        base = app_url.rstrip("/")
        return {"events": base + CUSTOM_PATH.format(connection_id=connection_id)}
    return found.webhook_urls(app_url, connection_id)

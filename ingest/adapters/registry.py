"""Adapters by platform name, from the ``cartrecovery.adapters`` entry-point group, so a
pip-installed package can add a platform without touching this repository."""

from __future__ import annotations

import logging
from functools import cache
from importlib.metadata import entry_points

from .base import Adapter

GROUP = "cartrecovery.adapters"
log = logging.getLogger(__name__)


@cache
def adapters() -> dict[str, type[Adapter]]:
    found: dict[str, type[Adapter]] = {}
    for ep in entry_points(group=GROUP):
        try:
            cls = ep.load()
        except Exception:  # a broken third-party package must not take ingest down
            log.exception("could not load adapter %s", ep.name)
            continue
        if isinstance(cls, type) and issubclass(cls, Adapter):
            found[ep.name] = cls
        else:
            log.error("entry point %s is not an Adapter subclass", ep.name)
    return found


def get_adapter(platform: str) -> Adapter | None:
    cls = adapters().get(platform)
    return cls() if cls else None


def reload() -> None:
    """Forget the cached entry points (after installing a package at run time, in tests)."""
    adapters.cache_clear()


CUSTOM_PATH = "/api/webhooks/custom/{connection_id}"
# For built-in adapters that do not (yet) say where their store must post.
_DEFAULT_TOPICS: dict[str, dict[str, str]] = {
    "woocommerce": {
        "order.created": "/api/webhooks/woocommerce",
        "order.updated": "/api/webhooks/woocommerce",
    },
    "bigcommerce": {
        "store/cart/*": "/api/webhooks/bigcommerce",
        "store/order/created": "/api/webhooks/bigcommerce",
    },
    "magento": {"events": "/api/webhooks/magento"},
}


def webhook_urls(app_url: str, platform: str, connection_id) -> dict[str, str]:
    """What a store of ``platform`` must be told to post to, topic → absolute URL: the
    adapter's ``webhook_topics``, else the custom route of the connection."""
    cls = adapters().get(platform)
    paths = (
        (cls.webhook_topics if cls is not None and cls.webhook_topics else None)
        or _DEFAULT_TOPICS.get(platform)
        or {"events": CUSTOM_PATH}
    )
    base = app_url.rstrip("/")
    return {topic: base + path.format(connection_id=connection_id) for topic, path in paths.items()}

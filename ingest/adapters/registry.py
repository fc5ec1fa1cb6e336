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

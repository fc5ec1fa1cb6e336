"""Webhooks that register themselves: what a store is expected to post to us, what its
platform says is registered, and the repair of the difference.

A platform package that can manage its store's webhooks through an API gives its
``Platform`` a ``webhook_registrar(connection, app_url, **client_options)`` returning a
:class:`Registrar` (``integrations/<platform>/webhooks.py``); a platform whose webhooks are
declared in the store's own configuration (Magento / Adobe Commerce) gives a
``webhook_config(connection, app_url)`` returning the text to paste. See docs/adapters.md.

Hooks are compared by (topic, URL). A registered hook is **ours** when its URL points at
this app (``APP_URL``): only ours are ever deleted, so a merchant's other integrations are
left alone. :func:`ensure` creates what is missing, and replaces ours that are inactive or
point at a URL we no longer expect; running it twice changes nothing the second time.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import asdict, dataclass, field
from typing import Any

from cartrecovery.tenancy import Connection


class WebhookError(Exception):
    """The platform's webhook API failed (the message says which call and why)."""


@dataclass(frozen=True)
class Hook:
    """One webhook: ``topic`` in the platform's own words, the ``url`` it posts to, the
    platform's ``id`` for it (registered hooks) and whether the platform still sends it."""

    topic: str
    url: str
    id: str | None = None
    active: bool = True

    @property
    def key(self) -> tuple[str, str]:
        return (self.topic, self.url)


@dataclass
class WebhookStatus:
    """Expected against registered. ``missing``: expected, not registered (or registered but
    inactive); ``stale``: ours, registered, not expected (an old URL or topic)."""

    platform: str
    expected: list[Hook]
    registered: list[Hook]
    missing: list[Hook] = field(default_factory=list)
    stale: list[Hook] = field(default_factory=list)
    inactive: list[Hook] = field(default_factory=list)
    created: list[Hook] = field(default_factory=list)
    deleted: list[Hook] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return not (self.missing or self.stale or self.inactive)

    def as_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"platform": self.platform, "ok": self.ok}
        for name in ("expected", "registered", "missing", "stale", "inactive"):
            out[name] = [asdict(h) for h in getattr(self, name)]
        out["created"] = [asdict(h) for h in self.created]
        out["deleted"] = [asdict(h) for h in self.deleted]
        return out


class Registrar(ABC):
    """A store's webhook API: list, create, delete. Subclasses say how."""

    platform = "store"

    def __init__(self, connection: Connection, app_url: str):
        self.connection = connection
        self.app_url = app_url.rstrip("/")

    def expected(self) -> list[Hook]:
        """What the store must post, from the platform's one table of topics."""
        from .registry import platform

        found = platform(self.connection.platform)
        urls = found.webhook_urls(self.app_url, self.connection.connection_id) if found else {}
        return [Hook(topic, url) for topic, url in urls.items()]

    def ours(self, hook: Hook) -> bool:
        return hook.url == self.app_url or hook.url.startswith(self.app_url + "/")

    @abstractmethod
    def registered(self) -> list[Hook]:
        """Every hook the platform lists for this store (WebhookError when it cannot)."""

    @abstractmethod
    def create(self, hook: Hook) -> Hook:
        """Register ``hook``; the registered one (with its id)."""

    @abstractmethod
    def delete(self, hook: Hook) -> None:
        """Remove the registered ``hook``."""


def status(registrar: Registrar) -> WebhookStatus:
    """Expected against registered, without changing anything."""
    expected = registrar.expected()
    registered = registrar.registered()
    wanted = {h.key for h in expected}
    live = {h.key for h in registered if h.active}
    result = WebhookStatus(registrar.platform, expected, registered)
    result.missing = [h for h in expected if h.key not in live]
    result.inactive = [h for h in registered if h.key in wanted and not h.active]
    result.stale = [h for h in registered if registrar.ours(h) and h.key not in wanted]
    return result


def ensure(registrar: Registrar) -> WebhookStatus:
    """Make the registered hooks what is expected: inactive and stale ones of ours are
    deleted, missing ones created. Returns the status after the repair, with what was
    ``created`` and ``deleted``."""
    before = status(registrar)
    deleted = []
    for hook in before.inactive + before.stale:
        registrar.delete(hook)
        deleted.append(hook)
    created = [registrar.create(h) for h in before.missing]
    after = status(registrar) if (created or deleted) else before
    after.created, after.deleted = created, deleted
    return after


def registrar_for(connection: Connection, app_url: str, **client_options) -> Registrar | None:
    """The connection's platform registrar, or None when its platform has no webhook API
    (or no registrar can be built from the connection's credentials)."""
    from .registry import platform

    found = platform(connection.platform)
    if found is None or found.webhook_registrar is None:
        return None
    return found.webhook_registrar(connection, app_url, **client_options)


def manual_config(connection: Connection, app_url: str) -> str | None:
    """The configuration to paste into the store, for platforms that declare webhooks in
    configuration (Magento), else None."""
    from .registry import platform

    found = platform(connection.platform)
    if found is None or found.webhook_config is None:
        return None
    return found.webhook_config(connection, app_url)

"""What one store platform brings, as the registry hands it out: the webhook adapter, the
webhook topics a store must be told to post (the one table: the adapter's
``webhook_topics``), the credentials a connection may hold, and what the platform's API
allows (historical sync, coupons). See docs/adapters.md.

A platform package exposes one :class:`Platform` and registers it under the
``cartrecovery.adapters`` entry-point group; a bare ``Adapter`` subclass registered there
(the shape third-party packages have always used) is read as a platform with only webhooks.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any
from urllib.parse import urlsplit

from .base import Adapter

if TYPE_CHECKING:  # only for annotations: the registry must not import every API client
    from cartrecovery.http_client import StoreHttpClient

    from .coupons import StoreClient
    from .sync import Resource
    from .webhooks import Registrar

# Where a store posts when its adapter names no topics: the URL names the connection.
CUSTOM_PATH = "/api/webhooks/custom/{connection_id}"


@dataclass(frozen=True)
class Credential:
    """One key of a connection's ``credentials``.

    ``kind`` is ``"text"``, ``"url"`` (http or https) or ``"number"``. ``check`` turns a
    given value into the stored one or raises ValueError (e.g. a PEM key that must be RSA).
    ``from_file``: the ``connections add`` option setting it names a file whose content is
    the value (``--public-key-file``).
    """

    key: str
    help: str
    kind: str = "text"
    check: Callable[[str], str] | None = None
    from_file: bool = False

    def clean(self, value: Any) -> Any:
        """The value to store; ValueError naming what is wrong."""
        if self.kind == "number":
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                raise ValueError("must be a number")
            return value
        if not isinstance(value, str):
            raise ValueError("must be a string")
        if not value.strip():
            raise ValueError("must not be empty")
        value = value.strip()
        if self.kind == "url" and urlsplit(value).scheme not in ("http", "https"):
            raise ValueError("must be an http(s) URL")
        return self.check(value) if self.check else value


@dataclass(frozen=True)
class Platform:
    """One store platform. Only ``name`` and ``adapter`` are required.

    ``credentials``: the keys a connection's credentials may hold (None: any JSON object,
    unchecked, as for adapters that declare nothing). ``api_client(connection, **options)``:
    the platform API's ``StoreHttpClient`` (historical sync). ``sync_resources``: resource
    name → ``integrations.sync.Resource`` class. ``coupon_client(shop_domain, credentials)``:
    the client creating discount codes in the store, or None without the credentials it
    needs, which ``coupon_credentials`` names (a campaign offering discounts is refused while
    it can reach a connection without them: cartrecovery/discount_reach.py). ``aliases``:
    other names accepted for this platform
    (stored under ``name``). ``webhook_registrar(connection, app_url, **client_options)``:
    the store's webhook API (``integrations.webhooks.Registrar``), or None without the
    credentials it needs; ``webhook_config(connection, app_url)``: the configuration text to
    paste, for a platform whose webhooks are declared in the store (docs/adapters.md).
    """

    name: str
    adapter: type[Adapter]
    credentials: tuple[Credential, ...] | None = None
    api_client: Callable[..., StoreHttpClient] | None = None
    sync_resources: Mapping[str, type[Resource]] | None = None
    coupon_client: Callable[[str, dict], StoreClient | None] | None = None
    coupon_credentials: tuple[str, ...] = ()
    webhook_registrar: Callable[..., Registrar | None] | None = None
    webhook_config: Callable[[Any, str], str] | None = None
    aliases: tuple[str, ...] = field(default=())

    @property
    def webhook_topics(self) -> dict[str, str]:
        """Topic → URL path (``{connection_id}`` filled in by :meth:`webhook_urls`)."""
        return dict(self.adapter.webhook_topics) or {"events": CUSTOM_PATH}

    def webhook_urls(self, app_url: str, connection_id: Any) -> dict[str, str]:
        """What a store of this platform must be told to post to, topic → absolute URL."""
        base = app_url.rstrip("/")
        return {
            topic: base + path.format(connection_id=connection_id)
            for topic, path in self.webhook_topics.items()
        }

    def credential(self, key: str) -> Credential | None:
        return next((c for c in self.credentials or () if c.key == key), None)

    def clean_credentials(self, given: Mapping[str, Any] | None) -> dict | None:
        """``given`` checked against :attr:`credentials`: ValueError for an unknown key or a
        bad value (the message names the key), unchecked when the platform declares none."""
        if not given:
            return None
        if self.credentials is None:
            return dict(given)
        cleaned = {}
        for key, value in given.items():
            credential = self.credential(key)
            if credential is None:
                known = ", ".join(c.key for c in self.credentials) or "none"
                raise ValueError(f"{key}: not a {self.name} credential (known: {known})")
            try:
                cleaned[key] = credential.clean(value)
            except ValueError as exc:
                raise ValueError(f"{key}: {exc}") from exc
        return cleaned

    def can_sync(self) -> bool:
        return bool(self.sync_resources) and self.api_client is not None


def webhook_only(name: str, adapter: type[Adapter]) -> Platform:
    """The platform of an adapter registered on its own (no credentials schema, no API)."""
    return Platform(name=name, adapter=adapter)

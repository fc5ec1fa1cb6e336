"""WooCommerce webhooks through the REST API ``/wp-json/wc/v3/webhooks`` (Basic auth with the
consumer key and secret): listed first (every page), then one ``POST`` per missing topic
(``order.created``, ``order.updated``) with ``delivery_url`` = our URL, ``status: active``
and ``secret`` = the connection's webhook secret (what ``X-WC-Webhook-Signature`` is made
with). WooCommerce disables a webhook after repeated delivery failures: ours that are not
``active`` are deleted (``force=true``) and made again. The secret of an existing webhook
cannot be read back; after a secret rotation, delete ours (``verify --fix`` does not know)."""

from __future__ import annotations

from cartrecovery.http_client import StoreApiError, StoreHttpClient
from cartrecovery.tenancy import Connection

from ..webhooks import Hook, Registrar, WebhookError
from .api import api_client

PATH = "/wp-json/wc/v3/webhooks"
MAX_PAGES = 20


class WooCommerceWebhooks(Registrar):
    platform = "woocommerce"

    def __init__(self, connection: Connection, app_url: str, http: StoreHttpClient):
        super().__init__(connection, app_url)
        self.http = http

    def _json(self, method: str, path: str, **kw):
        try:
            return self.http.json(method, path, **kw)
        except StoreApiError as exc:
            raise WebhookError(f"woocommerce {exc}") from exc

    def registered(self) -> list[Hook]:
        hooks = []
        for page in range(1, MAX_PAGES + 1):
            items = self._json("GET", PATH, params={"page": page, "per_page": 100}) or []
            for item in items:
                hooks.append(
                    Hook(
                        item.get("topic", ""),
                        item.get("delivery_url", ""),
                        str(item.get("id")),
                        item.get("status") == "active",
                    )
                )
            if len(items) < 100:
                break
        return hooks

    def create(self, hook: Hook) -> Hook:
        body = {
            "name": f"Cart recovery: {hook.topic}",
            "topic": hook.topic,
            "delivery_url": hook.url,
            "secret": self.connection.secret,
            "status": "active",
        }
        item = self._json("POST", PATH, json=body) or {}
        return Hook(hook.topic, item.get("delivery_url", hook.url), str(item.get("id")))

    def delete(self, hook: Hook) -> None:
        self._json("DELETE", f"{PATH}/{hook.id}", params={"force": "true"}, allow=(404,))


def registrar(connection: Connection, app_url: str, **client_options) -> WooCommerceWebhooks | None:
    """The store's webhooks API, or None without the consumer key and secret."""
    creds = connection.credentials or {}
    if not creds.get("consumer_key") or not creds.get("consumer_secret"):
        return None
    return WooCommerceWebhooks(connection, app_url, api_client(connection, **client_options))

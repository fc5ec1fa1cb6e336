"""BigCommerce hooks through the store API's ``/v3/hooks``: listed first (every page), then
one ``POST /v3/hooks`` per missing scope with ``destination`` = our URL, ``is_active`` and
the custom header ``X-Cartrec-Hook-Token: <connection secret>`` the adapter checks; ours
that are inactive or carry another token (a rotated secret) are deleted and made again."""

from __future__ import annotations

from cartrecovery.http_client import StoreApiError
from cartrecovery.tenancy import Connection

from ..webhooks import Hook, Registrar, WebhookError
from .adapter import HOOK_TOKEN_HEADER, BigCommerceApi

MAX_PAGES = 20


class BigCommerceWebhooks(Registrar):
    platform = "bigcommerce"

    def __init__(self, connection: Connection, app_url: str, api: BigCommerceApi):
        super().__init__(connection, app_url)
        self.http = api.client

    def _json(self, method: str, path: str, **kw):
        try:
            return self.http.json(method, path, **kw)
        except StoreApiError as exc:
            raise WebhookError(f"bigcommerce {exc}") from exc

    def _token_ok(self, headers) -> bool:
        token = (headers or {}).get(HOOK_TOKEN_HEADER) if isinstance(headers, dict) else None
        return token == self.connection.secret

    def registered(self) -> list[Hook]:
        hooks = []
        for page in range(1, MAX_PAGES + 1):
            body = self._json("GET", "/v3/hooks", params={"page": page, "limit": 250}) or {}
            for item in body.get("data") or []:
                hooks.append(
                    Hook(
                        item.get("scope", ""),
                        item.get("destination", ""),
                        str(item.get("id")),
                        bool(item.get("is_active")) and self._token_ok(item.get("headers")),
                    )
                )
            pagination = (body.get("meta") or {}).get("pagination") or {}
            if page >= int(pagination.get("total_pages") or 1):
                break
        return hooks

    def create(self, hook: Hook) -> Hook:
        body = {
            "scope": hook.topic,
            "destination": hook.url,
            "is_active": True,
            "headers": {HOOK_TOKEN_HEADER: self.connection.secret},
        }
        data = (self._json("POST", "/v3/hooks", json=body) or {}).get("data") or {}
        return Hook(hook.topic, data.get("destination", hook.url), str(data.get("id")))

    def delete(self, hook: Hook) -> None:
        self._json("DELETE", f"/v3/hooks/{hook.id}", allow=(404,))


def registrar(connection: Connection, app_url: str, **client_options) -> BigCommerceWebhooks | None:
    """The store's hooks API, or None without an access token."""
    api = BigCommerceApi.for_connection(connection, **client_options)
    return BigCommerceWebhooks(connection, app_url, api) if api else None

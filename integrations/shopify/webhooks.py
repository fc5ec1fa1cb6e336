"""Shopify webhook subscriptions through the GraphQL Admin API: ``webhookSubscriptions`` to
list (only this app's subscriptions are visible to it), ``webhookSubscriptionCreate`` (JSON
format, ``uri`` = our per-topic URL) and ``webhookSubscriptionDelete``. Topics are the
GraphQL enum form of the webhook topic (``checkouts/create`` → ``CHECKOUTS_CREATE``).

The privacy topics (``customers/data_request``, ``customers/redact``, ``shop/redact``) are
not subscribed through the API: Shopify takes them from the app's configuration
(``shopify.app.toml``, see :mod:`integrations.shopify.app_toml`), so they are not expected
here."""

from __future__ import annotations

from cartrecovery.http_client import StoreApiError
from cartrecovery.tenancy import Connection

from ..webhooks import Hook, Registrar, WebhookError
from .adapter import PRIVACY_TOPICS
from .api import ShopifyGraphQL, user_errors

LIST = """
query OurWebhooks($after: String) {
  webhookSubscriptions(first: 100, after: $after) {
    nodes { id topic uri format }
    pageInfo { hasNextPage endCursor }
  }
}
"""

CREATE = """
mutation Subscribe($topic: WebhookSubscriptionTopic!, $sub: WebhookSubscriptionInput!) {
  webhookSubscriptionCreate(topic: $topic, webhookSubscription: $sub) {
    webhookSubscription { id topic uri format }
    userErrors { field message }
  }
}
"""

DELETE = """
mutation Unsubscribe($id: ID!) {
  webhookSubscriptionDelete(id: $id) {
    deletedWebhookSubscriptionId
    userErrors { field message }
  }
}
"""

MAX_PAGES = 20


def enum_topic(topic: str) -> str:
    """``checkouts/create`` → ``CHECKOUTS_CREATE`` (the GraphQL enum)."""
    return topic.replace("/", "_").upper()


def rest_topic(value: str) -> str:
    """``CHECKOUTS_CREATE`` → ``checkouts/create`` (first underscore is the slash)."""
    head, _, tail = value.lower().partition("_")
    return f"{head}/{tail}" if tail else head


def api_topics(topics) -> list[str]:
    """The topics subscribed through the API (all but the app-config privacy ones)."""
    return [t for t in topics if t not in PRIVACY_TOPICS]


class ShopifyWebhooks(Registrar):
    platform = "shopify"

    def __init__(self, connection: Connection, app_url: str, api: ShopifyGraphQL):
        super().__init__(connection, app_url)
        self.api = api

    def expected(self) -> list[Hook]:
        return [h for h in super().expected() if h.topic not in PRIVACY_TOPICS]

    def _call(self, query: str, variables: dict, mutation: bool = False) -> dict:
        try:
            return self.api.execute(query, variables, mutation=mutation)
        except StoreApiError as exc:
            raise WebhookError(str(exc)) from exc

    def registered(self) -> list[Hook]:
        hooks, after = [], None
        for _ in range(MAX_PAGES):
            found = self._call(LIST, {"after": after}).get("webhookSubscriptions") or {}
            for node in found.get("nodes") or []:
                hooks.append(Hook(rest_topic(node["topic"]), node.get("uri") or "", node["id"]))
            info = found.get("pageInfo") or {}
            if not info.get("hasNextPage"):
                break
            after = info.get("endCursor")
        return hooks

    def create(self, hook: Hook) -> Hook:
        variables = {
            "topic": enum_topic(hook.topic),
            "sub": {"uri": hook.url, "format": "JSON"},
        }
        payload = self._call(CREATE, variables, mutation=True).get("webhookSubscriptionCreate")
        try:
            user_errors(payload, f"webhookSubscriptionCreate {hook.topic}")
        except StoreApiError as exc:
            raise WebhookError(str(exc)) from exc
        node = (payload or {}).get("webhookSubscription") or {}
        return Hook(hook.topic, node.get("uri") or hook.url, node.get("id"))

    def delete(self, hook: Hook) -> None:
        payload = self._call(DELETE, {"id": hook.id}, mutation=True).get(
            "webhookSubscriptionDelete"
        )
        try:
            user_errors(payload, f"webhookSubscriptionDelete {hook.topic}")
        except StoreApiError as exc:
            raise WebhookError(str(exc)) from exc


def registrar(connection: Connection, app_url: str, **client_options) -> ShopifyWebhooks | None:
    """The store's subscriptions API, or None without an access token."""
    creds = connection.credentials or {}
    if not creds.get("access_token"):
        return None
    api = ShopifyGraphQL.for_store(connection.shop_domain, creds, **client_options)
    return ShopifyWebhooks(connection, app_url, api)

"""The Shopify GraphQL Admin API: the pinned version, the credentials a connection holds for
it and the client (``POST /admin/api/<version>/graphql.json`` with
``X-Shopify-Access-Token``; base ``https://<shop_domain>`` unless ``api_base_url`` says
otherwise).

**Cost-based rate limits.** Shopify meters GraphQL by query cost: every answer carries
``extensions.cost`` with the ``requestedQueryCost`` and the bucket's ``throttleStatus``
(``maximumAvailable``, ``currentlyAvailable``, ``restoreRate`` points per second). A query
the bucket cannot pay for is answered 200 with an error whose ``extensions.code`` is
``THROTTLED`` and is not executed, so it is retried (mutations too) after the time the
bucket needs to refill; and after every answer, when what is left would not pay for another
query of the same cost, the client waits that refill time before returning, so the next
call is not refused. The wait goes through the HTTP client's ``sleep`` (tests record it).
See docs/adapters.md.
"""

from __future__ import annotations

import re
from typing import Any

import requests

from cartrecovery.http_client import RETRY_STATUSES, StoreApiError, StoreHttpClient
from cartrecovery.tenancy import Connection

from ..platform import Credential

# The one Admin API version every call uses unless a connection's credentials name another.
# 2026-07 is the first to expose Order.checkoutToken/cartToken (what links an order to its
# checkout, as the orders webhook does); Shopify supports a version for twelve months.
SHOPIFY_API_VERSION = "2026-10"

# What the OAuth install asks for: read checkouts and orders (historical sync), create
# discount codes, and read customers (the checkout's buyer).
SCOPES = ("read_orders", "read_customers", "write_discounts")

CREDENTIALS = (
    Credential("access_token", "Shopify Admin API access token (sync, coupons, webhooks)."),
    Credential("api_base_url", "Override the API base URL (tests, proxies).", kind="url"),
    Credential("api_version", f"Admin API version (default {SHOPIFY_API_VERSION})."),
    Credential("scope", "The scopes the access token was granted (set by the OAuth install)."),
)

# How many times a THROTTLED query is tried again before giving up (each after a wait long
# enough for the bucket to pay for it).
MAX_THROTTLED_RETRIES = 5
_SHOP_DOMAIN = re.compile(r"^[a-z0-9][a-z0-9-]*\.myshopify\.com$")


def valid_shop_domain(shop: str | None) -> bool:
    """``shop`` is a ``<name>.myshopify.com`` host (nothing else may receive a token)."""
    return bool(shop) and _SHOP_DOMAIN.fullmatch(shop) is not None


def api_version(credentials: dict | None) -> str:
    return str((credentials or {}).get("api_version") or SHOPIFY_API_VERSION)


def base_url(shop_domain: str, credentials: dict | None) -> str:
    return (credentials or {}).get("api_base_url") or f"https://{shop_domain}"


def graphql_path(version: str) -> str:
    return f"/admin/api/{version}/graphql.json"


def api_client(connection: Connection, **client_options) -> StoreHttpClient:
    """The store's HTTP client for the Admin API; SyncError without an access token."""
    from ..sync import SyncError

    creds = connection.credentials or {}
    if not creds.get("access_token"):
        raise SyncError("the connection has no Shopify access_token credential")
    return http_client(connection.shop_domain, creds, **client_options)


def http_client(shop_domain: str, credentials: dict, **client_options) -> StoreHttpClient:
    return StoreHttpClient(
        base_url(shop_domain, credentials),
        {
            "X-Shopify-Access-Token": credentials["access_token"],
            "Accept": "application/json",
            "Content-Type": "application/json",
        },
        **client_options,
    )


class ShopifyGraphQL:
    """GraphQL Admin API calls over a :class:`StoreHttpClient` (its retries, timeouts and
    ``sleep``), with the cost-based throttling described in the module doc."""

    def __init__(self, http: StoreHttpClient, version: str = SHOPIFY_API_VERSION):
        self.http = http
        self.path = graphql_path(version)

    @classmethod
    def for_store(cls, shop_domain: str, credentials: dict, **client_options) -> ShopifyGraphQL:
        return cls(
            http_client(shop_domain, credentials, **client_options), api_version(credentials)
        )

    def execute(
        self, query: str, variables: dict | None = None, *, mutation: bool = False
    ) -> dict[str, Any]:
        """The ``data`` of the answer; StoreApiError for an HTTP failure or GraphQL errors
        (``retryable`` when trying later may help)."""
        body = {"query": query, "variables": variables or {}}
        for _ in range(MAX_THROTTLED_RETRIES + 1):
            try:
                # A query reads (retried on 5xx); a mutation may have written something.
                response = self.http.request("POST", self.path, json=body, idempotent=not mutation)
            except requests.RequestException as exc:
                raise StoreApiError(f"shopify graphql: {exc}", retryable=True) from exc
            answer = self._answer(response)
            cost = (answer.get("extensions") or {}).get("cost") or {}
            errors = answer.get("errors") or []
            if any(_code(e) == "THROTTLED" for e in errors):
                self.http.sleep(_refill_seconds(cost, need=_requested(cost)))
                continue
            if errors:
                messages = "; ".join(str(e.get("message", e)) for e in errors)[:500]
                raise StoreApiError(f"shopify graphql: {messages}", response.status_code)
            wait = _refill_seconds(cost, need=_requested(cost))
            if wait > 0:
                self.http.sleep(wait)
            return answer.get("data") or {}
        raise StoreApiError("shopify graphql: still throttled after waiting", 429, retryable=True)

    def _answer(self, response: requests.Response) -> dict:
        status = response.status_code
        if status >= 400:
            raise StoreApiError(
                f"shopify graphql: HTTP {status} {response.text[:300]}",
                status,
                retryable=status in RETRY_STATUSES,
            )
        try:
            answer = response.json()
        except ValueError as exc:
            raise StoreApiError("shopify graphql: the answer is not JSON", status, True) from exc
        if not isinstance(answer, dict):
            raise StoreApiError("shopify graphql: the answer is not an object", status, True)
        return answer


def _code(error: Any) -> str | None:
    return ((error or {}).get("extensions") or {}).get("code") if isinstance(error, dict) else None


def _requested(cost: dict) -> float:
    try:
        return float(cost.get("requestedQueryCost") or 0)
    except (TypeError, ValueError):
        return 0.0


def _refill_seconds(cost: dict, need: float) -> float:
    """Seconds until the bucket holds ``need`` points (0 when it already does or the answer
    says nothing about it)."""
    status = cost.get("throttleStatus") or {}
    try:
        available = float(status["currentlyAvailable"])
        rate = float(status["restoreRate"])
    except (KeyError, TypeError, ValueError):
        return 0.0
    if need <= available or rate <= 0:
        return 0.0
    return round((need - available) / rate, 3)


def user_errors(payload: dict | None, what: str) -> None:
    """Raise StoreApiError (not retryable: the input was refused) for a mutation's
    ``userErrors``."""
    errors = (payload or {}).get("userErrors") or []
    if errors:
        text = "; ".join(
            f"{'.'.join(e.get('field') or []) or '-'}: {e.get('message')}" for e in errors
        )
        raise StoreApiError(f"shopify {what}: {text}"[:500], 422)


def legacy_id(gid: Any) -> str | None:
    """``gid://shopify/Order/123`` → ``"123"`` (the id REST and webhooks use)."""
    if gid is None:
        return None
    text = str(gid)
    return text.rsplit("/", 1)[-1] if text.startswith("gid://") else text

"""The Shopify Admin REST API: its version, the credentials a connection holds for it, and
the client (``X-Shopify-Access-Token``; base ``https://<shop_domain>`` unless
``api_base_url`` says otherwise)."""

from __future__ import annotations

from cartrecovery.http_client import StoreHttpClient
from cartrecovery.tenancy import Connection

from ..platform import Credential

# The Admin API version every call uses unless the connection's credentials name another.
SHOPIFY_API_VERSION = "2025-07"

CREDENTIALS = (
    Credential("access_token", "Shopify Admin API access token (sync, coupons)."),
    Credential("api_base_url", "Override the API base URL (tests, proxies).", kind="url"),
    Credential("api_version", f"Admin API version (default {SHOPIFY_API_VERSION})."),
)


def api_version(credentials: dict | None) -> str:
    return str((credentials or {}).get("api_version") or SHOPIFY_API_VERSION)


def base_url(shop_domain: str, credentials: dict | None) -> str:
    return (credentials or {}).get("api_base_url") or f"https://{shop_domain}"


def api_client(connection: Connection, **client_options) -> StoreHttpClient:
    """The store's Admin API client; SyncError without an access token."""
    from ..sync import SyncError

    creds = connection.credentials or {}
    if not creds.get("access_token"):
        raise SyncError("the connection has no Shopify access_token credential")
    return StoreHttpClient(
        base_url(connection.shop_domain, creds),
        {"X-Shopify-Access-Token": creds["access_token"], "Accept": "application/json"},
        **client_options,
    )

"""The BigCommerce store API: the credentials a connection holds for it and the client of
historical sync (``X-Auth-Token``; base ``https://api.bigcommerce.com/stores/<hash>`` unless
``api_base_url`` says otherwise). The webhook adapter's own calls go through
``adapter.BigCommerceApi``."""

from __future__ import annotations

from cartrecovery.http_client import StoreHttpClient
from cartrecovery.tenancy import Connection

from ..platform import Credential
from .adapter import DEFAULT_API_BASE

CREDENTIALS = (
    Credential("access_token", "BigCommerce store API token (full carts, sync, coupons)."),
    Credential("client_secret", "BigCommerce app client secret (verifies signed callbacks)."),
    Credential("api_base_url", "Override the API base URL (tests, proxies).", kind="url"),
    Credential("store_hash", "The store hash, when not the connection's shop domain."),
    Credential(
        "signature_tolerance_seconds",
        "How old a signed callback may be (default 300; 0: not checked).",
        kind="number",
    ),
)


def api_client(connection: Connection, **client_options) -> StoreHttpClient:
    """The store's API client; SyncError without an access token."""
    from ..sync import SyncError

    creds = connection.credentials or {}
    if not creds.get("access_token"):
        raise SyncError("the connection has no BigCommerce access_token credential")
    base = (creds.get("api_base_url") or DEFAULT_API_BASE).rstrip("/")
    return StoreHttpClient(
        f"{base}/stores/{connection.shop_domain}",
        {"X-Auth-Token": creds["access_token"], "Accept": "application/json"},
        **client_options,
    )

"""The WooCommerce REST API (v3): the credentials a connection holds for it and the client
(HTTP Basic auth with the consumer key and secret; base ``https://<shop_domain>`` unless
``api_base_url`` says otherwise)."""

from __future__ import annotations

from cartrecovery.http_client import StoreHttpClient
from cartrecovery.tenancy import Connection

from ..platform import Credential

CREDENTIALS = (
    Credential("consumer_key", "WooCommerce REST consumer key (sync, coupons)."),
    Credential("consumer_secret", "WooCommerce REST consumer secret."),
    Credential("api_base_url", "Override the API base URL (tests, proxies).", kind="url"),
)


def api_client(connection: Connection, **client_options) -> StoreHttpClient:
    """The store's REST client; SyncError without the consumer key and secret."""
    from ..sync import SyncError

    creds = connection.credentials or {}
    if not creds.get("consumer_key") or not creds.get("consumer_secret"):
        raise SyncError("the connection has no WooCommerce consumer_key/consumer_secret")
    return StoreHttpClient(
        creds.get("api_base_url") or f"https://{connection.shop_domain}",
        {"Accept": "application/json"},
        auth=(creds["consumer_key"], creds["consumer_secret"]),
        **client_options,
    )

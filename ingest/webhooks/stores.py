"""Store webhook routes for every platform but Shopify (which has its per-topic routes):

- ``POST /api/webhooks/<platform>`` (woocommerce, bigcommerce, magento, or any installed
  adapter that can tell the store from the request): the adapter locates the store;
- ``POST /api/webhooks/custom/<connection_id>``: the URL names the store, and the
  connection's platform names the adapter, so this works for any adapter, a third-party one
  included (``cartrecovery.adapters`` entry points).

Both go through ``ingest.webhooks.dispatch.receive``: 404 for an unknown store (one answer
for all), 401 for a bad signature, 400 for a bad payload, else stored once and applied.
"""

from __future__ import annotations

import logging
from uuid import UUID

from flask import Blueprint

from cartrecovery.tenancy import STATUSES, get_connection
from integrations import registry

from ..errors import ApiError
from ..runtime import runtime
from .dispatch import inbound_request, receive, unknown_store

bp = Blueprint("stores", __name__)
log = logging.getLogger(__name__)


@bp.post("/api/webhooks/<platform>")
def platform_webhook(platform: str):
    """Webhook of a store platform (woocommerce, bigcommerce, magento, …); the adapter finds
    the store in the request and verifies its signature."""
    adapter = registry.get_adapter(platform)
    if adapter is None:
        raise ApiError(
            404,
            "unknown_platform",
            "no adapter is installed for this platform",
            {"platform": platform},
        )
    return receive(adapter, inbound_request())


@bp.post("/api/webhooks/custom/<connection_id>")
def custom_webhook(connection_id: str):
    """Webhook of one connection, for any platform adapter (the generic adapter's signed
    JSON, or a third-party adapter's format)."""
    try:
        cid = UUID(connection_id)
    except ValueError:
        raise unknown_store() from None
    rt = runtime()
    connection = get_connection(rt.db, rt.encryption_key, cid, statuses=STATUSES)
    if connection is None:
        raise unknown_store()
    adapter = registry.get_adapter(connection.platform)
    if adapter is None:
        # The package providing the platform was uninstalled; the store cannot be served.
        log.error("no adapter installed for platform %r (connection %s)", connection.platform, cid)
        raise unknown_store()
    req = inbound_request()
    if connection.status not in adapter.connection_statuses(req):
        raise unknown_store()
    return receive(adapter, req, connection)

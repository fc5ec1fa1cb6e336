"""Shopify history: ``checkouts`` = ``GET /admin/api/<ver>/checkouts.json?created_at_min=…
&limit=250`` (abandoned checkouts), ``orders`` = ``orders.json?status=any&created_at_min=…
&limit=250``; cursor pagination by the ``Link: <…>; rel="next"`` header. Each object goes
through the webhook adapter's ``parse`` with the topic its webhook would carry."""

from __future__ import annotations

from urllib.parse import urlencode

from ..sync import (
    Change,
    Page,
    Resource,
    SyncError,
    fetch_json,
    iso,
    object_version,
    parse_as_webhook,
)
from .adapter import ShopifyAdapter
from .api import api_version


class _ShopifyResource(Resource):
    key_field = ""  # the list in the answer
    id_field = "id"  # what names the object (a checkout: its token, the cart's external id)
    topic = ""

    def fetch(self, cursor: str) -> Page:
        response, body = fetch_json(self.client, cursor)
        objects = (body or {}).get(self.key_field) if isinstance(body, dict) else None
        if not isinstance(objects, list):
            raise SyncError(f"{cursor}: no {self.key_field} list in the answer")
        following = response.links.get("next", {}).get("url")
        return Page([o for o in objects if isinstance(o, dict)], following)

    def change(self, obj: dict) -> Change:
        delivery = parse_as_webhook(ShopifyAdapter(), self.connection, obj, {}, topic=self.topic)
        ident = obj.get(self.id_field)
        key = f"sync:{self.name}:{ident}:{object_version(obj, 'updated_at', 'created_at')}"
        return Change(key, delivery.topic, delivery.payload, delivery.apply, delivery.occurred_at)


class ShopifyCheckouts(_ShopifyResource):
    name, key_field, id_field, topic = "checkouts", "checkouts", "token", "checkouts/update"

    def first_cursor(self) -> str:
        query = urlencode({"created_at_min": iso(self.since), "limit": 250})
        return f"/admin/api/{api_version(self.connection.credentials)}/checkouts.json?{query}"


class ShopifyOrders(_ShopifyResource):
    name, key_field, topic = "orders", "orders", "orders/create"

    def first_cursor(self) -> str:
        query = urlencode({"status": "any", "created_at_min": iso(self.since), "limit": 250})
        return f"/admin/api/{api_version(self.connection.credentials)}/orders.json?{query}"


RESOURCES = {"checkouts": ShopifyCheckouts, "orders": ShopifyOrders}

"""WooCommerce history: ``orders`` = ``GET /wp-json/wc/v3/orders?after=…&status=pending,
failed,processing,completed&per_page=100&page=N`` with basic auth (consumer key/secret); pages
until ``X-WP-TotalPages`` or an empty page. Each order goes through the webhook adapter's
``parse`` as an ``order.updated``: open statuses become carts, paid ones orders."""

from __future__ import annotations

from ..sync import (
    Change,
    Page,
    Resource,
    SyncError,
    fetch_json,
    int_or_none,
    iso,
    object_version,
    parse_as_webhook,
)
from .adapter import WooCommerceAdapter


class WooOrders(Resource):
    name = "orders"
    per_page = 100

    def first_cursor(self) -> str:
        return "1"

    def fetch(self, cursor: str) -> Page:
        page = int(cursor)
        response, body = fetch_json(
            self.client,
            "/wp-json/wc/v3/orders",
            params={
                "after": iso(self.since),
                "status": "pending,failed,processing,completed",
                "per_page": self.per_page,
                "page": page,
                "orderby": "date",
                "order": "asc",
            },
        )
        if not isinstance(body, list):
            raise SyncError("/wp-json/wc/v3/orders: the answer is not a list")
        total_pages = int_or_none(response.headers.get("X-WP-TotalPages"))
        last = not body or (total_pages is not None and page >= total_pages)
        return Page(
            [o for o in body if isinstance(o, dict)],
            None if last else str(page + 1),
            int_or_none(response.headers.get("X-WP-Total")),
        )

    def change(self, obj: dict) -> Change:
        site = self.client.base_url + "/"
        delivery = parse_as_webhook(
            WooCommerceAdapter(),
            self.connection,
            obj,
            {"X-WC-Webhook-Topic": "order.updated", "X-WC-Webhook-Source": site},
        )
        version = object_version(obj, "date_modified_gmt", "date_modified")
        key = f"sync:orders:{obj.get('id')}:{version}"
        return Change(key, delivery.topic, delivery.payload, delivery.apply, delivery.occurred_at)


RESOURCES = {"orders": WooOrders}

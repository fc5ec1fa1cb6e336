"""BigCommerce history. Carts cannot be listed (v3 carts are read one by one, by id;
abandoned carts only by the token of an Abandoned Cart Saver link), so ``checkouts`` = the
v2 orders with status "Incomplete" (``status_id=0``: checkouts that never became orders
[K, unconfirmed]) imported as carts without items, and ``orders`` = ``GET /v2/orders?
min_date_created=…&page=N&limit=250``; pages until an empty page (BigCommerce answers 204).
Orders go through the adapter's ``order_to_canonical``."""

from __future__ import annotations

from typing import Any

from cartrecovery.canonical import CanonicalCart
from cartrecovery.carts import upsert_cart
from cartrecovery.orders import record_order

from ..sync import Change, Page, Resource, SyncError, fetch_json, iso, object_version
from .adapter import PLATFORM, order_to_canonical, read_order, rfc2822


class _BigCommerceOrders(Resource):
    status_id: int | None = None
    limit = 250

    def first_cursor(self) -> str:
        return "1"

    def fetch(self, cursor: str) -> Page:
        page = int(cursor)
        params: dict[str, Any] = {
            "min_date_created": iso(self.since),
            "page": page,
            "limit": self.limit,
            "sort": "date_created:asc",
        }
        if self.status_id is not None:
            params["status_id"] = self.status_id
        _, body = fetch_json(self.client, "/v2/orders", params=params)
        if body is None:
            return Page([], None)
        if not isinstance(body, list):
            raise SyncError("/v2/orders: the answer is not a list")
        objects = [o for o in body if isinstance(o, dict)]
        return Page(objects, str(page + 1) if len(body) >= self.limit else None)


class BigCommerceCheckouts(_BigCommerceOrders):
    name, status_id = "checkouts", 0

    def change(self, obj: dict) -> Change:
        order = read_order(obj)
        address = order.billing_address
        cart = CanonicalCart(
            platform=PLATFORM,
            # The cart id when the order names it: a later cart webhook updates the same row.
            external_id=order.cart_id or f"order-{order.id}",
            connection_id=self.connection.connection_id,
            email=address.email if address else None,
            phone=address.phone if address else None,
            first_name=address.first_name if address else None,
            last_name=address.last_name if address else None,
            customer_external_id=order.customer_id
            if order.customer_id not in (None, "0")
            else None,
            currency=order.currency_code,
            source_created_at=rfc2822(order.date_created),
            source_updated_at=rfc2822(order.date_modified) or rfc2822(order.date_created),
        )
        return Change(
            f"sync:checkouts:{order.id}:{object_version(obj, 'date_modified')}",
            "store/order/incomplete",
            {"order": obj},
            lambda conn, org_id: upsert_cart(conn, org_id, cart),
            cart.source_updated_at,
        )


class BigCommerceOrders(_BigCommerceOrders):
    name = "orders"

    def change(self, obj: dict) -> Change:
        order = read_order(obj)
        if order.status_id == 0:
            return Change(
                f"sync:orders:{order.id}:-", "store/order/incomplete", {"order": obj}, None
            )
        canonical = order_to_canonical(order, self.connection.connection_id)
        return Change(
            f"sync:orders:{order.id}:{object_version(obj, 'date_modified')}",
            "store/order/created",
            {"order": obj},
            lambda conn, org_id: record_order(conn, org_id, canonical)["cart_id"],
            canonical.ordered_at,
        )


RESOURCES = {"checkouts": BigCommerceCheckouts, "orders": BigCommerceOrders}

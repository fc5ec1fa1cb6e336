"""Shopify history through the GraphQL Admin API: ``checkouts`` = the ``abandonedCheckouts``
query, ``orders`` = the ``orders`` query, both filtered ``created_at:>='<since>'``, 100
objects a page, paged by ``pageInfo.endCursor`` (the checkpoint kept between runs is
``after:<endCursor>``). Cost-based throttling is the client's
(:class:`~integrations.shopify.api.ShopifyGraphQL`).

Each object is rewritten into the shape of its webhook (snake_case REST fields) and goes
through the webhook adapter's ``parse`` with the topic its webhook would carry, so the
canonical cart or order is the one the webhook makes.

**Which cart a synced checkout is.** A webhook's checkout is keyed by its ``token``; the
GraphQL ``AbandonedCheckout`` has no token field. The token is read from the recovery URL
when it has the classic form ``…/checkouts/<token>/recover``; otherwise the cart already
stored for the same checkout id (a webhook came first) or the same cart token (the
``…/checkouts/ac/<cart token>/recover`` form) is updated (webhooks acknowledged before the
page are applied first, and none is applied by another transaction while the page runs,
see ``integrations/sync.py``); only a checkout never seen before is stored under its
numeric checkout id, and its first webhook (token and the same ``id``) takes that cart over
under the token (``cartrecovery.carts``: one cart with both identities, the later state by
the store's ``updated_at``).
"""

from __future__ import annotations

import re
from typing import Any
from uuid import UUID

from ..sync import Change, Page, Resource, SyncError, iso, object_version, parse_as_webhook
from .adapter import SOURCE, ShopifyAdapter
from .api import ShopifyGraphQL, api_version, legacy_id

PAGE_SIZE = 100
LINE_ITEMS = 100
START = "after:"

_MONEY = "shopMoney { amount currencyCode }"
_CUSTOMER = """customer { id firstName lastName
    defaultEmailAddress { emailAddress marketingState }
    defaultPhoneNumber { phoneNumber } }"""
_ADDRESS = "firstName lastName phone"

CHECKOUTS_QUERY = f"""
query SyncAbandonedCheckouts($first: Int!, $after: String, $query: String) {{
  abandonedCheckouts(first: $first, after: $after, query: $query, sortKey: CREATED_AT) {{
    nodes {{
      id abandonedCheckoutUrl createdAt updatedAt completedAt
      totalPriceSet {{ {_MONEY} }}
      {_CUSTOMER}
      billingAddress {{ {_ADDRESS} }}
      shippingAddress {{ {_ADDRESS} }}
      lineItems(first: {LINE_ITEMS}) {{
        nodes {{ title quantity sku variant {{ id }} product {{ id }}
                 originalUnitPriceSet {{ {_MONEY} }} }}
      }}
    }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}
"""

ORDERS_QUERY = f"""
query SyncOrders($first: Int!, $after: String, $query: String) {{
  orders(first: $first, after: $after, query: $query, sortKey: CREATED_AT) {{
    nodes {{
      id name email phone createdAt updatedAt processedAt
      checkoutToken cartToken displayFinancialStatus discountCodes
      totalPriceSet {{ {_MONEY} }}
      {_CUSTOMER}
    }}
    pageInfo {{ hasNextPage endCursor }}
  }}
}}
"""

# Classic recovery URLs name the checkout token; newer ones (ac/cn) the cart token.
_CLASSIC_URL = re.compile(r"/checkouts/(?!ac/|cn/)([A-Za-z0-9_-]+)/recover")
_CART_URL = re.compile(r"/checkouts/(?:ac|cn)/([A-Za-z0-9_-]+)/recover")


def _money(value: Any) -> tuple[str | None, str | None]:
    shop = ((value or {}).get("shopMoney") or {}) if isinstance(value, dict) else {}
    return shop.get("amount"), shop.get("currencyCode")


def _customer(node: dict | None) -> dict | None:
    if not isinstance(node, dict):
        return None
    email = node.get("defaultEmailAddress") or {}
    phone = node.get("defaultPhoneNumber") or {}
    state = email.get("marketingState")
    return {
        "id": legacy_id(node.get("id")),
        "email": email.get("emailAddress"),
        "phone": phone.get("phoneNumber"),
        "first_name": node.get("firstName"),
        "last_name": node.get("lastName"),
        "accepts_marketing": None if state is None else state == "SUBSCRIBED",
    }


def _address(node: dict | None) -> dict | None:
    if not isinstance(node, dict):
        return None
    return {
        "first_name": node.get("firstName"),
        "last_name": node.get("lastName"),
        "phone": node.get("phone"),
    }


def _nodes(connection: Any) -> list[dict]:
    nodes = (connection or {}).get("nodes") if isinstance(connection, dict) else None
    return [n for n in nodes or [] if isinstance(n, dict)]


def checkout_payload(node: dict) -> dict:
    """An ``AbandonedCheckout`` node in the shape of the ``checkouts/update`` webhook
    (``token`` only when the recovery URL names it)."""
    url = node.get("abandonedCheckoutUrl") or None
    total, currency = _money(node.get("totalPriceSet"))
    classic = _CLASSIC_URL.search(url or "")
    cart = _CART_URL.search(url or "")
    items = []
    for item in _nodes(node.get("lineItems")):
        price, _ = _money(item.get("originalUnitPriceSet"))
        items.append(
            {
                "title": item.get("title"),
                "quantity": item.get("quantity", 1),
                "sku": item.get("sku"),
                "price": price or "0",
                "product_id": legacy_id((item.get("product") or {}).get("id")),
                "variant_id": legacy_id((item.get("variant") or {}).get("id")),
            }
        )
    customer = _customer(node.get("customer"))
    return {
        "id": legacy_id(node.get("id")),
        "token": classic.group(1) if classic else None,
        "cart_token": cart.group(1) if cart else None,
        "email": (customer or {}).get("email"),
        "created_at": node.get("createdAt"),
        "updated_at": node.get("updatedAt"),
        "completed_at": node.get("completedAt"),
        "currency": currency,
        "total_price": total or "0",
        "abandoned_checkout_url": url,
        "line_items": items,
        "customer": customer,
        "billing_address": _address(node.get("billingAddress")),
        "shipping_address": _address(node.get("shippingAddress")),
    }


def order_payload(node: dict) -> dict:
    """An ``Order`` node in the shape of the ``orders/create`` webhook."""
    total, currency = _money(node.get("totalPriceSet"))
    status = node.get("displayFinancialStatus")
    return {
        "id": legacy_id(node.get("id")),
        "name": node.get("name"),
        "checkout_token": node.get("checkoutToken"),
        "cart_token": node.get("cartToken"),
        "email": node.get("email"),
        "phone": node.get("phone"),
        "total_price": total or "0",
        "currency": currency,
        "financial_status": status.lower() if isinstance(status, str) else None,
        "created_at": node.get("createdAt"),
        "updated_at": node.get("updatedAt"),
        "processed_at": node.get("processedAt"),
        "customer": _customer(node.get("customer")),
        "discount_codes": [{"code": c} for c in node.get("discountCodes") or [] if c],
    }


class _ShopifyResource(Resource):
    field = ""  # the query's root field
    query = ""
    topic = ""

    def first_cursor(self) -> str:
        return START

    def fetch(self, cursor: str) -> Page:
        after = cursor[len(START) :] if cursor.startswith(START) else cursor
        api = ShopifyGraphQL(self.client, api_version(self.connection.credentials))
        variables = {
            "first": PAGE_SIZE,
            "after": after or None,
            "query": f"created_at:>='{iso(self.since)}'",
        }
        try:
            data = api.execute(self.query, variables)
        except Exception as exc:  # StoreApiError or transport: the run stops, resumable
            raise SyncError(f"shopify {self.field}: {exc}") from exc
        found = data.get(self.field)
        if not isinstance(found, dict) or not isinstance(found.get("nodes"), list):
            raise SyncError(f"shopify {self.field}: no nodes in the answer")
        info = found.get("pageInfo") or {}
        following = START + info["endCursor"] if info.get("hasNextPage") else None
        return Page(_nodes(found), following)


class ShopifyCheckouts(_ShopifyResource):
    name, field, query, topic = (
        "checkouts",
        "abandonedCheckouts",
        CHECKOUTS_QUERY,
        "checkouts/update",
    )

    def change(self, obj: dict) -> Change:
        payload = checkout_payload(obj)
        ident = payload["id"]
        if not ident:
            raise ValueError("an abandoned checkout without id")
        # Parsed now with a stand-in token so an unreadable checkout is skipped, not fatal.
        delivery = self._parse({**payload, "token": payload["token"] or ident})
        key = f"sync:{self.name}:{ident}:{object_version(payload, 'updated_at', 'created_at')}"

        def apply(conn, org_id: UUID) -> UUID | None:
            token = payload["token"] or _known_token(conn, org_id, self.connection, payload)
            if token and token != ident:
                return self._parse({**payload, "token": token}).apply(conn, org_id)
            return delivery.apply(conn, org_id)

        return Change(key, delivery.topic, payload, apply, delivery.occurred_at)

    def _parse(self, payload: dict):
        return parse_as_webhook(ShopifyAdapter(), self.connection, payload, {}, topic=self.topic)


class ShopifyOrders(_ShopifyResource):
    name, field, query, topic = "orders", "orders", ORDERS_QUERY, "orders/create"

    def change(self, obj: dict) -> Change:
        payload = order_payload(obj)
        delivery = parse_as_webhook(
            ShopifyAdapter(), self.connection, payload, {}, topic=self.topic
        )
        version = object_version(payload, "updated_at", "created_at")
        key = f"sync:{self.name}:{payload['id']}:{version}"
        return Change(key, delivery.topic, delivery.payload, delivery.apply, delivery.occurred_at)


def _known_token(conn, org_id: UUID, connection, payload: dict) -> str | None:
    """The external id of the cart already stored for this checkout (same checkout id, else
    same cart token), or None."""
    row = conn.execute(
        """
        SELECT external_id FROM app.carts
        WHERE org_id = %s AND platform = %s AND connection_id = %s
          AND (checkout_id = %s OR (%s::text IS NOT NULL AND cart_token = %s))
        ORDER BY (checkout_id = %s) DESC NULLS LAST, updated_at DESC
        LIMIT 1
        """,
        (
            org_id,
            SOURCE,
            connection.connection_id,
            payload["id"],
            payload["cart_token"],
            payload["cart_token"],
            payload["id"],
        ),
    ).fetchone()
    return row["external_id"] if row else None


RESOURCES = {"checkouts": ShopifyCheckouts, "orders": ShopifyOrders}

"""A local stand-in for a Shopify store's Admin API (GraphQL at the pinned version, and the
OAuth token exchange), on the tests' recording server. It answers by the operation in the
query, keeps webhook subscriptions and discounts as Shopify would, and reports query cost
(``extensions.cost``) so the client's throttling can be observed.

The GraphQL nodes are made from the REST-shaped webhook fixtures (``graphql_checkout``,
``graphql_order``), the way Shopify's GraphQL objects carry the same facts."""

from __future__ import annotations

import json
import re

from integrations.shopify.api import SHOPIFY_API_VERSION

GRAPHQL = f"/admin/api/{SHOPIFY_API_VERSION}/graphql.json"
TOKEN_PATH = "/admin/oauth/access_token"


def _money(amount, currency):
    return {"shopMoney": {"amount": str(amount), "currencyCode": currency}}


def _customer(rest: dict | None) -> dict | None:
    if not rest:
        return None
    return {
        "id": f"gid://shopify/Customer/{rest['id']}",
        "firstName": rest.get("first_name"),
        "lastName": rest.get("last_name"),
        "defaultEmailAddress": {
            "emailAddress": rest.get("email"),
            "marketingState": "SUBSCRIBED" if rest.get("accepts_marketing") else "NOT_SUBSCRIBED",
        },
        "defaultPhoneNumber": {"phoneNumber": rest.get("phone")},
    }


def classic_url(rest: dict) -> str:
    """A classic checkout's recovery URL, which names the checkout token."""
    return f"https://shop.example/1/checkouts/{rest['token']}/recover?key=k"


def graphql_checkout(rest: dict) -> dict:
    """An ``AbandonedCheckout`` node with the facts of a REST (webhook) checkout."""
    url = rest["abandoned_checkout_url"]
    customer = dict(rest.get("customer") or {})
    customer.setdefault("email", rest.get("email"))
    address = rest.get("billing_address") or {}
    return {
        "id": f"gid://shopify/AbandonedCheckout/{rest['id']}",
        "abandonedCheckoutUrl": url,
        "createdAt": rest.get("created_at"),
        "updatedAt": rest.get("updated_at"),
        "completedAt": rest.get("completed_at"),
        "totalPriceSet": _money(rest["total_price"], rest["currency"]),
        "customer": _customer({**customer, "email": rest.get("email") or customer.get("email")}),
        "billingAddress": {
            "firstName": address.get("first_name"),
            "lastName": address.get("last_name"),
            "phone": address.get("phone"),
        },
        "shippingAddress": None,
        "lineItems": {
            "nodes": [
                {
                    "title": item.get("title"),
                    "quantity": item.get("quantity"),
                    "sku": item.get("sku"),
                    "variant": {"id": f"gid://shopify/ProductVariant/{item['variant_id']}"},
                    "product": {"id": f"gid://shopify/Product/{item['product_id']}"},
                    "originalUnitPriceSet": _money(item["price"], rest["currency"]),
                }
                for item in rest.get("line_items") or []
            ]
        },
    }


def graphql_order(rest: dict) -> dict:
    return {
        "id": f"gid://shopify/Order/{rest['id']}",
        "name": rest.get("name"),
        "email": rest.get("email"),
        "phone": rest.get("phone"),
        "createdAt": rest.get("created_at"),
        "updatedAt": rest.get("updated_at"),
        "processedAt": rest.get("processed_at"),
        "checkoutToken": rest.get("checkout_token"),
        "cartToken": rest.get("cart_token"),
        "displayFinancialStatus": (rest.get("financial_status") or "paid").upper(),
        "discountCodes": [d["code"] for d in rest.get("discount_codes") or []],
        "totalPriceSet": _money(rest["total_price"], rest["currency"]),
        "customer": _customer(rest.get("customer")),
    }


class ShopifyStandIn:
    """Scripted pages for the sync queries; stateful subscriptions and discounts."""

    def __init__(self, recorder, token: str = "shpat_installed_token"):
        self.recorder = recorder
        self.token = token
        self.pages: dict[str, list[list[dict]]] = {}  # field → pages of nodes
        self.fail: dict[str, list[int]] = {}  # field → page indexes answering 500
        self.throttle_once: set[str] = set()
        self.available = 1000.0  # throttleStatus.currentlyAvailable after each query
        self.subscriptions: dict[str, dict] = {}
        self.discounts: list[dict] = []
        self.discount_errors: list[dict] = []
        self.exchanged: list[dict] = []
        self._ids = 0
        recorder.handle("POST", GRAPHQL, self._graphql)
        recorder.handle("POST", TOKEN_PATH, self._token)

    # --- requests as recorded --------------------------------------------------------------
    def graphql_calls(self, operation: str | None = None) -> list[dict]:
        calls = [
            json.loads(r["body"])
            for r in self.recorder.requests
            if r["method"] == "POST" and r["path"] == GRAPHQL
        ]
        return [c for c in calls if operation is None or _operation(c["query"]) == operation]

    def _next_id(self, kind: str) -> str:
        self._ids += 1
        return f"gid://shopify/{kind}/{9000 + self._ids}"

    def _cost(self, requested: float = 52.0) -> dict:
        return {
            "cost": {
                "requestedQueryCost": requested,
                "actualQueryCost": requested,
                "throttleStatus": {
                    "maximumAvailable": 2000.0,
                    "currentlyAvailable": self.available,
                    "restoreRate": 100.0,
                },
            }
        }

    def _token(self, request):
        body = json.loads(request["body"])
        self.exchanged.append(body)
        return 200, {"access_token": self.token, "scope": "read_orders,write_discounts"}

    def _graphql(self, request):
        if request["headers"].get("X-Shopify-Access-Token") != self.token:
            return 401, {"errors": "[API] Invalid API key or access token"}
        body = json.loads(request["body"])
        operation = _operation(body["query"])
        variables = body.get("variables") or {}
        handler = getattr(self, f"_op_{operation}", None)
        if handler is None:
            return 200, {"errors": [{"message": f"unknown operation {operation}"}]}
        return handler(variables)

    def _page(self, field: str, variables: dict):
        if field in self.throttle_once:
            self.throttle_once.discard(field)
            return 200, {
                "errors": [{"message": "Throttled", "extensions": {"code": "THROTTLED"}}],
                "extensions": {
                    "cost": {
                        "requestedQueryCost": 252,
                        "throttleStatus": {
                            "maximumAvailable": 2000.0,
                            "currentlyAvailable": 52.0,
                            "restoreRate": 100.0,
                        },
                    }
                },
            }
        after = variables.get("after")
        index = int(after.split("-")[1]) if after else 0
        if index in self.fail.get(field, []):
            return 500, {"errors": "boom"}
        pages = self.pages.get(field) or [[]]
        nodes = pages[index] if index < len(pages) else []
        more = index + 1 < len(pages)
        info = {"hasNextPage": more, "endCursor": f"page-{index + 1}" if more else None}
        return 200, {
            "data": {field: {"nodes": nodes, "pageInfo": info}},
            "extensions": self._cost(),
        }

    def _op_SyncAbandonedCheckouts(self, variables):
        return self._page("abandonedCheckouts", variables)

    def _op_SyncOrders(self, variables):
        return self._page("orders", variables)

    def _op_OurWebhooks(self, variables):
        nodes = [dict(s) for s in self.subscriptions.values()]
        return 200, {
            "data": {
                "webhookSubscriptions": {
                    "nodes": nodes,
                    "pageInfo": {"hasNextPage": False, "endCursor": None},
                }
            },
            "extensions": self._cost(12),
        }

    def _op_Subscribe(self, variables):
        sub = variables["sub"]
        taken = [
            s
            for s in self.subscriptions.values()
            if s["topic"] == variables["topic"] and s["uri"] == sub["uri"]
        ]
        if taken:  # Shopify refuses a second subscription of the same topic and address
            errors = [{"field": ["webhookSubscription", "callbackUrl"], "message": "taken"}]
            return 200, {"data": {"webhookSubscriptionCreate": {"userErrors": errors}}}
        node = {
            "id": self._next_id("WebhookSubscription"),
            "topic": variables["topic"],
            "uri": sub["uri"],
            "format": sub.get("format"),
        }
        self.subscriptions[node["id"]] = node
        return 200, {
            "data": {"webhookSubscriptionCreate": {"webhookSubscription": node, "userErrors": []}},
            "extensions": self._cost(10),
        }

    def _op_Unsubscribe(self, variables):
        gone = self.subscriptions.pop(variables["id"], None)
        errors = [] if gone else [{"field": ["id"], "message": "not found"}]
        payload = {"deletedWebhookSubscriptionId": variables["id"] if gone else None}
        return 200, {"data": {"webhookSubscriptionDelete": {**payload, "userErrors": errors}}}

    def _discount(self, field: str, variables: dict):
        self.discounts.append(variables["discount"])
        if self.discount_errors:
            errors = self.discount_errors
            return 200, {"data": {field: {"codeDiscountNode": None, "userErrors": errors}}}
        node = {"id": self._next_id("DiscountCodeNode")}
        return 200, {
            "data": {field: {"codeDiscountNode": node, "userErrors": []}},
            "extensions": self._cost(10),
        }

    def _op_CreateRecoveryDiscount(self, variables):
        return self._discount("discountCodeBasicCreate", variables)

    def _op_CreateRecoveryFreeShipping(self, variables):
        return self._discount("discountCodeFreeShippingCreate", variables)


def _operation(query: str) -> str | None:
    match = re.search(r"\b(?:query|mutation)\s+(\w+)", query)
    return match.group(1) if match else None

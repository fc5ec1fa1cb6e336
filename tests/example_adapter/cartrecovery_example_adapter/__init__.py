"""A tiny store adapter for a made-up platform, "example", as a third party would write it.

The platform posts ``{"delivery_id", "basket": {"id", "email", "currency", "items": [{"sku",
"title", "qty", "price"}], "updated_at"}}`` with the store in ``X-Example-Store`` and the
connection's shared secret in ``X-Example-Token``.
"""

from __future__ import annotations

import hmac
from datetime import datetime
from decimal import Decimal

from pydantic import BaseModel, Field

from cartrecovery.canonical import CanonicalCart, LineItem
from cartrecovery.carts import upsert_cart
from integrations.base import Adapter, Delivery, json_object


class Item(BaseModel):
    sku: str
    title: str | None = None
    qty: int = Field(default=1, ge=0)
    price: Decimal = Field(default=Decimal("0"), ge=0, lt=Decimal("1e12"))


class Basket(BaseModel):
    id: str = Field(min_length=1)
    email: str | None = None
    currency: str | None = None
    items: list[Item] = Field(default_factory=list)
    updated_at: datetime | None = None


class Notification(BaseModel):
    delivery_id: str = Field(min_length=1)
    basket: Basket


class ExampleAdapter(Adapter):
    platform = "example"

    def locate(self, request):
        return request.headers.get("X-Example-Store")

    def verify(self, request, connection):
        token = request.headers.get("X-Example-Token") or ""
        return any(hmac.compare_digest(token.encode(), s.encode()) for s in connection.secrets)

    def parse(self, request, connection):
        payload = json_object(request.body)
        note = Notification.model_validate(payload)
        cart = CanonicalCart(
            platform=self.platform,
            external_id=note.basket.id,
            connection_id=connection.connection_id,
            email=note.basket.email,
            currency=note.basket.currency,
            line_items=[
                LineItem(sku=i.sku, title=i.title, quantity=i.qty, price=i.price)
                for i in note.basket.items
            ],
            source_updated_at=note.basket.updated_at,
        )
        return Delivery(
            topic="basket/updated",
            payload=payload,
            dedup_key=note.delivery_id,
            apply=lambda conn, org_id: upsert_cart(conn, org_id, cart),
            occurred_at=note.basket.updated_at,
        )

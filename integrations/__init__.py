"""Store platform integrations: one package per platform (webhook adapter, API client,
historical sync, coupon client, credential schema), found through the
``cartrecovery.adapters`` entry-point group by :mod:`integrations.registry`. Shared pieces:
the adapter interface (``base``), the sync engine (``sync``), the coupon client base
(``coupons``). See docs/adapters.md."""

from .base import (
    Adapter,
    AdapterError,
    Apply,
    BadPayload,
    Delivery,
    InboundRequest,
    NotFound,
    Unauthorized,
)

__all__ = [
    "Adapter",
    "AdapterError",
    "Apply",
    "BadPayload",
    "Delivery",
    "InboundRequest",
    "NotFound",
    "Unauthorized",
]

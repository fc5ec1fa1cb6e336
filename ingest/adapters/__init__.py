"""Store platform adapters: one per platform, found through the ``cartrecovery.adapters``
entry-point group (see docs/adapters.md)."""

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

"""The generic platform: any shop posting our own signed JSON (``adapter``). No platform
API, so no credentials, sync or coupons. ``custom`` is an older name for it."""

from ..platform import Platform
from .adapter import GenericAdapter

PLATFORM = Platform(
    name="generic",
    adapter=GenericAdapter,
    credentials=(),
    aliases=("custom",),
)

__all__ = ["PLATFORM", "GenericAdapter"]

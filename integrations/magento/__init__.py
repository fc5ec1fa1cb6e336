"""Magento 2 / Adobe Commerce: webhooks and the GraphQL cart reads (``adapter``) and the
credentials (``api``), the webhooks.xml to paste (``webhooks``). No historical sync and no
coupons here yet."""

from ..platform import Platform
from . import api, webhooks
from .adapter import MagentoAdapter

PLATFORM = Platform(
    name="magento",
    adapter=MagentoAdapter,
    credentials=api.CREDENTIALS,
    webhook_config=webhooks.webhooks_xml,
)

__all__ = ["PLATFORM", "MagentoAdapter"]

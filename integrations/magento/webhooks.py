"""Magento / Adobe Commerce declares webhooks in configuration (``app/etc/webhooks.xml`` or a
module's ``etc/webhooks.xml``; the Admin's System > Webhooks can override them), so there is
nothing to call: :func:`webhooks_xml` is the file to paste, with this connection's URL and
token filled in.

Two hooks, both ``type="after"`` (the shopper's action is already done) and
``required="false"`` (our being slow or down never blocks a cart): the quote save (every cart
change, including the email typed at checkout) and the order placement. No ``<fields>``: the
whole event payload is sent, which is what the adapter reads (``data.quote`` /
``data.order`` / ``data.data_object``). The ``X-Cartrec-Hook-Token`` header carries the
connection's secret, checked when no signing key is configured."""

from __future__ import annotations

from xml.sax.saxutils import quoteattr

from cartrecovery.tenancy import Connection

from ..bigcommerce.adapter import HOOK_TOKEN_HEADER
from ..platform import CUSTOM_PATH

EVENTS = {
    "observer.sales_quote_save_after": "cartrecovery_quote_saved",
    "observer.sales_order_place_after": "cartrecovery_order_placed",
}
SCHEMA = "urn:magento:module:Magento_AdobeCommerceWebhooks:etc/webhooks.xsd"


def webhooks_xml(connection: Connection, app_url: str) -> str:
    url = app_url.rstrip("/") + CUSTOM_PATH.format(connection_id=connection.connection_id)
    methods = []
    for event, hook in EVENTS.items():
        methods.append(
            f"""    <method name="{event}" type="after">
        <hooks>
            <batch name="cartrecovery">
                <hook name="{hook}" url={quoteattr(url)} method="POST"
                      timeout="2000" softTimeout="1000" required="false">
                    <headers>
                        <header name="{HOOK_TOKEN_HEADER}">{_text(connection.secret)}</header>
                    </headers>
                </hook>
            </batch>
        </hooks>
    </method>"""
        )
    body = "\n".join(methods)
    return f"""<?xml version="1.0"?>
<config xmlns:xsi="http://www.w3.org/2001/XMLSchema-instance"
        xsi:noNamespaceSchemaLocation="{SCHEMA}">
{body}
</config>
"""


def _text(value: str) -> str:
    return value.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")

"""Whether a campaign's discount codes would work in the stores its messages reach.

A discount step gets a code created in the cart's store through the store's API (Shopify,
WooCommerce, BigCommerce) when the connection holds the API credentials; without them the code
exists only here (``platform = 'local'``), and a shop whose checkout only knows its own codes
refuses it: the shopper is emailed a code that fails at checkout. So a campaign with a discount
step is refused (400) at creation and change while it can reach such a connection: the
merchant adds the keys or narrows the campaign (``trigger_conditions.platforms`` /
``connection_ids``). Stores with no coupon API here (custom, generic, Magento) keep local
codes, which their merchant honours by design (see docs/adapters.md).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from uuid import UUID

from . import tenancy
from .db import Database


def unredeemable_discounts(
    db: Database,
    key: bytes,
    org_id: UUID | str,
    trigger_conditions: Mapping | None,
    steps: Sequence[Mapping],
    coupon_credentials: Mapping[str, tuple[str, ...]],
) -> list[dict]:
    """The active connections a campaign with these conditions and steps could reach, whose
    shop would refuse its discount codes: ``[{"connection_id", "platform", "shop_domain",
    "missing", "steps"}]``; empty when no step offers a discount. ``coupon_credentials``:
    platform → the credential keys its coupon API needs (the integrations registry's
    ``Platform.coupon_credentials``); a platform not in it keeps local codes."""
    discount_steps = [
        i for i, step in enumerate(steps) if isinstance(step, Mapping) and step.get("discount")
    ]
    if not discount_steps:
        return []
    conditions = trigger_conditions or {}
    platforms = set(conditions.get("platforms") or ())
    connection_ids = {str(c) for c in conditions.get("connection_ids") or ()}
    problems = []
    for row in tenancy.list_connections(db, UUID(str(org_id))):
        needed = coupon_credentials.get(row["platform"])
        if row["status"] != "active" or needed is None:
            continue
        if platforms and row["platform"] not in platforms:
            continue
        if connection_ids and str(row["connection_id"]) not in connection_ids:
            continue
        connection = tenancy.get_connection(db, key, row["connection_id"])
        credentials = (connection.credentials if connection else None) or {}
        missing = [name for name in needed if not credentials.get(name)]
        if missing:
            problems.append(
                {
                    "connection_id": str(row["connection_id"]),
                    "platform": row["platform"],
                    "shop_domain": row["shop_domain"],
                    "missing": missing,
                    "steps": discount_steps,
                }
            )
    return problems


def explain(problems: list[dict]) -> str:
    """One sentence for the merchant about :func:`unredeemable_discounts`' answer."""
    shops = "; ".join(
        f"{p['platform']} connection {p['connection_id']} ({p['shop_domain']}) has no "
        f"API credentials for coupons ({', '.join(p['missing'])})"
        for p in problems
    )
    return (
        f"a discount step would email codes the shop refuses at checkout: {shops}. Add the "
        "credentials (PUT /api/v1/connections/{id}/credentials) or limit the campaign with "
        "trigger_conditions.platforms or connection_ids"
    )

"""``POST /api/v1/campaigns/{id}/preview``: render one step of a campaign for a cart.

Body (all optional): ``{"step": 0, "cart_id": "<uuid>", "variant": "<name>"}``. Renders the
step (or its variant) exactly as a send would, for the org's cart ``cart_id`` or, without
one, for a sample cart. Nothing is sent, stored or created: the restore link points at a
placeholder and a step's discount shows the code ``PREVIEW-CODE``.

Answers ``{channel, subject, html, text}`` (push: ``{channel, title, body, url}``); a
template that does not render is a 422 ``render_error`` with the reason; another org's
campaign or cart is a 404.
"""

from __future__ import annotations

from decimal import Decimal
from uuid import UUID

from flask import Blueprint, g, jsonify, request
from pydantic import BaseModel, ConfigDict, Field

from cartrecovery import campaigns
from cartrecovery.discounts import preview_coupon
from cartrecovery.rendering import RenderError, build_context, render

from ..auth import require_key
from ..errors import ApiError
from ..openapi import register_schema
from ..runtime import runtime

bp = Blueprint("preview", __name__, url_prefix="/api/v1/campaigns")

SAMPLE_ITEMS = [
    {
        "title": "Merino Wool Beanie",
        "variant_title": "Charcoal",
        "quantity": 2,
        "price": "24.00",
        "image_url": "https://placehold.co/160x160/png?text=Beanie",
    },
    {
        "title": "Trail Running Socks",
        "variant_title": "M",
        "quantity": 1,
        "price": "18.50",
        "image_url": "https://placehold.co/160x160/png?text=Socks",
    },
]
SAMPLE_CUSTOMER = {"first_name": "Alex", "last_name": "Sample", "email": "alex@example.com"}


class PreviewRequest(BaseModel):
    """What to preview: a step (index), optionally for one of the org's carts and a variant."""

    model_config = ConfigDict(extra="forbid", strict=True)

    step: int = Field(default=0, ge=0, description="Index of the step in sequence_steps.")
    cart_id: UUID | None = Field(
        default=None, description="Render for this cart of the org (default: a sample cart)."
    )
    variant: str | None = Field(
        default=None, min_length=1, description="Name of one of the step's variants."
    )


register_schema("/api/v1/campaigns/<id>/preview", "POST", PreviewRequest)


def _not_found(what: str) -> ApiError:
    return ApiError(404, "not_found", f"{what} not found")


def _sample_cart(org_id, campaign: dict) -> dict:
    currency = (campaign.get("trigger_conditions") or {}).get("currency") or "USD"
    total = sum(Decimal(i["price"]) * i["quantity"] for i in SAMPLE_ITEMS)
    return {
        "org_id": org_id,
        "cart_id": None,
        "platform": "preview",
        "currency": currency,
        "total_price": total,
        "item_count": sum(i["quantity"] for i in SAMPLE_ITEMS),
        "line_items": SAMPLE_ITEMS,
        "email": SAMPLE_CUSTOMER["email"],
        "restore_url": None,
    }


def _step(campaign: dict, index: int, variant: str | None) -> dict:
    steps = campaign.get("sequence_steps") or []
    if index >= len(steps):
        raise ApiError(
            400,
            "invalid_step",
            f"step {index} does not exist; the campaign has {len(steps)} step(s)",
            {"steps": len(steps)},
        )
    step = dict(steps[index])
    if variant is not None:
        chosen = next((v for v in step.get("variants") or [] if v.get("name") == variant), None)
        if chosen is None:
            names = [v.get("name") for v in step.get("variants") or []]
            raise ApiError(
                400,
                "unknown_variant",
                f"step {index} has no variant {variant!r}",
                {"variants": names},
            )
        step.update({k: chosen[k] for k in ("subject", "template") if chosen.get(k)})
    return step


@bp.post("/<id>/preview")
@require_key("read")
def preview(id: str):
    """Render one step of the campaign for a cart (or a sample cart); nothing is sent."""
    raw = request.get_data(cache=True)
    body = PreviewRequest.model_validate_json(raw if raw.strip() else b"{}")
    try:
        campaign_id = UUID(id)
    except ValueError:
        raise _not_found("campaign") from None
    rt = runtime()
    with rt.db.tenant(g.org_id) as conn:
        campaign = campaigns.get_campaign(conn, g.org_id, campaign_id)
        if campaign is None:
            raise _not_found("campaign")
        step = _step(campaign, body.step, body.variant)
        org = (
            conn.execute(
                "SELECT name, settings FROM app.orgs WHERE org_id = %s", (g.org_id,)
            ).fetchone()
            or {}
        )
        if body.cart_id is not None:
            cart = conn.execute(
                "SELECT * FROM app.carts WHERE org_id = %s AND cart_id = %s",
                (g.org_id, body.cart_id),
            ).fetchone()
            if cart is None:
                raise _not_found("cart")
            customer = (
                conn.execute(
                    "SELECT first_name, last_name, email FROM app.customers "
                    "WHERE org_id = %s AND customer_id = %s",
                    (g.org_id, cart["customer_id"]),
                ).fetchone()
                if cart.get("customer_id")
                else None
            )
        else:
            cart, customer = _sample_cart(g.org_id, campaign), SAMPLE_CUSTOMER

    channel = step.get("channel") or "email"
    app_url = rt.settings.app_url.rstrip("/")
    context = build_context(
        cart,
        org,
        customer,
        cart.get("email") or (customer or {}).get("email"),
        message={
            "org_id": g.org_id,
            "message_id": None,
            "cart_id": cart.get("cart_id"),
            "channel": channel,
        },
        coupon=preview_coupon(step),
        # A link that cannot count a click: previews must not look like recovery traffic.
        restore_url=f"{app_url}/r/preview",
        unsubscribe_url=f"{app_url}/unsubscribe/preview",
    )
    try:
        rendered = render(step.get("template"), step.get("subject"), context, channel)
    except RenderError as exc:
        raise ApiError(422, "render_error", str(exc), {"step": body.step}) from None
    if channel == "push":
        data = rendered.data or {}
        return jsonify(
            {
                "channel": channel,
                "title": data.get("title", rendered.subject),
                "body": data.get("body", rendered.text),
                "url": data.get("url"),
            }
        )
    return jsonify(
        {
            "channel": channel,
            "subject": rendered.subject,
            "html": rendered.html,
            "text": rendered.text,
        }
    )

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

from uuid import UUID

from flask import Blueprint, g, jsonify, request
from pydantic import BaseModel, ConfigDict, Field

from cartrecovery import campaigns, previews
from cartrecovery.rendering import RenderError

from ..auth import require_key
from ..errors import ApiError
from ..openapi import register_schema
from ..runtime import runtime

bp = Blueprint("preview", __name__, url_prefix="/api/v1/campaigns")


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
        currency = (campaign.get("trigger_conditions") or {}).get("currency")
        try:
            rendered = previews.render_step(
                conn, g.org_id, step, rt.settings.app_url, body.cart_id, currency
            )
        except previews.CartNotFound:
            raise _not_found("cart") from None
        except RenderError as exc:
            raise ApiError(422, "render_error", str(exc), {"step": body.step}) from None
    channel = step.get("channel") or "email"
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

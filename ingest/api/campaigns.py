"""``/api/v1/campaigns``: create, list, read, change and archive recovery campaigns."""

from __future__ import annotations

from uuid import UUID

from flask import Blueprint, g, jsonify
from pydantic import BaseModel

from cartrecovery import campaigns, discount_reach
from cartrecovery.campaigns import CampaignArchivedError, CampaignCreate, CampaignPatch
from integrations import registry

from ..auth import require_key
from ..errors import ApiError
from ..openapi import request_body, request_query
from ..runtime import runtime

bp = Blueprint("campaigns", __name__, url_prefix="/api/v1/campaigns")


class CampaignListQuery(BaseModel):
    include_archived: bool = False


def _campaign_id(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise _not_found() from None


def _not_found() -> ApiError:
    return ApiError(404, "not_found", "campaign not found")


def refuse_unredeemable_discounts(trigger_conditions: dict | None, steps: list[dict]) -> None:
    """400 ``discount_not_redeemable`` when a discount step would reach a store connection
    whose shop refuses codes created only here (see ``cartrecovery.discount_reach``)."""
    rt = runtime()
    problems = discount_reach.unredeemable_discounts(
        rt.db, rt.encryption_key, g.org_id, trigger_conditions, steps, registry.coupon_credentials()
    )
    if problems:
        raise ApiError(
            400,
            "discount_not_redeemable",
            discount_reach.explain(problems),
            {"connections": problems},
        )


def _json(model: BaseModel | None):
    return None if model is None else model.model_dump(mode="json", exclude_none=True)


@bp.get("")
@require_key("read")
@request_query(CampaignListQuery)
def list_campaigns(query: CampaignListQuery):
    """List campaigns, highest priority first (archived ones only with include_archived=true)."""
    with runtime().db.tenant(g.org_id) as conn:
        found = campaigns.list_campaigns(conn, g.org_id, query.include_archived)
    return jsonify({"campaigns": found})


@bp.post("")
@require_key("write")
@request_body(CampaignCreate, status=201)
def create_campaign(body: CampaignCreate):
    """Create a campaign (status draft unless given); answers 201 with the campaign.

    Steps may use email, sms or push; each message still passes the compliance gate at send
    time (consent, suppressions, quiet hours, frequency caps) and is held or deferred with a
    recorded reason otherwise. ``reentry_cooldown_seconds`` keeps a customer from re-entering
    the campaign within that time.
    """
    refuse_unredeemable_discounts(
        _json(body.trigger_conditions), [_json(step) for step in body.sequence_steps]
    )
    with runtime().db.tenant(g.org_id) as conn:
        created = campaigns.create_campaign(conn, g.org_id, body)
    return jsonify(created), 201


@bp.get("/<id>")
@require_key("read")
def get_campaign(id: str):
    """Read one campaign (archived ones too)."""
    with runtime().db.tenant(g.org_id) as conn:
        found = campaigns.get_campaign(conn, g.org_id, _campaign_id(id))
    if found is None:
        raise _not_found()
    return jsonify(found)


@bp.patch("/<id>")
@require_key("write")
@request_body(CampaignPatch)
def update_campaign(id: str, body: CampaignPatch):
    """Change name, status (active or paused), priority, trigger_conditions, sequence_steps
    or reentry_cooldown_seconds (0 turns it off).

    An archived campaign cannot be changed (409).
    """
    campaign_id = _campaign_id(id)
    if (
        body.trigger_conditions is not None
        or body.sequence_steps is not None
        or body.status == "active"
    ):
        with runtime().db.tenant(g.org_id) as conn:
            current = campaigns.get_campaign(conn, g.org_id, campaign_id)
        if current is not None:
            refuse_unredeemable_discounts(
                _json(body.trigger_conditions)
                if body.trigger_conditions is not None
                else current["trigger_conditions"],
                [_json(step) for step in body.sequence_steps]
                if body.sequence_steps is not None
                else current["sequence_steps"],
            )
    with runtime().db.tenant(g.org_id) as conn:
        try:
            updated = campaigns.update_campaign(conn, g.org_id, campaign_id, body)
        except CampaignArchivedError:
            raise ApiError(
                409,
                "campaign_archived",
                "an archived campaign cannot be changed",
                {"campaign_id": str(campaign_id)},
            ) from None
    if updated is None:
        raise _not_found()
    return jsonify(updated)


@bp.delete("/<id>")
@require_key("write")
def archive_campaign(id: str):
    """Archive a campaign: it stops matching carts and leaves the default list."""
    with runtime().db.tenant(g.org_id) as conn:
        archived = campaigns.archive_campaign(conn, g.org_id, _campaign_id(id))
    if archived is None:
        raise _not_found()
    return jsonify(archived)

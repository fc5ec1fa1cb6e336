"""Who is held out of a campaign and which variant of a step a customer gets.

Both are deterministic on (org, experiment, customer) through ``stats.assign``, so a customer
stays in or out of the holdout, and sees the same variant, on every cart. The customer is
their email (lower-cased), else their phone (E.164 when it parses), else the cart itself.

Experiments and their ids (also the ``{id}`` of ``GET /api/v1/experiments/{id}/results``):
``<campaign_id>:holdout`` (the campaign's holdout group against the messaged carts) and
``<campaign_id>:step:<n>`` (the variants of step n, counted from 1). See docs/statistics.md.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from uuid import UUID

from . import stats
from .canonical import normalize_email, normalize_phone

EXPERIMENT_ID = re.compile(
    r"^(?P<campaign>[0-9a-fA-F-]{36}):(?:(?P<holdout>holdout)|step:(?P<step>[1-9][0-9]{0,2}))$"
)


@dataclass(frozen=True)
class ExperimentId:
    campaign_id: UUID
    step_index: int | None  # 0-based, as in app.outbox; None for the holdout

    @property
    def kind(self) -> str:
        return "holdout" if self.step_index is None else "step"

    def __str__(self) -> str:
        if self.step_index is None:
            return f"{self.campaign_id}:holdout"
        return f"{self.campaign_id}:step:{self.step_index + 1}"


def parse_experiment_id(value: str) -> ExperimentId | None:
    """The experiment named by ``value``, or None when it is not an experiment id."""
    found = EXPERIMENT_ID.match(value or "")
    if not found:
        return None
    try:
        campaign_id = UUID(found["campaign"])
    except ValueError:
        return None
    step = found["step"]
    return ExperimentId(campaign_id, None if step is None else int(step) - 1)


def customer_key(cart: dict, customer: dict | None = None) -> str:
    """The unit of assignment: ``email:…``, else ``phone:…``, else ``cart:…``. The cart's own
    address first, then its customer's (as the recipient is chosen)."""
    customer = customer or {}
    email = normalize_email(cart.get("email") or customer.get("email"))
    if email:
        return f"email:{email}"
    phone = (cart.get("phone") or customer.get("phone") or "").strip()
    if phone:
        return f"phone:{normalize_phone(phone) or phone}"
    return f"cart:{cart['cart_id']}"


def holdout_share(campaign: dict) -> float:
    """The campaign's ``experiment.holdout_percent`` as a share in [0, 1]."""
    experiment = campaign.get("experiment")
    if not isinstance(experiment, dict):
        return 0.0
    try:
        percent = float(experiment.get("holdout_percent") or 0)
    except (TypeError, ValueError):
        return 0.0
    return min(max(percent, 0.0), 100.0) / 100


def is_held_out(org_id, campaign: dict, customer: str) -> bool:
    """Whether the customer is in the campaign's holdout group (no message is sent)."""
    share = holdout_share(campaign)
    if share <= 0:
        return False
    if share >= 1:
        return True
    key = str(ExperimentId(UUID(str(campaign["campaign_id"])), None))
    return stats.assign(str(org_id), key, customer, [1.0], holdout_share=share).held_out


def step_variants(step: dict) -> list[dict]:
    return [v for v in (step.get("variants") or []) if isinstance(v, dict)]


def configured_weights(variants: list[dict]) -> list[float]:
    """The variants' ``weight`` (default 1), negative or unreadable ones as 0."""
    weights = []
    for v in variants:
        try:
            weights.append(max(0.0, float(v.get("weight", 1))))
        except (TypeError, ValueError):
            weights.append(0.0)
    return weights


def choose_variant(
    org_id,
    campaign_id,
    step_index: int,
    step: dict,
    customer: str,
    weights: list[float] | None = None,
) -> dict | None:
    """The variant of the step for the customer, by ``weights`` (the configured ones unless
    given, e.g. a bandit's shares); None for a step without variants. The same customer
    gets the same variant while the weights stay the same."""
    variants = step_variants(step)
    if not variants:
        return None
    weights = configured_weights(variants) if weights is None else weights
    if sum(weights) <= 0:
        return variants[0]
    key = str(ExperimentId(UUID(str(campaign_id)), step_index))
    return variants[stats.assign(str(org_id), key, customer, weights).variant]

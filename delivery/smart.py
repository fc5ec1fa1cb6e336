"""Smart send time and smart discount at enrollment: what the champion models decide for one
outbox row, and what is recorded about it (docs/models.md, "Scoring in delivery").

Kept apart from the enrollment flow itself: :func:`plan` is called once per step that turns
``smart_send_time`` or ``smart_discount`` on, and returns the row's ``due_at``, template and
the scoring columns (migration 0014). It never raises: without a champion, or when scoring
fails, the step's fixed delay and full discount rule apply and the reason is recorded
(``fallback:<why>``). A deterministic share of carts (``smart_control_share``) keeps the
fixed behaviour (``control``) so the analytics can compare. The chosen instant is among those
the org's quiet hours allow for the channel; the gate still re-checks everything at send
time (caps, quiet hours, consent).
"""

from __future__ import annotations

import hashlib
import logging
import random
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime

import numpy as np
import psycopg

from cartrecovery import discounts
from cartrecovery.campaigns import SMART_DEFAULTS
from cartrecovery.rendering import DEFAULT_TEMPLATES
from ml import features, scoring
from ml.content import NAME as CONTENT_MODEL
from ml.send_time import NAME as SEND_TIME_MODEL

from . import quiet_hours

log = logging.getLogger(__name__)


@dataclass
class Plan:
    due_at: datetime
    template: str | None
    columns: dict = field(default_factory=dict)


def _unit(key: str) -> float:
    """A number in [0, 1) fixed by ``key`` (the control split and exploration draws)."""
    digest = hashlib.sha256(key.encode()).digest()
    return int.from_bytes(digest[:8], "big") / 2**64


def _setting(step: dict, name: str):
    value = step.get(name)
    return SMART_DEFAULTS[name] if value is None else value


def discount_rate(step: dict, cart_value: float) -> float | None:
    """The step's discount as a share of the cart value (None for free shipping/unknown)."""
    offer = discounts.offer_of(step)
    if offer is None:
        return None
    if offer.type == "percentage":
        return float(offer.value) / 100.0
    if offer.type == "fixed_amount" and cart_value > 0:
        return min(1.0, float(offer.value) / cart_value)
    return None


def model_row(cart: dict, channel: str, variant: str | None, zone: str, rate: float) -> dict:
    """The cart as the models read it: a message-log row without outcome (ml.features)."""
    abandoned = cart.get("abandoned_at") or datetime.now(UTC)
    return {
        "store_key": str(cart["org_id"]),
        "customer_key": features.customer_key(
            cart.get("customer_id"), cart.get("email"), cart["cart_id"]
        ),
        "channel": channel,
        "device": str(cart.get("device") or "unknown"),
        "timezone": zone,
        "variant": variant or "default",
        "cart_value": float(cart.get("total_price") or 0),
        "item_count": int(cart.get("item_count") or 0),
        "abandoned_at": int(abandoned.timestamp()),
        "discount_rate": rate,
    }


def plan(
    conn: psycopg.Connection,
    *,
    cart: dict,
    campaign_id,
    index: int,
    step: dict,
    channel: str,
    recipient: str | None,
    variant: str | None,
    template: str | None,
    fixed_due: datetime,
    settings: dict,
    customer: dict,
) -> Plan:
    """Decide ``due_at`` (smart send time) and whether the code goes (smart discount)."""
    started = time.perf_counter()
    key = f"{cart['cart_id']}:{campaign_id}:{index}"
    result = Plan(fixed_due, template)
    details: dict = {"fixed_due_at": fixed_due.isoformat()}
    control = _unit(f"{key}:smart-control") < float(_setting(step, "smart_control_share"))
    zones, allowed_check = _location(conn, cart, channel, recipient, settings, customer)
    value = float(cart.get("total_price") or 0)
    rate = discount_rate(step, value) or 0.0
    row = model_row(cart, channel, variant, zones[0], rate)
    details |= {"timezone": row["timezone"], "device": row["device"], "discount_rate": rate}
    if step.get("smart_send_time"):
        _send_time(result, details, step, row, fixed_due, allowed_check, key, control)
    if step.get("smart_discount"):
        _discount(result, details, step, row, rate, channel, control)
    details["scoring_ms"] = round((time.perf_counter() - started) * 1000, 3)
    result.columns["model_scoring"] = details
    return result


def _location(conn, cart, channel, recipient, settings, customer):
    """The recipient's zones and a function telling whether an instant passes quiet hours."""
    from .gate import quiet_hours_apply, recipient_location  # the gate imports enrollment

    hours = settings.get("quiet_hours") or {}
    location = recipient_location(
        conn, {"channel": channel, "recipient": recipient}, cart, customer, settings
    )
    zones = list(location.zones) or ["UTC"]
    if not quiet_hours_apply(hours, channel):
        return zones, lambda at: True
    rules = [quiet_hours.window(hours)] + quiet_hours.region_rules(hours.get("regions"), location)
    rules = [r for r in rules if not r.always]
    return zones, lambda at: quiet_hours.is_allowed(at, zones, rules)


def _send_time(result, details, step, row, fixed_due, allowed_check, key, control) -> None:
    cols = result.columns
    cols["send_time_model"] = SEND_TIME_MODEL
    if control:
        cols["send_time_decision"] = "control"
        return
    model, version, reason = scoring.champion(SEND_TIME_MODEL).get()
    cols["send_time_model_version"] = version
    if model is None:
        cols["send_time_decision"] = f"fallback:{reason}"[:300]
        return
    try:
        window = int(_setting(step, "smart_send_window_seconds"))
        base = int(fixed_due.timestamp())
        candidates = base + np.arange(window // 3600 + 1, dtype=np.int64) * 3600
        allowed = np.array([allowed_check(_at(t)) for t in candidates.tolist()])
        draws = random.Random(f"{key}:explore")
        choice = model.choose(row, candidates, allowed, draws.random(), draws.random())
    except Exception as exc:  # a broken model must not stop enrollment
        log.warning("send-time scoring failed, fixed delay used: %s", exc)
        cols["send_time_decision"] = f"fallback:error: {type(exc).__name__}: {exc}"[:300]
        return
    result.due_at = _at(int(candidates[choice.index]))
    cols |= {
        "send_time_decision": "explore" if choice.explored else "model",
        "send_time_propensity": choice.propensity,
        "send_time_explored": choice.explored,
    }
    details |= {
        "candidates": len(candidates),
        "allowed": int(allowed.sum()),
        "greedy_due_at": _at(int(candidates[choice.greedy_index])).isoformat(),
        "q_chosen": choice.q_chosen,
        "q_greedy": choice.q_greedy,
        "q_fixed": choice.q_fixed,
    }


def _discount(result, details, step, row, rate, channel, control) -> None:
    cols = result.columns
    cols["content_model"] = CONTENT_MODEL
    if control:
        cols["discount_decision"] = "control"
        return
    model, version, reason = scoring.champion(CONTENT_MODEL).get()
    cols["content_model_version"] = version
    if model is None:
        cols["discount_decision"] = f"fallback:{reason}"[:300]
        return
    if rate <= 0:
        cols["discount_decision"] = "fallback:no_discount_rate"
        return
    try:
        p_code, p_none = model.predict_one(row, int(result.due_at.timestamp()))
        margin = float(_setting(step, "smart_discount_margin"))
        offer = bool(p_code * (margin - rate) > p_none * margin)
    except Exception as exc:
        log.warning("content scoring failed, the step's discount applies: %s", exc)
        cols["discount_decision"] = f"fallback:error: {type(exc).__name__}: {exc}"[:300]
        return
    cols |= {"discount_decision": "model", "discount_offered": offer}
    details |= {
        "p_recovery_code": float(p_code),
        "p_recovery_no_code": float(p_none),
        "uplift": float(p_code - p_none),
        "margin": margin,
    }
    if not offer:
        result.template = step.get("no_discount_template") or DEFAULT_TEMPLATES.get(
            channel, DEFAULT_TEMPLATES["email"]
        )


def _at(epoch: int) -> datetime:
    return datetime.fromtimestamp(epoch, UTC)


SCORING_COLUMNS = (
    "send_time_decision",
    "send_time_model",
    "send_time_model_version",
    "send_time_propensity",
    "send_time_explored",
    "discount_decision",
    "discount_offered",
    "content_model",
    "content_model_version",
    "model_scoring",
)

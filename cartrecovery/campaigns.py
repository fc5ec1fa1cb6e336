"""Recovery campaigns: the validated shape of a campaign and its data access.

A campaign says which abandoned carts it applies to (``trigger_conditions``) and what to send
(``sequence_steps``, each ``delay_seconds`` after abandonment). Both are stored in
``app.campaigns`` jsonb with exactly the key names of the models below, because the scheduler
reads them from there: optional keys that were not given are absent, never ``null``.

Steps go out on email, SMS or web push; every message passes the compliance gate at send time
(consent, suppressions, quiet hours, caps), so a step on a channel the customer cannot be
reached on is held with a reason, never sent. Subjects and templates are checked against the
variables a message gets when a campaign is created or changed (``template_variables``,
docs/templates.md), so a typo is a 400 now rather than a held message later.

Product conditions compare strings: ``products_include``/``products_exclude`` match a line
item's ``product_id``, ``variant_id`` or ``sku``; ``collections_include``/``_exclude`` match
the line item's ``collections`` list, which only some platforms send with a cart (Shopify cart
and checkout webhooks do not, so on those a collections_include condition matches nothing).
"""

from __future__ import annotations

import re
from functools import cache
from typing import Annotated, Any, Literal
from uuid import UUID

import psycopg
from jinja2 import TemplateSyntaxError
from jinja2.sandbox import SandboxedEnvironment
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

from . import template_variables
from .json_rows import json_ready
from .rendering import DEFAULT_TEMPLATES, TEMPLATES

CHANNELS = ("email", "sms", "push")
DELIVERABLE_CHANNELS = CHANNELS
MAX_DELAY_SECONDS = 90 * 24 * 3600
SMART_WINDOW_SECONDS = 24 * 3600
# Step fields left out of the stored step while they hold their default (older readers and
# stored campaigns see the same shape as before).
SMART_DEFAULTS = {
    "smart_send_time": False,
    "smart_send_window_seconds": SMART_WINDOW_SECONDS,
    "smart_discount": False,
    "smart_discount_margin": 0.4,
    "smart_control_share": 0.1,
}
MAX_COOLDOWN_SECONDS = 365 * 24 * 3600
MAX_LIST = 500
# A bare name refers to a built-in template (``cart_reminder``); anything else is inline HTML.
TEMPLATE_NAME = re.compile(r"^[A-Za-z0-9_.-]+$")
# A SendGrid dynamic template id: SendGrid renders it with our data (email steps only).
DYNAMIC_TEMPLATE = re.compile(r"^d-[0-9a-f]{32}$")

_jinja = SandboxedEnvironment()
_MODEL_CONFIG = ConfigDict(
    extra="forbid", strict=True, allow_inf_nan=False, str_strip_whitespace=True
)


class CampaignArchivedError(Exception):
    """The campaign is archived: it can be read but no longer changed."""


def _check_jinja(value: str, what: str) -> str:
    try:
        _jinja.parse(value)
    except TemplateSyntaxError as exc:
        raise PydanticCustomError(
            "template_syntax",
            "{what} is not a valid Jinja2 template: {error} (line {line})",
            {"what": what, "error": exc.message or "syntax error", "line": exc.lineno},
        ) from None
    return value


@cache
def builtin_templates() -> frozenset[str]:
    """Names of the built-in templates (``cartrecovery/templates``)."""
    # Email templates are .html (+ .txt), SMS templates .txt alone, push templates .json.
    return frozenset(
        f.stem for pattern in ("*.html", "*.txt", "*.json") for f in TEMPLATES.glob(pattern)
    )


def _check_template(value: str) -> str:
    if DYNAMIC_TEMPLATE.match(value):
        return value
    if not TEMPLATE_NAME.match(value):
        return _check_jinja(value, "template")
    known = builtin_templates()
    name = value.removesuffix(".html").removesuffix(".txt").removesuffix(".json")
    # Refused now rather than held at send time, when nobody is watching.
    if known and name not in known:
        raise PydanticCustomError(
            "unknown_template",
            "'{name}' is not a built-in template (known: {known}); inline Jinja2 HTML also works",
            {"name": value, "known": ", ".join(sorted(known))},
        )
    return value


IdText = Annotated[str, Field(min_length=1, max_length=200)]


class TriggerConditions(BaseModel):
    """Which abandoned carts a campaign applies to; every condition given must hold."""

    model_config = _MODEL_CONFIG

    cart_value_min: float | None = Field(
        default=None, ge=0, description="Cart total_price must be at least this."
    )
    cart_value_max: float | None = Field(
        default=None, ge=0, description="Cart total_price must be at most this."
    )
    currency: str | None = Field(
        default=None,
        pattern=r"^[A-Za-z]{3}$",
        description="ISO 4217 code the cart must be in (stored upper-case).",
    )

    item_count_min: int | None = Field(
        default=None, ge=0, description="The cart must hold at least this many items."
    )
    item_count_max: int | None = Field(
        default=None, ge=0, description="The cart must hold at most this many items."
    )
    products_include: list[IdText] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_LIST,
        description="At least one line item's product_id, variant_id or sku is listed.",
    )
    products_exclude: list[IdText] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_LIST,
        description="No line item's product_id, variant_id or sku is listed.",
    )
    collections_include: list[IdText] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_LIST,
        description="At least one line item is in a listed collection (needs the platform to "
        "send line item collections).",
    )
    collections_exclude: list[IdText] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_LIST,
        description="No line item is in a listed collection.",
    )
    customer_type: Literal["new", "returning"] | None = Field(
        default=None,
        description="returning: the customer has an earlier order; new: none.",
    )
    abandonment: Literal["first", "repeat"] | None = Field(
        default=None,
        description="repeat: the customer abandoned an earlier cart; first: never before.",
    )
    platforms: list[IdText] | None = Field(
        default=None,
        min_length=1,
        max_length=20,
        description="The cart came from one of these platforms (shopify, woocommerce, ...).",
    )
    connection_ids: list[UUID] | None = Field(
        default=None,
        min_length=1,
        max_length=MAX_LIST,
        description="The cart came through one of these store connections.",
    )

    @field_validator("currency")
    @classmethod
    def _upper(cls, value: str | None) -> str | None:
        return value.upper() if value else value

    @field_validator("connection_ids", mode="before")
    @classmethod
    def _uuid_strings(cls, value: Any) -> Any:
        # JSON carries UUIDs as strings; strict mode would otherwise refuse them.
        if isinstance(value, list):
            out = []
            for item in value:
                try:
                    out.append(UUID(item) if isinstance(item, str) else item)
                except ValueError:
                    raise PydanticCustomError(
                        "uuid", "connection_ids must be UUIDs: {bad!r}", {"bad": item}
                    ) from None
            return out
        return value

    @model_validator(mode="after")
    def _min_below_max(self) -> TriggerConditions:
        for low_name, high_name in (
            ("cart_value_min", "cart_value_max"),
            ("item_count_min", "item_count_max"),
        ):
            low, high = getattr(self, low_name), getattr(self, high_name)
            if low is not None and high is not None and low > high:
                raise PydanticCustomError(
                    "range_order",
                    "{low} must not be greater than {high}",
                    {"low": low_name, "high": high_name},
                )
        for kind in ("products", "collections"):
            both = set(getattr(self, f"{kind}_include") or ()) & set(
                getattr(self, f"{kind}_exclude") or ()
            )
            if both:
                raise PydanticCustomError(
                    "include_exclude",
                    "{kind} both included and excluded: {items}",
                    {"kind": kind, "items": ", ".join(sorted(both))},
                )
        return self


class Discount(BaseModel):
    """A discount offered by a step: a unique single-use code, created when the step is sent."""

    model_config = _MODEL_CONFIG

    type: Literal["percentage", "fixed_amount", "free_shipping"]
    value: float | None = Field(
        default=None,
        gt=0,
        le=100_000,
        description="Percent (1..100) or amount in the cart's currency; not for free_shipping.",
    )
    expires_in_hours: int = Field(default=72, ge=1, le=365 * 24)

    @model_validator(mode="after")
    def _value(self) -> Discount:
        if self.type != "free_shipping" and self.value is None:
            raise PydanticCustomError(
                "value_required", "a {type} discount needs a value", {"type": self.type}
            )
        if self.type == "percentage" and self.value > 100:
            raise PydanticCustomError("percentage", "a percentage discount is at most 100")
        return self


class StepVariant(BaseModel):
    """An alternative content for one step; carts are split between variants by weight."""

    model_config = _MODEL_CONFIG

    name: str = Field(min_length=1, max_length=100)
    subject: str | None = Field(default=None, min_length=1, max_length=500)
    template: str | None = Field(default=None, min_length=1, max_length=200_000)
    weight: float = Field(default=1.0, gt=0, le=1000)

    @field_validator("subject")
    @classmethod
    def _subject(cls, value: str | None) -> str | None:
        return _check_jinja(value, "subject") if value else value

    @field_validator("template")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        return _check_template(value) if value else value


class SequenceStep(BaseModel):
    """One message of the sequence, sent ``delay_seconds`` after the cart was abandoned."""

    model_config = _MODEL_CONFIG

    channel: Literal["email", "sms", "push"]
    delay_seconds: int = Field(ge=0, le=MAX_DELAY_SECONDS)
    subject: str | None = Field(
        default=None,
        min_length=1,
        max_length=500,
        description="Jinja2 template for the subject line (email, required; push: the "
        "notification title; not allowed for SMS).",
    )
    # Never None once validated: ``_channel_default_template`` fills it in.
    template: str | None = Field(
        default=None,
        min_length=1,
        max_length=200_000,
        description="Name of a built-in template (e.g. cart_reminder) or inline Jinja2 HTML; "
        "when left out, the channel's built-in template (email: cart_reminder, sms: "
        "sms_reminder, push: push_reminder) is stored.",
    )
    variants: list[StepVariant] | None = Field(default=None, min_length=1, max_length=10)
    discount: Discount | None = Field(
        default=None, description="Offer a unique discount code with this message."
    )
    allocation: Literal["fixed", "thompson"] | None = Field(
        default=None,
        description="How carts are split between the variants: fixed (default: by weight) or "
        "thompson (Thompson sampling on each variant's clicks and recoveries so far, with "
        "min_share; see docs/statistics.md). thompson needs at least two variants.",
    )
    min_share: float | None = Field(
        default=None,
        ge=0,
        le=0.5,
        description="With allocation thompson: the share of carts every variant keeps "
        "(default 0.05; at most 1 / number of variants).",
    )

    # Model-driven choices (docs/models.md). Off by default; a control share keeps the fixed
    # behaviour so the analytics can compare.
    smart_send_time: bool = Field(
        default=False,
        description="Let the send-time model pick the instant within smart_send_window_seconds "
        "after delay_seconds (quiet hours and caps still apply); without a model, the fixed "
        "delay.",
    )
    smart_send_window_seconds: int = Field(
        default=SMART_WINDOW_SECONDS,
        ge=3600,
        le=7 * 24 * 3600,
        description="How far after delay_seconds the send-time model may move the message.",
    )
    smart_discount: bool = Field(
        default=False,
        description="Offer the step's discount only when the content model predicts that it "
        "pays for its cost (needs a percentage or fixed_amount discount); without a model, "
        "everyone gets the code.",
    )
    smart_discount_margin: float = Field(
        default=0.4,
        gt=0,
        lt=1,
        description="Gross margin of the store's products (share of the cart value), used to "
        "weigh a discount's cost against its predicted uplift.",
    )
    no_discount_template: str | None = Field(
        default=None,
        min_length=1,
        max_length=200_000,
        description="Template of the message when smart_discount withholds the code (default: "
        "the channel's built-in reminder without a code).",
    )
    smart_control_share: float = Field(
        default=0.1,
        ge=0,
        le=0.5,
        description="Share of carts that keep the fixed delay and the full discount rule, "
        "to compare against.",
    )

    @model_validator(mode="after")
    def _smart_discount(self) -> SequenceStep:
        if self.smart_discount and (
            self.discount is None or self.discount.type not in ("percentage", "fixed_amount")
        ):
            raise PydanticCustomError(
                "smart_discount",
                "smart_discount needs a percentage or fixed_amount discount on the step",
            )
        if self.no_discount_template is not None:
            _check_template(self.no_discount_template)
            try:
                template_variables.check_step(
                    self.channel,
                    self.subject,
                    self.no_discount_template,
                    has_discount=False,
                    where="no_discount_template ",
                )
            except template_variables.UnknownVariable as exc:
                raise PydanticCustomError(
                    "unknown_variable",
                    "{problem}",
                    {"problem": str(exc), "variable": exc.name, "available": exc.available},
                ) from None
        return self

    @model_validator(mode="before")
    @classmethod
    def _channel_default_template(cls, data: Any) -> Any:
        # A step without a template gets its channel's built-in one, stored explicitly so the
        # scheduler and the API read the same step (docs/templates.md).
        if isinstance(data, dict) and data.get("template") is None:
            default = DEFAULT_TEMPLATES.get(data.get("channel"))  # type: ignore[arg-type]
            if default is not None:
                data = {**data, "template": default}
        return data

    @field_validator("subject")
    @classmethod
    def _subject(cls, value: str | None) -> str | None:
        return _check_jinja(value, "subject") if value else value

    @model_validator(mode="after")
    def _subject_by_channel(self) -> SequenceStep:
        subjects = [self.subject, *(v.subject for v in self.variants or ())]
        if self.channel == "email" and not self.subject:
            raise PydanticCustomError("subject_required", "an email step needs a subject")
        if self.channel == "sms" and any(subjects):
            raise PydanticCustomError("subject_not_allowed", "an SMS step has no subject")
        templates = [self.template, *(v.template for v in self.variants or () if v.template)]
        if self.channel != "email" and any(DYNAMIC_TEMPLATE.match(t) for t in templates):
            raise PydanticCustomError(
                "dynamic_template_channel", "SendGrid dynamic templates are for email steps only"
            )
        return self

    @model_validator(mode="after")
    def _known_variables(self) -> SequenceStep:
        # A variant replaces the step's subject and template only where it gives one.
        contents = [("", self.subject, self.template)] + [
            (f"variant '{v.name}' ", v.subject or self.subject, v.template or self.template)
            for v in self.variants or ()
        ]
        for where, subject, template in contents:
            try:
                template_variables.check_step(
                    self.channel,
                    subject,
                    template,
                    has_discount=self.discount is not None,
                    where=where,
                )
            except template_variables.UnknownVariable as exc:
                raise PydanticCustomError(
                    "unknown_variable",
                    "{problem}",
                    {"problem": str(exc), "variable": exc.name, "available": exc.available},
                ) from None
        return self

    @field_validator("template")
    @classmethod
    def _template(cls, value: str | None) -> str | None:
        return _check_template(value) if value else value

    @model_validator(mode="after")
    def _allocation(self) -> SequenceStep:
        arms = len(self.variants or ())
        if self.allocation == "thompson" and arms < 2:
            raise PydanticCustomError(
                "allocation_needs_variants", "allocation thompson needs at least two variants"
            )
        if self.min_share is not None:
            if self.allocation != "thompson":
                raise PydanticCustomError(
                    "min_share_without_bandit", "min_share applies only to allocation thompson"
                )
            if self.min_share > 1 / arms:
                raise PydanticCustomError(
                    "min_share_too_large",
                    "min_share is at most 1 / {arms} with {arms} variants",
                    {"arms": arms},
                )
        return self

    @field_validator("variants")
    @classmethod
    def _unique_variant_names(cls, value: list[StepVariant] | None):
        if value and len({v.name for v in value}) != len(value):
            raise PydanticCustomError("duplicate_variant", "variant names must be unique")
        return value


class Experiment(BaseModel):
    """A holdout group: this share of matching carts gets no message, to measure lift.

    Assignment is by customer (email, else phone, else cart), so a customer stays in or out
    across carts; held-out carts are enrolled and tracked, their outbox rows have status
    ``held_out`` and nothing is sent (see docs/statistics.md)."""

    model_config = _MODEL_CONFIG

    name: str | None = Field(default=None, min_length=1, max_length=200)
    holdout_percent: float = Field(default=0, ge=0, le=100)


class ExperimentChange(Experiment):
    """A PATCH's holdout group: it replaces the stored one, so the share must be given."""

    holdout_percent: float = Field(ge=0, le=100)


MAX_STEPS = 20


class CampaignCreate(BaseModel):
    """The body of ``POST /api/v1/campaigns``."""

    model_config = _MODEL_CONFIG

    name: str = Field(min_length=1, max_length=200)
    status: Literal["draft", "active", "paused"] = "draft"
    priority: int = Field(
        default=0,
        ge=-1000,
        le=1000,
        description="When several campaigns match a cart, the highest priority wins.",
    )
    trigger_conditions: TriggerConditions = Field(default_factory=TriggerConditions)
    sequence_steps: list[SequenceStep] = Field(min_length=1, max_length=MAX_STEPS)
    experiment: Experiment | None = None
    reentry_cooldown_seconds: int | None = Field(
        default=None,
        ge=0,
        le=MAX_COOLDOWN_SECONDS,
        description="A customer enrolled in this campaign is not enrolled in it again within "
        "this many seconds.",
    )


class CampaignPatch(BaseModel):
    """The body of ``PATCH /api/v1/campaigns/{id}``: only the fields being changed.

    ``null`` is refused: clear the conditions with ``{}``, archive with DELETE.
    """

    model_config = _MODEL_CONFIG

    name: str | None = Field(default=None, min_length=1, max_length=200)
    status: Literal["active", "paused"] | None = None
    priority: int | None = Field(default=None, ge=-1000, le=1000)
    trigger_conditions: TriggerConditions | None = None
    sequence_steps: list[SequenceStep] | None = Field(
        default=None, min_length=1, max_length=MAX_STEPS
    )
    reentry_cooldown_seconds: int | None = Field(
        default=None, ge=0, le=MAX_COOLDOWN_SECONDS, description="0 turns the cooldown off."
    )
    experiment: ExperimentChange | None = Field(
        default=None,
        description="Replace the holdout group (e.g. change holdout_percent); "
        "holdout_percent 0 stops holding carts out.",
    )

    @model_validator(mode="before")
    @classmethod
    def _no_nulls(cls, data: Any) -> Any:
        if isinstance(data, dict):
            nulls = [k for k, v in data.items() if v is None]
            if nulls:
                raise PydanticCustomError(
                    "null_not_allowed",
                    "fields cannot be set to null: {fields}",
                    {"fields": ", ".join(nulls)},
                )
        return data


_COLUMNS = """campaign_id, name, status, priority, trigger_conditions, sequence_steps,
              experiment, reentry_cooldown_seconds, created_at, updated_at"""


def _dump_conditions(conditions: TriggerConditions) -> dict:
    return conditions.model_dump(mode="json", exclude_none=True)


def _dump_step(step: SequenceStep) -> dict:
    dumped = step.model_dump(mode="json", exclude_none=True)
    for key, default in SMART_DEFAULTS.items():
        if dumped.get(key) == default:
            dumped.pop(key)
    return dumped


def _dump_steps(steps: list[SequenceStep]) -> list[dict]:
    return [_dump_step(step) for step in steps]


def create_campaign(
    conn: psycopg.Connection, org_id: UUID | str, data: dict | CampaignCreate
) -> dict:
    """Validate ``data`` (pydantic.ValidationError if invalid) and store a new campaign."""
    campaign = data if isinstance(data, CampaignCreate) else CampaignCreate.model_validate(data)
    row = conn.execute(
        f"""
        INSERT INTO app.campaigns
            (org_id, name, status, priority, trigger_conditions, sequence_steps, experiment,
             reentry_cooldown_seconds)
        VALUES (%s, %s, %s, %s, %s, %s, %s, %s)
        RETURNING {_COLUMNS}
        """,
        (
            org_id,
            campaign.name,
            campaign.status,
            campaign.priority,
            Jsonb(_dump_conditions(campaign.trigger_conditions)),
            Jsonb(_dump_steps(campaign.sequence_steps)),
            Jsonb(campaign.experiment.model_dump(mode="json", exclude_none=True))
            if campaign.experiment
            else None,
            campaign.reentry_cooldown_seconds or None,
        ),
    ).fetchone()
    return json_ready(row)


def list_campaigns(
    conn: psycopg.Connection, org_id: UUID | str, include_archived: bool = False
) -> list[dict]:
    """Campaigns of the org, highest priority first; archived ones only if asked."""
    rows = conn.execute(
        f"""
        SELECT {_COLUMNS} FROM app.campaigns
        WHERE org_id = %s AND (%s OR status <> 'archived')
        ORDER BY priority DESC, created_at, campaign_id
        """,
        (org_id, include_archived),
    ).fetchall()
    return [json_ready(r) for r in rows]


def get_campaign(
    conn: psycopg.Connection, org_id: UUID | str, campaign_id: UUID | str
) -> dict | None:
    """One campaign (archived included), or None."""
    row = conn.execute(
        f"SELECT {_COLUMNS} FROM app.campaigns WHERE org_id = %s AND campaign_id = %s",
        (org_id, campaign_id),
    ).fetchone()
    return json_ready(row) if row else None


def update_campaign(
    conn: psycopg.Connection,
    org_id: UUID | str,
    campaign_id: UUID | str,
    changes: dict | CampaignPatch,
) -> dict | None:
    """Apply ``changes`` and return the campaign; None if it does not exist.

    Raises pydantic.ValidationError for invalid changes and CampaignArchivedError when the
    campaign is archived; in both cases nothing is written.
    """
    patch = changes if isinstance(changes, CampaignPatch) else CampaignPatch.model_validate(changes)
    current = conn.execute(
        "SELECT status FROM app.campaigns WHERE org_id = %s AND campaign_id = %s FOR UPDATE",
        (org_id, campaign_id),
    ).fetchone()
    if current is None:
        return None
    if current["status"] == "archived":
        raise CampaignArchivedError(f"campaign {campaign_id} is archived")
    fields = patch.model_fields_set
    values: dict[str, Any] = {
        "name": patch.name,
        "status": patch.status,
        "priority": patch.priority,
        "trigger_conditions": Jsonb(_dump_conditions(patch.trigger_conditions))
        if patch.trigger_conditions is not None
        else None,
        "sequence_steps": Jsonb(_dump_steps(patch.sequence_steps))
        if patch.sequence_steps is not None
        else None,
        "experiment": Jsonb(patch.experiment.model_dump(mode="json", exclude_none=True))
        if patch.experiment is not None
        else None,
        "cooldown_set": "reentry_cooldown_seconds" in fields,
        "cooldown": patch.reentry_cooldown_seconds or None,
    }
    # COALESCE keeps a column whose field was not sent (the patch model refuses nulls, so None
    # here always means "not sent").
    row = conn.execute(
        f"""
        UPDATE app.campaigns SET
            name = COALESCE(%(name)s, name),
            status = COALESCE(%(status)s, status),
            priority = COALESCE(%(priority)s, priority),
            trigger_conditions = COALESCE(%(trigger_conditions)s, trigger_conditions),
            sequence_steps = COALESCE(%(sequence_steps)s, sequence_steps),
            experiment = COALESCE(%(experiment)s, experiment),
            reentry_cooldown_seconds = CASE WHEN %(cooldown_set)s THEN %(cooldown)s::integer
                                            ELSE reentry_cooldown_seconds END,
            updated_at = CASE WHEN %(changed)s THEN now() ELSE updated_at END
        WHERE org_id = %(org)s AND campaign_id = %(id)s
        RETURNING {_COLUMNS}
        """,
        {**values, "changed": bool(fields), "org": org_id, "id": campaign_id},
    ).fetchone()
    return json_ready(row)


def archive_campaign(
    conn: psycopg.Connection, org_id: UUID | str, campaign_id: UUID | str
) -> dict | None:
    """Set status 'archived' (idempotent) and return the campaign; None if it does not exist."""
    row = conn.execute(
        f"""
        UPDATE app.campaigns
        SET status = 'archived',
            updated_at = CASE WHEN status = 'archived' THEN updated_at ELSE now() END
        WHERE org_id = %s AND campaign_id = %s
        RETURNING {_COLUMNS}
        """,
        (org_id, campaign_id),
    ).fetchone()
    return json_ready(row) if row else None

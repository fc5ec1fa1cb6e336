"""Answers of the REST API (``/api/v1``), one model per JSON shape a view returns."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field

from cartrecovery.campaigns import Experiment, SequenceStep, TriggerConditions
from cartrecovery.org_settings import (
    AttributionWindows,
    FrequencyCaps,
    QuietHours,
    SenderIdentities,
)
from cartrecovery.outgoing_webhooks import EVENT_TYPES

from .common import Answer

Channel = Literal["email", "sms", "push"]
EventType = Literal[EVENT_TYPES]  # type: ignore[valid-type]

# --- settings ------------------------------------------------------------------------------


class OrgSettings(Answer):
    """Every setting of the org, defaults filled in (see PATCH for what each means)."""

    abandonment_timeout_seconds: int = Field(examples=[1800])
    attribution_window_seconds: int = Field(examples=[432000])
    quiet_hours: QuietHours
    frequency_caps: FrequencyCaps
    email_consent_policy: Literal["opt_in", "soft_opt_in"]
    store_timezone: str = Field(examples=["UTC"])
    sender_identities: SenderIdentities
    sms_help_text: str
    raw_retention_days: int = Field(examples=[365])
    store_url: str | None
    store_address: str | None
    support_email: str | None
    logo_url: str | None
    locale: str = Field(examples=["en_US"])
    attribution_windows_seconds: AttributionWindows
    attribution_touch: Literal["click", "open_or_click"]
    attribution_half_life_seconds: int = Field(examples=[86400])
    reporting_currency: str | None = Field(
        examples=["USD"],
        description="null: the currency of most of the org's orders (docs/analytics.md).",
    )
    experiment_engine: Literal["sequential", "frequentist", "bayesian"] = Field(
        examples=["sequential"]
    )


# --- campaigns -----------------------------------------------------------------------------


class Campaign(Answer):
    campaign_id: str
    name: str
    status: Literal["draft", "active", "paused", "archived"]
    priority: int
    trigger_conditions: TriggerConditions
    sequence_steps: list[SequenceStep]
    experiment: Experiment | None
    reentry_cooldown_seconds: int | None
    created_at: datetime
    updated_at: datetime


class CampaignList(Answer):
    campaigns: list[Campaign]


class MessagePreview(Answer):
    """An email (or SMS: subject and html null) rendered as it would be sent."""

    channel: Literal["email", "sms"]
    subject: str | None
    html: str | None
    text: str | None


class PushPreview(Answer):
    channel: Literal["push"]
    title: str | None
    body: str | None
    url: str | None


# --- carts ---------------------------------------------------------------------------------


class CartLineItem(Answer):
    model_config = ConfigDict(extra="allow")  # platform extras (collections, …) are kept

    title: str | None = None
    product_id: str | None = None
    variant_id: str | None = None
    sku: str | None = None
    quantity: int = 1
    price: float | str = Field(default=0, description="Unit price in the cart's currency.")
    image_url: str | None = None


class Cart(Answer):
    cart_id: str
    platform: str = Field(examples=["shopify", "api"])
    external_id: str = Field(description="The platform's (or the tracking API's) cart id.")
    email: str | None
    phone: str | None
    currency: str | None
    total_price: float | None
    item_count: int | None
    line_items: list[CartLineItem] | None
    restore_url: str | None
    status: Literal["active", "abandoned", "converted", "recovered"]
    created_at: datetime
    last_activity_at: datetime | None
    abandoned_at: datetime | None
    converted_at: datetime | None


class CartList(Answer):
    carts: list[Cart]
    limit: int
    offset: int
    has_more: bool


class CartEvent(Answer):
    event_id: str
    source: str
    topic: str
    received_at: datetime


class MessageEvent(Answer):
    type: str = Field(examples=["delivered", "open", "click"])
    occurred_at: datetime
    url: str | None


class CartMessage(Answer):
    message_id: str
    campaign_id: str | None
    channel: Channel
    step: int
    status: str = Field(examples=["scheduled", "sent", "held", "cancelled"])
    reason: str | None = Field(description="Why a message was held, deferred or cancelled.")
    due_at: datetime | None
    sent_at: datetime | None
    subject: str | None
    events: list[MessageEvent]


class CartOrder(Answer):
    order_id: str
    platform: str
    external_id: str
    email: str | None
    total_price: float | None
    currency: str | None
    financial_status: str | None
    ordered_at: datetime | None


class Recovery(Answer):
    order_id: str
    message_id: str | None
    campaign_id: str | None
    channel: str | None
    revenue: float
    currency: str | None
    clicked_at: datetime | None
    recovered_at: datetime


class CartDetail(Cart):
    events: list[CartEvent]
    messages: list[CartMessage]
    order: CartOrder | None
    recovered_revenue: float = Field(description="In the cart's order currency.")
    recovery: Recovery | None


# --- analytics -----------------------------------------------------------------------------


Money = dict[str, float]
_IN_REPORTING = "In the org's reporting currency, counting only orders in that currency."
_PER_CURRENCY = (
    "Per currency (ISO 4217 code → amount; XXX: none recorded); currencies are never added."
)


class ChannelFigures(Answer):
    channel: Channel
    messages_sent: int
    carts_recovered: int
    revenue_recovered: float = Field(description=_IN_REPORTING)
    revenue_recovered_by_currency: Money = Field(description=_PER_CURRENCY)


class CampaignFigures(Answer):
    campaign_id: str
    name: str
    messages_sent: int
    carts_recovered: int
    revenue_recovered: float = Field(description=_IN_REPORTING)
    revenue_recovered_by_currency: Money = Field(description=_PER_CURRENCY)


class DayFigures(Answer):
    day: date
    carts_abandoned: int
    carts_recovered: int
    revenue_recovered: float = Field(description=_IN_REPORTING)
    revenue_recovered_by_currency: Money = Field(description=_PER_CURRENCY)


class Dashboard(Answer):
    carts_tracked: int
    carts_abandoned: int
    messages_sent: int
    carts_recovered: int
    reporting_currency: str | None = Field(
        description="The setting, else the currency of most orders; null without orders."
    )
    revenue_recovered: float = Field(description=_IN_REPORTING)
    revenue_recovered_by_currency: Money = Field(description=_PER_CURRENCY)
    recovery_rate: float = Field(description="carts_recovered / carts_abandoned (0..1).")
    period: str = Field(examples=["30d"])
    since: datetime
    by_channel: list[ChannelFigures]
    by_campaign: list[CampaignFigures]
    by_day: list[DayFigures]


class AnalyticsPeriod(Answer):
    label: str = Field(examples=["30d", "2026-11-01/2026-11-30"])
    start: datetime = Field(description="Included.")
    end: datetime = Field(description="Excluded.")


_AS_OF = "Build time of the marts read (null: the warehouse was never built)."


class AttributionRow(Answer):
    """One group; its key is named by `group_by` (`step`: 1-based step index)."""

    channel: str | None = None
    campaign: str | None = None
    step: int | None = None
    variant: str | None = None
    recoveries: float = Field(
        description="Sum of the group's credits: fractional under linear and time_decay."
    )
    recovered_revenue: float = Field(description=_IN_REPORTING)
    revenue_by_currency: Money = Field(description=_PER_CURRENCY)


class Attribution(Answer):
    model: Literal["last_touch", "first_touch", "linear", "time_decay"]
    group_by: Literal["channel", "campaign", "step", "variant"]
    period: AnalyticsPeriod
    as_of: datetime | None = Field(description=_AS_OF)
    reporting_currency: str | None
    rows: list[AttributionRow]
    total_recoveries: float = Field(description="Recovered orders placed in the period.")
    total_recovered_revenue: float = Field(description=_IN_REPORTING)
    total_revenue_by_currency: Money = Field(description=_PER_CURRENCY)


class JourneyPath(Answer):
    path: list[str] = Field(examples=[["email:step1:click", "sms:step2", "recovered"]])
    carts: int
    recovered: int
    revenue_by_currency: Money = Field(description=_PER_CURRENCY)


class Journeys(Answer):
    period: AnalyticsPeriod
    as_of: datetime | None = Field(description=_AS_OF)
    paths: list[JourneyPath]


class LiftGroup(Answer):
    carts: int
    recoveries: int = Field(description="Carts with an order within the longest window.")
    rate: float | None
    revenue: float = Field(description=_IN_REPORTING)
    revenue_per_cart: float | None


Interval = list[float] | None


class Lift(Answer):
    period: AnalyticsPeriod
    as_of: datetime | None = Field(description=_AS_OF)
    campaign_id: str | None = Field(description="null: the whole org")
    reporting_currency: str | None
    status: Literal["ok", "not_meaningful", "not_built"] = Field(
        description="not_meaningful below 30 held-out carts: the estimates are then null."
    )
    reason: str | None
    messaged: LiftGroup
    held_out: LiftGroup
    rate_lift: float | None = Field(description="Messaged rate − held-out rate.")
    rate_lift_ci: Interval = Field(description="95% normal interval.")
    incremental_recoveries: float | None
    incremental_recoveries_ci: Interval
    revenue_per_cart_lift: float | None
    revenue_per_cart_lift_ci: Interval = Field(description="95% Welch interval.")
    incremental_revenue: float | None
    incremental_revenue_ci: Interval


class PerformanceStep(Answer):
    step: int = Field(description="1-based")
    variant: str
    channel: str | None
    sent: int
    delivered: int
    opened: int
    clicked: int
    held_out: int
    click_rate: float | None
    recoveries: float = Field(description="Credited by last_touch.")
    recovered_revenue: float = Field(description=_IN_REPORTING)
    revenue_by_currency: Money = Field(description=_PER_CURRENCY)


class CampaignPerformance(Answer):
    campaign_id: str
    name: str
    period: AnalyticsPeriod
    as_of: datetime | None = Field(description=_AS_OF)
    reporting_currency: str | None
    steps: list[PerformanceStep]
    lift: Lift


class SmartArm(Answer):
    messages: int = Field(
        description="Messages of the arm whose cart was abandoned in the period, sent or not."
    )
    sent: int
    clicks: int
    click_rate: float | None = Field(description="clicks / sent")
    recoveries: int = Field(
        description="Carts converted within the longest window after abandonment, as in lift."
    )
    recovery_rate: float | None = Field(description="recoveries / messages")
    revenue_by_currency: Money = Field(description=_PER_CURRENCY)
    revenue: float = Field(description=_IN_REPORTING)
    decisions: dict[str, int] = Field(
        description="How many the model decided (model, explore), fell back, or kept control."
    )
    discounts_offered: int | None = Field(description="Sent with the code (discount only).")
    discounts_redeemed: int | None
    discount_cost_by_currency: Money | None = Field(
        description="Cost of the redeemed codes whose cost is known, per currency."
    )
    discount_cost_unknown: int | None = Field(description="Redeemed codes of unknown cost.")


class SmartStep(Answer):
    campaign_id: str
    campaign_name: str | None
    step: int = Field(description="1-based")
    feature: Literal["send_time", "discount"]
    status: Literal["ok", "not_meaningful"] = Field(
        description="not_meaningful below min_per_arm messages in either arm: estimates null."
    )
    reason: str | None
    smart: SmartArm = Field(description="Model, explore and fallback (intention to treat).")
    control: SmartArm = Field(description="The control share: the step's fixed behaviour.")
    recovery_rate_difference: float | None = Field(description="Smart − control.")
    recovery_rate_difference_ci: Interval = Field(description="95% Welch interval.")
    revenue_per_message_difference: float | None = Field(description=_IN_REPORTING)
    revenue_per_message_difference_ci: Interval = Field(description="95% Welch interval.")


class Smart(Answer):
    period: AnalyticsPeriod
    as_of: datetime | None = Field(description=_AS_OF)
    campaign_id: str | None = Field(description="null: every campaign of the org")
    reporting_currency: str | None
    min_per_arm: int
    steps: list[SmartStep]


class TimelineItem(Answer):
    """One entry; the fields beside `at` and `kind` depend on the kind."""

    at: datetime | None
    kind: Literal["event", "message", "message_event", "order"]
    event_id: str | None = None
    source: str | None = None
    topic: str | None = None
    message_id: str | None = None
    channel: str | None = None
    status: str | None = None
    campaign_id: str | None = None
    step: int | None = None
    due_at: datetime | None = None
    sent_at: datetime | None = None
    type: str | None = None
    url: str | None = None
    order_id: str | None = None
    currency: str | None = None
    external_id: str | None = None
    total: float | None = None


class CartTimeline(Answer):
    cart_id: str
    status: str
    created_at: datetime
    abandoned_at: datetime | None
    items: list[TimelineItem]
    truncated: bool = Field(description="More than 1,000 items: the first 1,000 are shown.")


# --- experiments ---------------------------------------------------------------------------


class ArmCounts(Answer):
    """Sufficient statistics of one metric in one variant (docs/statistics.md)."""

    n: int = Field(description="Units: messages sent with the variant, or carts of the group.")
    sum: float = Field(description="Converted units for a rate; the total for a mean.")
    sum_squares: float | None = Field(default=None, description="For means only.")


class ExperimentVariation(Answer):
    name: str
    weight: float = Field(
        description="The expected share SRM is judged against: the configured weight, the "
        "holdout share, or for a Thompson step the shares in force when its units came."
    )
    units: int
    metrics: dict[str, ArmCounts]
    revenue_by_currency: dict[str, str] = Field(
        description="Revenue of the converted units' orders per currency (decimal strings); "
        "revenue_per_recipient counts only the reporting currency."
    )


class ExperimentMetric(Answer):
    key: str = Field(examples=["recovery_rate"])
    type: Literal["proportion", "mean"]
    role: Literal["goal", "guardrail"]
    inverse: bool = Field(description="Lower is better (guardrails).")


class ExperimentComparison(Answer):
    """One variant against control on one metric: the engine's output."""

    variation: str
    metric: str
    role: Literal["goal", "guardrail"]
    expected: float
    ci: list[float | None] = Field(description="[lower, upper]; an open end is null.")
    uplift_stddev: float
    p_value: float | None = Field(default=None, description="Frequentist and sequential.")
    chance_to_win: float | None = Field(default=None, description="Bayesian.")
    risk: list[float] | None = Field(
        default=None, description="Bayesian: expected loss of shipping control, of the variant."
    )
    error: str | None = Field(default=None, description="Why the result is neutral.")
    adjusted_p_value: float | None = Field(default=None, description="Goals, after correction.")
    breached: bool | None = Field(default=None, description="Guardrails: significantly worse.")


class SrmCheck(Answer):
    p_value: float
    mismatch: bool = Field(description="p < 0.001: the split does not match the weights.")


class BanditAllocationEntry(Answer):
    allocated_at: datetime
    min_share: float
    shares: dict[str, float]
    probability_best: dict[str, float]
    successes: dict[str, int]
    trials: dict[str, int]


class ExperimentResults(Answer):
    experiment_id: str = Field(examples=["5f0c…:step:1", "5f0c…:holdout"])
    campaign_id: str
    campaign_name: str
    kind: Literal["step", "holdout"]
    step: int | None = Field(description="The step, counted from 1 (null for a holdout).")
    allocation: Literal["fixed", "thompson"] | None
    engine: Literal["sequential", "frequentist", "bayesian"]
    method: str = Field(description="The method, in words.")
    difference_type: Literal["relative", "absolute"]
    correction: Literal["holm", "bh"] | None
    reporting_currency: str | None
    control: str = Field(description="The variation the others are compared with.")
    variations: list[ExperimentVariation]
    metrics: list[ExperimentMetric]
    srm: SrmCheck
    comparisons: list[ExperimentComparison]
    decision: str = Field(
        examples=["keep_running", "ship b", "stop_no_difference", "check_setup"],
    )
    variant: str | None = Field(description="The variant to ship, when the decision is ship.")
    reason: str
    allocation_history: list[BanditAllocationEntry] = Field(
        description="Thompson steps: every split used, with the counts it came from."
    )


# --- connections ---------------------------------------------------------------------------


class Connection(Answer):
    connection_id: str
    platform: str = Field(examples=["shopify"])
    shop_domain: str = Field(examples=["example.myshopify.com"])
    status: str = Field(examples=["active", "removed", "uninstalled"])
    status_reason: str | None
    status_changed_at: datetime | None
    has_credentials: bool
    secret_rotated_at: datetime | None
    previous_secret_expires_at: datetime | None
    created_at: datetime
    updated_at: datetime
    webhook_urls: dict[str, str] = Field(description="Webhook URL to configure, per topic.")
    topics: list[str]
    custom_webhook_url: str = Field(description="This connection's own webhook URL.")


class ConnectionCreated(Connection):
    secret: str | None = Field(
        default=None,
        description="The generated webhook secret, present (once) when none was given.",
    )


class ConnectionList(Answer):
    connections: list[Connection]


class ConnectionRemoved(Answer):
    connection_id: str
    status: Literal["removed"]
    cancelled_messages: int


class SecretRotated(Answer):
    connection_id: str
    secret: str = Field(description="The new secret, shown this once.")
    previous_secret_expires_at: datetime


class CredentialsSet(Answer):
    connection_id: str
    has_credentials: bool


# --- consents ------------------------------------------------------------------------------


class Consent(Answer):
    consent_id: str
    channel: Channel
    address: str = Field(description="Lower-cased email, E.164 phone or push subscription id.")
    status: Literal["granted", "withdrawn"]
    source: str
    wording: str | None
    ip: str | None
    user_agent: str | None
    recorded_at: datetime


class ConsentList(Answer):
    consents: list[Consent]


# --- privacy -------------------------------------------------------------------------------


class Erasure(Answer):
    erasure_id: str
    subject_hash: str
    counts: dict[str, int] = Field(description="Rows changed, per table.")
    providers: dict[str, Any] = Field(
        description="Outcome per provider contact store (sendgrid, twilio)."
    )


class ExportSubject(Answer):
    emails: list[str]
    phones: list[str]


class Export(Answer):
    """Rows are the tables' own columns (secrets left out); a table with linked rows that is
    not named here appears under its own name."""

    model_config = ConfigDict(extra="allow")

    subject: ExportSubject
    exported_at: datetime
    customers: list[dict[str, Any]]
    carts: list[dict[str, Any]]
    orders: list[dict[str, Any]]
    messages: list[dict[str, Any]]
    message_events: list[dict[str, Any]]
    suppressions: list[dict[str, Any]]
    raw_events: list[dict[str, Any]]


class DataRequest(Answer):
    request_id: str
    connection_id: str | None
    platform: str
    external_request_id: str | None
    email: str | None
    phone: str | None
    created_at: datetime


class DataRequestDetail(DataRequest):
    bundle: dict[str, Any] = Field(description="The export, as for GET /api/v1/privacy/export.")


class DataRequestList(Answer):
    data_requests: list[DataRequest]


# --- publishable keys and push -------------------------------------------------------------


class PublishableKeyCreated(Answer):
    key: str = Field(description="The publishable key, shown this once.")
    key_id: str
    name: str | None
    allowed_origins: list[str] = Field(examples=[["https://shop.example.com"]])


class PublishableKey(Answer):
    key_id: str
    prefix: str
    name: str | None
    allowed_origins: list[str]
    created_at: datetime
    revoked_at: datetime | None


class PublishableKeyList(Answer):
    publishable_keys: list[PublishableKey]


class PublishableKeyRevoked(Answer):
    key_id: str
    status: Literal["revoked"]


class ApiKeyInfo(Answer):
    key_id: str
    prefix: str = Field(description="The key's first characters, to recognise it.")
    role: Literal["admin", "write", "read"]
    name: str | None
    created_at: datetime
    expires_at: datetime | None = Field(description="When it stops working (null: never).")
    revoked_at: datetime | None


class ApiKeyList(Answer):
    api_keys: list[ApiKeyInfo]


class ApiKeyCreated(ApiKeyInfo):
    api_key: str = Field(description="The key in clear, shown this once.")


class ApiKeyRotated(ApiKeyCreated):
    replaces: str = Field(description="The old key's id; it works until its `expires_at`.")


class ApiKeyRevoked(Answer):
    key_id: str
    status: Literal["revoked"]


class PushSubscriptionSaved(Answer):
    subscription_id: str
    status: Literal["created", "updated"]


# --- outgoing webhooks ---------------------------------------------------------------------


class WebhookSubscription(Answer):
    subscription_id: str
    url: str
    events: list[EventType]
    description: str | None
    status: str = Field(examples=["active", "disabled"])
    disabled_reason: str | None
    disabled_at: datetime | None
    consecutive_failures: int
    created_at: datetime
    updated_at: datetime


class WebhookSubscriptionCreated(WebhookSubscription):
    secret: str = Field(description="The signing secret (whsec_…), shown this once.")


class WebhookSubscriptionList(Answer):
    subscriptions: list[WebhookSubscription]


class AccessToken(Answer):
    """A user's short-lived access token (docs/auth.md)."""

    access_token: str = Field(description="A JWT; send it as `Authorization: Bearer <token>`")
    token_type: Literal["bearer"]
    expires_in: int = Field(description="Seconds until the token expires")

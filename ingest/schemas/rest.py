"""Answers of the REST API (``/api/v1``), one model per JSON shape a view returns."""

from __future__ import annotations

from datetime import date, datetime
from typing import Any, Literal

from pydantic import ConfigDict, Field

from cartrecovery.campaigns import Experiment, SequenceStep, TriggerConditions
from cartrecovery.org_settings import FrequencyCaps, QuietHours, SenderIdentities
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


class ChannelFigures(Answer):
    channel: Channel
    messages_sent: int
    carts_recovered: int
    revenue_recovered: float


class CampaignFigures(Answer):
    campaign_id: str
    name: str
    messages_sent: int
    carts_recovered: int
    revenue_recovered: float


class DayFigures(Answer):
    day: date
    carts_abandoned: int
    carts_recovered: int
    revenue_recovered: float


class Dashboard(Answer):
    carts_tracked: int
    carts_abandoned: int
    messages_sent: int
    carts_recovered: int
    revenue_recovered: float
    recovery_rate: float = Field(description="carts_recovered / carts_abandoned (0..1).")
    period: str = Field(examples=["30d"])
    since: datetime
    by_channel: list[ChannelFigures]
    by_campaign: list[CampaignFigures]
    by_day: list[DayFigures]


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

"""Per-org settings: what ``GET/PATCH /api/v1/settings`` read and change.

Two settings are columns of ``app.orgs`` because the scheduler's cross-org scan filters on
them (``abandonment_timeout_seconds``, ``attribution_window_seconds``); every other setting
lives in the ``app.orgs.settings`` jsonb under its own key.

Compliance settings (read by the delivery gate at send time): ``quiet_hours`` (allowed local
sending window, default 08:00-21:00, plus stricter ``regions`` keyed by ISO country "FR" or
subdivision "US-FL", applied to the ``channels`` listed, default SMS and push),
``frequency_caps`` (seconds per channel), ``email_consent_policy`` (``opt_in``: a granted email
consent or accepts_marketing; ``soft_opt_in``: also an existing customer with an earlier order,
unless withdrawn), ``store_timezone`` (the zone used when the recipient's is unknown),
``sender_identities`` and ``sms_help_text``.

Attribution settings (read by the dbt marts when the warehouse is rebuilt, see
docs/analytics.md): ``attribution_windows_seconds`` per channel (email, sms, push; a channel
without an entry falls back to ``attribution_window_seconds``), ``attribution_touch`` (what
makes a message a touch: ``click`` or ``open_or_click``), ``attribution_half_life_seconds`` (of
the time-decay model) and ``reporting_currency`` (the currency of single-number revenue
figures; unset means the currency of most of the org's orders).

``experiment_engine`` (``sequential`` by default, ``frequentist`` or ``bayesian``): the
statistics engine experiment results are judged by (docs/statistics.md).

Adding a setting: add an optional field to :class:`OrgSettingsPatch` and its default to
:data:`DEFAULTS`. Nothing else: fields that are not columns are merged into the jsonb
(top-level keys; a nested object is replaced as a whole), and ``get_settings`` returns it with
its default filled in. In a PATCH, ``null`` resets a setting to its default.
"""

from __future__ import annotations

import re
from typing import Any, Literal
from uuid import UUID
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator
from pydantic_core import PydanticCustomError

# Real stores use 60 s .. 30 days; anything from 1 s is accepted so tests and demos can watch
# a cart go abandoned without waiting.
MIN_TIMEOUT_SECONDS = 1
MAX_TIMEOUT_SECONDS = 30 * 24 * 3600
MAX_ATTRIBUTION_WINDOW_SECONDS = 90 * 24 * 3600

# Settings stored as columns of app.orgs; their defaults are also the columns' SQL defaults.
COLUMNS = ("abandonment_timeout_seconds", "attribution_window_seconds")

# Channels that quiet hours hold unless the org lists others (quiet_hours.channels).
QUIET_HOURS_CHANNELS = ("sms", "push")

DEFAULT_SMS_HELP_TEXT = (
    "{store}: cart reminders. Msg&data rates may apply. Reply STOP to unsubscribe, "
    "START to resubscribe."
)

DEFAULTS: dict[str, Any] = {
    "abandonment_timeout_seconds": 1800,
    "attribution_window_seconds": 5 * 24 * 3600,
    "quiet_hours": {
        "start": "08:00",
        "end": "21:00",
        "regions": {},
        "channels": ["sms", "push"],
    },
    "frequency_caps": {"email": 16 * 3600, "sms": 24 * 3600, "push": 24 * 3600},
    "email_consent_policy": "opt_in",
    "store_timezone": "UTC",
    "sender_identities": {},
    "sms_help_text": DEFAULT_SMS_HELP_TEXT,
    "raw_retention_days": 365,
    "store_url": None,
    "store_address": None,
    "support_email": None,
    "logo_url": None,
    "locale": "en_US",
    "attribution_windows_seconds": {"email": 5 * 24 * 3600, "sms": 5 * 24 * 3600, "push": 86400},
    "attribution_touch": "click",
    "attribution_half_life_seconds": 86400,
    # None: the currency of most of the org's orders (see reporting_currency()).
    "reporting_currency": None,
    "experiment_engine": "sequential",
}

_CLOCK = re.compile(r"^(?:[01][0-9]|2[0-3]):[0-5][0-9]$|^24:00$")
_REGION = re.compile(r"^[A-Z]{2}(?:-[A-Z0-9]{1,3})?$")
# A sanity check only (no email-validator dependency): the provider has the final word.
_EMAIL = r"^[^@\s]+@[^@\s]+\.[^@\s]+$"
_STRICT = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False, str_strip_whitespace=True)
MAX_CAP_SECONDS = 30 * 24 * 3600


class SendingWindow(BaseModel):
    """Allowed local sending hours, ``start`` inclusive to ``end`` exclusive (HH:MM; "24:00"
    is the end of the day; start after end wraps past midnight)."""

    model_config = _STRICT

    start: str = Field(examples=["08:00"])
    end: str = Field(examples=["21:00"])

    @model_validator(mode="after")
    def _times(self) -> SendingWindow:
        for name in ("start", "end"):
            if not _CLOCK.match(getattr(self, name)):
                raise PydanticCustomError(
                    "clock",
                    "{name} must be a HH:MM time (00:00..23:59, or 24:00 as end)",
                    {"name": name},
                )
        if self.start == "24:00":
            raise PydanticCustomError("clock", "start cannot be 24:00")
        if self.start == self.end:
            raise PydanticCustomError(
                "empty_window",
                "start and end are equal: the window would never open "
                "(use 00:00-24:00 for any time)",
            )
        return self


class QuietHours(SendingWindow):
    """The org's sending window in the recipient's local time, plus stricter windows for
    regions (ISO 3166-1 country "FR" or ISO 3166-2 subdivision "US-FL"), applied on top."""

    start: str = "08:00"
    end: str = "21:00"
    regions: dict[str, SendingWindow] = Field(default_factory=dict)
    # TCPA-style quiet hours are law for SMS and sensible for push; for email they only
    # delay recoveries, so email is left to the send-time model unless listed here.
    channels: list[Literal["email", "sms", "push"]] = Field(
        default_factory=lambda: list(QUIET_HOURS_CHANNELS),
        max_length=3,
        description="Channels held by quiet hours (default sms and push).",
    )

    @field_validator("channels")
    @classmethod
    def _unique_channels(cls, value: list[str]) -> list[str]:
        if len(set(value)) != len(value):
            raise PydanticCustomError("duplicate_channel", "channels must not repeat")
        return value

    @field_validator("regions")
    @classmethod
    def _region_codes(cls, value: dict[str, SendingWindow]) -> dict[str, SendingWindow]:
        bad = [k for k in value if not _REGION.match(k)]
        if bad:
            raise PydanticCustomError(
                "region_code",
                "region keys must be ISO codes like FR or US-FL: {bad}",
                {"bad": ", ".join(bad)},
            )
        return value


class FrequencyCaps(BaseModel):
    """At most one message per recipient and channel within this many seconds (0 = no cap);
    channels not given keep their defaults (email 16 h, SMS and push 24 h)."""

    model_config = _STRICT

    email: int = Field(default=16 * 3600, ge=0, le=MAX_CAP_SECONDS)
    sms: int = Field(default=24 * 3600, ge=0, le=MAX_CAP_SECONDS)
    push: int = Field(default=24 * 3600, ge=0, le=MAX_CAP_SECONDS)


class EmailIdentity(BaseModel):
    model_config = _STRICT

    from_name: str | None = Field(default=None, min_length=1, max_length=200)
    from_email: str | None = Field(default=None, pattern=_EMAIL, max_length=320)
    reply_to: str | None = Field(default=None, pattern=_EMAIL, max_length=320)
    unsubscribe_group_id: int | None = Field(
        default=None, ge=1, description="SendGrid unsubscribe group (asm) for these emails."
    )


class SmsIdentity(BaseModel):
    model_config = _STRICT

    from_number: str | None = Field(
        default=None, pattern=r"^\+[1-9][0-9]{6,14}$", description="E.164 sender number"
    )
    messaging_service_sid: str | None = Field(default=None, pattern=r"^MG[0-9a-fA-F]{32}$")

    @model_validator(mode="after")
    def _one_sender(self) -> SmsIdentity:
        if self.from_number and self.messaging_service_sid:
            raise PydanticCustomError(
                "sms_sender", "give from_number or messaging_service_sid, not both"
            )
        return self


class SenderIdentities(BaseModel):
    """Who messages come from; providers fall back to FROM_EMAIL / TWILIO_* when unset."""

    model_config = _STRICT

    email: EmailIdentity | None = None
    sms: SmsIdentity | None = None


class AttributionWindows(BaseModel):
    """Seconds after a touch during which an order is credited to it, per channel; channels
    not given keep their defaults (email and SMS 5 days, push 1 day)."""

    model_config = _STRICT

    email: int = Field(default=5 * 24 * 3600, ge=1, le=MAX_ATTRIBUTION_WINDOW_SECONDS)
    sms: int = Field(default=5 * 24 * 3600, ge=1, le=MAX_ATTRIBUTION_WINDOW_SECONDS)
    push: int = Field(default=86400, ge=1, le=MAX_ATTRIBUTION_WINDOW_SECONDS)


class OrgSettingsPatch(BaseModel):
    """The body of ``PATCH /api/v1/settings``: only the settings being changed."""

    model_config = ConfigDict(extra="forbid", strict=True, allow_inf_nan=False)

    abandonment_timeout_seconds: int | None = Field(
        default=None,
        ge=MIN_TIMEOUT_SECONDS,
        le=MAX_TIMEOUT_SECONDS,
        description="Idle seconds after which an active cart counts as abandoned "
        "(default 1800; typical 60..2592000, values from 1 are accepted for tests and demos).",
    )
    attribution_window_seconds: int | None = Field(
        default=None,
        ge=1,
        le=MAX_ATTRIBUTION_WINDOW_SECONDS,
        description="An order within this many seconds of a click on a recovery message "
        "counts as recovered by it (default 432000 = 5 days).",
    )
    quiet_hours: QuietHours | None = Field(
        default=None,
        description="Allowed sending window in the recipient's local time (default "
        "08:00-21:00) and stricter per-region windows, for the channels listed (default sms "
        "and push; email is not held unless listed); messages outside are deferred.",
    )
    frequency_caps: FrequencyCaps | None = Field(
        default=None,
        description="Seconds between two messages to one recipient per channel.",
    )
    email_consent_policy: Literal["opt_in", "soft_opt_in"] | None = Field(
        default=None,
        description="opt_in (default): email needs a granted consent or accepts_marketing; "
        "soft_opt_in: an existing customer with an earlier order also qualifies, unless they "
        "withdrew.",
    )
    store_timezone: str | None = Field(
        default=None,
        max_length=64,
        description="IANA zone used for quiet hours when the recipient's is unknown (default UTC).",
    )
    sender_identities: SenderIdentities | None = None
    sms_help_text: str | None = Field(
        default=None,
        min_length=1,
        max_length=320,
        description="Reply to an SMS HELP keyword ({store} is replaced by the store name).",
    )
    raw_retention_days: int | None = Field(
        default=None,
        ge=1,
        le=3650,
        description="Personal data is purged from raw events older than this (default 365).",
    )
    store_url: str | None = Field(
        default=None,
        max_length=2048,
        pattern=r"^https?://\S+$",
        description="The store's home page, shown in messages.",
    )
    store_address: str | None = Field(
        default=None,
        max_length=500,
        description="The store's postal address, shown in the email footer (CAN-SPAM).",
    )
    support_email: str | None = Field(default=None, max_length=254, pattern=_EMAIL)
    logo_url: str | None = Field(default=None, max_length=2048, pattern=r"^https?://\S+$")
    locale: str | None = Field(
        default=None,
        pattern=r"^[a-z]{2,3}(_[A-Z]{2})?$",
        description="Formatting of money and dates (default en_US).",
    )

    attribution_windows_seconds: AttributionWindows | None = Field(
        default=None,
        description="Attribution window per channel in seconds (defaults: email 432000, "
        "sms 432000, push 86400); a channel without an entry uses attribution_window_seconds.",
    )
    attribution_touch: Literal["click", "open_or_click"] | None = Field(
        default=None,
        description="What makes a message a touch: click (default) or open_or_click (opens "
        "are unreliable under Apple Mail Privacy Protection).",
    )
    attribution_half_life_seconds: int | None = Field(
        default=None,
        ge=60,
        le=MAX_ATTRIBUTION_WINDOW_SECONDS,
        description="Half-life of the time_decay attribution model (default 86400).",
    )
    reporting_currency: str | None = Field(
        default=None,
        pattern=r"^[A-Z]{3}$",
        description="ISO 4217 currency of single-number revenue figures; only orders in it "
        "are counted there (default: the currency of most of the org's orders).",
    )

    experiment_engine: Literal["sequential", "frequentist", "bayesian"] | None = Field(
        default=None,
        description="How experiment results are judged: sequential (default; safe to look "
        "at any time), frequentist (fixed-horizon Welch test: read once, at the planned "
        "sample size) or bayesian (chance to win, risk).",
    )

    @field_validator("store_timezone")
    @classmethod
    def _zone(cls, value: str | None) -> str | None:
        if value is None:
            return value
        try:
            ZoneInfo(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise PydanticCustomError(
                "time_zone",
                "'{zone}' is not an IANA time zone (e.g. Europe/Paris)",
                {"zone": value},
            ) from None
        return value


def get_settings(conn: psycopg.Connection, org_id: UUID | str) -> dict:
    """All settings of ``org_id``: defaults, overridden by what is stored.

    Raises LookupError when the org does not exist (or is not visible in this transaction).
    """
    row = conn.execute(
        "SELECT abandonment_timeout_seconds, attribution_window_seconds, settings "
        "FROM app.orgs WHERE org_id = %s",
        (org_id,),
    ).fetchone()
    if row is None:
        raise LookupError(f"org {org_id} not found")
    result = {k: v for k, v in DEFAULTS.items() if k not in COLUMNS}
    result.update(row["settings"] or {})
    result.update({column: row[column] for column in COLUMNS})
    return result


def reporting_currency(conn: psycopg.Connection, org_id: UUID | str) -> str | None:
    """The org's reporting currency: the ``reporting_currency`` setting, else (the setting is
    null by default) the currency of most of its orders, ties alphabetical; None without
    orders. The warehouse (dbt ``int_org_attribution_settings``) applies the same rule.

    Kept out of :func:`get_settings`, which the delivery gate reads for every message: this
    one counts the org's orders."""
    row = conn.execute(
        "SELECT settings ->> 'reporting_currency' AS currency FROM app.orgs WHERE org_id = %s",
        (org_id,),
    ).fetchone()
    if row is not None and row["currency"]:
        return row["currency"]
    row = conn.execute(
        "SELECT upper(currency) AS currency FROM app.orders"
        " WHERE org_id = %s AND currency IS NOT NULL"
        " GROUP BY upper(currency) ORDER BY count(*) DESC, upper(currency) LIMIT 1",
        (org_id,),
    ).fetchone()
    return row["currency"] if row else None


def update_settings(
    conn: psycopg.Connection, org_id: UUID | str, changes: dict | OrgSettingsPatch
) -> dict:
    """Apply ``changes`` (validated by :class:`OrgSettingsPatch`) and return all settings.

    Only keys present in ``changes`` are touched; a ``None`` value resets that setting to its
    default. Raises ``pydantic.ValidationError`` for invalid changes (nothing is written) and
    LookupError when the org does not exist.
    """
    patch = (
        changes
        if isinstance(changes, OrgSettingsPatch)
        else OrgSettingsPatch.model_validate(changes)
    )
    # Nested settings are stored whole, with their own defaults filled in (exclude_unset only
    # decides which top-level settings this PATCH touches).
    values = {
        name: getattr(patch, name).model_dump(mode="json", exclude_none=True)
        if isinstance(getattr(patch, name), BaseModel)
        else value
        for name, value in patch.model_dump(mode="json", exclude_unset=True).items()
    }
    column_sets = [
        sql.SQL("{} = {}").format(
            sql.Identifier(name),
            sql.SQL("DEFAULT") if values[name] is None else sql.Literal(values[name]),
        )
        for name in COLUMNS
        if name in values
    ]
    removed = [k for k, v in values.items() if k not in COLUMNS and v is None]
    merged = {k: v for k, v in values.items() if k not in COLUMNS and v is not None}
    statement = sql.SQL("UPDATE app.orgs SET {} WHERE org_id = %s RETURNING org_id").format(
        sql.SQL(", ").join(
            [*column_sets, sql.SQL("settings = (settings - %s::text[]) || %s::jsonb")]
        )
    )
    updated = conn.execute(statement, (removed, Jsonb(merged), org_id)).fetchone()
    if updated is None:
        raise LookupError(f"org {org_id} not found")
    return get_settings(conn, org_id)

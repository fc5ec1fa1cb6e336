"""The table of operations: for every route (method, OpenAPI path), its answers and, where
the view does not validate with ``@request_body`` / ``@request_query``, its request models.

Paths are the public contract (docs/api.md), so the table stays valid when views move.
A route of the app missing here is a test failure (tests/test_openapi.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel

from cartrecovery.tracking_events import TrackEvent

from . import inbound, rest

Auth = Literal["api_key", "api_or_publishable_key", "signature", "none"]


@dataclass(frozen=True)
class Reply:
    """One answer: its description, and the type of its body (None: no body)."""

    description: str
    schema: Any = None
    media_type: str = "application/json"
    or_json_error: bool = False  # also answered as a JSON Error (by the request's Accept)
    # Further media types answered with the same schema (e.g. an export's file formats).
    more_media_types: tuple[str, ...] = ()
    # OpenAPI links (for stateful clients and tests): name → ((method, path), {param: field})
    # where field is a top-level key of this answer's body.
    links: dict[str, tuple[tuple[str, str], dict[str, str]]] = field(default_factory=dict)


@dataclass(frozen=True)
class Operation:
    replies: dict[int, Reply]
    auth: Auth = "api_key"
    # Error statuses (all with the Error body) besides those the auth and the request imply.
    errors: tuple[int, ...] = ()
    body: Any = None  # request body type, for views that validate it themselves
    body_media_type: str = "application/json"
    body_required: bool = True
    query: type[BaseModel] | None = None
    notes: str | None = None  # added to the operation's description
    summary: str | None = None  # for views without a docstring
    tags: tuple[str, ...] = field(default=())


def ok(schema: Any, description: str = "Success") -> dict[int, Reply]:
    return {200: Reply(description, schema)}


def created(schema: Any, description: str = "Created", **links) -> dict[int, Reply]:
    return {201: Reply(description, schema, links=links)}


def by_id(path: str, field: str, param: str, *methods: str) -> dict:
    """Links from an answer carrying ``field`` to ``methods`` of ``path`` (``{param}``)."""
    return {
        f"{m.lower()}_{path.rsplit('/', 1)[-1].strip('{}')}": ((m, path), {param: field})
        for m in methods
    }


SHOPIFY_SIGNATURE = (
    "Authenticated by `X-Shopify-Hmac-Sha256`: base64 HMAC-SHA256 of the raw body keyed with "
    "the connection's secret (the app's client secret); the store is found by "
    "`X-Shopify-Shop-Domain`. See docs/adapters.md."
)
STORE_SIGNATURE = (
    "Each platform authenticates its own way: WooCommerce `X-WC-Webhook-Signature`, "
    "BigCommerce and Magento `X-Cartrec-Hook-Token` (or Magento's RSA signature), the "
    "generic adapter `X-Cartrecovery-Signature: sha256=<hex>` with `X-Cartrecovery-Timestamp`. "
    "The body is the platform's own JSON. See docs/adapters.md."
)
_STORE_ACK = {200: Reply("Verified and stored once (or a duplicate)", inbound.WebhookAck)}
_STORE_ERRORS = (400, 401, 404, 413)

_SHOPIFY_TOPICS = (
    "app-uninstalled",
    "cart-create",
    "cart-update",
    "checkout-create",
    "checkout-delete",
    "checkout-update",
    "customers-data-request",
    "customers-redact",
    "order-create",
    "order-paid",
    "shop-redact",
)
_HEALTH_DOWN = {503: Reply("The dependency does not answer", inbound.HealthDown)}
_HTML = "text/html"

OPERATIONS: dict[tuple[str, str], Operation] = {
    # --- service ---------------------------------------------------------------------------
    ("GET", "/api/health"): Operation(
        ok(inbound.Health, "The web process is up"), auth="none", summary="Liveness"
    ),
    ("GET", "/api/health/db"): Operation(
        {**ok(inbound.Health, "PostgreSQL answers"), **_HEALTH_DOWN},
        auth="none",
        summary="PostgreSQL reachable",
    ),
    ("GET", "/api/health/redis"): Operation(
        {**ok(inbound.Health, "Redis answers"), **_HEALTH_DOWN},
        auth="none",
        summary="Redis reachable",
    ),
    ("GET", "/api/health/queues"): Operation(
        {**ok(inbound.QueueHealth, "Job counts of the delivery queue"), **_HEALTH_DOWN},
        auth="none",
        summary="Delivery queue depth",
    ),
    ("GET", "/api/health/applier"): Operation(
        {
            **ok(inbound.ApplierHealth, "Lag of the applier (webhook state after the ack)"),
            503: Reply(
                "The applier lags by over 30 s (body as for 200, status lagging), or "
                "PostgreSQL does not answer",
                inbound.ApplierHealth | inbound.HealthDown,
            ),
        },
        auth="none",
        summary="Applier lag and watermark",
    ),
    ("GET", "/metrics"): Operation(
        {200: Reply("Prometheus text exposition format 0.0.4", str, media_type="text/plain")},
        auth="none",
        summary="Prometheus metrics",
        notes="Request latency by route, events received and applied, applier lag, queue "
        "depth, messages by status and reason, provider errors. See docs/operations.md.",
    ),
    ("GET", "/api/openapi.json"): Operation(
        ok(inbound.OpenApiDocument, "This document"), auth="none"
    ),
    # --- settings, campaigns ---------------------------------------------------------------
    ("GET", "/api/v1/settings"): Operation(ok(rest.OrgSettings)),
    ("PATCH", "/api/v1/settings"): Operation(ok(rest.OrgSettings, "All settings, changed")),
    ("GET", "/api/v1/campaigns"): Operation(ok(rest.CampaignList)),
    ("POST", "/api/v1/campaigns"): Operation(
        created(
            rest.Campaign,
            **by_id("/api/v1/campaigns/{id}", "campaign_id", "id", "GET", "PATCH", "DELETE"),
            **by_id("/api/v1/campaigns/{id}/preview", "campaign_id", "id", "POST"),
        )
    ),
    ("GET", "/api/v1/campaigns/{id}"): Operation(ok(rest.Campaign)),
    ("PATCH", "/api/v1/campaigns/{id}"): Operation(
        ok(rest.Campaign),
        errors=(409,),
        notes="Give only the fields to change; `null` is refused (clear the conditions with "
        "`{}`, archive with DELETE).",
    ),
    ("DELETE", "/api/v1/campaigns/{id}"): Operation(ok(rest.Campaign, "The campaign, archived")),
    ("POST", "/api/v1/campaigns/{id}/preview"): Operation(
        ok(rest.MessagePreview | rest.PushPreview, "The rendered step"),
        errors=(422,),
        body_required=False,  # PreviewRequest, registered by the view
    ),
    # --- carts and tracking ----------------------------------------------------------------
    ("GET", "/api/v1/carts"): Operation(ok(rest.CartList)),
    ("GET", "/api/v1/carts/{id}"): Operation(ok(rest.CartDetail)),
    ("POST", "/api/v1/carts/track"): Operation(
        {
            202: Reply(
                "Stored once and applied (or a duplicate)",
                inbound.Tracked,
                links=by_id("/api/v1/carts/{id}", "cart_id", "id", "GET"),
            )
        },
        auth="api_or_publishable_key",
        body=TrackEvent,
        summary="Track one cart event (server key or the snippet's publishable key)",
        notes="See docs/tracking-api.md. A publishable key is limited to its allowed origins "
        "and rate limited per client IP (429 with Retry-After).",
    ),
    ("POST", "/api/v1/events/batch"): Operation(
        {202: Reply("Each event accepted, duplicate or rejected", inbound.BatchTracked)},
        body=inbound.TrackBatch,
        summary="Track up to 1,000 cart events in one transaction (server keys only)",
        notes="Each event is validated on its own: an invalid one is `rejected` in `results` "
        'with its errors, the others are applied. A body that is not `{"events": [...]}` '
        "with 1 to 1,000 events is a 400 `invalid_batch`.",
    ),
    ("GET", "/api/v1/carts/{id}/timeline"): Operation(ok(rest.CartTimeline)),
    # --- analytics (docs/analytics.md) -----------------------------------------------------
    ("GET", "/api/v1/analytics/dashboard"): Operation(ok(rest.Dashboard)),
    ("GET", "/api/v1/analytics/attribution"): Operation(ok(rest.Attribution)),
    ("GET", "/api/v1/analytics/journeys"): Operation(ok(rest.Journeys)),
    ("GET", "/api/v1/analytics/lift"): Operation(
        ok(rest.Lift), errors=(404,), notes="A `campaign_id` the org does not have is a 404."
    ),
    ("GET", "/api/v1/analytics/campaigns/{id}/performance"): Operation(
        ok(rest.CampaignPerformance)
    ),
    ("GET", "/api/v1/analytics/smart"): Operation(
        ok(rest.Smart),
        errors=(404,),
        notes="404 `not_found` when `campaign_id` is not one of the org's campaigns.",
    ),
    ("GET", "/api/v1/exports/{dataset}.{format}"): Operation(
        {
            200: Reply(
                "The file, streamed (Content-Disposition: attachment)",
                bytes,
                "text/csv",
                more_media_types=(
                    "application/vnd.openxmlformats-officedocument.spreadsheetml.sheet",
                    "application/vnd.apache.parquet",
                ),
            )
        },
        errors=(404, 409),
        notes="`dataset`: carts, recoveries, messages, journeys or experiment_counts; "
        "`format`: csv, xlsx or parquet (404 otherwise). 409 `not_built` before the first "
        "warehouse build. Without period or from/to an export holds all time "
        "(experiment_counts is all time only).",
    ),
    ("GET", "/api/v1/experiments/{id}/results"): Operation(
        ok(rest.ExperimentResults),
        errors=(404,),
        notes="`{id}` is `<campaign_id>:step:<n>` (step n from 1, with two or more variants) "
        "or `<campaign_id>:holdout`. Counts are read live from the operational tables; the "
        "engine is the org setting `experiment_engine` (sequential by default). See "
        "docs/statistics.md.",
    ),
    # --- connections -----------------------------------------------------------------------
    ("POST", "/api/v1/connections"): Operation(
        created(
            rest.ConnectionCreated,
            **by_id("/api/v1/connections/{id}", "connection_id", "id", "GET", "DELETE"),
            **by_id("/api/v1/connections/{id}/rotate-secret", "connection_id", "id", "POST"),
            **by_id("/api/v1/connections/{id}/credentials", "connection_id", "id", "PUT"),
        ),
        errors=(409,),
    ),
    ("GET", "/api/v1/connections"): Operation(ok(rest.ConnectionList)),
    ("GET", "/api/v1/connections/{id}"): Operation(ok(rest.Connection)),
    ("DELETE", "/api/v1/connections/{id}"): Operation(ok(rest.ConnectionRemoved)),
    ("POST", "/api/v1/connections/{id}/rotate-secret"): Operation(
        ok(rest.SecretRotated),
        errors=(409,),
        body_required=False,  # SecretRotation
    ),
    ("PUT", "/api/v1/connections/{id}/credentials"): Operation(ok(rest.CredentialsSet)),
    # --- users' access tokens ---------------------------------------------------------------
    ("POST", "/api/v1/auth/token"): Operation(
        ok(rest.AccessToken),
        auth="none",
        errors=(401, 403, 429),
        notes=(
            "Wrong email or password: 401, whichever was wrong. A user of several orgs names "
            "one with `org` (400 `org_required` otherwise; 403 for an org they are not in). "
            "Failed attempts are limited per email and client IP (429 with `Retry-After`)."
        ),
    ),
    # --- consents, privacy -----------------------------------------------------------------
    ("POST", "/api/v1/consents"): Operation(created(rest.Consent)),
    ("GET", "/api/v1/consents"): Operation(
        ok(rest.ConsentList), notes="`address` needs `channel` (400 otherwise)."
    ),
    ("POST", "/api/v1/privacy/erasure"): Operation(
        ok(rest.Erasure), notes="`email` or `phone` (or both) is required."
    ),
    ("GET", "/api/v1/privacy/export"): Operation(
        ok(rest.Export), notes="`email` or `phone` (or both) is required."
    ),
    ("GET", "/api/v1/privacy/data-requests"): Operation(ok(rest.DataRequestList)),
    ("GET", "/api/v1/privacy/data-requests/{id}"): Operation(ok(rest.DataRequestDetail)),
    # --- API keys -------------------------------------------------------------------------
    ("GET", "/api/v1/api-keys"): Operation(ok(rest.ApiKeyList)),
    ("POST", "/api/v1/api-keys"): Operation(
        created(
            rest.ApiKeyCreated,
            **by_id("/api/v1/api-keys/{key_id}/rotate", "key_id", "key_id", "POST"),
        )
    ),
    ("POST", "/api/v1/api-keys/{key_id}/rotate"): Operation(
        {201: Reply("The new key; the old one expires after the grace period", rest.ApiKeyRotated)},
        errors=(404,),
    ),
    ("DELETE", "/api/v1/api-keys/{key_id}"): Operation(ok(rest.ApiKeyRevoked), errors=(404,)),
    # --- snippet: publishable keys, push ---------------------------------------------------
    ("POST", "/api/v1/publishable-keys"): Operation(
        created(
            rest.PublishableKeyCreated,
            **by_id("/api/v1/publishable-keys/{key_id}", "key_id", "key_id", "DELETE"),
        )
    ),
    ("GET", "/api/v1/publishable-keys"): Operation(ok(rest.PublishableKeyList)),
    ("DELETE", "/api/v1/publishable-keys/{key_id}"): Operation(ok(rest.PublishableKeyRevoked)),
    ("POST", "/api/v1/push/subscriptions"): Operation(
        {
            201: Reply("A new subscription", rest.PushSubscriptionSaved),
            200: Reply("A known endpoint, refreshed", rest.PushSubscriptionSaved),
        },
        auth="api_or_publishable_key",
    ),
    # --- outgoing webhooks -----------------------------------------------------------------
    ("POST", "/api/v1/webhook-subscriptions"): Operation(created(rest.WebhookSubscriptionCreated)),
    ("GET", "/api/v1/webhook-subscriptions"): Operation(ok(rest.WebhookSubscriptionList)),
    ("DELETE", "/api/v1/webhook-subscriptions/{id}"): Operation(
        {204: Reply("Deleted, with its pending deliveries")}
    ),
    # --- Shopify app install (browser redirects) ---------------------------------------------
    ("GET", "/auth/shopify/install"): Operation(
        {302: Reply("To the shop's authorize page, with a single-use state nonce")},
        auth="none",
        errors=(400, 404),
        query=inbound.ShopifyInstallQuery,
        notes=(
            "Sets a signed, HttpOnly cookie holding the state nonce for the callback. 404 "
            "`shopify_app_not_configured` without SHOPIFY_API_KEY and SHOPIFY_API_SECRET."
        ),
    ),
    ("GET", "/auth/shopify/callback"): Operation(
        {302: Reply("To the dashboard, with the store connected")},
        auth="signature",
        errors=(400, 401, 403, 404, 409, 502),
        query=inbound.ShopifyCallbackQuery,
        notes=(
            "Verified by Shopify's `hmac` over the query (the app's secret), the single-use "
            "`state` bound to the browser's cookie, and the shop's domain; the code is exchanged "
            "server to server for an offline token, stored encrypted."
        ),
    ),
    # --- inbound webhooks ------------------------------------------------------------------
    ("POST", "/api/webhooks/{platform}"): Operation(
        _STORE_ACK,
        auth="signature",
        errors=_STORE_ERRORS,
        body=dict[str, Any],
        notes=STORE_SIGNATURE,
    ),
    ("POST", "/api/webhooks/custom/{connection_id}"): Operation(
        _STORE_ACK,
        auth="signature",
        errors=_STORE_ERRORS,
        body=dict[str, Any],
        notes=STORE_SIGNATURE,
    ),
    ("POST", "/api/webhooks/shopify"): Operation(
        _STORE_ACK,
        auth="signature",
        errors=_STORE_ERRORS,
        body=dict[str, Any],
        notes=SHOPIFY_SIGNATURE + " The topic is read from `X-Shopify-Topic`.",
    ),
    **{
        ("POST", f"/api/webhooks/shopify/{topic}"): Operation(
            _STORE_ACK,
            auth="signature",
            errors=_STORE_ERRORS,
            body=dict[str, Any],
            notes=SHOPIFY_SIGNATURE,
        )
        for topic in _SHOPIFY_TOPICS
    },
    ("POST", "/api/webhooks/sendgrid/events"): Operation(
        ok(inbound.SendgridAck),
        auth="signature",
        errors=(400, 401, 413),
        body=list[dict[str, Any]],
        notes="SendGrid's signed event webhook: `X-Twilio-Email-Event-Webhook-Signature` "
        "(ECDSA) over the timestamp header and the raw body, verified with "
        "SENDGRID_WEBHOOK_PUBLIC_KEY.",
    ),
    ("POST", "/api/webhooks/twilio/status"): Operation(
        ok(inbound.TwilioStatusAck),
        auth="signature",
        errors=(401, 403, 415),
        body=dict[str, str],
        body_media_type="application/x-www-form-urlencoded",
        notes="Twilio's status callback, form-encoded, authenticated by `X-Twilio-Signature`.",
    ),
    ("POST", "/api/webhooks/twilio/inbound"): Operation(
        {200: Reply("TwiML reply (confirmation of STOP, START, HELP)", str, "text/xml")},
        auth="signature",
        errors=(401, 403, 415),
        body=dict[str, str],
        body_media_type="application/x-www-form-urlencoded",
        notes="An inbound SMS, form-encoded, authenticated by `X-Twilio-Signature`.",
    ),
    # --- links in messages, snippet files --------------------------------------------------
    ("GET", "/r/{token}"): Operation(
        {
            302: Reply("Redirect to the cart's restore URL (the click is counted)"),
            400: Reply("Not a genuine link", str, _HTML, or_json_error=True),
            410: Reply("Expired, or the cart is gone", str, _HTML, or_json_error=True),
        },
        auth="none",
    ),
    ("GET", "/u/{token}"): Operation(
        {
            200: Reply("A page asking to confirm the unsubscribe", str, _HTML),
            400: Reply("Not a genuine link", str, _HTML, or_json_error=True),
            410: Reply("We no longer hold this address", str, _HTML, or_json_error=True),
        },
        auth="none",
        summary="Unsubscribe link: the confirmation page (changes nothing)",
    ),
    ("POST", "/u/{token}"): Operation(
        {
            200: Reply("Unsubscribed (also RFC 8058 one-click)", str, _HTML),
            400: Reply("Not a genuine link", str, _HTML, or_json_error=True),
            410: Reply("We no longer hold this address", str, _HTML, or_json_error=True),
        },
        auth="none",
        summary="Unsubscribe: suppress the address for the channel and record the withdrawal",
    ),
    ("GET", "/static/cartrecovery.js"): Operation(
        {200: Reply("The tracking snippet", str, "text/javascript")}, auth="none"
    ),
    ("GET", "/static/cartrecovery-sw.js"): Operation(
        {200: Reply("The snippet's service worker", str, "text/javascript")}, auth="none"
    ),
}

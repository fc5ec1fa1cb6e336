"""``/api/v1/connections``: connect, list, disconnect stores; rotate webhook secrets; set
platform API credentials.

Secrets and credentials are never listed; a generated secret is shown once, in the answer
that created it (or rotated it).
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any
from uuid import UUID

from flask import Blueprint, g, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from cartrecovery import tenancy
from cartrecovery.crypto import new_secret
from integrations import registry, webhooks
from integrations.platform import Platform

from ..auth import require_key
from ..errors import ApiError
from ..openapi import register_schema, request_body
from ..runtime import runtime

bp = Blueprint("connections", __name__)

MAX_GRACE_SECONDS = 7 * 24 * 3600


class _Body(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=True)


class ConnectionCreate(_Body):
    platform: str = Field(
        min_length=1,
        max_length=64,
        description="An installed platform: shopify, woocommerce, bigcommerce, magento, generic"
        " (or one a package adds)",
    )
    shop_domain: str = Field(
        min_length=1,
        max_length=255,
        description="The store's key: shop domain, store hash or site URL",
    )
    secret: str | None = Field(
        default=None,
        min_length=8,
        max_length=512,
        description="Webhook signing secret; generated when omitted",
    )
    credentials: dict[str, Any] | None = Field(
        default=None,
        description="Platform API credentials (tokens), encrypted at rest; only the keys the"
        " platform knows (docs/adapters.md)",
    )

    @field_validator("platform", "shop_domain")
    @classmethod
    def _lower(cls, value: str) -> str:
        if any(c.isspace() for c in value):
            raise ValueError("must not contain whitespace")
        return value.lower()


class SecretRotation(_Body):
    secret: str | None = Field(
        default=None,
        min_length=8,
        max_length=512,
        description="The new secret; generated when omitted",
    )
    grace_seconds: int = Field(
        default=tenancy.DEFAULT_GRACE_SECONDS,
        ge=0,
        le=MAX_GRACE_SECONDS,
        description="How long the previous secret stays valid",
    )


class CredentialsUpdate(_Body):
    credentials: dict[str, Any] | None


def _uuid(value: str, what: str = "connection") -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise ApiError(404, "not_found", f"{what} not found") from None


def _not_found() -> ApiError:
    return ApiError(404, "not_found", "connection not found")


def _public(row: dict) -> dict:
    rt = runtime()
    out = {k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in row.items()}
    out["connection_id"] = str(row["connection_id"])
    urls = registry.webhook_urls(rt.settings.app_url, row["platform"], row["connection_id"])
    out["webhook_urls"] = urls
    out["topics"] = list(urls)
    out["custom_webhook_url"] = rt.settings.app_url.rstrip("/") + registry.CUSTOM_PATH.format(
        connection_id=row["connection_id"]
    )
    return out


@bp.post("/api/v1/connections")
@require_key("admin")
@request_body(ConnectionCreate, status=201)
def create_connection(body: ConnectionCreate):
    """Connect a store; answers 201 with the webhook URLs to configure.

    The secret is in the answer only when it was generated (shown once). A store already
    connected to this org is re-activated with the new secret; one connected to another org
    is a 409.
    """
    platform = registry.platform(body.platform)
    if platform is None:
        raise ApiError(
            400,
            "unknown_platform",
            "no adapter is installed for this platform",
            {"platform": body.platform, "platforms": sorted(registry.platforms())},
        )
    try:
        # The form the adapter finds the store by (WooCommerce: the site URL → its host).
        shop_domain = platform.adapter.store_key(body.shop_domain)
    except ValueError as exc:
        raise ApiError(
            400, "invalid_shop_domain", str(exc), {"shop_domain": body.shop_domain}
        ) from exc
    credentials = _credentials(platform, body.credentials)
    rt = runtime()
    secret = body.secret or new_secret(24)
    try:
        connection_id = tenancy.add_connection(
            rt.db, rt.encryption_key, g.org_id, platform.name, shop_domain, secret, credentials
        )
    except ValueError as exc:
        raise ApiError(
            409,
            "already_connected",
            str(exc),
            {"platform": platform.name, "shop_domain": shop_domain},
        ) from exc
    out = _public(tenancy.connection_info(rt.db, g.org_id, connection_id))
    if body.secret is None:
        out["secret"] = secret
    return jsonify(out), 201


@bp.get("/api/v1/connections")
@require_key("read")
def list_connections():
    """List the org's store connections (no secrets), newest first."""
    rows = tenancy.list_connections(runtime().db, g.org_id)
    return jsonify({"connections": [_public(r) for r in rows]})


@bp.get("/api/v1/connections/<id>")
@require_key("read")
def get_connection(id: str):
    """Read one store connection (no secrets). With ``?webhooks=true``, also a ``webhooks``
    block: what the platform has registered against what the product expects (this asks the
    platform's API, so it is opt-in)."""
    flag = (request.args.get("webhooks") or "false").strip().lower()
    if flag not in _FLAGS:
        raise ApiError(
            400, "invalid_parameter", "webhooks must be true or false", {"webhooks": flag}
        )
    rt = runtime()
    row = tenancy.connection_info(rt.db, g.org_id, _uuid(id))
    if row is None:
        raise _not_found()
    out = _public(row)
    if _FLAGS[flag]:
        out["webhooks"] = _webhook_status(row)
    return jsonify(out)


_FLAGS = {"true": True, "1": True, "yes": True, "false": False, "0": False, "no": False}
# Inside a request: a short wait and few retries.
_HOOK_CLIENT = {"timeout": 5, "max_attempts": 2, "max_retry_after": 5}


def _webhook_status(row: dict) -> dict:
    """The ``webhooks`` block of one connection (never an error status: what the platform
    said is part of the answer)."""
    rt = runtime()
    if row["status"] != "active":
        return {"managed": False, "reason": f"the connection is {row['status']}"}
    connection = tenancy.get_connection(rt.db, rt.encryption_key, row["connection_id"])
    if connection is None or connection.org_id != g.org_id:
        return {"managed": False, "reason": "the connection is not active"}
    try:
        registrar = webhooks.registrar_for(connection, rt.settings.app_url, **_HOOK_CLIENT)
        if registrar is None:
            configured = webhooks.manual_config(connection, rt.settings.app_url) is not None
            reason = (
                "declared in the store's configuration (`cartrecovery connections verify`)"
                if configured
                else "no webhook API for this platform, or the connection lacks credentials"
            )
            return {"managed": False, "reason": reason}
        return {"managed": True, **webhooks.status(registrar).as_dict()}
    except (webhooks.WebhookError, ValueError) as exc:
        return {"managed": True, "ok": False, "error": str(exc)[:500]}


@bp.delete("/api/v1/connections/<id>")
@require_key("admin")
def delete_connection(id: str):
    """Disconnect a store: status 'removed', its webhooks answer 404 and the pending
    messages of its carts are cancelled (reason store_disconnected)."""
    connection_id = _uuid(id)
    cancelled = tenancy.disconnect(runtime().db, g.org_id, connection_id)
    if cancelled is None:
        raise _not_found()
    return jsonify(
        {"connection_id": str(connection_id), "status": "removed", "cancelled_messages": cancelled}
    )


@bp.post("/api/v1/connections/<id>/rotate-secret")
@require_key("admin")
def rotate_secret(id: str):
    """Give an active connection a new webhook secret (answered once); the previous one
    stays valid for grace_seconds (default 1 h: Shopify switches with a lag)."""
    connection_id = _uuid(id)
    raw = request.get_data(cache=True)
    try:
        body = SecretRotation.model_validate_json(raw) if raw.strip() else SecretRotation()
    except ValidationError as exc:
        errors = exc.errors(include_url=False, include_context=False, include_input=False)
        raise ApiError(
            400, "validation_error", "request body is invalid", {"errors": errors}
        ) from None
    rt = runtime()
    row = tenancy.connection_info(rt.db, g.org_id, connection_id)
    if row is None:
        raise _not_found()
    if row["status"] != "active":
        raise ApiError(
            409,
            "connection_inactive",
            "only an active connection can rotate",
            {"status": row["status"]},
        )
    secret = tenancy.rotate_secret(
        rt.db, rt.encryption_key, g.org_id, connection_id, body.secret, body.grace_seconds
    )
    if secret is None:  # removed in between
        raise _not_found()
    expires = datetime.now(UTC) + timedelta(seconds=body.grace_seconds)
    return jsonify(
        {
            "connection_id": str(connection_id),
            "secret": secret,
            "previous_secret_expires_at": expires.isoformat(),
        }
    )


register_schema("/api/v1/connections/<id>/rotate-secret", "POST", SecretRotation)


@bp.put("/api/v1/connections/<id>/credentials")
@require_key("admin")
@request_body(CredentialsUpdate)
def put_credentials(id: str, body: CredentialsUpdate):
    """Replace (or, with null, remove) the platform API credentials of a connection."""
    rt = runtime()
    connection_id = _uuid(id)
    row = tenancy.connection_info(rt.db, g.org_id, connection_id)
    if row is None:
        raise _not_found()
    found = registry.platform(row["platform"])
    credentials = _credentials(found, body.credentials) if found else body.credentials
    if not tenancy.set_credentials(rt.db, rt.encryption_key, g.org_id, connection_id, credentials):
        raise _not_found()
    return jsonify({"connection_id": str(connection_id), "has_credentials": bool(credentials)})


def _credentials(platform: Platform, given: dict[str, Any] | None) -> dict[str, Any] | None:
    """``given`` checked against the platform's credential schema, else a 400."""
    try:
        return platform.clean_credentials(given)
    except ValueError as exc:
        known = [c.key for c in platform.credentials or ()]
        raise ApiError(
            400,
            "invalid_credentials",
            str(exc),
            {"platform": platform.name, "credentials": known},
        ) from exc

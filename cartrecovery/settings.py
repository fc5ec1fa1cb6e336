"""Settings read from the environment (listed in .env.example), resolved when asked for."""

from __future__ import annotations

import os
from dataclasses import dataclass, replace
from pathlib import Path

from .rate_limits import RateLimit


def _env(name: str, default: str | None = None) -> str | None:
    value = os.environ.get(name)
    return value if value not in (None, "") else default


_TRUE = ("1", "true", "yes", "on")
_FALSE = ("0", "false", "no", "off")


def _flag(name: str, default: bool = False) -> bool:
    """A yes/no variable; any other value is refused rather than read as either."""
    value = _env(name)
    if value is None:
        return default
    if value.strip().lower() in _TRUE:
        return True
    if value.strip().lower() in _FALSE:
        return False
    raise ValueError(f"{name} must be one of {', '.join(_TRUE + _FALSE)}, not {value!r}")


def _rate(name: str, default: RateLimit | None) -> RateLimit | None:
    """``N/SECONDS`` (N requests per SECONDS), or ``off``/``0`` for no limit."""
    value = _env(name)
    if value is None:
        return default
    if value.strip().lower() in ("off", "0"):
        return None
    limit, sep, window = value.strip().partition("/")
    try:
        rate = RateLimit(int(limit), int(window) if sep else 60)
    except ValueError:
        raise ValueError(f"{name} must look like 600/60 (requests/seconds) or off") from None
    if rate.limit < 1 or rate.window_seconds < 1:
        raise ValueError(f"{name} must be positive, not {value!r}")
    return rate


def _origins(name: str) -> tuple[str, ...]:
    """A comma-separated list of origins (scheme://host[:port]), without trailing slashes."""
    value = _env(name) or ""
    return tuple(o.strip().rstrip("/") for o in value.split(",") if o.strip())


# REST API limits (docs/api.md, "Rate limits"): generous for a store's server-side tracking,
# low enough that one leaked key or one client cannot monopolise the API.
API_RATE_PER_KEY = RateLimit(limit=6000, window_seconds=60)
API_RATE_PER_IP = RateLimit(limit=12000, window_seconds=60)


@dataclass(frozen=True)
class Settings:
    database_url: str | None = None
    redis_url: str | None = None
    home: Path = Path(".cartrecovery")
    app_url: str = "http://127.0.0.1:8000"
    secret_key: str = "dev-secret-key-change-me"
    encryption_key: str | None = None
    sendgrid_api_key: str | None = None
    from_email: str = "recovery@example.com"
    sendgrid_base_url: str = "https://api.sendgrid.com"
    sendgrid_webhook_public_key: str | None = None
    twilio_account_sid: str | None = None
    twilio_auth_token: str | None = None
    twilio_phone_number: str | None = None
    twilio_messaging_service_sid: str | None = None
    twilio_base_url: str | None = None
    vapid_private_key: str | None = None
    vapid_subject: str | None = None
    # Accept push subscriptions whose endpoint is http or a local/private host: only for
    # development against a local push service (the snippet's key is public).
    push_allow_local_endpoints: bool = False
    # The Shopify app's client id and secret (OAuth install; the secret also signs the
    # webhooks of installed shops). SHOPIFY_API_BASE_URL replaces https://<shop> for the
    # install's token exchange and the installed shop's API calls (tests, proxies).
    shopify_api_key: str | None = None
    shopify_api_secret: str | None = None
    shopify_api_base_url: str | None = None
    # Where a merchant lands after installing (the Streamlit dashboard).
    dashboard_url: str = "http://127.0.0.1:8501"
    mlflow_tracking_uri: str | None = None
    dagster_home: str | None = None
    max_body_bytes: int = 1_048_576
    # Longest a request body may take to arrive, in seconds (0: no deadline); a slow client
    # would otherwise hold a server thread (ingest/body_deadline.py).
    body_timeout_seconds: float = 10.0
    # How long a send waits for SendGrid, Twilio or a push service to answer.
    provider_timeout_seconds: float = 10.0
    scheduler_interval_seconds: float = 2.0
    queue_name: str = "cartrecovery-messages"
    # Per API key (or access token) and per client IP on /api/v1; None: no limit.
    api_rate_limit_per_key: RateLimit | None = API_RATE_PER_KEY
    api_rate_limit_per_ip: RateLimit | None = API_RATE_PER_IP
    # Browser origins allowed to call the REST API with credentials (CORS); none by default.
    cors_origins: tuple[str, ...] = ()

    @classmethod
    def from_env(cls) -> Settings:
        redis_url = _env("REDIS_URL")
        if redis_url is None and _env("REDIS_HOST"):
            password = _env("REDIS_PASSWORD")
            auth = f":{password}@" if password else ""
            redis_url = f"redis://{auth}{_env('REDIS_HOST')}:{_env('REDIS_PORT', '6379')}/0"
        return cls(
            database_url=_env("DATABASE_URL"),
            redis_url=redis_url,
            home=Path(_env("CARTRECOVERY_HOME", ".cartrecovery")).resolve(),
            app_url=_env("APP_URL", "http://127.0.0.1:8000").rstrip("/"),
            secret_key=_env("SECRET_KEY", "dev-secret-key-change-me"),
            encryption_key=_env("ENCRYPTION_KEY"),
            sendgrid_api_key=_env("SENDGRID_API_KEY"),
            from_email=_env("FROM_EMAIL", "recovery@example.com"),
            sendgrid_base_url=_env("SENDGRID_BASE_URL", "https://api.sendgrid.com").rstrip("/"),
            sendgrid_webhook_public_key=_env("SENDGRID_WEBHOOK_PUBLIC_KEY"),
            twilio_account_sid=_env("TWILIO_ACCOUNT_SID"),
            twilio_auth_token=_env("TWILIO_AUTH_TOKEN"),
            twilio_phone_number=_env("TWILIO_PHONE_NUMBER"),
            twilio_messaging_service_sid=_env("TWILIO_MESSAGING_SERVICE_SID"),
            twilio_base_url=_env("TWILIO_BASE_URL"),
            vapid_private_key=_env("VAPID_PRIVATE_KEY"),
            vapid_subject=_env("VAPID_SUBJECT"),
            push_allow_local_endpoints=_flag("PUSH_ALLOW_LOCAL_ENDPOINTS"),
            shopify_api_key=_env("SHOPIFY_API_KEY"),
            shopify_api_secret=_env("SHOPIFY_API_SECRET"),
            shopify_api_base_url=_env("SHOPIFY_API_BASE_URL"),
            dashboard_url=_env("DASHBOARD_URL", "http://127.0.0.1:8501").rstrip("/"),
            mlflow_tracking_uri=_env("MLFLOW_TRACKING_URI"),
            dagster_home=_env("DAGSTER_HOME"),
            max_body_bytes=int(_env("MAX_BODY_BYTES", "1048576")),
            body_timeout_seconds=float(_env("BODY_TIMEOUT_SECONDS", "10")),
            provider_timeout_seconds=float(_env("PROVIDER_TIMEOUT_SECONDS", "10")),
            scheduler_interval_seconds=float(_env("SCHEDULER_INTERVAL_SECONDS", "2")),
            queue_name=_env("CARTRECOVERY_QUEUE", "cartrecovery-messages"),
            api_rate_limit_per_key=_rate("API_RATE_LIMIT_PER_KEY", API_RATE_PER_KEY),
            api_rate_limit_per_ip=_rate("API_RATE_LIMIT_PER_IP", API_RATE_PER_IP),
            cors_origins=_origins("CORS_ORIGINS"),
        )


def get_settings() -> Settings:
    return Settings.from_env()


def with_overrides(settings: Settings, **changes) -> Settings:
    return replace(settings, **changes)

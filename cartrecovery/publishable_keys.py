"""Publishable keys: the write-only API keys a storefront puts in its pages for the tracking
snippet (docs/snippet.md).

A publishable key is an ordinary API key (``cr_<org>_<secret>``, role ``publishable``) that
anyone can read in the page source, so it only ever *reports*: carts to
``POST /api/v1/carts/track`` and push subscriptions to ``POST /api/v1/push/subscriptions``.
What keeps it from being abused:

- **allowed origins**: browsers name the page's origin in ``Origin``; a request from an origin
  not in the key's list is refused and gets no CORS grant, so another site cannot use the key
  from its own pages. (A script outside a browser can send any ``Origin``; that is what the
  rate limit is for.)
- **a rate limit per key and client IP**: a fixed window counted in Redis
  (:mod:`cartrecovery.rate_limits`).

Origins are kept in one normal form, ``scheme://host[:port]`` with a lower-case host and no
default port, which is also the form browsers send.
"""

from __future__ import annotations

import ipaddress
from collections.abc import Iterable
from dataclasses import dataclass
from urllib.parse import urlsplit
from uuid import UUID

from . import tenancy
from .crypto import hash_api_key
from .db import Database

ROLE = "publishable"
MAX_ORIGINS = 50


def normalize_origin(value: str) -> str:
    """``HTTPS://Shop.Example.com:443/`` → ``https://shop.example.com``.

    Raises ValueError for anything that is not an http(s) origin: a path, query, user info,
    a wildcard or the opaque origin ``null`` are refused.
    """
    if not isinstance(value, str) or not value.strip():
        raise ValueError("an origin is required")
    parts = urlsplit(value.strip())
    scheme = parts.scheme.lower()
    if scheme not in ("http", "https"):
        raise ValueError(f"{value!r} is not an http(s) origin")
    try:
        host, port = parts.hostname, parts.port
    except ValueError as exc:  # a port that is not a number
        raise ValueError(f"{value!r} has an invalid port") from exc
    if not host or "*" in host:
        raise ValueError(f"{value!r} has no host name")
    if parts.path not in ("", "/") or parts.query or parts.fragment or parts.username:
        raise ValueError(f"{value!r} is not an origin: use scheme://host[:port] only")
    try:
        # Browsers send internationalised host names in their punycode form.
        host = host.encode("idna").decode("ascii")
    except UnicodeError as exc:
        raise ValueError(f"{value!r} has an invalid host name") from exc
    if ":" in host:  # an IPv6 literal
        host = f"[{ipaddress.IPv6Address(host).compressed}]"
    default = 443 if scheme == "https" else 80
    return f"{scheme}://{host}" + (f":{port}" if port not in (None, default) else "")


def normalize_origins(values: Iterable[str]) -> list[str]:
    """Normal forms of ``values``, deduplicated and sorted; at least one is required."""
    origins = sorted({normalize_origin(v) for v in values})
    if not origins:
        raise ValueError("at least one allowed origin is required")
    if len(origins) > MAX_ORIGINS:
        raise ValueError(f"at most {MAX_ORIGINS} allowed origins")
    return origins


@dataclass(frozen=True)
class PublishableKey:
    org_id: UUID
    key_id: UUID
    allowed_origins: tuple[str, ...]

    def allows(self, origin: str | None) -> bool:
        """Whether a browser request with this ``Origin`` header may use the key."""
        try:
            return normalize_origin(origin or "") in self.allowed_origins
        except ValueError:
            return False


def create_publishable_key(
    db: Database, org_id: UUID, allowed_origins: list[str], name: str | None = None
) -> str:
    """Create a publishable key usable from ``allowed_origins`` and return it in clear (the
    only time it is visible). Raises ValueError for an invalid or empty origin list."""
    origins = normalize_origins(allowed_origins)
    key = tenancy.create_api_key(db, org_id, ROLE, name)
    # A key whose origins failed to save allows no origin at all: the safe side.
    with db.tenant(org_id) as conn:
        conn.execute(
            "UPDATE app.api_keys SET allowed_origins = %s WHERE org_id = %s AND key_hash = %s",
            (origins, org_id, hash_api_key(key)),
        )
    return key


def lookup_key(db: Database, key: str) -> tuple[tenancy.ApiKey | None, PublishableKey | None]:
    """``key`` as a live API key of any role (or None), and, when it is a publishable key,
    with its allowed origins."""
    found = tenancy.verify_api_key(db, key)
    if found is None or found.role != ROLE:
        return found, None
    with db.tenant(found.org_id) as conn:
        row = conn.execute(
            "SELECT allowed_origins FROM app.api_keys WHERE org_id = %s AND key_id = %s",
            (found.org_id, found.key_id),
        ).fetchone()
    return found, PublishableKey(found.org_id, found.key_id, tuple(row["allowed_origins"] or ()))


def load_publishable_key(db: Database, key: str) -> PublishableKey | None:
    """The live publishable key ``key``, or None (unknown, revoked, or another role)."""
    return lookup_key(db, key)[1]


def list_publishable_keys(db: Database, org_id: UUID) -> list[dict]:
    """The org's publishable keys (never the key itself: only its prefix)."""
    with db.tenant(org_id) as conn:
        return conn.execute(
            "SELECT key_id, prefix, name, allowed_origins, created_at, revoked_at "
            "FROM app.api_keys WHERE org_id = %s AND role = %s ORDER BY created_at",
            (org_id, ROLE),
        ).fetchall()


def revoke_publishable_key(db: Database, org_id: UUID, key_id: UUID) -> bool:
    """Revoke one publishable key of the org; False if there is no such live key."""
    with db.tenant(org_id) as conn:
        row = conn.execute(
            "UPDATE app.api_keys SET revoked_at = now() WHERE org_id = %s AND key_id = %s "
            "AND role = %s AND revoked_at IS NULL RETURNING key_id",
            (org_id, key_id, ROLE),
        ).fetchone()
    return row is not None


def origin_allowed_by_any_key(db: Database, origin: str | None) -> bool:
    """Whether some live publishable key, of any org, allows ``origin``.

    Answers CORS preflights, which carry no ``Authorization`` header: the key is not known
    until the actual request, where its own list is checked.
    """
    try:
        normal = normalize_origin(origin or "")
    except ValueError:
        return False
    with db.system() as conn:
        row = conn.execute(
            "SELECT 1 FROM app.api_keys WHERE role = %s AND revoked_at IS NULL "
            "AND allowed_origins @> ARRAY[%s]::text[] LIMIT 1",
            (ROLE, normal),
        ).fetchone()
    return row is not None

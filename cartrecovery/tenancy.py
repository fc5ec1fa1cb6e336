"""Organizations, API keys and store connections (secrets and platform credentials encrypted
at rest, webhook secret rotation with a grace period, status changes).

An API key reads ``cr_<org id hex>_<secret>``: the org id in clear lets the lookup use the
(org_id, key_hash) unique key inside the org's own RLS scope; only the SHA-256 of the whole
key is stored, and the key is shown once.

Hot ingest paths may read keys and connections from a per-process cache (``max_age`` of
:func:`verify_api_key` and :func:`find_connection`); they then confirm what they read inside
their own tenant transaction (:data:`API_KEY_LIVE`, :func:`connection_unchanged`), so a
revoked key or a changed/disconnected store is refused at once, in every process. Changes
made through this module also empty the cache of the process that makes them.
"""

from __future__ import annotations

import json
import re
import threading
import time
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any
from uuid import UUID

import psycopg
from psycopg.types.json import Jsonb

from .carts import cancel_pending_messages
from .crypto import decrypt, encrypt, hash_api_key, new_secret
from .db import Database

ROLES = ("admin", "write", "read", "publishable")
_KEY_RE = re.compile(r"^cr_([0-9a-f]{32})_([A-Za-z0-9_-]{20,})$")


@dataclass(frozen=True)
class ApiKey:
    org_id: UUID
    key_id: UUID
    role: str


@dataclass(frozen=True)
class Connection:
    """A store connection with its secrets decrypted.

    ``secrets``: every webhook secret that verifies right now, current first; during a
    rotation's grace period the previous one follows (platforms switch to a new secret with
    a lag). ``credentials``: the platform API credentials (tokens, keys) as given, or None.
    """

    org_id: UUID
    connection_id: UUID
    platform: str
    shop_domain: str
    secret: str
    status: str
    secrets: list[str] = field(default_factory=list)
    credentials: dict | None = None
    # What the row said when read, to confirm a cached copy (see connection_unchanged):
    # (updated_at, secret ciphertext, previous secret's expiry).
    version: tuple | None = field(default=None, compare=False, repr=False)

    def __post_init__(self):
        if not self.secrets:
            object.__setattr__(self, "secrets", [self.secret])


STATUSES = ("active", "disabled", "removed")
DEFAULT_GRACE_SECONDS = 3600  # Shopify: HMACs can take up to 1 h to switch to a new secret


# A key works until revoked or past its expiry (migration 0016).
_LIVE = "revoked_at IS NULL AND (expires_at IS NULL OR expires_at > now())"


def create_org(db: Database, name: str, settings: dict | None = None) -> UUID:
    with db.system() as conn:
        row = conn.execute(
            "INSERT INTO app.orgs (name, settings) VALUES (%s, %s) RETURNING org_id",
            (name, Jsonb(settings or {})),
        ).fetchone()
    return row["org_id"]


def create_api_key(
    db: Database,
    org_id: UUID,
    role: str = "admin",
    name: str | None = None,
    expires_in: timedelta | None = None,
) -> str:
    """Create a key and return it in clear: the only time it is ever visible. With
    ``expires_in`` it stops working that long from now."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    with db.tenant(org_id) as conn:
        key, _ = insert_api_key(conn, org_id, role, name, expires_in)
    return key


def insert_api_key(
    conn, org_id: UUID, role: str, name: str | None, expires_in: timedelta | None
) -> tuple[str, dict]:
    """``create_api_key`` inside the caller's tenant transaction; returns the key in clear
    and its row (key_id, prefix, role, name, created_at, expires_at)."""
    key = f"cr_{UUID(str(org_id)).hex}_{new_secret(32)}"
    row = conn.execute(
        "INSERT INTO app.api_keys (org_id, key_hash, prefix, role, name, expires_at) "
        "VALUES (%s, %s, %s, %s, %s, now() + %s) "
        "RETURNING key_id, prefix, role, name, created_at, expires_at, revoked_at",
        (org_id, hash_api_key(key), key[:11], role, name, expires_in),
    ).fetchone()
    return key, row


def rotate_api_key(
    conn, org_id: UUID, key_id: UUID, grace: timedelta, expires_in: timedelta | None = None
) -> tuple[str, dict] | None:
    """Replace a live key by a new one with the same role and name; the old key keeps working
    for ``grace`` (0: stops now) so its users can switch. Returns (new key in clear, its row),
    or None when ``key_id`` is not a live key of the org."""
    old = conn.execute(
        f"SELECT role, name FROM app.api_keys WHERE org_id = %s AND key_id = %s AND {_LIVE} "
        "FOR UPDATE",
        (org_id, key_id),
    ).fetchone()
    if old is None:
        return None
    key, row = insert_api_key(conn, org_id, old["role"], old["name"], expires_in)
    conn.execute(
        "UPDATE app.api_keys SET replaced_by = %s, "
        "expires_at = LEAST(COALESCE(expires_at, 'infinity'), now() + %s) "
        "WHERE org_id = %s AND key_id = %s",
        (row["key_id"], grace, org_id, key_id),
    )
    _KEYS.clear()  # this process forgets cached keys at once (others within KEY_CACHE_SECONDS)
    return key, row


def list_api_keys(conn, org_id: UUID) -> list[dict]:
    """The org's secret API keys (their prefix, never the key), newest first: key_id, prefix,
    role, name, created_at, expires_at, revoked_at. Publishable keys are listed elsewhere."""
    return conn.execute(
        "SELECT key_id, prefix, role, name, created_at, expires_at, revoked_at "
        "FROM app.api_keys WHERE org_id = %s AND role <> 'publishable' "
        "ORDER BY created_at DESC",
        (org_id,),
    ).fetchall()


def revoke_api_key(conn, org_id: UUID, key_id: UUID) -> bool:
    """Revoke a secret key at once; False when ``key_id`` is not an unrevoked key of the org."""
    row = conn.execute(
        "UPDATE app.api_keys SET revoked_at = now() WHERE org_id = %s AND key_id = %s "
        "AND role <> 'publishable' AND revoked_at IS NULL RETURNING key_id",
        (org_id, key_id),
    ).fetchone()
    _KEYS.clear()  # this process forgets cached keys at once (others within KEY_CACHE_SECONDS)
    return row is not None


def verify_api_key(db: Database, key: str, max_age: float = 0.0) -> ApiKey | None:
    """The live key ``key``, or None (malformed, unknown or revoked).

    ``max_age`` > 0 may answer from this process's cache (live keys only, read at most
    ``max_age`` seconds ago): the caller must then confirm the key in its own transaction
    with :data:`API_KEY_LIVE` before acting on it (a key can be revoked since).
    """
    match = _KEY_RE.match(key or "")
    if not match:
        return None
    digest = hash_api_key(key)
    cache_key = (db.url, digest)
    if max_age > 0:
        hit = _KEYS.get(cache_key, max_age)
        if hit is not None:
            return hit
    org_id = UUID(match.group(1))
    with db.tenant(org_id) as conn:
        row = conn.execute(
            "SELECT org_id, key_id, role FROM app.api_keys "
            f"WHERE org_id = %s AND key_hash = %s AND {_LIVE}",
            (org_id, digest),
        ).fetchone()
    if row is None:
        _KEYS.forget(cache_key)  # unknown tokens are never cached: they cannot fill it
        return None
    found = ApiKey(row["org_id"], row["key_id"], row["role"])
    _KEYS.put(cache_key, found)
    return found


# Confirms a cached ApiKey inside a tenant transaction of its org (one row while it is live):
# params (org_id, key_id).
API_KEY_LIVE = f"SELECT 1 FROM app.api_keys WHERE org_id = %s AND key_id = %s AND {_LIVE}"


def add_connection(
    db: Database,
    key: bytes,
    org_id: UUID,
    platform: str,
    shop_domain: str,
    secret: str,
    credentials: dict | str | None = None,
) -> UUID:
    """Register a store (or re-activate it with a new secret); return its connection id.

    A shop domain can be actively connected to only one org (ValueError otherwise).
    ``credentials`` (a dict, or a JSON object as text) are encrypted at rest; adding an
    existing store again without credentials keeps the stored ones.
    """
    shop_domain = shop_domain.strip().lower()
    if not shop_domain:
        raise ValueError("shop_domain must not be empty")
    if not secret:
        raise ValueError("secret must not be empty")
    creds = _credentials_text(credentials)
    with db.system() as conn:
        taken = conn.execute(
            "SELECT org_id FROM app.connections WHERE platform = %s AND shop_domain = %s "
            "AND status = 'active' AND org_id <> %s",
            (platform, shop_domain, org_id),
        ).fetchone()
        if taken:
            raise ValueError(f"{platform} store {shop_domain} is connected to another org")
        row = conn.execute(
            """
            INSERT INTO app.connections AS c
                (org_id, platform, shop_domain, secret_ciphertext, credentials_ciphertext)
            VALUES (%s, %s, %s, %s, %s)
            ON CONFLICT (org_id, platform, shop_domain) DO UPDATE
               SET secret_ciphertext = EXCLUDED.secret_ciphertext,
                   credentials_ciphertext = COALESCE(EXCLUDED.credentials_ciphertext,
                                                     c.credentials_ciphertext),
                   previous_secret_ciphertext = NULL, previous_secret_expires_at = NULL,
                   status = 'active', status_reason = NULL,
                   status_changed_at = CASE WHEN c.status <> 'active' THEN now()
                                            ELSE c.status_changed_at END,
                   updated_at = now()
            RETURNING connection_id
            """,
            (
                org_id,
                platform,
                shop_domain,
                encrypt(key, secret, _aad(org_id)),
                encrypt(key, creds, _aad(org_id)) if creds else None,
            ),
        ).fetchone()
    forget_cached()
    return row["connection_id"]


# Only a previous secret still inside its grace period is ever decrypted.
_SELECT = """
SELECT org_id, connection_id, platform, shop_domain, secret_ciphertext, status,
       credentials_ciphertext,
       CASE WHEN previous_secret_expires_at > now() THEN previous_secret_ciphertext END
           AS previous_secret_ciphertext,
       CASE WHEN previous_secret_expires_at > now()
            THEN extract(epoch FROM previous_secret_expires_at - now()) END
           AS previous_secret_ttl,
       previous_secret_expires_at, updated_at
FROM app.connections
"""


def find_connection(
    db: Database,
    key: bytes,
    platform: str,
    shop_domain: str,
    statuses: tuple[str, ...] = ("active",),
    max_age: float = 0.0,
) -> Connection | None:
    """Route an inbound webhook to its store (before the org is known).

    Only active stores by default; ``statuses`` widens it (privacy requests reach a store
    after uninstall). An active connection wins, then the most recently changed one.

    ``max_age`` > 0 may answer from this process's cache (found connections only, read at
    most ``max_age`` seconds ago, never past the end of a previous secret's grace period);
    the caller must then confirm it in its tenant transaction with
    :func:`connection_unchanged` and look it up again (``max_age=0``) when that fails, or
    when a signature does not verify with the cached secrets (a rotation since).
    """
    domain = shop_domain.strip().lower()
    cache_key = (db.url, key, platform, domain, tuple(statuses))
    if max_age > 0:
        hit = _CONNECTIONS.get(cache_key, max_age)
        if hit is not None:
            return hit
    with db.system() as conn:
        row = conn.execute(
            _SELECT + "WHERE platform = %s AND shop_domain = %s AND status = ANY(%s::text[]) "
            "ORDER BY (status = 'active') DESC, updated_at DESC LIMIT 1",
            (platform, domain, list(statuses)),
        ).fetchone()
    if row is None:
        _CONNECTIONS.forget(cache_key)
        return None
    found = _connection(key, row)
    _CONNECTIONS.put(cache_key, found, row.get("previous_secret_ttl"))
    return found


def connection_unchanged(
    connection: Connection, statuses: tuple[str, ...] = ("active",)
) -> tuple[str, tuple]:
    """(sql, params) of a query, for a tenant transaction of the connection's org, that
    returns one row while the stored connection is still what ``connection`` was read from
    (same secrets, same grace period, no change since) and in one of ``statuses``."""
    updated_at, secret, previous_expires = connection.version or (None, None, None)
    return (
        "SELECT 1 FROM app.connections WHERE org_id = %s AND connection_id = %s "
        "AND status = ANY(%s::text[]) AND updated_at = %s AND secret_ciphertext = %s "
        "AND previous_secret_expires_at IS NOT DISTINCT FROM %s::timestamptz",
        (
            connection.org_id,
            connection.connection_id,
            list(statuses),
            updated_at,
            secret,
            previous_expires,
        ),
    )


def forget_cached(connection: Connection | None = None) -> None:
    """Drop cached connections (``connection``'s, or all) and, with no argument, cached keys
    too: after a change, or when a cached entry failed its confirmation."""
    if connection is None:
        _CONNECTIONS.clear()
        _KEYS.clear()
    else:
        _CONNECTIONS.drop(lambda c: c.connection_id == connection.connection_id)


def get_connection(
    db: Database,
    key: bytes,
    connection_id: UUID,
    statuses: tuple[str, ...] = ("active",),
) -> Connection | None:
    """A connection by id (any org): active ones only unless ``statuses`` says otherwise."""
    with db.system() as conn:
        row = conn.execute(
            _SELECT + "WHERE connection_id = %s AND status = ANY(%s::text[])",
            (connection_id, list(statuses)),
        ).fetchone()
    return _connection(key, row) if row else None


def list_connections(db: Database, org_id: UUID) -> list[dict]:
    """The org's connections, newest first, without secrets or credentials."""
    with db.tenant(org_id) as conn:
        return conn.execute(_PUBLIC + "ORDER BY created_at DESC, connection_id", ()).fetchall()


def connection_info(db: Database, org_id: UUID, connection_id: UUID) -> dict | None:
    """One connection of the org, without secrets or credentials."""
    with db.tenant(org_id) as conn:
        return conn.execute(_PUBLIC + "WHERE connection_id = %s", (connection_id,)).fetchone()


_PUBLIC = """
SELECT connection_id, platform, shop_domain, status, status_reason, status_changed_at,
       credentials_ciphertext IS NOT NULL AS has_credentials,
       secret_rotated_at,
       CASE WHEN previous_secret_expires_at > now() THEN previous_secret_expires_at END
           AS previous_secret_expires_at,
       created_at, updated_at
FROM app.connections
"""


def rotate_secret(
    db: Database,
    key: bytes,
    org_id: UUID,
    connection_id: UUID,
    secret: str | None = None,
    grace_seconds: int = DEFAULT_GRACE_SECONDS,
) -> str | None:
    """Give an active connection a new webhook secret (``secret`` or a generated one) and
    return it; the current one keeps verifying for ``grace_seconds``. None if the org has no
    such active connection."""
    if grace_seconds < 0:
        raise ValueError("grace_seconds must not be negative")
    new = secret or new_secret(24)
    with db.tenant(org_id) as conn:
        row = conn.execute(
            """
            UPDATE app.connections
            SET previous_secret_ciphertext = secret_ciphertext,
                previous_secret_expires_at = now() + make_interval(secs => %s),
                secret_ciphertext = %s, secret_rotated_at = now(), updated_at = now()
            WHERE org_id = %s AND connection_id = %s AND status = 'active'
            RETURNING connection_id
            """,
            (grace_seconds, encrypt(key, new, _aad(org_id)), org_id, connection_id),
        ).fetchone()
    forget_cached()
    return new if row else None


def set_credentials(
    db: Database, key: bytes, org_id: UUID, connection_id: UUID, credentials: dict | str | None
) -> bool:
    """Replace (or, with None, drop) a connection's platform credentials. False if unknown."""
    creds = _credentials_text(credentials)
    with db.tenant(org_id) as conn:
        row = conn.execute(
            "UPDATE app.connections SET credentials_ciphertext = %s, updated_at = now() "
            "WHERE org_id = %s AND connection_id = %s RETURNING connection_id",
            (encrypt(key, creds, _aad(org_id)) if creds else None, org_id, connection_id),
        ).fetchone()
    forget_cached()
    return row is not None


def change_status(
    conn: psycopg.Connection, org_id: UUID, connection_id: UUID, status: str, reason: str
) -> int | None:
    """Set a connection's status inside the caller's tenant transaction. Leaving 'active'
    cancels the scheduled/enqueued messages of the store's carts (with ``reason``).
    Returns how many messages were cancelled, or None if the org has no such connection."""
    if status not in STATUSES:
        raise ValueError(f"status must be one of {STATUSES}")
    row = conn.execute(
        """
        UPDATE app.connections
        SET status = %s, status_reason = %s, status_changed_at = now(), updated_at = now()
        WHERE org_id = %s AND connection_id = %s
        RETURNING connection_id
        """,
        (status, reason, org_id, connection_id),
    ).fetchone()
    forget_cached()  # early, but harmless: a cached entry is confirmed before use anyway
    if row is None:
        return None
    if status == "active":
        return 0
    return cancel_connection_messages(conn, org_id, connection_id, reason)


def cancel_connection_messages(
    conn: psycopg.Connection, org_id: UUID, connection_id: UUID, reason: str
) -> int:
    """Cancel the pending messages of every cart of one store; returns how many."""
    cart_ids = [
        r["cart_id"]
        for r in conn.execute(
            "SELECT cart_id FROM app.carts WHERE org_id = %s AND connection_id = %s",
            (org_id, connection_id),
        )
    ]
    return cancel_pending_messages(conn, org_id, cart_ids, reason=reason)


def disconnect(
    db: Database, org_id: UUID, connection_id: UUID, reason: str = "store_disconnected"
) -> int | None:
    """Remove a store (status 'removed'): its webhooks get 404 and its pending messages are
    cancelled. Returns the number cancelled, None if the org has no such connection."""
    with db.tenant(org_id) as conn:
        return change_status(conn, org_id, connection_id, "removed", reason)


def _credentials_text(credentials: dict | str | None) -> str | None:
    if credentials is None:
        return None
    if isinstance(credentials, str):
        try:
            credentials = json.loads(credentials)
        except ValueError as exc:
            raise ValueError("credentials must be a JSON object") from exc
    if not isinstance(credentials, dict):
        raise ValueError("credentials must be a JSON object")
    return json.dumps(credentials) if credentials else None


def _connection(key: bytes, row: dict[str, Any]) -> Connection:
    aad = _aad(row["org_id"])
    secret = decrypt(key, row["secret_ciphertext"], aad)
    secrets = [secret]
    if row.get("previous_secret_ciphertext"):
        secrets.append(decrypt(key, row["previous_secret_ciphertext"], aad))
    creds = row.get("credentials_ciphertext")
    return Connection(
        org_id=row["org_id"],
        connection_id=row["connection_id"],
        platform=row["platform"],
        shop_domain=row["shop_domain"],
        secret=secret,
        status=row["status"],
        secrets=secrets,
        credentials=json.loads(decrypt(key, creds, aad)) if creds else None,
        version=(
            row.get("updated_at"),
            row.get("secret_ciphertext"),
            row.get("previous_secret_expires_at"),
        ),
    )


class _Cache:
    """Entries read from the database, each kept until a deadline: never longer than the
    ``max_age`` a reader asks for, nor past an entry's own ``ttl`` (a secret's grace end)."""

    MAX_ENTRIES = 10_000

    def __init__(self):
        self._entries: dict[Any, tuple[float, float, Any]] = {}  # key -> (read, until, value)
        self._lock = threading.Lock()

    def get(self, key: Any, max_age: float) -> Any:
        entry = self._entries.get(key)
        now = time.monotonic()
        if entry is None or now - entry[0] > max_age or now >= entry[1]:
            return None
        return entry[2]

    def put(self, key: Any, value: Any, ttl: float | None = None) -> None:
        now = time.monotonic()
        until = now + float(ttl) if ttl is not None else float("inf")
        with self._lock:
            if len(self._entries) >= self.MAX_ENTRIES:
                self._entries.clear()
            self._entries[key] = (now, until, value)

    def forget(self, key: Any) -> None:
        self._entries.pop(key, None)

    def drop(self, matches) -> None:
        with self._lock:
            for key in [k for k, e in self._entries.items() if matches(e[2])]:
                del self._entries[key]

    def clear(self) -> None:
        with self._lock:
            self._entries.clear()


_CONNECTIONS = _Cache()
_KEYS = _Cache()


def _aad(org_id: UUID) -> bytes:
    # Binding the ciphertext to its org stops a row copied into another org from decrypting.
    return str(org_id).encode()

"""Organizations, API keys and store connections.

An API key reads ``cr_<org id hex>_<secret>``: the org id in clear lets the lookup use the
(org_id, key_hash) unique key inside the org's own RLS scope; only the SHA-256 of the whole
key is stored, and the key is shown once.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from uuid import UUID

from psycopg.types.json import Jsonb

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
    org_id: UUID
    connection_id: UUID
    platform: str
    shop_domain: str
    secret: str
    status: str


def create_org(db: Database, name: str, settings: dict | None = None) -> UUID:
    with db.system() as conn:
        row = conn.execute(
            "INSERT INTO app.orgs (name, settings) VALUES (%s, %s) RETURNING org_id",
            (name, Jsonb(settings or {})),
        ).fetchone()
    return row["org_id"]


def create_api_key(db: Database, org_id: UUID, role: str = "admin", name: str | None = None) -> str:
    """Create a key and return it in clear: the only time it is ever visible."""
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    key = f"cr_{UUID(str(org_id)).hex}_{new_secret(32)}"
    with db.tenant(org_id) as conn:
        conn.execute(
            "INSERT INTO app.api_keys (org_id, key_hash, prefix, role, name) "
            "VALUES (%s, %s, %s, %s, %s)",
            (org_id, hash_api_key(key), key[:11], role, name),
        )
    return key


def verify_api_key(db: Database, key: str) -> ApiKey | None:
    match = _KEY_RE.match(key or "")
    if not match:
        return None
    org_id = UUID(match.group(1))
    with db.tenant(org_id) as conn:
        row = conn.execute(
            "SELECT org_id, key_id, role FROM app.api_keys "
            "WHERE org_id = %s AND key_hash = %s AND revoked_at IS NULL",
            (org_id, hash_api_key(key)),
        ).fetchone()
    return ApiKey(row["org_id"], row["key_id"], row["role"]) if row else None


def add_connection(
    db: Database,
    key: bytes,
    org_id: UUID,
    platform: str,
    shop_domain: str,
    secret: str,
    credentials: str | None = None,
) -> UUID:
    """Register a store. A shop domain can be actively connected to only one org."""
    shop_domain = shop_domain.strip().lower()
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
            INSERT INTO app.connections
                (org_id, platform, shop_domain, secret_ciphertext, credentials_ciphertext)
            VALUES (%s, %s, %s, %s, %s)
            ON CONFLICT (org_id, platform, shop_domain) DO UPDATE
               SET secret_ciphertext = EXCLUDED.secret_ciphertext,
                   credentials_ciphertext = EXCLUDED.credentials_ciphertext,
                   status = 'active', updated_at = now()
            RETURNING connection_id
            """,
            (
                org_id,
                platform,
                shop_domain,
                encrypt(key, secret, _aad(org_id)),
                encrypt(key, credentials, _aad(org_id)) if credentials else None,
            ),
        ).fetchone()
    return row["connection_id"]


def find_connection(db: Database, key: bytes, platform: str, shop_domain: str) -> Connection | None:
    """Route an inbound webhook to its store (before the org is known)."""
    with db.system() as conn:
        row = conn.execute(
            "SELECT org_id, connection_id, platform, shop_domain, secret_ciphertext, status "
            "FROM app.connections WHERE platform = %s AND shop_domain = %s AND status = 'active'",
            (platform, shop_domain.strip().lower()),
        ).fetchone()
    return _connection(key, row) if row else None


def get_connection(db: Database, key: bytes, connection_id: UUID) -> Connection | None:
    with db.system() as conn:
        row = conn.execute(
            "SELECT org_id, connection_id, platform, shop_domain, secret_ciphertext, status "
            "FROM app.connections WHERE connection_id = %s AND status = 'active'",
            (connection_id,),
        ).fetchone()
    return _connection(key, row) if row else None


def _connection(key: bytes, row: dict) -> Connection:
    return Connection(
        org_id=row["org_id"],
        connection_id=row["connection_id"],
        platform=row["platform"],
        shop_domain=row["shop_domain"],
        secret=decrypt(key, row["secret_ciphertext"], _aad(row["org_id"])),
        status=row["status"],
    )


def _aad(org_id: UUID) -> bytes:
    # Binding the ciphertext to its org stops a row copied into another org from decrypting.
    return str(org_id).encode()

"""People who sign in to the dashboard and the API, with a role per organization.

A user is one email and one password (hashed with argon2id, never stored in clear) and may
belong to several orgs, each with its own role (``viewer``, ``marketer``, ``admin``; what
each may do is :mod:`cartrecovery.access`). Creating users is an operator's act (the CLI,
the demo) and is audited; signing in reads through :meth:`Database.user` and a tenant
transaction only, never the system role (see migration 0012 for the policies).
"""

from __future__ import annotations

import hashlib
import hmac
import secrets
from dataclasses import dataclass
from functools import lru_cache
from uuid import UUID

import redis
from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError, VerifyMismatchError

from . import audit
from .canonical import normalize_email
from .db import Database
from .rate_limits import RateLimit, hit_rate_limit, rate_limited

ROLES = ("viewer", "marketer", "admin")
MIN_PASSWORD_LENGTH = 10
MAX_PASSWORD_LENGTH = 1024  # hashing cost grows with the input: refuse megabyte "passwords"
DEMO_EMAIL = "demo@example.com"

# Failed sign-ins allowed per email and client address in a window (API and dashboard).
SIGN_IN_RATE = RateLimit(limit=10, window_seconds=900)

_HASHER = PasswordHasher()  # argon2id with the library's RFC 9106 low-memory profile


@dataclass(frozen=True)
class Membership:
    org_id: UUID
    org_name: str
    role: str


@dataclass(frozen=True)
class User:
    """A signed-in user and the orgs they may act for, oldest org first."""

    user_id: UUID
    email: str
    memberships: tuple[Membership, ...]

    def membership(self, org_id: UUID | str) -> Membership | None:
        return next((m for m in self.memberships if str(m.org_id) == str(org_id)), None)


@dataclass(frozen=True)
class CreatedUser:
    """What :func:`create_user` did. ``password`` is the password in clear when one was set
    (generated or given), else None (an existing user keeps theirs)."""

    user_id: UUID
    created: bool
    password: str | None


def check_email(email: str) -> str:
    """The normal form of ``email``; ValueError if it cannot be an address."""
    normal = normalize_email(email) or ""
    local, _, domain = normal.partition("@")
    if not local or not domain or "@" in domain or any(c.isspace() for c in normal):
        raise ValueError(f"{email!r} is not an email address")
    return normal


def check_password(password: str) -> str:
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise ValueError(f"a password needs at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise ValueError(f"a password has at most {MAX_PASSWORD_LENGTH} characters")
    return password


def generate_password() -> str:
    """A random password (about 144 bits), to be shown once."""
    return secrets.token_urlsafe(18)


def create_user(
    db: Database,
    email: str,
    org_id: UUID,
    role: str,
    password: str | None = None,
    *,
    actor: str = "system",
) -> CreatedUser:
    """Give ``email`` the ``role`` in ``org_id``, creating the user if needed.

    A new user gets ``password``, or a generated one (returned, to be shown once). An existing
    user gets the membership (or their role in the org changed) and keeps their password
    unless ``password`` is given. Recorded in the org's audit log as ``users.create`` (the
    user id, role and whether the user was new; never the email or password). ValueError for
    an invalid email, role or password, or an unknown org.
    """
    if role not in ROLES:
        raise ValueError(f"role must be one of {ROLES}")
    email = check_email(email)
    if password is not None:
        check_password(password)
    # Users span orgs, so the row is written by the operator's (system) transaction.
    with db.system() as conn:
        if conn.execute("SELECT 1 FROM app.orgs WHERE org_id = %s", (org_id,)).fetchone() is None:
            raise ValueError(f"no org {org_id}")
        row = conn.execute(
            "SELECT user_id FROM app.users WHERE email = %s FOR UPDATE", (email,)
        ).fetchone()
        created = False
        if row is None:
            chosen = password or generate_password()
            # ON CONFLICT: another transaction may create the same email meanwhile.
            row = conn.execute(
                "INSERT INTO app.users (email, password_hash) VALUES (%s, %s) "
                "ON CONFLICT (email) DO NOTHING RETURNING user_id",
                (email, _HASHER.hash(chosen)),
            ).fetchone()
            created = row is not None
            if created:
                password = chosen
            else:
                row = conn.execute(
                    "SELECT user_id FROM app.users WHERE email = %s FOR UPDATE", (email,)
                ).fetchone()
        if not created and password is not None:
            conn.execute(
                "UPDATE app.users SET password_hash = %s, updated_at = now() WHERE user_id = %s",
                (_HASHER.hash(password), row["user_id"]),
            )
        user_id = row["user_id"]
        conn.execute(
            """
            INSERT INTO app.memberships (org_id, user_id, role) VALUES (%s, %s, %s)
            ON CONFLICT (org_id, user_id) DO UPDATE SET role = EXCLUDED.role, updated_at = now()
            """,
            (org_id, user_id, role),
        )
        audit.insert(
            conn,
            org_id,
            actor,
            "users.create",
            str(user_id),
            {"role": role, "new_user": created, "password_set": password is not None},
        )
    return CreatedUser(user_id, created, password)


def authenticate(db: Database, email: str, password: str) -> User | None:
    """The user with this email and password, with their memberships; None otherwise.

    Takes about as long whether or not the email exists (an unknown email is checked
    against a dummy hash), so the answer's timing does not tell which part was wrong.
    """
    normal = normalize_email(email) or ""
    with db.user(None) as conn:
        row = conn.execute(
            "SELECT user_id, password_hash FROM app.user_credentials(%s)", (normal,)
        ).fetchone()
    if not isinstance(password, str) or len(password) > MAX_PASSWORD_LENGTH:
        return None
    if row is None:
        _verify(_dummy_hash(), password)
        return None
    if not _verify(row["password_hash"], password):
        return None
    if _HASHER.check_needs_rehash(row["password_hash"]):
        with db.user(row["user_id"]) as conn:
            conn.execute(
                "UPDATE app.users SET password_hash = %s, updated_at = now() WHERE user_id = %s",
                (_HASHER.hash(password), row["user_id"]),
            )
    return User(row["user_id"], normal, tuple(memberships(db, row["user_id"])))


class TooManyAttempts(Exception):
    """Too many failed sign-ins for this email from this client; retry after
    ``retry_after`` seconds."""

    def __init__(self, retry_after: int):
        super().__init__(f"too many failed sign-ins: retry in {retry_after} s")
        self.retry_after = retry_after


def sign_in(
    db: Database,
    limiter: redis.Redis | None,
    email: str,
    password: str,
    client: str | None,
    rate: RateLimit = SIGN_IN_RATE,
) -> User | None:
    """:func:`authenticate`, with failed attempts counted per email and ``client`` (an IP
    address) in Redis (``limiter``; None counts nothing). Past ``rate``'s limit it raises
    :class:`TooManyAttempts` until the window ends, even for the right password."""
    bucket = _sign_in_bucket(email, client)
    if limiter is not None:
        retry_after = rate_limited(limiter, bucket, rate)
        if retry_after is not None:
            raise TooManyAttempts(retry_after)
    user = authenticate(db, email, password)
    if user is None and limiter is not None:
        hit_rate_limit(limiter, bucket, rate)
    return user


def _sign_in_bucket(email: str, client: str | None) -> str:
    # Hashed: Redis keys must not carry personal data.
    digest = hashlib.sha256((normalize_email(email) or "").encode()).hexdigest()[:32]
    return f"sign-in:{digest}:{client or 'unknown'}"


def memberships(db: Database, user_id: UUID | str) -> list[Membership]:
    """The orgs ``user_id`` belongs to with their role, oldest org first (read in the user's
    own scope: no system role)."""
    with db.user(user_id) as conn:
        rows = conn.execute(
            """
            SELECT m.org_id, o.name, m.role FROM app.memberships m
            JOIN app.orgs o ON o.org_id = m.org_id
            WHERE m.user_id = %s ORDER BY o.created_at, o.name
            """,
            (user_id,),
        ).fetchall()
    return [Membership(r["org_id"], r["name"], r["role"]) for r in rows]


def role_in(db: Database, org_id: UUID | str, user_id: UUID | str) -> str | None:
    """``user_id``'s current role in ``org_id`` (read in that org's tenant scope), or None."""
    with db.tenant(org_id) as conn:
        row = conn.execute(
            "SELECT role FROM app.memberships WHERE org_id = %s AND user_id = %s",
            (org_id, user_id),
        ).fetchone()
    return row["role"] if row else None


def ensure_demo_user(
    db: Database, org_id: UUID, secret_key: str, email: str = DEMO_EMAIL, role: str = "admin"
) -> tuple[str, str]:
    """A demo user of ``org_id``, created or brought up to date; returns (email, password).

    Idempotent: the password is derived from ``secret_key`` and the email, so every run
    prints the same credentials, and a user who changed it gets the derived one back.
    """
    password = demo_password(secret_key, email)
    existing = authenticate(db, email, password)
    member = existing.membership(org_id) if existing else None
    if member is None or member.role != role:
        create_user(db, email, org_id, role, password, actor="demo")
    return check_email(email), password


def demo_password(secret_key: str, email: str) -> str:
    digest = hmac.new(secret_key.encode(), f"demo-user:{email}".encode(), hashlib.sha256)
    return digest.hexdigest()[:20]


def _verify(hashed: str, password: str) -> bool:
    try:
        return _HASHER.verify(hashed, password)
    except (VerifyMismatchError, VerificationError, InvalidHashError):
        return False


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    return _HASHER.hash(secrets.token_urlsafe(18))

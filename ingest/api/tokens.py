"""``POST /api/v1/auth/token``: a user's email and password for a short-lived access token
(docs/auth.md).

Wrong credentials answer 401 without saying which part was wrong. Failed attempts are
counted per email and client IP in Redis; past the limit (app config ``SIGN_IN_RATE_LIMIT``
failures per ``SIGN_IN_RATE_WINDOW`` seconds, default 10 per 15 minutes) the endpoint
answers 429 with ``Retry-After`` until the window ends, even for the right password.
"""

from __future__ import annotations

from uuid import UUID

from flask import Blueprint, current_app, g, request
from pydantic import BaseModel, ConfigDict, Field

from cartrecovery import tokens, users
from cartrecovery.rate_limits import RateLimit

from ..auth import Principal
from ..errors import ApiError, error_response
from ..openapi import request_body
from ..runtime import runtime

bp = Blueprint("tokens", __name__, url_prefix="/api/v1/auth")


class TokenRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: str = Field(min_length=1, max_length=320)
    password: str = Field(min_length=1, max_length=users.MAX_PASSWORD_LENGTH)
    org: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="The org to act for (its id or exact name): needed when the user "
        "belongs to several",
    )


def sign_in_rate_limit() -> RateLimit:
    return RateLimit(
        int(current_app.config.get("SIGN_IN_RATE_LIMIT", users.SIGN_IN_RATE.limit)),
        int(current_app.config.get("SIGN_IN_RATE_WINDOW", users.SIGN_IN_RATE.window_seconds)),
    )


def token_ttl() -> int:
    return int(current_app.config.get("ACCESS_TOKEN_TTL", tokens.DEFAULT_TTL_SECONDS))


def _orgs(user: users.User) -> dict:
    return {"orgs": [{"org_id": str(m.org_id), "name": m.org_name} for m in user.memberships]}


def _choose(user: users.User, org: str | None) -> users.Membership:
    if org is not None:
        wanted = org.strip()
        try:
            wanted = str(UUID(wanted))
        except ValueError:
            pass  # a name
        found = [m for m in user.memberships if wanted in (str(m.org_id), m.org_name)]
        if len(found) != 1:
            raise ApiError(
                403, "not_a_member", "you are not a member of this org (by id or name)", _orgs(user)
            )
        return found[0]
    if not user.memberships:
        raise ApiError(403, "no_org", "this user belongs to no org")
    if len(user.memberships) > 1:
        raise ApiError(
            400,
            "org_required",
            'you belong to several orgs: name one with "org" (its id or name)',
            _orgs(user),
        )
    return user.memberships[0]


@bp.post("/token")
@request_body(TokenRequest)
def issue_token(body: TokenRequest):
    """Exchange a user's email and password for a bearer access token (JWT) for one org.

    The token carries the user's role in that org (viewer, marketer, admin: the same
    rights as a read, write or admin API key) and expires after ``expires_in`` seconds.
    """
    rt = runtime()
    try:
        user = users.sign_in(
            rt.db, rt.redis, body.email, body.password, request.remote_addr, sign_in_rate_limit()
        )
    except users.TooManyAttempts as exc:
        return _too_many(exc.retry_after)
    if user is None:
        raise ApiError(401, "invalid_credentials", "wrong email or password")
    membership = _choose(user, body.org)
    ttl = token_ttl()
    token = tokens.issue(
        rt.settings.secret_key, user.user_id, membership.org_id, membership.role, ttl
    )
    # For the audit log: the org's record shows who took a token, and when.
    g.org_id = membership.org_id
    g.principal = Principal(membership.org_id, membership.role, f"user:{user.user_id}", True)
    return {"access_token": token, "token_type": "bearer", "expires_in": ttl}


def _too_many(retry_after: int):
    response, status = error_response(
        429,
        "rate_limited",
        "too many failed sign-ins: try again later",
        {"retry_after": retry_after},
    )
    response.status_code = status
    response.headers["Retry-After"] = str(retry_after)
    return response

"""``cartrecovery api-keys``: an org's secret API keys from the command line (docs/auth.md):
list, create with an optional expiry, rotate with a grace period, revoke. The same core
functions and bounds as ``/api/v1/api-keys`` (``ingest/api/api_keys.py``); a key is shown in
clear once, when made. Each change is filed in the org's audit log under the CLI's actor."""

from __future__ import annotations

import json
import re
from datetime import timedelta
from uuid import UUID

import click

from cartrecovery import tenancy

_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400}
_DURATION = re.compile(r"^\s*(\d+)\s*([smhd]?)\s*$")


def _duration(value: str | None, option: str) -> int | None:
    """``90d``, ``12h``, ``30m``, ``45s`` or plain seconds."""
    if value is None:
        return None
    match = _DURATION.match(value.lower())
    if not match:
        raise click.BadParameter("a duration like 3600, 30m, 12h or 90d", param_hint=option)
    return int(match.group(1)) * _UNITS[match.group(2) or "s"]


def _checked(model, option_of: dict, **fields):
    """The API's request model, so the CLI accepts exactly what the API accepts."""
    from pydantic import ValidationError

    try:
        return model(**fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]) if error.get("loc") else ""
        raise click.BadParameter(error["msg"], param_hint=option_of.get(field, field)) from None


def _key_id(value: str) -> UUID:
    try:
        return UUID(value)
    except ValueError:
        raise click.BadParameter("not a key id (a UUID)", param_hint="KEY_ID") from None


def _show(row: dict) -> str:
    state = "revoked" if row["revoked_at"] else "live"
    if not row["revoked_at"] and row["expires_at"]:
        state = f"expires {row['expires_at']}"
    return f"{row['key_id']}  {row['prefix']}…  {row['role']:<5}  {row['name'] or '-'}  {state}"


@click.group("api-keys")
def api_keys() -> None:
    """An org's secret API keys: list, create, rotate, revoke (docs/auth.md)."""


_org_option = click.option("--org", "org", required=True, help="Org id (or exact org name).")
_json_option = click.option("--json", "as_json", is_flag=True, help="Print JSON.")


@api_keys.command("list")
@_org_option
@_json_option
def list_keys(org: str, as_json: bool) -> None:
    """The org's API keys, newest first (their prefix; a key is never shown again)."""
    from cartrecovery.db import Database

    from .services import _find_org, services

    with services(need_redis=False) as svc:
        db = Database(svc.database_url)
        org_id = _find_org(db, org)
        with db.tenant(org_id) as conn:
            rows = tenancy.list_api_keys(conn, org_id)
    from ingest.api.api_keys import key_json

    if as_json:
        click.echo(json.dumps({"api_keys": [key_json(r) for r in rows]}))
        return
    for row in rows:
        click.echo(_show(row))
    if not rows:
        click.echo("no API keys")


@api_keys.command("create")
@_org_option
@click.option("--role", required=True, type=click.Choice(["admin", "write", "read"]))
@click.option("--name", default=None, help="What the key is for (shown in lists).")
@click.option(
    "--expires-in",
    default=None,
    help="The key stops working this long from now (3600, 30m, 12h, 90d; default: never).",
)
@_json_option
def create(org: str, role: str, name: str | None, expires_in: str | None, as_json: bool) -> None:
    """Create an API key; it is shown once."""
    from cartrecovery import audit
    from cartrecovery.db import Database
    from ingest.api.api_keys import ApiKeyCreate, key_json

    from .services import _find_org, services

    body = _checked(
        ApiKeyCreate,
        {"expires_in_seconds": "--expires-in", "name": "--name"},
        role=role,
        name=name,
        expires_in_seconds=_duration(expires_in, "--expires-in"),
    )
    with services(need_redis=False) as svc:
        db = Database(svc.database_url)
        org_id = _find_org(db, org)
        with db.tenant(org_id) as conn:
            key, row = tenancy.insert_api_key(
                conn, org_id, body.role, body.name, _seconds(body.expires_in_seconds)
            )
        audit.record(
            db, org_id, audit.cli_actor(), "api-keys.create", str(row["key_id"]), {"role": role}
        )
    out = key_json(row, key)
    if as_json:
        click.echo(json.dumps(out))
        return
    click.echo(_show(row))
    click.echo(f"API key (shown once): {key}")


@api_keys.command("rotate")
@click.argument("key_id")
@_org_option
@click.option(
    "--grace",
    default="1h",
    show_default=True,
    help="How long the old key keeps working (0: it stops now; at most 30d).",
)
@click.option("--expires-in", default=None, help="Expiry of the new key (default: never).")
@_json_option
def rotate(key_id: str, org: str, grace: str, expires_in: str | None, as_json: bool) -> None:
    """Replace a live key by a new one with the same role and name (shown once)."""
    from cartrecovery import audit
    from cartrecovery.db import Database
    from ingest.api.api_keys import ApiKeyRotate, key_json

    from .services import _find_org, services

    old_id = _key_id(key_id)
    body = _checked(
        ApiKeyRotate,
        {"grace_seconds": "--grace", "expires_in_seconds": "--expires-in"},
        grace_seconds=_duration(grace, "--grace"),
        expires_in_seconds=_duration(expires_in, "--expires-in"),
    )
    with services(need_redis=False) as svc:
        db = Database(svc.database_url)
        org_id = _find_org(db, org)
        with db.tenant(org_id) as conn:
            found = tenancy.rotate_api_key(
                conn,
                org_id,
                old_id,
                _seconds(body.grace_seconds),
                _seconds(body.expires_in_seconds),
            )
        if found is None:
            raise click.ClickException(f"no live API key {key_id} in this org")
        key, row = found
        audit.record(
            db,
            org_id,
            audit.cli_actor(),
            "api-keys.rotate",
            str(old_id),
            {"replaced_by": str(row["key_id"]), "grace_seconds": body.grace_seconds},
        )
    if as_json:
        click.echo(json.dumps({**key_json(row, key), "replaces": str(old_id)}))
        return
    click.echo(_show(row))
    click.echo(f"API key (shown once): {key}")
    click.echo(f"the old key {old_id} stops working in {body.grace_seconds} s")


@api_keys.command("revoke")
@click.argument("key_id")
@_org_option
@_json_option
def revoke(key_id: str, org: str, as_json: bool) -> None:
    """Revoke a key at once."""
    from cartrecovery import audit
    from cartrecovery.db import Database

    from .services import _find_org, services

    parsed = _key_id(key_id)
    with services(need_redis=False) as svc:
        db = Database(svc.database_url)
        org_id = _find_org(db, org)
        with db.tenant(org_id) as conn:
            revoked = tenancy.revoke_api_key(conn, org_id, parsed)
        if not revoked:
            raise click.ClickException(f"no live API key {key_id} in this org")
        audit.record(db, org_id, audit.cli_actor(), "api-keys.revoke", str(parsed))
    if as_json:
        click.echo(json.dumps({"key_id": str(parsed), "status": "revoked"}))
    else:
        click.echo(f"API key {parsed} revoked")


def _seconds(value: int | None) -> timedelta | None:
    return None if value is None else timedelta(seconds=value)

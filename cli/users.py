"""``cartrecovery users``: people who sign in to the dashboard and the API (docs/auth.md)."""

from __future__ import annotations

import json
import sys

import click

from cartrecovery import users as user_accounts


@click.group()
def users() -> None:
    """Users: dashboard sign-in and API tokens, with a role per org."""


@users.command("create")
@click.argument("email")
@click.option("--org", "org", required=True, help="Org id (or exact org name).")
@click.option(
    "--role",
    required=True,
    type=click.Choice(user_accounts.ROLES),
    help="viewer reads; marketer also edits campaigns; admin also manages keys and settings.",
)
@click.option(
    "--password-stdin",
    is_flag=True,
    help="Read the password from the first line of stdin instead of generating one.",
)
@click.option("--json", "as_json", is_flag=True, help='Print {"user_id", "password"?} as JSON.')
def users_create(email: str, org: str, role: str, password_stdin: bool, as_json: bool) -> None:
    """Create a user with ROLE in an org, or give an existing user that role there.

    A new user gets a generated password, shown once, unless --password-stdin sets one. An
    existing user keeps their password unless --password-stdin gives a new one.
    """
    # The CLI's own helpers (embedded servers, org lookup): imported when run, not at import.
    from cartrecovery import audit
    from cartrecovery.db import Database

    from .services import _find_org, services

    password = None
    if password_stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        try:
            user_accounts.check_password(password)
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint="--password-stdin") from None
    try:
        user_accounts.check_email(email)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="EMAIL") from None
    with services(need_redis=False) as svc:
        db = Database(svc.database_url)
        org_id = _find_org(db, org)
        try:
            done = user_accounts.create_user(
                db, email, org_id, role, password, actor=audit.cli_actor()
            )
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
    shown = done.password if done.password is not None and not password_stdin else None
    if as_json:
        body = {"user_id": str(done.user_id)}
        if shown is not None:
            body["password"] = shown
        click.echo(json.dumps(body))
        return
    what = "created" if done.created else "updated"
    click.echo(f"user {user_accounts.check_email(email)} {what}: {done.user_id} ({role} in {org})")
    if shown is not None:
        click.echo(f"password (shown once): {shown}")
    elif not done.created and password is None:
        click.echo("existing user: password unchanged")

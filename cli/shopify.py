"""``cartrecovery shopify …``: the Shopify app's configuration file (``app-toml``) and
install links that connect a shop to a given org (``install-link``)."""

from __future__ import annotations

from pathlib import Path

import click

from cartrecovery.settings import Settings


@click.group()
def shopify() -> None:
    """The Shopify app: shopify.app.toml and install links (docs/adapters.md)."""


@shopify.command("app-toml")
@click.option("--client-id", default=None, help="The app's client id (default: SHOPIFY_API_KEY).")
@click.option("--name", default="Cart recovery", show_default=True, help="The app's name.")
@click.option(
    "--output",
    "-o",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Write to this file (e.g. shopify.app.toml) instead of printing.",
)
def app_toml_command(client_id: str | None, name: str, output: Path | None) -> None:
    """Write the app's shopify.app.toml: scopes, the OAuth redirect URL (APP_URL), the install
    flow and the privacy webhooks, for `shopify app deploy`."""
    from integrations.shopify.app_toml import app_toml

    settings = Settings.from_env()
    client_id = client_id or settings.shopify_api_key
    if not client_id:
        raise click.UsageError("give --client-id or set SHOPIFY_API_KEY")
    text = app_toml(client_id, settings.app_url, name)
    if output is None:
        click.echo(text, nl=False)
        return
    output.write_text(text)
    click.echo(f"wrote {output}")


@shopify.command("install-link")
@click.option("--org", "org", required=True, help="Org id (or exact org name) the shop joins.")
@click.option("--shop", required=True, help="e.g. my-store.myshopify.com")
def install_link(org: str, shop: str) -> None:
    """Print an install URL that connects SHOP to ORG (valid 24 hours). Without such a link
    an install joins the org the shop had before, else a new org named after the shop.
    (An org admin gets the same link on the dashboard's Stores page.)"""
    from cartrecovery.db import Database
    from integrations.shopify.api import valid_shop_domain
    from integrations.shopify.oauth import install_link as make_link

    from .services import _find_org, services

    if not valid_shop_domain(shop.strip().lower()):
        raise click.BadParameter("must be a <name>.myshopify.com domain", param_hint="--shop")
    with services(need_redis=False) as svc:
        settings = svc.settings()
        org_id = _find_org(Database(svc.database_url), org)
    click.echo(make_link(settings.app_url, settings.secret_key, org_id, shop))

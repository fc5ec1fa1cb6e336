"""``cartrecovery shopify …``: the Shopify app's configuration file (``app-toml``); the
install link, which needs the database, is added to the group by ``cli.main``."""

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

"""``cartrecovery connections add|verify`` and ``cartrecovery sync``: store connections,
their webhooks and historical imports, for every platform the registry knows
(docs/adapters.md)."""

from __future__ import annotations

import json
import sys
from collections.abc import Iterator
from pathlib import Path
from uuid import UUID

import click

from .services import _find_org, services

# Platform API credential options of `connections add`: option → credential key. Which
# platforms take a key, and what a valid value is, is the platform's (integrations.registry).
CREDENTIAL_OPTIONS: dict[str, str] = {
    "access_token": "access_token",
    "client_secret": "client_secret",
    "consumer_key": "consumer_key",
    "consumer_secret": "consumer_secret",
    "base_url": "base_url",
    "integration_token": "integration_token",
    "public_key_file": "webhook_public_key_pem",
    "api_base_url": "api_base_url",
}


def _credential_options(func):
    options = [
        click.option(
            "--access-token", default=None, help="Shopify Admin API / BigCommerce store API token."
        ),
        click.option(
            "--client-secret",
            default=None,
            help="BigCommerce app client secret (verifies signed callbacks).",
        ),
        click.option("--consumer-key", default=None, help="WooCommerce REST consumer key."),
        click.option("--consumer-secret", default=None, help="WooCommerce REST consumer secret."),
        click.option(
            "--base-url",
            default=None,
            help="Magento store base URL (GraphQL at <base-url>/graphql).",
        ),
        click.option("--integration-token", default=None, help="Magento integration access token."),
        click.option(
            "--public-key-file",
            default=None,
            type=click.Path(dir_okay=False),
            help="Magento: PEM public key that verifies webhook signatures.",
        ),
        click.option(
            "--api-base-url",
            default=None,
            help="Override the platform API base URL (tests, proxies).",
        ),
        click.option(
            "--credentials",
            "credentials_json",
            default=None,
            help="Platform credentials as a JSON object (merged with the above).",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


class PlatformType(click.ParamType):
    """A platform installed in the registry (or one of its aliases), as its own name."""

    name = "platform"

    def __init__(self, can_sync: bool = False):
        self.can_sync = can_sync

    def get_metavar(self, param, ctx=None) -> str:
        return "PLATFORM"

    def convert(self, value, param, ctx):
        from integrations import registry

        found = registry.platform(value)
        if found is None or (self.can_sync and not found.can_sync()):
            names = sorted(
                n for n, p in registry.platforms().items() if p.can_sync() or not self.can_sync
            )
            self.fail(f"{value!r} is not one of {', '.join(names)}", param, ctx)
        return found.name


def _store_key(platform: str, shop_domain: str) -> str:
    """The store key in the form the platform's adapter looks stores up by (WooCommerce:
    ``https://Shop.Example.com/`` → ``shop.example.com``)."""
    from integrations import registry

    try:
        return registry.platform(platform).adapter.store_key(shop_domain)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--shop-domain") from exc


def _credentials(platform: str, options: dict) -> dict | None:
    """The credentials dict from the platform options, checked against the platform's
    credential schema; BadParameter for options that do not apply to ``platform`` or values
    that cannot work."""
    from integrations import registry

    target = registry.platform(platform)
    creds: dict = {}
    raw = options.pop("credentials_json", None)
    if raw:
        try:
            creds = json.loads(raw)
        except ValueError:
            creds = None
        if not isinstance(creds, dict):
            raise click.BadParameter("must be a JSON object", param_hint="--credentials")
    for name, value in options.items():
        if value is None:
            continue
        key = CREDENTIAL_OPTIONS[name]
        hint = "--" + name.replace("_", "-")
        credential = target.credential(key)
        if credential is None and target.credentials is not None:
            takers = [n for n, p in registry.platforms().items() if p.credential(key)]
            raise click.BadParameter(f"only for {', '.join(sorted(takers))}", param_hint=hint)
        if credential is not None and credential.from_file:
            try:
                value = Path(value).read_text()
            except OSError as exc:
                raise click.BadParameter(f"cannot read it: {exc}", param_hint=hint) from exc
        try:
            creds[key] = credential.clean(value) if credential else value.strip()
        except ValueError as exc:
            raise click.BadParameter(str(exc), param_hint=hint) from exc
    try:
        return target.clean_credentials(creds)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--credentials") from exc


@click.group()
def connections() -> None:
    """Store connections (platform webhooks)."""


@connections.command("add")
@click.argument("platform", type=PlatformType())
@click.option("--org", "org", required=True, help="Org id (or exact org name).")
@click.option("--shop-domain", required=True, help="e.g. my-store.myshopify.com")
@click.option(
    "--secret", default=None, help="Webhook signing secret of the store (generated when omitted)."
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print {connection_id, webhook_urls} as JSON."
)
@click.option(
    "--skip-webhooks",
    is_flag=True,
    help="Do not register the webhooks through the platform's API (print the URLs only).",
)
@_credential_options
def connections_add(
    platform: str,
    org: str,
    shop_domain: str,
    secret: str | None,
    as_json: bool,
    skip_webhooks: bool,
    **credential_options,
) -> None:
    """Connect a store of an installed PLATFORM (shopify, woocommerce, bigcommerce, magento,
    generic, or one a package adds) to an org and print the webhook URLs to configure.

    Platform API credentials (encrypted at rest) come from the platform options below or
    --credentials; they let BigCommerce/Magento fetch full carts and `sync` read history.
    With them, the store's webhooks are registered through its API (Shopify with an access
    token, BigCommerce with an API token, WooCommerce with REST keys; existing ones are
    listed first, so nothing is duplicated); for Magento the webhooks.xml to paste is
    printed. `connections verify ID --fix` repairs them later.
    """
    from cartrecovery import audit, tenancy
    from cartrecovery.crypto import load_key, new_secret
    from cartrecovery.db import Database
    from integrations import webhooks

    shop_domain = shop_domain.strip().lower()
    if not shop_domain:
        raise click.BadParameter("must not be empty", param_hint="--shop-domain")
    credentials = _credentials(platform, credential_options)
    shop_domain = _store_key(platform, shop_domain)
    generated = secret is None
    secret = secret if secret is not None else new_secret(24)
    if not secret.strip():
        raise click.BadParameter("must not be empty", param_hint="--secret")
    with services(need_redis=False) as svc:
        settings = svc.settings()
        db = Database(svc.database_url)
        org_id = _find_org(db, org)
        key = load_key(settings.encryption_key, settings.secret_key)
        try:
            connection_id = tenancy.add_connection(
                db, key, org_id, platform, shop_domain, secret, credentials
            )
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
        audit.record(
            db,
            org_id,
            audit.cli_actor(),
            "connections.add",
            str(connection_id),
            {"platform": platform},
        )
        connection = tenancy.get_connection(db, key, connection_id)
        registered = None if skip_webhooks else _register_webhooks(settings, connection)
        config = webhooks.manual_config(connection, settings.app_url)
    urls = webhook_urls(settings.app_url, platform, connection_id)
    if as_json:
        body = {"connection_id": str(connection_id), "webhook_urls": urls}
        if generated:
            body["secret"] = secret
        if registered is not None:
            body["webhooks"] = registered
        if config is not None:
            body["webhook_config"] = config
        click.echo(json.dumps(body))
        return
    click.echo(f"{platform} store {shop_domain} connected: {connection_id}")
    if generated:
        click.echo(f"webhook secret (shown once): {secret}")
    if registered is not None and "error" not in registered:
        made = len(registered.get("created", []))
        click.echo(f"webhooks registered through the {platform} API ({made} created):")
    elif config is not None:
        click.echo("paste this into app/etc/webhooks.xml (or a module's etc/webhooks.xml):")
        click.echo(config)
        return
    for topic, url in urls.items():
        click.echo(f"  {topic:<24} {url}")


def _register_webhooks(settings, connection) -> dict | None:
    """Register the connection's webhooks through its platform's API when its credentials
    allow (None when they do not). A failure does not undo the connection: it is reported
    (on stderr, and as ``{"error"}``) with the command that repairs it."""
    from integrations import webhooks

    try:
        registrar = webhooks.registrar_for(connection, settings.app_url, **_HOOK_CLIENT)
        if registrar is None:
            return None
        return webhooks.ensure(registrar).as_dict()
    except (webhooks.WebhookError, ValueError) as exc:
        click.echo(
            f"warning: webhooks not registered: {exc}; fix the credentials, then run "
            f"`cartrecovery connections verify {connection.connection_id} --fix`",
            err=True,
        )
        return {"error": str(exc)}


# Registration from the command line: a short wait, few retries.
_HOOK_CLIENT = {"timeout": 15, "max_attempts": 3, "max_retry_after": 30}


@connections.command("verify")
@click.argument("connection_id")
@click.option("--fix", is_flag=True, help="Create what is missing, replace what is broken.")
@click.option("--json", "as_json", is_flag=True, help="Print the status as JSON.")
def connections_verify(connection_id: str, fix: bool, as_json: bool) -> None:
    """List the webhooks the platform has registered for store CONNECTION_ID against the
    ones the product expects; --fix repairs the difference. Exit status 1 when something
    is still wrong."""
    from cartrecovery import audit, tenancy
    from cartrecovery.crypto import load_key
    from cartrecovery.db import Database
    from integrations import webhooks

    try:
        cid = UUID(connection_id)
    except ValueError:
        raise click.BadParameter("not a connection id", param_hint="CONNECTION_ID") from None
    with services(need_redis=False) as svc:
        settings = svc.settings()
        db = Database(svc.database_url)
        key = load_key(settings.encryption_key, settings.secret_key)
        connection = tenancy.get_connection(db, key, cid)
        if connection is None:
            raise click.BadParameter("no active connection", param_hint="CONNECTION_ID")
        config = webhooks.manual_config(connection, settings.app_url)
        try:
            registrar = webhooks.registrar_for(connection, settings.app_url, **_HOOK_CLIENT)
        except ValueError as exc:
            raise click.ClickException(str(exc)) from exc
        if registrar is None:
            if config is not None:
                click.echo(f"{connection.platform} webhooks are declared in the store: paste")
                click.echo(config)
                return
            raise click.ClickException(
                f"{connection.platform}: no webhook API, or the connection lacks the "
                "credentials it needs (docs/adapters.md)"
            )
        try:
            result = webhooks.ensure(registrar) if fix else webhooks.status(registrar)
        except webhooks.WebhookError as exc:
            raise click.ClickException(str(exc)) from exc
        if fix:
            audit.record(
                db,
                connection.org_id,
                audit.cli_actor(),
                "connections.verify_fix",
                str(cid),
                {"created": len(result.created), "deleted": len(result.deleted)},
            )
    if as_json:
        click.echo(json.dumps(result.as_dict()))
    else:
        for line in _status_lines(result):
            click.echo(line)
    if not result.ok:
        sys.exit(1)


def _status_lines(result) -> Iterator[str]:
    live = {h.key for h in result.registered if h.active}
    for hook in result.expected:
        mark = "ok     " if hook.key in live else "MISSING"
        yield f"{mark} {hook.topic:<24} {hook.url}"
    for hook in result.inactive:
        yield f"INACTIVE {hook.topic:<23} {hook.url} (id {hook.id})"
    for hook in result.stale:
        yield f"STALE  {hook.topic:<24} {hook.url} (id {hook.id}, not expected)"
    for hook in result.deleted:
        yield f"deleted {hook.topic:<23} {hook.url} (id {hook.id})"
    for hook in result.created:
        yield f"created {hook.topic:<23} {hook.url} (id {hook.id})"
    if result.ok:
        yield "all expected webhooks are registered"


def webhook_urls(app_url: str, platform: str, connection_id: UUID) -> dict[str, str]:
    """The URLs a store of ``platform`` must post to, by topic (the registry's table)."""
    from integrations import registry

    return registry.webhook_urls(app_url, platform, connection_id)


@click.command("sync")
@click.argument("platform", type=PlatformType(can_sync=True))
@click.option("--connection", "connection_id", required=True, help="Connection id.")
@click.option(
    "--since",
    required=True,
    help="Import what was created since this date (YYYY-MM-DD or ISO 8601, UTC).",
)
@click.option(
    "--resource",
    "resources",
    multiple=True,
    help="Only these resources (shopify: checkouts, orders; woocommerce: orders; "
    "bigcommerce: checkouts, orders). Repeatable.",
)
@click.option(
    "--restart",
    is_flag=True,
    help="Start over instead of resuming (or instead of skipping a finished sync).",
)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
def sync_command(
    platform: str,
    connection_id: str,
    since: str,
    resources: tuple[str, ...],
    restart: bool,
    as_json: bool,
) -> None:
    """Import a store's historical abandoned checkouts and orders through its API.

    Resumable (a checkpoint per connection and resource) and idempotent with webhooks.
    Carts older than the org's abandonment timeout are marked abandoned without any
    message being sent. PLATFORM: one that can sync (shopify, woocommerce, bigcommerce);
    see integrations/<platform>/sync.py for what each one reads.
    """
    from dataclasses import asdict

    from cartrecovery import audit, tenancy
    from cartrecovery.crypto import load_key
    from cartrecovery.db import Database
    from integrations import sync

    try:
        since_at = sync.parse_since(since)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--since") from exc
    try:
        cid = UUID(connection_id)
    except ValueError:
        raise click.BadParameter("not a connection id", param_hint="--connection") from None
    with services(need_redis=False) as svc:
        settings = svc.settings()
        db = Database(svc.database_url)
        key = load_key(settings.encryption_key, settings.secret_key)
        connection = tenancy.get_connection(db, key, cid)
        if connection is None or connection.platform != platform.lower():
            raise click.BadParameter(
                f"no active {platform} connection {connection_id}", param_hint="--connection"
            )
        # Every admin action is audited: the run's scope, and what it did or why it stopped.
        details = {
            "platform": connection.platform,
            "since": since_at.isoformat(),
            "resources": list(resources) or None,
            "restart": restart,
        }
        try:
            results = sync.sync(
                db,
                connection,
                since_at,
                resources=list(resources) or None,
                restart=restart,
                progress=_TqdmProgress(),
            )
        except sync.SyncError as exc:
            audit.record(
                db,
                connection.org_id,
                audit.cli_actor(),
                "sync.failed",
                str(cid),
                details | {"error": str(exc)[:500]},
            )
            raise click.ClickException(f"{exc} (run the same command again to resume)") from exc
        audit.record(
            db,
            connection.org_id,
            audit.cli_actor(),
            "sync.run",
            str(cid),
            details | {"results": [sync.summary(r) for r in results]},
        )
    if as_json:
        click.echo(json.dumps([asdict(r) for r in results]))
        return
    for line in sync.iter_results(results):
        click.echo(line)


class _TqdmProgress:
    """A progress bar per resource on stderr (objects imported, of the total when known)."""

    def __init__(self):
        self.bar = None

    def start(self, resource: str, total: int | None) -> None:
        from tqdm import tqdm

        self.bar = tqdm(
            total=total, desc=resource, unit=" objects", file=sys.stderr, dynamic_ncols=True
        )

    def advance(self, count: int, total: int | None = None) -> None:
        if self.bar is None:
            return
        if total is not None and self.bar.total != total:
            self.bar.total = total
            self.bar.refresh()
        self.bar.update(count)

    def finish(self) -> None:
        if self.bar is not None:
            self.bar.close()
            self.bar = None

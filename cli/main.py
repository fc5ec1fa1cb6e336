"""The `cartrecovery` command line (docs/architecture.md, "Contracts").

With no ``DATABASE_URL`` the commands start (or join) the embedded PostgreSQL under
``CARTRECOVERY_HOME``; with no ``REDIS_URL`` the embedded Redis. The resolved URLs are passed
to every child process, so `up` works on a bare machine and the same commands run against
managed services by setting variables.
"""

from __future__ import annotations

import json
import os
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from uuid import UUID

import click

from cartrecovery import embedded
from cartrecovery.settings import Settings, with_overrides

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent


# ---------------------------------------------------------------------------------------
# Resolving Postgres and Redis
# ---------------------------------------------------------------------------------------


@dataclass
class Services:
    """The database and Redis every process of this run uses."""

    home: Path
    database_url: str
    redis_url: str | None
    embedded_postgres: bool = False
    embedded_redis: bool = False

    def settings(self) -> Settings:
        return with_overrides(
            Settings.from_env(), database_url=self.database_url, redis_url=self.redis_url
        )

    def child_env(self) -> dict[str, str]:
        """The environment of child processes: ours plus the resolved URLs."""
        env = dict(os.environ)
        env["DATABASE_URL"] = self.database_url
        if self.redis_url:
            env["REDIS_URL"] = self.redis_url
        env["CARTRECOVERY_HOME"] = str(self.home)
        # dbt, dagster and friends are looked up on PATH by the tools that call them.
        env["PATH"] = os.pathsep.join([str(BIN), env.get("PATH", "")])
        env.setdefault("PYTHONUNBUFFERED", "1")
        return env


@contextmanager
def services(need_redis: bool) -> Iterator[Services]:
    """Resolve DATABASE_URL/REDIS_URL, starting the embedded servers for what is unset.

    The embedded database is migrated on first use (nobody else would do it); an external
    one is migrated only by `migrate` and `up`. Embedded servers are released on exit.
    """
    settings = Settings.from_env()
    home = settings.home
    svc = Services(home=home, database_url=settings.database_url or "", redis_url=None)
    try:
        if not settings.database_url:
            home.mkdir(parents=True, exist_ok=True)
            click.echo(f"starting the embedded PostgreSQL under {home / 'pgdata'}", err=True)
            svc.database_url = embedded.start_postgres(home)
            svc.embedded_postgres = True
            _upgrade(svc.database_url)
        if need_redis:
            if settings.redis_url:
                svc.redis_url = settings.redis_url
            else:
                click.echo(f"starting the embedded Redis under {home}", err=True)
                svc.redis_url = embedded.start_redis(home)
                svc.embedded_redis = True
        yield svc
    finally:
        if svc.embedded_postgres:
            _close_pool(svc.database_url)
        if svc.embedded_redis:
            embedded.stop_redis(home)
        if svc.embedded_postgres:
            embedded.stop_postgres(home)


def _close_pool(database_url: str) -> None:
    # Pooled connections to a server we are about to stop would only log reconnect errors.
    from cartrecovery.db import close_pool

    close_pool(database_url)


def _upgrade(database_url: str) -> None:
    from cartrecovery.migrate import upgrade

    upgrade(database_url)


# ---------------------------------------------------------------------------------------
# Commands
# ---------------------------------------------------------------------------------------


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
def main() -> None:
    """Cart recovery platform: ingest, recovery sequences, attribution, live dashboard."""


@main.command()
def migrate() -> None:
    """Apply the database migrations (idempotent)."""
    with services(need_redis=False) as svc:
        _upgrade(svc.database_url)
    click.echo("database schema is up to date")


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8000, show_default=True, type=int)
@click.option("--workers", default=2, show_default=True, type=int)
def serve(host: str, port: int, workers: int) -> None:
    """Serve the ingest endpoints and the REST API (gunicorn)."""
    with services(need_redis=True) as svc:
        env = svc.child_env()
        env.setdefault("APP_URL", f"http://{host}:{port}")
        _fresh_metrics_dir(env, svc.home)
        sys.exit(_run_children([("ingest", _ingest_argv(host, port, workers), env)]))


@main.command()
@click.option("--burst", is_flag=True, help="Work until the queue is empty, then exit.")
@click.option(
    "--concurrency",
    type=click.IntRange(min=1),
    default=None,
    help="Messages sent at once by this process "
    "[default: CARTRECOVERY_WORKER_CONCURRENCY, else 16].",
)
@click.option(
    "--simple", is_flag=True, help="One job at a time in the main thread (RQ's SimpleWorker)."
)
def worker(burst: bool, concurrency: int | None, simple: bool) -> None:
    """Run a delivery worker (sends due messages from the queue; SIGINT/SIGTERM lets the
    sends in flight finish)."""
    from cartrecovery import logs
    from delivery.worker import run_worker

    logs.configure()
    with services(need_redis=True) as svc:
        run_worker(svc.settings(), burst=burst, concurrency=concurrency, simple=simple)


@main.command()
def scheduler() -> None:
    """Run the scheduler tick (abandonment, campaign matching, due messages)."""
    from cartrecovery import logs
    from delivery.scheduler import run_forever

    logs.configure()
    with services(need_redis=True) as svc:
        run_forever(svc.settings())


@main.command()
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8501, show_default=True, type=int)
def dashboard(host: str, port: int) -> None:
    """Serve the Streamlit dashboard."""
    with services(need_redis=False) as svc:
        sys.exit(_run_children([("dashboard", _dashboard_argv(host, port), svc.child_env())]))


def _stack_options(func):
    options = [
        click.option(
            "--host",
            default="127.0.0.1",
            show_default=True,
            help="Interface every server listens on.",
        ),
        click.option("--port", default=8000, show_default=True, type=int, help="Ingest API port."),
        click.option("--dashboard-port", default=8501, show_default=True, type=int),
        click.option("--with-dagster", is_flag=True, help="Also run Dagster (webserver+daemon)."),
        click.option("--dagster-port", default=3000, show_default=True, type=int),
        click.option("--with-mlflow", is_flag=True, help="Also run an MLflow tracking server."),
        click.option("--mlflow-port", default=5000, show_default=True, type=int),
        click.option(
            "--grace",
            default=10.0,
            show_default=True,
            type=float,
            help="Seconds children get to stop before they are killed.",
        ),
    ]
    for option in reversed(options):
        func = option(func)
    return func


@main.command()
@_stack_options
def up(**options) -> None:
    """Start everything: ingest, worker, scheduler, dashboard (Ctrl-C stops all)."""
    sys.exit(_stack(**options))


@main.command()
@_stack_options
@click.option("--seed", type=int, default=None, help="Seed of the simulated store.")
@click.option(
    "--rate", type=float, default=0.5, show_default=True, help="New checkouts per second."
)
def demo(seed: int | None, rate: float, **options) -> None:
    """`up` plus a simulated store sending signed webhooks, opens, clicks and orders."""
    # The demo is read by a person in one terminal: plain log lines unless LOG_FORMAT says
    # otherwise (a deployment's `up` keeps the JSON lines, docs/operations.md).
    os.environ.setdefault("LOG_FORMAT", "text")
    sys.exit(_stack(**options, demo=True, seed=seed, rate=rate))


@main.group()
def orgs() -> None:
    """Organizations (tenants)."""


@orgs.command("create")
@click.argument("name")
@click.option(
    "--role",
    default="admin",
    show_default=True,
    type=click.Choice(["admin", "write", "read", "publishable"]),
)
@click.option("--json", "as_json", is_flag=True, help="Print {org_id, api_key} as JSON.")
def orgs_create(name: str, role: str, as_json: bool) -> None:
    """Create an org and its first API key (shown once)."""
    from cartrecovery import audit, tenancy
    from cartrecovery.db import Database

    name = name.strip()
    if not name:
        raise click.BadParameter("must not be empty", param_hint="NAME")
    with services(need_redis=False) as svc:
        db = Database(svc.database_url)
        org_id = tenancy.create_org(db, name)
        api_key = tenancy.create_api_key(db, org_id, role, name="cli")
        audit.record(db, org_id, audit.cli_actor(), "orgs.create", str(org_id), {"role": role})
    if as_json:
        click.echo(json.dumps({"org_id": str(org_id), "api_key": api_key}))
    else:
        click.echo(f"org {name!r} created: {org_id}")
        click.echo(f"{role} API key (shown once): {api_key}")


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


@main.group()
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


@main.command("sync")
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


def _find_org(db, org: str) -> UUID:
    with db.system() as conn:
        try:
            row = conn.execute(
                "SELECT org_id FROM app.orgs WHERE org_id = %s", (UUID(org),)
            ).fetchone()
        except ValueError:
            rows = conn.execute("SELECT org_id FROM app.orgs WHERE name = %s", (org,)).fetchall()
            if len(rows) > 1:
                raise click.BadParameter(
                    f"{len(rows)} orgs are named {org!r}: pass the org id", param_hint="--org"
                ) from None
            row = rows[0] if rows else None
    if row is None:
        raise click.BadParameter(f"no org {org!r}", param_hint="--org")
    return row["org_id"]


# ---------------------------------------------------------------------------------------
# up / demo
# ---------------------------------------------------------------------------------------


def _fresh_metrics_dir(env: dict[str, str], home: Path) -> None:
    """One Prometheus multiprocess folder for the processes this command starts (gunicorn's
    workers; with ``up`` also the worker and scheduler). The default one, under the data
    folder, is emptied first: samples left by an earlier run would be summed with this one's.
    A folder the operator set is left as it is: other processes may be writing to it (its
    owner empties it before they start; docs/operations.md)."""
    import shutil

    if env.get("PROMETHEUS_MULTIPROC_DIR"):
        Path(env["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
        return
    folder = home / "prometheus"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(folder)


def _ingest_argv(host: str, port: int, workers: int = 2) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--no-control-socket",
        "-c",
        "python:ingest.gunicorn_conf",
        "-w",
        str(workers),
        "-b",
        f"{host}:{port}",
        "ingest.app:create_app()",
    ]


def _dashboard_argv(host: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(REPO / "dashboard" / "app.py"),
        "--server.port",
        str(port),
        "--server.address",
        host,
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        # No "Deploy" button or developer menu for the marketers using it.
        "--client.toolbarMode",
        "viewer",
    ]


def _cli_argv(command: str) -> list[str]:
    return [sys.executable, "-m", "cli.main", command]


def _run_children(children: list[tuple[str, list[str], dict]]) -> int:
    """Run children until a signal (exit 0) or until one of them exits (its code)."""
    from .supervisor import Supervisor

    supervisor = Supervisor()
    supervisor.handle_signals()
    for name, argv, env in children:
        supervisor.start(name, argv, env=env, cwd=REPO)
    exited = supervisor.watch()
    supervisor.stop()
    if exited:
        click.echo(f"{exited.name} exited with code {exited.returncode}", err=True)
        return exited.returncode or 1
    return 0


def _stack(
    host: str,
    port: int,
    dashboard_port: int,
    with_dagster: bool,
    dagster_port: int,
    with_mlflow: bool,
    mlflow_port: int,
    grace: float,
    demo: bool = False,
    seed: int | None = None,
    rate: float = 0.5,
) -> int:
    from .supervisor import Supervisor

    if with_dagster and not (REPO / "workspace.yaml").exists():
        raise click.ClickException(f"--with-dagster needs {REPO / 'workspace.yaml'}")
    supervisor = Supervisor(grace=grace)
    stopping = supervisor.handle_signals()
    say = lambda line: supervisor.log("cartrecovery", line)  # noqa: E731
    with services(need_redis=True) as svc:
        say("applying migrations")
        _upgrade(svc.database_url)
        env = svc.child_env()
        local_url = f"http://{host}:{port}"
        env.setdefault("APP_URL", local_url)
        _fresh_metrics_dir(env, svc.home)
        urls = {
            "ingest API": local_url,
            "health": f"{local_url}/api/health",
            "OpenAPI": f"{local_url}/api/openapi.json",
        }
        # Servers whose URL is printed only once they answer: (url, the address polled).
        later = {
            "dashboard": (
                f"http://{host}:{dashboard_port}",
                f"http://{host}:{dashboard_port}/_stcore/health",
            )
        }
        store = private_key = None
        if demo:
            from simulator.store import sendgrid_keypair

            from . import demo as demo_store

            private_key, public_key = sendgrid_keypair()
            if os.environ.get("SENDGRID_WEBHOOK_PUBLIC_KEY"):
                say("demo: replacing SENDGRID_WEBHOOK_PUBLIC_KEY with the simulator's key")
            env["SENDGRID_WEBHOOK_PUBLIC_KEY"] = public_key
            store = demo_store.prepare(svc)
            env["CARTRECOVERY_ORG"] = str(store.org_id)

        code = 0
        try:
            if with_mlflow:
                mlflow_url = f"http://{host}:{mlflow_port}"
                env["MLFLOW_TRACKING_URI"] = mlflow_url
                # MLflow's job runner (GenAI judges, not used here) ignores SIGTERM and
                # would only ever stop by SIGKILL after the grace period.
                mlflow_env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **env}
                supervisor.start("mlflow", _mlflow_argv(svc, host, mlflow_port), mlflow_env, REPO)
                later["MLflow"] = (mlflow_url, f"{mlflow_url}/health")
            supervisor.start("ingest", _ingest_argv(host, port), env, REPO)
            supervisor.start("worker", _cli_argv("worker"), env, REPO)
            supervisor.start("scheduler", _cli_argv("scheduler"), env, REPO)
            supervisor.start("dashboard", _dashboard_argv(host, dashboard_port), env, REPO)
            if with_dagster:
                from pipelines.dagster_instance import prepare_dagster_home

                # Dagster's runs, events and schedules live in the product database (its own
                # schema), so they survive restarts and any host can run the daemon.
                dagster_home = prepare_dagster_home(
                    Path(env.get("DAGSTER_HOME") or svc.home / "dagster"), svc.database_url
                )
                env["DAGSTER_HOME"] = str(dagster_home)
                supervisor.start(
                    "dagster",
                    [
                        str(BIN / "dagster"),
                        "dev",
                        "-w",
                        "workspace.yaml",
                        "-h",
                        host,
                        "-p",
                        str(dagster_port),
                    ],
                    env,
                    REPO,
                )
                dagster_url = f"http://{host}:{dagster_port}"
                later["Dagster"] = (dagster_url, f"{dagster_url}/server_info")

            if not wait_healthy(f"{local_url}/api/health", supervisor, timeout=90):
                if not stopping.is_set():
                    say("the ingest server did not become healthy")
                    code = 1
            else:
                tick = None
                if demo:
                    demo_store.ensure_campaign(svc, store, say)
                    tick = demo_store.simulator_tick(
                        svc, store, local_url, private_key, seed, rate, say
                    )
                for name, url in urls.items():
                    say(f"{name:<11} {url}")
                for name, (url, probe) in later.items():
                    announce_when_up(name, url, probe, say, stopping)
                if demo:
                    email, password = demo_store.demo_user(svc, store)
                    say(f"demo org    {store.org_id}")
                    say(f"demo key    {store.api_key}")
                    say(f"dashboard sign-in: {email} / {password}")
                    say(
                        f"try: curl -H 'Authorization: Bearer {store.api_key}' "
                        f"{local_url}/api/v1/analytics/dashboard"
                    )
                    # Dagster's sensor and schedule rebuild the marts when it runs; without
                    # it the demo rebuilds them every few minutes itself.
                    demo_store.warehouse_builds(
                        svc, say, stopping, None if with_dagster else WAREHOUSE_EVERY
                    )
                say("running; Ctrl-C stops everything")
                exited = supervisor.watch(tick=tick, interval=0.25)
                if exited is not None:
                    say(f"{exited.name} exited with code {exited.returncode}; stopping the rest")
                    code = 1
        finally:
            say("stopping")
            codes = supervisor.stop()
            say("stopped: " + ", ".join(f"{n}={c}" for n, c in codes.items()))
    return code


# The demo's marts catch up every minute (a build takes 10-20 s here).
WAREHOUSE_EVERY = 60.0


def announce_when_up(name: str, url: str, probe: str, say, stopping, timeout: float = 300.0):
    """Say ``name url`` once ``probe`` answers 200 (in a thread: the stack keeps running);
    say that it did not if ``timeout`` passes first."""
    import threading

    import requests

    def wait() -> None:
        deadline = time.monotonic() + timeout
        while not stopping.is_set() and time.monotonic() < deadline:
            try:
                if requests.get(probe, timeout=2).status_code == 200:
                    say(f"{name:<11} {url}")
                    return
            except requests.RequestException:
                pass
            stopping.wait(0.5)
        if not stopping.is_set():
            say(f"{name} did not answer at {probe} within {timeout:.0f}s")

    thread = threading.Thread(target=wait, name=f"announce-{name}", daemon=True)
    thread.start()
    return thread


def wait_healthy(url: str, supervisor, timeout: float = 60.0) -> bool:
    """Poll ``url`` until it answers 200; False if a child dies, a stop is requested or
    ``timeout`` passes."""
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if supervisor.exited() or supervisor.stopping.is_set():
            return False
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return True
        except requests.RequestException:
            pass
        supervisor.stopping.wait(0.25)
    return False


def _mlflow_argv(svc: Services, host: str, port: int) -> list[str]:
    from ml import tracking

    # The store `cartrecovery ml train` writes to: MLFLOW_TRACKING_URI when it names a
    # database (its own Postgres database), else the SQLite store under the data folder.
    backend = tracking.tracking_uri(svc.home)
    if backend.startswith(("http://", "https://")):  # a server cannot serve another server
        backend = tracking.local_uri(svc.home)
    artifacts = svc.home / "mlflow" / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    return [
        str(BIN / "mlflow"),
        "server",
        "--backend-store-uri",
        backend,
        "--artifacts-destination",
        str(artifacts),
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
    ]


# ---------------------------------------------------------------------------------------
# Command groups kept in modules of their own (``cli/<name>.py`` defining a click group that
# imports from this module only inside its commands) register here, one line each.
# ---------------------------------------------------------------------------------------

from pipelines.commands import warehouse  # noqa: E402

from .ml import ml  # noqa: E402
from .shopify import shopify  # noqa: E402
from .stats import stats  # noqa: E402
from .users import users  # noqa: E402

main.add_command(users)
main.add_command(stats)
main.add_command(warehouse)
main.add_command(shopify)
main.add_command(ml)

if __name__ == "__main__":
    main()

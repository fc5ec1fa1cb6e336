"""The `cartrecovery` command line (DESIGN.md, CLI contract).

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
from datetime import UTC, datetime
from pathlib import Path
from uuid import UUID

import click

from pipelines.commands import warehouse

from . import embedded
from .settings import Settings, with_overrides

REPO = Path(__file__).resolve().parents[1]
BIN = Path(sys.executable).parent

DEMO_ORG = "Demo Outfitters"
DEMO_SHOP = "demo-outfitters.myshopify.com"
DEMO_CAMPAIGN = "Default recovery"
DEMO_TIMEOUT_SECONDS = 20
DEMO_STEPS = [
    {
        "channel": "email",
        "delay_seconds": 5,
        "subject": "You left something in your cart",
        "template": "cart_reminder",
    },
    {
        "channel": "email",
        "delay_seconds": 600,
        "subject": "Still thinking it over?",
        "template": "cart_reminder",
    },
]

# What a store must be told to call, per platform (topic or scope -> URL path).
PLATFORM_WEBHOOKS: dict[str, dict[str, str]] = {
    "shopify": {
        "carts/create": "/api/webhooks/shopify/cart-create",
        "carts/update": "/api/webhooks/shopify/cart-update",
        "checkouts/create": "/api/webhooks/shopify/checkout-create",
        "checkouts/update": "/api/webhooks/shopify/checkout-update",
        "orders/create": "/api/webhooks/shopify/order-create",
        "customers/redact": "/api/webhooks/shopify/customers-redact",
        "customers/data_request": "/api/webhooks/shopify/customers-data-request",
        "shop/redact": "/api/webhooks/shopify/shop-redact",
    },
    "woocommerce": {
        "order.created": "/api/webhooks/woocommerce",
        "order.updated": "/api/webhooks/woocommerce",
    },
    "bigcommerce": {
        scope: "/api/webhooks/bigcommerce"
        for scope in (
            "store/cart/created",
            "store/cart/updated",
            "store/cart/abandoned",
            "store/cart/converted",
            "store/order/created",
        )
    },
    # The URL names the connection (Adobe's calls do not name the store).
    "magento": {"webhooks": "/api/webhooks/custom/{connection_id}"},
    "custom": {"events": "/api/webhooks/custom/{connection_id}"},
}


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
    from .db import close_pool

    close_pool(database_url)


def _upgrade(database_url: str) -> None:
    from .migrate import upgrade

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
    from delivery.worker import run_worker

    with services(need_redis=True) as svc:
        run_worker(svc.settings(), burst=burst, concurrency=concurrency, simple=simple)


@main.command()
def scheduler() -> None:
    """Run the scheduler tick (abandonment, campaign matching, due messages)."""
    from delivery.scheduler import run_forever

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
    from . import audit, tenancy
    from .db import Database

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


# Platform API credential options of `connections add`: option → (credential key, platforms).
CREDENTIAL_OPTIONS: dict[str, tuple[str, tuple[str, ...]]] = {
    "access_token": ("access_token", ("shopify", "bigcommerce")),
    "client_secret": ("client_secret", ("bigcommerce",)),
    "consumer_key": ("consumer_key", ("woocommerce",)),
    "consumer_secret": ("consumer_secret", ("woocommerce",)),
    "base_url": ("base_url", ("magento",)),
    "integration_token": ("integration_token", ("magento",)),
    "api_base_url": ("api_base_url", ("shopify", "bigcommerce", "woocommerce")),
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


def _store_key(platform: str, shop_domain: str) -> str:
    """The store key in the form the platform's adapter looks stores up by (WooCommerce:
    ``https://Shop.Example.com/`` → ``shop.example.com``)."""
    from ingest.adapters.registry import adapters

    adapter = adapters().get(platform)
    if adapter is None:
        return shop_domain
    try:
        return adapter.store_key(shop_domain)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--shop-domain") from exc


def _credentials(platform: str, options: dict) -> dict | None:
    """The credentials dict from the platform options; BadParameter for options that do
    not apply to ``platform`` or values that cannot work."""
    creds: dict = {}
    raw = options.pop("credentials_json", None)
    if raw:
        try:
            creds = json.loads(raw)
        except ValueError:
            creds = None
        if not isinstance(creds, dict):
            raise click.BadParameter("must be a JSON object", param_hint="--credentials")
    pem_path = options.pop("public_key_file", None)
    if pem_path:
        if platform != "magento":
            raise click.BadParameter("only for magento", param_hint="--public-key-file")
        creds["webhook_public_key_pem"] = _public_key_pem(pem_path)
    for name, value in options.items():
        if value is None:
            continue
        key, platforms = CREDENTIAL_OPTIONS[name]
        hint = "--" + name.replace("_", "-")
        if platform not in platforms:
            raise click.BadParameter(f"only for {', '.join(platforms)}", param_hint=hint)
        if not value.strip():
            raise click.BadParameter("must not be empty", param_hint=hint)
        if name in ("base_url", "api_base_url") and not value.startswith(("http://", "https://")):
            raise click.BadParameter("must be an http(s) URL", param_hint=hint)
        creds[key] = value.strip()
    return creds or None


def _public_key_pem(path: str) -> str:
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import rsa

    try:
        text = Path(path).read_text()
        key = serialization.load_pem_public_key(text.encode())
    except (OSError, ValueError) as exc:
        raise click.BadParameter(
            f"not a readable PEM public key: {exc}", param_hint="--public-key-file"
        ) from exc
    if not isinstance(key, rsa.RSAPublicKey):
        raise click.BadParameter(
            "Adobe Commerce signs with RSA: give an RSA public key", param_hint="--public-key-file"
        )
    return text


@main.group()
def connections() -> None:
    """Store connections (platform webhooks)."""


@connections.command("add")
@click.argument("platform", type=click.Choice(sorted(PLATFORM_WEBHOOKS), case_sensitive=False))
@click.option("--org", "org", required=True, help="Org id (or exact org name).")
@click.option("--shop-domain", required=True, help="e.g. my-store.myshopify.com")
@click.option(
    "--secret", default=None, help="Webhook signing secret of the store (generated when omitted)."
)
@click.option(
    "--json", "as_json", is_flag=True, help="Print {connection_id, webhook_urls} as JSON."
)
@_credential_options
def connections_add(
    platform: str,
    org: str,
    shop_domain: str,
    secret: str | None,
    as_json: bool,
    **credential_options,
) -> None:
    """Connect a store to an org and print the webhook URLs to configure.

    Platform API credentials (encrypted at rest) come from the platform options below or
    --credentials; they let BigCommerce/Magento fetch full carts and `sync` read history.
    """
    from . import audit, tenancy
    from .crypto import load_key, new_secret
    from .db import Database

    platform = platform.lower()
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
    urls = webhook_urls(settings.app_url, platform, connection_id)
    if as_json:
        body = {"connection_id": str(connection_id), "webhook_urls": urls}
        if generated:
            body["secret"] = secret
        click.echo(json.dumps(body))
        return
    click.echo(f"{platform} store {shop_domain} connected: {connection_id}")
    if generated:
        click.echo(f"webhook secret (shown once): {secret}")
    for topic, url in urls.items():
        click.echo(f"  {topic:<24} {url}")


def webhook_urls(app_url: str, platform: str, connection_id: UUID) -> dict[str, str]:
    """The URLs a store of ``platform`` must post to, by topic."""
    base = app_url.rstrip("/")
    return {
        topic: base + path.format(connection_id=connection_id)
        for topic, path in PLATFORM_WEBHOOKS[platform].items()
    }


@main.command("sync")
@click.argument(
    "platform", type=click.Choice(["shopify", "woocommerce", "bigcommerce"], case_sensitive=False)
)
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
    message being sent. See cartrecovery/sync.py for what each platform allows.
    """
    from dataclasses import asdict

    from . import sync, tenancy
    from .crypto import load_key
    from .db import Database

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
            raise click.ClickException(f"{exc} (run the same command again to resume)") from exc
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


def _ingest_argv(host: str, port: int, workers: int = 2) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--no-control-socket",
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
    ]


def _cli_argv(command: str) -> list[str]:
    return [sys.executable, "-m", "cartrecovery.cli", command]


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
        urls = {
            "ingest API": local_url,
            "health": f"{local_url}/api/health",
            "OpenAPI": f"{local_url}/api/openapi.json",
            "dashboard": f"http://{host}:{dashboard_port}",
        }
        store = private_key = None
        if demo:
            from ml.simulator import sendgrid_keypair

            private_key, public_key = sendgrid_keypair()
            if os.environ.get("SENDGRID_WEBHOOK_PUBLIC_KEY"):
                say("demo: replacing SENDGRID_WEBHOOK_PUBLIC_KEY with the simulator's key")
            env["SENDGRID_WEBHOOK_PUBLIC_KEY"] = public_key
            store = prepare_demo(svc)
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
                urls["MLflow"] = mlflow_url
            supervisor.start("ingest", _ingest_argv(host, port), env, REPO)
            supervisor.start("worker", _cli_argv("worker"), env, REPO)
            supervisor.start("scheduler", _cli_argv("scheduler"), env, REPO)
            supervisor.start("dashboard", _dashboard_argv(host, dashboard_port), env, REPO)
            if with_dagster:
                dagster_home = Path(env.get("DAGSTER_HOME") or svc.home / "dagster")
                dagster_home.mkdir(parents=True, exist_ok=True)
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
                urls["Dagster"] = f"http://{host}:{dagster_port}"

            if not wait_healthy(f"{local_url}/api/health", supervisor, timeout=90):
                if not stopping.is_set():
                    say("the ingest server did not become healthy")
                    code = 1
            else:
                tick = None
                if demo:
                    ensure_demo_campaign(svc, store, local_url, say)
                    tick = _demo_tick(svc, store, local_url, private_key, seed, rate, say)
                for name, url in urls.items():
                    say(f"{name:<11} {url}")
                if demo:
                    say(f"demo org    {store.org_id}")
                    say(f"demo key    {store.api_key}")
                    say(
                        f"try: curl -H 'Authorization: Bearer {store.api_key}' "
                        f"{local_url}/api/v1/analytics/dashboard"
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
    from .migrate import sqlalchemy_url

    mlflow_db = embedded.ensure_database(svc.database_url, "mlflow")
    artifacts = svc.home / "mlflow" / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    return [
        str(BIN / "mlflow"),
        "server",
        "--backend-store-uri",
        sqlalchemy_url(mlflow_db),
        "--artifacts-destination",
        str(artifacts),
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
    ]


@dataclass
class DemoStore:
    org_id: UUID
    api_key: str
    connection_id: UUID
    secret: str


def prepare_demo(svc: Services) -> DemoStore:
    """Idempotently create the demo org, a fresh admin key (older demo keys are revoked),
    the Shopify connection (its secret kept across runs) and a short abandonment timeout."""
    from . import tenancy
    from .crypto import load_key, new_secret
    from .db import Database

    settings = svc.settings()
    db = Database(svc.database_url)
    key = load_key(settings.encryption_key, settings.secret_key)
    with db.system() as conn:
        row = conn.execute(
            "SELECT org_id FROM app.orgs WHERE name = %s ORDER BY created_at LIMIT 1",
            (DEMO_ORG,),
        ).fetchone()
    org_id = row["org_id"] if row else tenancy.create_org(db, DEMO_ORG)
    existing = tenancy.find_connection(db, key, "shopify", DEMO_SHOP)
    if existing is not None and existing.org_id == org_id:
        secret, connection_id = existing.secret, existing.connection_id
    else:
        secret = new_secret(24)
        connection_id = tenancy.add_connection(db, key, org_id, "shopify", DEMO_SHOP, secret)
    with db.system() as conn:
        # The demo's customers live in many time zones; with quiet hours on, most reminders
        # would wait for their morning and the dashboard would sit still. A real org keeps
        # the 08:00-21:00 default.
        conn.execute(
            "UPDATE app.orgs SET abandonment_timeout_seconds = %s, settings = settings || "
            '\'{"quiet_hours": {"start": "00:00", "end": "24:00"}}\'::jsonb '
            "WHERE org_id = %s",
            (DEMO_TIMEOUT_SECONDS, org_id),
        )
        conn.execute(
            "UPDATE app.api_keys SET revoked_at = now() "
            "WHERE org_id = %s AND name = 'demo' AND revoked_at IS NULL",
            (org_id,),
        )
    api_key = tenancy.create_api_key(db, org_id, "admin", name="demo")
    return DemoStore(org_id, api_key, connection_id, secret)


def ensure_demo_campaign(svc: Services, store: DemoStore, base_url: str, say) -> None:
    """An active default campaign for the demo org: through the API when it exists,
    else written directly."""
    import requests
    from psycopg.types.json import Jsonb

    from .db import Database

    db = Database(svc.database_url)
    with db.tenant(store.org_id) as conn:
        row = conn.execute(
            "SELECT campaign_id, status FROM app.campaigns "
            "WHERE org_id = %s AND name = %s AND status <> 'archived'",
            (store.org_id, DEMO_CAMPAIGN),
        ).fetchone()
        if row is not None:
            if row["status"] != "active":
                conn.execute(
                    "UPDATE app.campaigns SET status = 'active', updated_at = now() "
                    "WHERE org_id = %s AND campaign_id = %s",
                    (store.org_id, row["campaign_id"]),
                )
            return
    body = {
        "name": DEMO_CAMPAIGN,
        "status": "active",
        "trigger_conditions": {},
        "sequence_steps": DEMO_STEPS,
    }
    try:
        response = requests.post(
            f"{base_url}/api/v1/campaigns",
            json=body,
            headers={"Authorization": f"Bearer {store.api_key}"},
            timeout=10,
        )
        if response.status_code in (200, 201):
            say(f"demo campaign {DEMO_CAMPAIGN!r} created through the API")
            return
        say(
            f"POST /api/v1/campaigns answered {response.status_code}: "
            f"{response.text[:200]}; writing the campaign directly"
        )
    except requests.RequestException as exc:
        say(f"POST /api/v1/campaigns failed ({exc}); writing the campaign directly")
    with db.tenant(store.org_id) as conn:
        conn.execute(
            "INSERT INTO app.campaigns (org_id, name, status, trigger_conditions, sequence_steps)"
            " VALUES (%s, %s, 'active', %s, %s)",
            (store.org_id, DEMO_CAMPAIGN, Jsonb({}), Jsonb(DEMO_STEPS)),
        )


def _demo_tick(svc, store: DemoStore, base_url: str, private_key, seed, rate, say):
    from ml.simulator import Behavior, StoreSimulator

    simulator = StoreSimulator(
        base_url,
        DEMO_SHOP,
        store.secret,
        seed=seed,
        sendgrid_private_key=private_key,
        database_url=svc.database_url,
        org_id=store.org_id,
        behavior=Behavior(
            abandonment_timeout=DEMO_TIMEOUT_SECONDS,
            # engaged shoppers, so recoveries show within the first minutes
            open_rate=0.7,
            click_rate=0.5,
            clicked_buy_rate=0.6,
            open_delay=(2.0, 8.0),
            order_delay=(3.0, 12.0),
        ),
        # messages of an earlier demo run against the same data are left alone
        engage_since=datetime.now(UTC),
    )
    last_report = [time.monotonic()]

    def tick() -> None:
        simulator.step(rate=rate)
        if time.monotonic() - last_report[0] >= 30:
            last_report[0] = time.monotonic()
            say("simulator: " + simulator.summary())
            while simulator.errors:
                say("simulator: " + simulator.errors.popleft())

    return tick


main.add_command(warehouse)

if __name__ == "__main__":
    main()

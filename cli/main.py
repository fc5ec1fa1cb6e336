"""The `cartrecovery` command line (docs/architecture.md, "Contracts").

With no ``DATABASE_URL`` the commands start (or join) the embedded PostgreSQL under
``CARTRECOVERY_HOME``; with no ``REDIS_URL`` the embedded Redis. The resolved URLs are passed
to every child process, so `up` works on a bare machine and the same commands run against
managed services by setting variables.

This module holds the group and the commands that start one part; where the services come
from is ``cli/services.py``, `up` and `demo` are ``cli/stack.py`` (with ``cli/demo.py``),
store connections and `sync` are ``cli/connections.py``, and each other group has a module of
its own, registered at the end.
"""

from __future__ import annotations

import json
import os
import sys

import click

from .services import _upgrade, services
from .stack import (
    _dashboard_argv,
    _fresh_metrics_dir,
    _ingest_argv,
    _run_children,
    _stack,
)

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


# ---------------------------------------------------------------------------------------
# Command groups kept in modules of their own (``cli/<name>.py`` defining a click group that
# imports from this module only inside its commands) register here, one line each.
# ---------------------------------------------------------------------------------------

from pipelines.commands import warehouse  # noqa: E402

from .api_keys import api_keys  # noqa: E402
from .connections import connections, sync_command  # noqa: E402
from .ml import ml  # noqa: E402
from .shopify import shopify  # noqa: E402
from .stats import stats  # noqa: E402
from .users import users  # noqa: E402

main.add_command(connections)
main.add_command(sync_command)
main.add_command(users)
main.add_command(api_keys)
main.add_command(stats)
main.add_command(warehouse)
main.add_command(shopify)
main.add_command(ml)

if __name__ == "__main__":
    main()

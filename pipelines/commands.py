"""``cartrecovery warehouse ...``: the dbt build from the command line.

The click group is registered by the CLI (``main.add_command(warehouse)``); the core package
never imports dbt, so the command lives here with the rest of the pipelines.
"""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager

import click

from cartrecovery import embedded
from cartrecovery.migrate import upgrade
from cartrecovery.settings import Settings
from pipelines.dbt_build import DbtError, prepare_manifest, run_dbt_build


@contextmanager
def _database_url() -> Iterator[str]:
    """DATABASE_URL, or the embedded server under CARTRECOVERY_HOME (started, migrated and
    stopped here, as the other commands do when DATABASE_URL is unset)."""
    settings = Settings.from_env()
    if settings.database_url:
        yield settings.database_url
        return
    home = settings.home
    home.mkdir(parents=True, exist_ok=True)
    click.echo(f"starting the embedded PostgreSQL under {home / 'pgdata'}", err=True)
    url = embedded.start_postgres(home)
    try:
        upgrade(url)
        yield url
    finally:
        embedded.stop_postgres(home)


@click.group()
def warehouse() -> None:
    """The analytics warehouse (the dbt project in dbt/)."""


@warehouse.command()
@click.option(
    "--full-refresh",
    is_flag=True,
    help="Rebuild incremental models from scratch (after changing a model or a window).",
)
@click.option(
    "--select",
    "select",
    multiple=True,
    metavar="SELECTOR",
    help="dbt selection (repeatable), e.g. fct_attribution+; default: everything.",
)
@click.option(
    "--tests",
    "tests",
    is_flag=True,
    help="Run the data and unit tests in an incremental build too (full and selected "
    "builds always run them).",
)
def build(full_refresh: bool, select: tuple[str, ...], tests: bool) -> None:
    """Run dbt build once, printing dbt's progress: a full or selected build with the data
    and unit tests; a plain incremental build runs the models only (see dbt/README.md).

    Exits 0 when every model and error-severity test passed, 1 otherwise."""
    with _database_url() as database_url:
        click.echo("warehouse: parsing the dbt project", err=True)
        try:
            prepare_manifest()
            run_dbt_build(
                database_url,
                list(select) or None,
                full_refresh=full_refresh,
                # None: run_dbt_build's default (tests in full and selected builds).
                tests=True if tests else None,
                on_line=click.echo,
            )
        except DbtError as exc:
            if exc.command and exc.command[0] == "parse":
                click.echo(exc.output, err=True)
            click.echo(f"warehouse: dbt {exc.command[0]} failed (exit {exc.returncode})", err=True)
            sys.exit(1)
    click.echo("warehouse: build finished", err=True)

"""Where the commands find PostgreSQL and Redis: the configured servers, else the embedded
ones under ``CARTRECOVERY_HOME`` (started or joined here), with migrations applied. The
resolved URLs are passed to every child process."""

from __future__ import annotations

import os
import sys
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

"""PostgreSQL access: one pool per process, and transactions scoped to a tenant.

Tenant transactions switch to the non-superuser role ``cartrecovery_app`` and set
``app.org_id`` for the transaction only, so the row-level security policies created by the
migrations restrict every statement to that org. System work (routing a webhook to its org,
the scheduler tick across orgs) runs as the connecting role, which owns the tables and so is
not subject to RLS.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import Any
from uuid import UUID

import psycopg
from psycopg.rows import dict_row
from psycopg_pool import ConnectionPool

APP_ROLE = "cartrecovery_app"

# The tenant scope in one statement: set_config('role', …, true) is SET LOCAL ROLE (the same
# setting, checked the same way: the session user must be a member of the role).
_SCOPE = "SELECT set_config('role', %s, true), set_config('app.org_id', %s, true)"
# A signed-in user's own scope (their user row, memberships and orgs; no org's data).
_USER_SCOPE = "SELECT set_config('role', %s, true), set_config('app.user_id', %s, true)"

Query = tuple[str, Sequence[Any] | dict[str, Any]]

_pools: dict[str, ConnectionPool] = {}
_lock = threading.Lock()


def get_pool(database_url: str, max_size: int = 10) -> ConnectionPool:
    """Return the process-wide pool for ``database_url`` (created on first use)."""
    with _lock:
        pool = _pools.get(database_url)
        if pool is None:
            pool = ConnectionPool(
                database_url,
                min_size=1,
                max_size=max_size,
                kwargs={"row_factory": dict_row, "autocommit": False},
                open=True,
                name="cartrecovery",
            )
            _pools[database_url] = pool
        return pool


def close_pool(database_url: str) -> None:
    """Close the pool for one URL (e.g. before stopping the server it points at)."""
    with _lock:
        pool = _pools.pop(database_url, None)
    if pool is not None:
        pool.close()


def close_pools() -> None:
    with _lock:
        for pool in _pools.values():
            pool.close()
        _pools.clear()


class Database:
    """Transactions against one database URL."""

    def __init__(self, url: str, max_size: int = 10):
        self.url = url
        self.pool = get_pool(url, max_size=max_size)

    @contextmanager
    def system(self) -> Iterator[psycopg.Connection]:
        """A transaction as the owning role: cross-org work only."""
        with self.pool.connection() as conn:
            with conn.transaction():
                yield conn

    @contextmanager
    def tenant(self, org_id: UUID | str) -> Iterator[psycopg.Connection]:
        """A transaction that can only see and write rows of ``org_id``."""
        with self.tenant_with(org_id) as (conn, _):
            yield conn

    @contextmanager
    def tenant_with(
        self, org_id: UUID | str, *queries: Query
    ) -> Iterator[tuple[psycopg.Connection, list[list[dict]]]]:
        """:meth:`tenant`, whose first statements are ``queries`` ((sql, params) pairs);
        yields the connection and each query's rows (``[]`` for statements returning none).

        They run as ``cartrecovery_app`` for ``org_id``, like everything after them; raising
        in the block rolls all of it back. (Sent one by one: psycopg's pipeline mode, which
        would send them with BEGIN in one round trip, cost more CPU per request than the
        round trips it saved in the ingest benchmark.)
        """
        with self.pool.connection() as conn:
            with conn.transaction():
                conn.execute(_SCOPE, (APP_ROLE, str(org_id)))
                cursors = [conn.execute(sql, params) for sql, params in queries]
                yield conn, [cur.fetchall() if cur.description else [] for cur in cursors]

    @staticmethod
    def scope(conn: psycopg.Connection, org_id: UUID | str) -> None:
        """Switch the current transaction to ``cartrecovery_app`` for ``org_id`` (one
        transaction may serve several orgs in turn: the ingest group commit)."""
        conn.execute(_SCOPE, (APP_ROLE, str(org_id)))

    @contextmanager
    def user(self, user_id: UUID | str | None) -> Iterator[psycopg.Connection]:
        """A transaction as ``cartrecovery_app`` that sees no org's data, only what the
        policies grant a user (``user_id``; None before sign-in): their own user row, their
        memberships and the orgs they belong to (migration 0012)."""
        with self.pool.connection() as conn:
            with conn.transaction():
                conn.execute(_USER_SCOPE, (APP_ROLE, "" if user_id is None else str(user_id)))
                yield conn


def connect(url: str, **kwargs) -> psycopg.Connection:
    """A single connection (for migrations, CLI one-offs, tests)."""
    return psycopg.connect(url, row_factory=dict_row, **kwargs)

"""Group commit of acknowledged webhooks: many requests, one transaction.

A request thread whose delivery can be applied later (``cartrecovery.applier``) hands its
raw event to this process's committer and waits. The first waiting thread becomes the
leader: it takes every event queued so far, writes them with one statement per org (claim,
raw event, pending change: ``applier.defer_query``) in one transaction, commits, and
releases the others; events queued meanwhile go to the next leader (up to ``LEADERS``
batches are written at once). So under load one commit
serves many requests (gunicorn ``gthread`` workers: several request threads per process),
and a lone request is written at once by its own thread (no hand-off to another thread).
A request is answered only after the commit that made its event durable.

The common batch (one store's requests: one org, one connection check) is one statement on
an autocommit connection: the statement is its own transaction, so there is no BEGIN,
tenant scope or COMMIT round trip. It runs as the owning role, the org id bound in every row
it writes and reads (``applier.defer_query``), so it needs no row-level-security scope. A
batch of several orgs or checks is one transaction with each org's tenant scope in turn.
Each leader holds a connection of its own (at most ``LEADERS`` per process) rather than
taking one from the pool per batch, which cost as much CPU as the statement's own round trip
(docs/BENCHMARKS.md, "Ingest: analysis"); a connection that failed is closed and replaced
on the next batch.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from dataclasses import dataclass, field
from uuid import UUID

import psycopg
from psycopg.rows import dict_row

from cartrecovery import applier
from cartrecovery.applier import Deferred
from cartrecovery.db import Database

# Batches written at once per process (see GroupCommitter); 1, 2 and 4 measured alike here
# (docs/BENCHMARKS.md, "Ingest: analysis").
LEADERS = 2


class StaleConnection(Exception):
    """The cached store connection no longer matches its row (nothing was written)."""


@dataclass(eq=False)
class _Item:
    org_id: UUID
    check: tuple | None  # (sql, params) confirming a cached connection, or None
    event: Deferred
    wake: threading.Event = field(default_factory=threading.Event)
    promoted: bool = False  # this item's thread is to lead the next batch
    finished: bool = False
    result: UUID | None = None
    error: BaseException | None = None

    def outcome(self) -> UUID | None:
        if self.error is not None:
            raise self.error
        return self.result


class GroupCommitter:
    """One per process and database (see :func:`committer`). At most ``leaders`` batches
    are written at once: one keeps every batch as large as possible; a few more overlap
    one batch's round trips with the next one's (the database is shared and busy)."""

    def __init__(
        self,
        db: Database,
        on_commit: Callable[[], None] = applier.wake,
        leaders: int = LEADERS,
    ):
        self.db = db
        self.on_commit = on_commit
        self.max_leaders = leaders
        self._lock = threading.Lock()
        self._queue: list[_Item] = []
        self._leaders = 0
        self._idle: list[psycopg.Connection] = []  # leaders' connections between batches
        self.batches = 0  # for tests and the benchmark's curiosity
        self.events = 0

    def store(self, org_id: UUID, event: Deferred, check: tuple | None = None) -> UUID | None:
        """Store ``event`` durably; its new event id, or None if its key was stored before.
        Raises StaleConnection when ``check`` finds the cached connection changed."""
        item = _Item(org_id, check, event)
        with self._lock:
            self._queue.append(item)
            if self._leaders < self.max_leaders:
                self._leaders += 1
                item.promoted = True
        while True:
            with self._lock:
                if item.finished:
                    return item.outcome()
                lead, item.promoted = item.promoted, False
                item.wake.clear()
            if lead:
                self._lead()
            else:
                item.wake.wait()

    def _lead(self) -> None:
        """Write what is queued as one batch, then pass the lead to a waiting request (or
        give it up when none waits)."""
        with self._lock:
            batch, self._queue = self._queue, []
        try:
            if batch:
                self._write(batch)
        except BaseException as exc:
            for it in batch:
                it.error = it.error or exc
        finally:
            with self._lock:
                for it in batch:
                    it.finished = True
                    it.wake.set()
                # Queued requests already promoted hold a lead of their own.
                successor = next((it for it in self._queue if not it.promoted), None)
                if successor is None:
                    self._leaders -= 1
                else:
                    successor.promoted = True
                    successor.wake.set()

    def _write(self, batch: list[_Item]) -> None:
        by_org: dict[UUID, dict[tuple | None, list[_Item]]] = {}
        for it in batch:
            # Requests of one store carry equal checks (their params hold a list: compare
            # their text): one statement per distinct check, which guards it.
            by_org.setdefault(it.org_id, {}).setdefault(
                it.check and _check_key(it.check), []
            ).append(it)
        conn = self._connection()
        try:
            if len(by_org) == 1 and len(groups := next(iter(by_org.values()))) == 1:
                # One statement, its own transaction (autocommit): see the module docstring.
                stored = self._write_group(conn, batch[0].org_id, next(iter(groups.values())))
            else:
                stored = False
                with conn.transaction():
                    for org_id in sorted(by_org, key=str):
                        self.db.scope(conn, org_id)
                        for items in by_org[org_id].values():
                            stored = self._write_group(conn, org_id, items) or stored
        except BaseException:
            conn.close()  # in doubt (a lost server, an interrupted statement): a fresh one
            raise
        with self._lock:
            self._idle.append(conn)
        self.batches += 1
        self.events += len(batch)
        if stored:
            self.on_commit()

    def _connection(self) -> psycopg.Connection:
        with self._lock:
            while self._idle:
                conn = self._idle.pop()
                if not conn.closed:
                    return conn
        return psycopg.connect(self.db.url, autocommit=True, row_factory=dict_row)

    def close(self) -> None:
        with self._lock:
            idle, self._idle = self._idle, []
        for conn in idle:
            conn.close()

    @staticmethod
    def _write_group(conn, org_id: UUID, items: list[_Item]) -> bool:
        """One statement for ``items`` (one org, one check); whether it stored a change."""
        first: dict[str, _Item] = {}
        for it in items:
            first.setdefault(it.event.dedup_key, it)
        query = applier.defer_query(org_id, [it.event for it in first.values()], items[0].check)
        rows = conn.execute(*query).fetchall()
        if rows and rows[-1]["dedup_key"] is None:
            for it in items:
                it.error = StaleConnection()
            return False
        ids = {r["dedup_key"]: r["event_id"] for r in rows}
        for it in items:
            if first.get(it.event.dedup_key) is it:
                it.result = ids.get(it.event.dedup_key)
        return any(ids.get(k) and it.event.change is not None for k, it in first.items())


def _check_key(check: tuple) -> tuple[str, str]:
    return check[0], repr(check[1])


# One per process and database URL, like the pools (``cartrecovery.db.get_pool``): its
# leaders' connections are then bounded by LEADERS per URL, however many Database objects
# (apps, tests) the process makes.
_committers: dict[str, GroupCommitter] = {}
_committers_lock = threading.Lock()


def committer(db: Database) -> GroupCommitter:
    """This process's committer for ``db``'s database."""
    with _committers_lock:
        found = _committers.get(db.url)
        if found is None:
            found = _committers[db.url] = GroupCommitter(db)
        return found


def close_all() -> None:
    """Close the committers' connections (a process stopping, a test dropping databases)."""
    with _committers_lock:
        found = list(_committers.values())
    for it in found:
        it.close()

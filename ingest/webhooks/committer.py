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
"""

from __future__ import annotations

import threading
import weakref
from collections.abc import Callable
from dataclasses import dataclass, field
from uuid import UUID

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
        by_org: dict[UUID, list[_Item]] = {}
        for it in batch:
            by_org.setdefault(it.org_id, []).append(it)
        stored = False
        with self.db.pool.connection() as conn, conn.transaction():
            for org_id in sorted(by_org, key=str):
                self.db.scope(conn, org_id)
                # Requests of one store carry equal checks (their params hold a list:
                # compare their text): one statement per distinct check, which guards it.
                groups: dict[tuple | None, list[_Item]] = {}
                for it in by_org[org_id]:
                    groups.setdefault(it.check and _check_key(it.check), []).append(it)
                for items in groups.values():
                    stored = self._write_group(conn, org_id, items) or stored
        self.batches += 1
        self.events += len(batch)
        if stored:
            self.on_commit()

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


_committers: weakref.WeakKeyDictionary[Database, GroupCommitter] = weakref.WeakKeyDictionary()
_committers_lock = threading.Lock()


def committer(db: Database) -> GroupCommitter:
    """This process's committer for ``db`` (one per Database object: its pool)."""
    with _committers_lock:
        found = _committers.get(db)
        if found is None:
            found = _committers[db] = GroupCommitter(db)
        return found

"""The applier: cart state of acknowledged webhooks, applied in batches after the
acknowledgement (docs/architecture.md, "Data flow").

A webhook whose change is a plain cart upsert (``carts.CartChange``) is acknowledged once its
raw event is durable and deduplicated: the request writes the dedup key, the raw event and a
``raw.pending_changes`` row holding the encoded change (:func:`defer_query`, one statement
for many requests, see ``ingest/webhooks/committer.py``). The applier then claims pending
rows with ``FOR UPDATE SKIP LOCKED``, applies each org's changes with the same set-based
upserts the inline path uses (``carts.upsert_carts``: one statement per table, changes of one
cart folded in event-time order), links the raw events to their carts and deletes the pending
rows, all in one transaction. Any number of processes may run it at once: a row is claimed by
one of them, and a process killed before its commit leaves the row for the next run.

Where it runs: a thread in every ``serve`` worker process (woken after each acknowledged
batch) and in the ``scheduler`` (polling, and once before every tick). Code that must see a
cart's latest state at once (orders, erasure, the scheduler) first calls :func:`drain` or
checks :func:`no_pending_changes_condition`.

**Historical sync pages exclude the org's changes.** A sync page (``integrations/sync.py``)
looks a checkout's cart up and stores it in one transaction; a webhook of the same checkout
applied meanwhile in another transaction would not see that cart, nor the page its cart,
and the checkout would become two carts (Shopify: one under the checkout id, one under the
token). So a page holds the org's change lock (:func:`lock_org_changes`, a transaction-level
advisory lock) exclusively, and every application of the org's changes holds it shared: the
applier tries it per org and leaves an org's rows pending while a page holds it (the next
batch applies them, after the page committed); :func:`drain` waits for it. Whoever comes
second sees the other's committed cart. No deadlock: the lock is taken before the pending
rows are claimed (drain) or without waiting (applier), and the page takes it first and then
never waits for pending rows (:func:`drain_unclaimed`).
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from itertools import groupby
from uuid import UUID

import msgspec
import psycopg

from . import telemetry
from .canonical import CanonicalCart
from .carts import mark_cart_converted, upsert_carts

log = logging.getLogger(__name__)

BATCH_SIZE = 1000
# After a wake-up, wait this long so one transaction serves the requests of that interval
# (fewer, larger batches); bounds part of the apply lag.
GATHER_SECONDS = 0.2
# Without a wake-up (events acknowledged by another process), look this often.
POLL_SECONDS = 0.25
BATCH_LOG_KEEP = "1 day"


class PendingChange(msgspec.Struct, kw_only=True):
    """What ``raw.pending_changes.change`` holds: a ``CartChange`` without its behaviour."""

    cart: CanonicalCart
    converted_at: datetime | None = None


class _StoredCart(CanonicalCart, kw_only=True):
    """A CanonicalCart read back from ``change``: it was checked and normalised when the
    request built it, so decoding skips that (phone parsing is most of a decode)."""

    def __post_init__(self) -> None:
        pass


class _StoredChange(PendingChange, kw_only=True):
    cart: _StoredCart


_ENCODER = msgspec.json.Encoder()
_DECODER = msgspec.json.Decoder(_StoredChange)


def encode_change(cart: CanonicalCart, converted_at: datetime | None) -> bytes:
    return _ENCODER.encode(PendingChange(cart=cart, converted_at=converted_at))


@dataclass(slots=True)
class Deferred:
    """One event to store now and (with ``change``) apply later."""

    source: str
    topic: str
    dedup_key: str  # namespaced (``events.namespaced_key``)
    payload_json: str
    headers_json: str
    connection_id: UUID | None = None
    occurred_at: datetime | None = None
    platform: str | None = None
    external_id: str | None = None
    change: bytes | None = None


# Claims the keys, appends the raw events and the pending changes of the new ones; returns
# the new keys with their event ids (a key missing from the answer was stored before). The
# caller passes each key once. A raw event whose cart exists already is linked to it now
# (the applier then has no raw event to update). With a guard (``{guard}``: a query that
# returns a row while the store's cached connection is unchanged), nothing is written unless
# it holds, and the one row ``(NULL, NULL)`` says it failed.
_DEFER = """
WITH ok AS ({guard}
), t AS (
    SELECT * FROM unnest(%b::text[], %b::text[], %b::text[], %b::uuid[], %b::timestamptz[],
                         %b::text[], %b::text[], %b::text[], %b::text[], %b::bytea[])
         AS t(dedup_key, source, topic, connection_id, occurred_at, payload, headers,
              platform, external_id, change)
), claim AS (
    INSERT INTO raw.event_keys (org_id, dedup_key, event_id)
    SELECT %b, dedup_key, gen_random_uuid() FROM t WHERE EXISTS (SELECT 1 FROM ok)
    ON CONFLICT DO NOTHING
    RETURNING dedup_key, event_id
), ev AS (
    INSERT INTO raw.events (org_id, event_id, source, topic, connection_id, cart_id,
                            dedup_key, occurred_at, payload, headers)
    SELECT %b, c.event_id, t.source, t.topic, t.connection_id,
           (SELECT k.cart_id FROM app.carts k WHERE k.org_id = %b AND k.platform = t.platform
              AND k.external_id = t.external_id),
           t.dedup_key, t.occurred_at, t.payload::jsonb, t.headers::jsonb
    FROM claim c JOIN t USING (dedup_key)
), pc AS (
    INSERT INTO raw.pending_changes (org_id, event_id, platform, external_id, change)
    SELECT %b, c.event_id, t.platform, t.external_id, t.change
    FROM claim c JOIN t USING (dedup_key)
    WHERE t.change IS NOT NULL
)
SELECT dedup_key, event_id FROM claim
UNION ALL
SELECT NULL, NULL WHERE NOT EXISTS (SELECT 1 FROM ok)
"""
_NO_GUARD = "SELECT 1"


def defer_query(
    org_id: UUID, events: Sequence[Deferred], guard: tuple[str, tuple] | None = None
) -> tuple[str, tuple]:
    """(sql, params) storing ``events`` (distinct keys) of one org, run in its tenant
    transaction, if ``guard`` ((sql, params) returning a row while it holds) holds; rows:
    ``dedup_key, event_id`` of the new ones, or one row of NULLs when the guard failed."""
    guard_sql, guard_params = guard or (_NO_GUARD, ())
    return _DEFER.format(guard=guard_sql), (
        *guard_params,
        [e.dedup_key for e in events],
        [e.source for e in events],
        [e.topic for e in events],
        [e.connection_id for e in events],
        [e.occurred_at for e in events],
        [e.payload_json for e in events],
        [e.headers_json for e in events],
        [e.platform for e in events],
        [e.external_id for e in events],
        [e.change for e in events],
        org_id,
        org_id,
        org_id,
        org_id,
    )


# --- applying --------------------------------------------------------------------------------


# One advisory lock key per org (a hash: two orgs sharing a key only wait for each other).
def _org_changes_key(org: str = "%s") -> str:
    return f"hashtextextended('cartrecovery:org-changes:' || {org}::text, 0)"


def lock_org_changes(conn: psycopg.Connection, org_id: UUID) -> None:
    """Hold the org's change lock exclusively until the transaction ends: no change of the
    org is applied by another transaction meanwhile (see module doc). Take it first in the
    transaction, and wait for no pending row after it (use :func:`drain_unclaimed`)."""
    conn.execute(f"SELECT pg_advisory_xact_lock({_org_changes_key()})", (org_id,))


def apply_pending(db, limit: int = BATCH_SIZE) -> int:
    """Apply pending changes of every org, one transaction per batch of ``limit``, until
    none is left that another applier has not claimed (or that waits for a sync page);
    returns how many were applied."""
    total = 0
    while True:
        with db.system() as conn:
            count = apply_batch(conn, limit=limit)
        total += count
        if count < limit:
            return total


def drain(conn: psycopg.Connection, org_id: UUID) -> int:
    """Apply every pending change of ``org_id`` in the caller's transaction (tenant or
    system), waiting for a sync page of the org in progress and for rows another applier
    holds (they are gone once it commits). For requests that act on carts at once: orders,
    erasure. The org's change lock is held shared until the transaction ends."""
    return apply_batch(conn, org_id=org_id, limit=None)


def drain_unclaimed(conn: psycopg.Connection, org_id: UUID) -> int:
    """Apply the pending changes of ``org_id`` no other transaction holds, waiting for
    nothing; for a caller holding :func:`lock_org_changes` (a sync page), which must not wait
    for pending rows: a drain that claimed them may be waiting for its lock."""
    return apply_batch(conn, org_id=org_id, limit=None, wait=False)


def apply_batch(
    conn: psycopg.Connection,
    org_id: UUID | None = None,
    limit: int | None = None,
    *,
    wait: bool = True,
) -> int:
    """Claim up to ``limit`` pending rows (all orgs, skipping rows other appliers hold and
    orgs a sync page holds; or all of ``org_id``'s: with ``wait``, after the org's change
    lock, waiting for rows others hold; without, skipping them) and apply them in the
    caller's transaction; returns how many were applied."""
    if org_id is None:
        rows = conn.execute(
            "SELECT org_id, event_id, received_at, seq, change FROM raw.pending_changes "
            "ORDER BY seq LIMIT %s FOR UPDATE SKIP LOCKED",
            (limit,),
        ).fetchall()
        rows = _without_locked_orgs(conn, rows)
    elif wait:
        # The lock first: once rows are claimed, waiting for a sync page that waits for
        # them would be a deadlock.
        conn.execute(f"SELECT pg_advisory_xact_lock_shared({_org_changes_key()})", (org_id,))
        rows = conn.execute(
            "SELECT org_id, event_id, received_at, seq, change FROM raw.pending_changes "
            "WHERE org_id = %s ORDER BY seq FOR UPDATE",
            (org_id,),
        ).fetchall()
    else:
        rows = conn.execute(
            "SELECT org_id, event_id, received_at, seq, change FROM raw.pending_changes "
            "WHERE org_id = %s ORDER BY seq FOR UPDATE SKIP LOCKED",
            (org_id,),
        ).fetchall()
    if not rows:
        return 0
    rows.sort(key=lambda r: str(r["org_id"]))  # org order = lock order across appliers
    lags: list[float] = []
    for org, group in groupby(rows, key=lambda r: r["org_id"]):
        lags += _apply_org(conn, org, list(group))
    conn.execute("INSERT INTO raw.applier_batches (lags_ms) VALUES (%s)", (lags,))
    telemetry.EVENTS_APPLIED.labels("webhook").inc(len(rows))
    return len(rows)


def _apply_org(conn: psycopg.Connection, org_id: UUID, rows: list[dict]) -> list[float]:
    try:
        with conn.transaction():  # a savepoint: a change that fails is retried alone
            _apply(conn, org_id, rows)
    except (psycopg.errors.TransactionRollbackError, psycopg.OperationalError):
        raise  # a deadlock or a lost connection: the whole batch is retried
    except Exception:
        if len(rows) == 1:
            # Kept in raw.events (it can be replayed from there); its state is not applied.
            log.exception("applying event %s failed: dropped from the queue", rows[0]["event_id"])
        else:
            for row in rows:
                _apply_org(conn, org_id, [row])
            return []
    # Deleting claims the rows for good; each row's lag is from its receipt to now.
    deleted = conn.execute(
        "DELETE FROM raw.pending_changes WHERE org_id = %s AND event_id = ANY(%s) "
        "RETURNING (extract(epoch FROM clock_timestamp() - received_at) * 1000)::real AS lag",
        (org_id, [r["event_id"] for r in rows]),
    ).fetchall()
    return [r["lag"] for r in deleted]


def _apply(conn: psycopg.Connection, org_id: UUID, rows: list[dict]) -> None:
    changes = [(row, _DECODER.decode(row["change"])) for row in rows]
    # Event-time order per cart (the store's update time, else arrival), so the fold in
    # upsert_carts sees each cart's changes as they happened.
    changes.sort(
        key=lambda rc: (rc[1].cart.source_updated_at or rc[0]["received_at"], rc[0]["seq"])
    )
    cart_ids = upsert_carts(conn, org_id, [c.cart for _, c in changes])
    for (_, change), cart_id in zip(changes, cart_ids, strict=True):
        if change.converted_at is not None:
            mark_cart_converted(conn, org_id, cart_id, change.converted_at)
    conn.execute(
        """
        UPDATE raw.events e SET cart_id = u.cart_id
        FROM unnest(%b::uuid[], %b::timestamptz[], %b::uuid[]) AS u(event_id, received_at, cart_id)
        WHERE e.org_id = %b AND e.event_id = u.event_id AND e.received_at = u.received_at
          AND e.cart_id IS DISTINCT FROM u.cart_id
        """,
        (
            [r["event_id"] for r, _ in changes],
            [r["received_at"] for r, _ in changes],
            cart_ids,
            org_id,
        ),
    )


def _without_locked_orgs(conn: psycopg.Connection, rows: list[dict]) -> list[dict]:
    """``rows`` but those of orgs whose change lock a sync page holds (the lock is taken
    shared, without waiting, for the others; their rows stay pending for the next batch)."""
    orgs = sorted({r["org_id"] for r in rows}, key=str)
    if not orgs:
        return rows
    locked = conn.execute(
        f"SELECT o AS org_id FROM unnest(%s::uuid[]) AS o "
        f"WHERE NOT pg_try_advisory_xact_lock_shared({_org_changes_key('o')})",
        (orgs,),
    ).fetchall()
    if not locked:
        return rows
    skip = {r["org_id"] for r in locked}
    return [r for r in rows if r["org_id"] not in skip]


# --- the scheduler's view --------------------------------------------------------------------

# A cart (alias ``c``) with acknowledged changes not yet applied: the scheduler leaves such
# carts alone until the applier has caught up with them. Matched by external id, and a cart
# stored under its checkout id (external id = checkout id, a Shopify checkout the sync
# imported first) also by that checkout id: it is the cart of a pending change naming the
# checkout id under its token (``carts._ADOPT`` re-keys it). That id is inside ``change``:
# read once per query for every pending row (an uncorrelated IN, hashed), only if such a
# cart is looked at.
_PENDING_BY_EXTERNAL_ID = (
    "EXISTS (SELECT 1 FROM raw.pending_changes p WHERE p.org_id = {c}.org_id "
    "AND p.platform = {c}.platform AND p.external_id = {c}.external_id)"
)
# Never NULL (NOT of it must be true for carts without a checkout id): the IN is reached
# only with a checkout id, and the subquery has no NULLs.
_PENDING_BY_CHECKOUT_ID = (
    "({c}.checkout_id IS NOT NULL AND {c}.external_id = {c}.checkout_id "
    "AND ({c}.org_id, {c}.platform, {c}.checkout_id) IN (SELECT q.org_id, q.platform, "
    "q.checkout_id FROM (SELECT p.org_id, p.platform, "
    "convert_from(p.change, 'UTF8')::jsonb #>> '{{cart,checkout_id}}' AS checkout_id "
    "FROM raw.pending_changes p OFFSET 0) q WHERE q.checkout_id IS NOT NULL))"
)


def no_pending_changes_condition(alias: str = "c") -> str:
    """SQL true for a cart (``alias``) without pending changes. Two NOTs ANDed, not NOT (…
    OR …): PostgreSQL then runs the first as an anti-join (under an OR, once per cart)."""
    return f"NOT {_PENDING_BY_EXTERNAL_ID} AND NOT {_PENDING_BY_CHECKOUT_ID}".format(c=alias)


def status(conn: psycopg.Connection) -> dict:
    """The applier's watermark and lag: events waiting, the oldest one's age, and the lag of
    the events applied in the last minute (p50/p99/max, ms from receipt to apply)."""
    pending = conn.execute(
        "SELECT count(*) AS n, min(received_at) AS oldest, "
        "extract(epoch FROM now() - min(received_at)) * 1000 AS age_ms "
        "FROM raw.pending_changes"
    ).fetchone()
    applied = conn.execute(
        """
        SELECT count(*) AS n,
               percentile_cont(0.5) WITHIN GROUP (ORDER BY lag) AS p50,
               percentile_cont(0.99) WITHIN GROUP (ORDER BY lag) AS p99,
               max(lag) AS max
        FROM raw.applier_batches b, unnest(b.lags_ms) AS lag
        WHERE b.applied_at > now() - interval '1 minute'
        """
    ).fetchone()
    return {
        "pending_events": pending["n"],
        "watermark": pending["oldest"].isoformat() if pending["oldest"] else None,
        "oldest_pending_ms": round(pending["age_ms"] or 0.0, 1),
        "applied_last_minute": applied["n"],
        "lag_ms": {
            k: round(applied[k], 1) if applied[k] is not None else None
            for k in ("p50", "p99", "max")
        },
    }


def purge_batch_log(db) -> None:
    with db.system() as conn:
        conn.execute(
            "DELETE FROM raw.applier_batches WHERE applied_at < now() - %s::interval",
            (BATCH_LOG_KEEP,),
        )


# --- the thread ------------------------------------------------------------------------------


class ApplierThread(threading.Thread):
    """Applies pending changes in the background: soon after :meth:`wake`, else every
    ``POLL_SECONDS``. Failures are logged and retried on the next round."""

    def __init__(self, db, poll: float = POLL_SECONDS, gather: float = GATHER_SECONDS):
        super().__init__(name="cartrecovery-applier", daemon=True)
        self.db = db
        self.poll = poll
        self.gather = gather
        self._wake = threading.Event()
        self._stopping = threading.Event()
        self._rounds = 0

    def wake(self) -> None:
        self._wake.set()

    def stop(self, timeout: float | None = 5.0) -> None:
        self._stopping.set()
        self._wake.set()
        self.join(timeout)

    def run(self) -> None:
        while not self._stopping.is_set():
            if self._wake.wait(self.poll) and self.gather:
                self._stopping.wait(self.gather)
            self._wake.clear()
            if self._stopping.is_set():
                break
            try:
                apply_pending(self.db)
                self._rounds += 1
                if self._rounds % 2000 == 1:
                    purge_batch_log(self.db)
            except Exception:
                log.exception("applying pending changes failed; retrying")
                self._stopping.wait(self.poll)


_thread: ApplierThread | None = None
_thread_lock = threading.Lock()


def start_thread(db) -> ApplierThread:
    """This process's applier thread (started once)."""
    global _thread
    with _thread_lock:
        if _thread is None or not _thread.is_alive():
            _thread = ApplierThread(db)
            _thread.start()
        return _thread


def stop_thread() -> None:
    global _thread
    with _thread_lock:
        thread, _thread = _thread, None
    if thread is not None:
        thread.stop()


def wake() -> None:
    """Tell this process's applier thread (if it runs one) that changes are waiting."""
    thread = _thread
    if thread is not None:
        thread.wake()

"""The RQ job that delivers one outgoing webhook (see ``cartrecovery.outgoing_webhooks``).

The job locks its ``app.webhook_deliveries`` row (``SKIP LOCKED``: a twin job already at work
makes this one a no-op) and posts only while the row is still 'enqueued', so a job that runs
twice, or a re-enqueued stale job, posts once per attempt. The POST happens inside that
locked transaction, bounded by the 5 s timeout, so the outcome (delivered, or the next attempt
scheduled in Postgres) commits together with the fact that the attempt was made.
"""

from __future__ import annotations

import logging

import requests
from rq import Queue

from cartrecovery import outgoing_webhooks as hooks
from cartrecovery.runtime import Runtime

from . import jobs

log = logging.getLogger(__name__)

JOB_TIMEOUT = 60
USER_AGENT = "cartrecovery-webhooks/1"

_session: requests.Session | None = None


def _http() -> requests.Session:
    # One session per worker process: connection reuse across deliveries to the same host.
    global _session
    if _session is None:
        _session = requests.Session()
        _session.headers["User-Agent"] = USER_AGENT
    return _session


def enqueue(runtime: Runtime, rows: list[dict]) -> int:
    """Enqueue one ``deliver`` job per claimed row (``org_id``, ``delivery_id``,
    ``attempts``) on the runtime's message queue; return the count."""
    if not rows:
        return 0
    q = jobs.queue(runtime)
    q.enqueue_many(
        [
            Queue.prepare_data(
                deliver,
                args=(str(r["org_id"]), str(r["delivery_id"])),
                job_id=f"webhook-{r['delivery_id']}-{r['attempts']}",
                timeout=JOB_TIMEOUT,
                result_ttl=0,
                failure_ttl=jobs.FAILURE_TTL,
                description=f"deliver webhook {r['delivery_id']}",
            )
            for r in rows
        ]
    )
    return len(rows)


def enqueue_due(runtime: Runtime, limit: int = 500) -> int:
    """Scheduler step: claim due deliveries, commit, then enqueue one RQ job per delivery on
    the runtime's queue. Returns how many were enqueued."""
    with runtime.db.system() as conn:
        rows = hooks.claim_due(conn, limit)
    return enqueue(runtime, rows)


def deliver(org_id: str, delivery_id: str) -> str:
    """Attempt one delivery; returns what happened: 'delivered', 'pending' (retry
    scheduled), 'failed' (attempts exhausted), 'cancelled' (subscription gone or disabled) or
    'skipped' (already handled, or another job holds it)."""
    runtime = jobs.current_runtime()
    with runtime.db.tenant(org_id) as conn:
        delivery = conn.execute(
            "SELECT d.org_id, d.delivery_id, d.subscription_id, d.event_type, d.body, "
            "d.attempts, d.status, s.url, s.status AS subscription_status "
            "FROM app.webhook_deliveries d "
            "LEFT JOIN app.webhook_subscriptions s USING (org_id, subscription_id) "
            "WHERE d.org_id = %s AND d.delivery_id = %s FOR UPDATE OF d SKIP LOCKED",
            (org_id, delivery_id),
        ).fetchone()
        if delivery is None or delivery["status"] != "enqueued":
            return "skipped"
        if delivery["subscription_status"] != "active":
            conn.execute(
                "UPDATE app.webhook_deliveries SET status = 'cancelled', updated_at = now(), "
                "last_error = 'subscription disabled' WHERE org_id = %s AND delivery_id = %s",
                (org_id, delivery_id),
            )
            return "cancelled"
        secret = hooks.subscription_secret(
            conn, runtime.encryption_key, org_id, delivery["subscription_id"]
        )
        body = hooks.encode_body(delivery["body"])
        headers = {
            "Content-Type": "application/json",
            hooks.SIGNATURE_HEADER: hooks.sign(secret, body),
            hooks.EVENT_HEADER: delivery["event_type"],
            hooks.DELIVERY_HEADER: str(delivery_id),
        }
        try:
            response = _http().post(
                delivery["url"],
                data=body,
                headers=headers,
                timeout=hooks.TIMEOUT_SECONDS,
                allow_redirects=False,
            )
        except requests.RequestException as exc:
            outcome = hooks.record_failure(conn, delivery, None, f"{type(exc).__name__}: {exc}")
            log.warning("webhook %s to %s failed: %s", delivery_id, delivery["url"], exc)
            return outcome["status"]
        if 200 <= response.status_code < 300:
            hooks.record_success(conn, delivery, response.status_code)
            return "delivered"
        outcome = hooks.record_failure(
            conn, delivery, response.status_code, f"HTTP {response.status_code}"
        )
        log.warning(
            "webhook %s to %s answered %s", delivery_id, delivery["url"], response.status_code
        )
        return outcome["status"]

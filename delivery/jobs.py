"""The RQ job that sends one outbox message, and how jobs are enqueued.

A job names its message (job id = message id) but RQ 3 does not deduplicate job ids, so the
database decides: the job locks the outbox row and sends only if it is still pending. A job
that runs twice therefore sends once. Provider failures are retried through Postgres (the row
goes back to 'scheduled' with a later due time) so retries survive a Redis loss too.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from rq import Queue

from cartrecovery.runtime import Runtime
from cartrecovery.settings import Settings

from . import gate, outbox
from .providers import OutgoingMessage, ProviderError, provider_for
from .render import RenderError, build_context, render

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
RETRY_DELAYS = (timedelta(seconds=60), timedelta(seconds=300))
JOB_TIMEOUT = 120
RESULT_TTL = 0  # nothing reads results; finished jobs are deleted at once
FAILURE_TTL = 7 * 24 * 3600

_runtime: Runtime | None = None


def configure(runtime: Runtime | None) -> None:
    """Use ``runtime`` for jobs run in this process (the worker and tests set it)."""
    global _runtime
    _runtime = runtime


def current_runtime() -> Runtime:
    """The process's Runtime, built once from the environment if nobody configured one."""
    if _runtime is None:
        configure(Runtime(Settings.from_env()))
    return _runtime


def queue(runtime: Runtime) -> Queue:
    return Queue(runtime.settings.queue_name, connection=runtime.redis)


def enqueue(runtime: Runtime, rows: list[dict]) -> int:
    """Enqueue one ``send_message`` job per row (``org_id``, ``message_id``); return count."""
    if not rows:
        return 0
    q = queue(runtime)
    q.enqueue_many([
        Queue.prepare_data(
            send_message, args=(str(r["org_id"]), str(r["message_id"])),
            job_id=str(r["message_id"]), timeout=JOB_TIMEOUT, result_ttl=RESULT_TTL,
            failure_ttl=FAILURE_TTL, description=f"send message {r['message_id']}",
        )
        for r in rows
    ])
    return len(rows)


def _load(conn, message: dict) -> tuple[dict | None, dict, dict | None]:
    cart = conn.execute(
        "SELECT * FROM app.carts WHERE org_id = %s AND cart_id = %s",
        (message["org_id"], message["cart_id"]),
    ).fetchone()
    org = conn.execute("SELECT name FROM app.orgs WHERE org_id = %s",
                       (message["org_id"],)).fetchone() or {}
    customer = None
    if cart is not None and cart.get("customer_id"):
        customer = conn.execute(
            "SELECT first_name, last_name, email FROM app.customers "
            "WHERE org_id = %s AND customer_id = %s",
            (message["org_id"], cart["customer_id"]),
        ).fetchone()
    return cart, org, customer


def send_message(org_id: str, message_id: str) -> str:
    """Send outbox message ``message_id`` of ``org_id`` at most once; return its new status.

    Returns 'skipped' when the row is gone, already handled, or not yet due.
    """
    runtime = current_runtime()
    with runtime.db.tenant(org_id) as conn:
        message = outbox.lock(conn, message_id)
        if message is None or message["status"] not in outbox.PENDING:
            return "skipped"
        if message["status"] == "scheduled" and not message["is_due"]:
            return "skipped"  # a stale duplicate job; the scheduler enqueues the row when due
        cart, org, customer = _load(conn, message)
        decision = gate.check(conn, message, cart)
        if decision is not None:
            outbox.set_status(conn, message, decision.status, decision.reason)
            log.info("message %s %s: %s", message_id, decision.status, decision.reason)
            return decision.status
        provider = provider_for(runtime, message["channel"])
        if provider is None:
            outbox.set_status(conn, message, "held", f"no_provider:{message['channel']}")
            return "held"
        try:
            rendered = render(message["template"], message["subject"],
                              build_context(cart, org, customer, message["recipient"]))
        except RenderError as exc:
            outbox.set_status(conn, message, "held", f"template_error: {exc}"[:1000])
            return "held"
        attempt = outbox.start_sending(conn, message)

    outgoing = OutgoingMessage(
        org_id=str(org_id), message_id=str(message["message_id"]),
        cart_id=str(message["cart_id"]), channel=message["channel"],
        recipient=message["recipient"], subject=rendered.subject, html=rendered.html,
        text=rendered.text, step_index=message["step_index"], sender_name=org.get("name"),
    )
    try:
        result = provider.send(outgoing)
    except ProviderError as exc:
        with runtime.db.tenant(org_id) as conn:
            if exc.retryable and attempt < MAX_ATTEMPTS:
                delay = RETRY_DELAYS[min(attempt, len(RETRY_DELAYS)) - 1]
                outbox.reschedule(conn, message, delay, f"retry {attempt}: {exc}"[:1000])
                log.warning("message %s attempt %s failed, retrying: %s", message_id, attempt,
                            exc)
                return "scheduled"
            outbox.set_status(conn, message, "failed", str(exc)[:1000])
        log.error("message %s failed after %s attempts: %s", message_id, attempt, exc)
        return "failed"
    except Exception as exc:
        # Unknown outcome (a bug, not a provider answer): never resend blindly.
        log.exception("message %s: unexpected error while sending", message_id)
        with runtime.db.tenant(org_id) as conn:
            outbox.set_status(conn, message, "failed", f"error: {exc}"[:1000])
        return "failed"
    with runtime.db.tenant(org_id) as conn:
        outbox.mark_sent(conn, message, result.provider, result.provider_message_id)
    return "sent"

"""The RQ job that sends one outbox message, and how jobs are enqueued.

A job names its message (job id = message id) but RQ 3 does not deduplicate job ids, so the
database decides: the job locks the outbox row and sends only if it is still pending. A job
that runs twice therefore sends once. Provider failures are retried through Postgres (the row
goes back to 'scheduled' with a later due time) so retries survive a Redis loss too.

Order inside the locked transaction: the compliance gate (cancel, hold or defer with a reason),
then the step's coupon (created only now that the message will go; a store API failure holds
or retries the message, so no message promises a code that does not exist), then rendering
(a template error holds the message), then the provider call after commit.

A provider's permanent refusal is kept on the row (``provider``, ``delivery_error_code``) with
a reason of its own: ``invalid_phone``, ``suppressed:stop``, ``push_subscription_gone`` (the
push service answered 404/410), else ``failed``. Holds the worker would otherwise keep quiet
about (template errors, provider refusals) are logged as warnings: the worker's default level.
"""

from __future__ import annotations

import logging
from datetime import timedelta

from rq import Queue, get_current_job

from cartrecovery import discounts, logs, outgoing_webhooks, telemetry
from cartrecovery.org_settings import get_settings
from cartrecovery.rendering import RenderError, build_context, render
from cartrecovery.runtime import Runtime
from cartrecovery.settings import Settings
from cartrecovery.signed_links import unsubscribe_url

from . import coupons, gate, outbox
from .providers import OutgoingMessage, ProviderError, provider_for

log = logging.getLogger(__name__)

MAX_ATTEMPTS = 3
RETRY_DELAYS = (timedelta(seconds=60), timedelta(seconds=300))
JOB_TIMEOUT = 120
# The reason of a message whose send may or may not have reached the provider.
UNKNOWN_OUTCOME = "unknown_outcome"
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
    q.enqueue_many(
        [
            Queue.prepare_data(
                send_message,
                args=(str(r["org_id"]), str(r["message_id"])),
                job_id=str(r["message_id"]),
                timeout=JOB_TIMEOUT,
                result_ttl=RESULT_TTL,
                failure_ttl=FAILURE_TTL,
                description=f"send message {r['message_id']}",
                # The request or tick that enqueued it, for the job's log lines.
                meta={"request_id": logs.REQUEST_ID.get() or logs.new_request_id("job-")},
            )
            for r in rows
        ]
    )
    return len(rows)


def _load(conn, message: dict) -> tuple[dict | None, dict, dict]:
    """The cart, the org (name, settings jsonb, and the merged ``org_settings``), the
    customer (every column; {} when unknown)."""
    cart = conn.execute(
        "SELECT * FROM app.carts WHERE org_id = %s AND cart_id = %s",
        (message["org_id"], message["cart_id"]),
    ).fetchone()
    org = (
        conn.execute(
            "SELECT name, settings FROM app.orgs WHERE org_id = %s", (message["org_id"],)
        ).fetchone()
        or {}
    )
    org = {**org, "org_settings": get_settings(conn, message["org_id"])}
    customer = gate.load_customer(conn, cart) if cart is not None else {}
    return cart, org, customer


def _step(conn, message: dict) -> dict | None:
    """The campaign step this message sends (as the campaign stores it now), or None."""
    row = conn.execute(
        "SELECT sequence_steps -> %s AS step FROM app.campaigns "
        "WHERE org_id = %s AND campaign_id = %s",
        (message["step_index"], message["org_id"], message["campaign_id"]),
    ).fetchone()
    step = row["step"] if row else None
    return step if isinstance(step, dict) else None


def _email_identity(org_settings: dict) -> dict:
    return (org_settings.get("sender_identities") or {}).get("email") or {}


def _sms_sender(org_settings: dict) -> str | None:
    identity = (org_settings.get("sender_identities") or {}).get("sms") or {}
    return identity.get("messaging_service_sid") or identity.get("from_number") or None


# Permanent provider outcomes that are compliance facts, not failures.
_PROVIDER_HOLDS = {
    "unsubscribed": "suppressed:stop",
    "invalid_number": "invalid_phone",
    "subscription_gone": "no_push_subscription",
}
# The push service itself answered 404/410 (the browser dropped the subscription): told apart
# from a push never attempted because no subscription was left (no_push_subscription).
PUSH_SUBSCRIPTION_GONE = "push_subscription_gone"


def _provider_hold(exc: ProviderError) -> str | None:
    reason = getattr(exc, "reason", None) or ""
    if reason == "subscription_gone" and getattr(exc, "code", None) is not None:
        return PUSH_SUBSCRIPTION_GONE
    return _PROVIDER_HOLDS.get(reason)


def send_message(org_id: str, message_id: str) -> str:
    """Send outbox message ``message_id`` of ``org_id`` at most once; return its new status.

    Returns 'skipped' when the row is gone, already handled, or not yet due.
    """
    job = get_current_job()
    token = logs.REQUEST_ID.set((job.meta.get("request_id") if job else None) or None)
    try:
        return _send_message(org_id, message_id)
    finally:
        logs.REQUEST_ID.reset(token)


def _send_message(org_id: str, message_id: str) -> str:
    runtime = current_runtime()
    with runtime.db.tenant(org_id) as conn:
        message = outbox.lock(conn, message_id)
        if message is None or message["status"] not in outbox.PENDING:
            return "skipped"
        if message["status"] == "scheduled" and not message["is_due"]:
            return "skipped"  # a stale duplicate job; the scheduler enqueues the row when due
        cart, org, customer = _load(conn, message)
        decision = gate.check(conn, message, cart, settings=org["org_settings"], customer=customer)
        if decision is not None:
            if decision.status == "deferred":
                outbox.defer(conn, message, decision.due_at, decision.reason)
                log.info(
                    "message %s deferred to %s: %s",
                    message_id,
                    decision.due_at.isoformat(),
                    decision.reason,
                )
                return "scheduled"
            outbox.set_status(conn, message, decision.status, decision.reason)
            log.info("message %s %s: %s", message_id, decision.status, decision.reason)
            return decision.status
        provider = provider_for(runtime, message["channel"])
        if provider is None:
            outbox.set_status(conn, message, "held", f"no_provider:{message['channel']}")
            return "held"
        step = _step(conn, message)
        context_args = dict(message=message, settings=runtime.settings)
        if message["channel"] == "email":
            context_args["unsubscribe_url"] = unsubscribe_url(
                runtime.settings.app_url,
                runtime.settings.secret_key,
                org_id,
                message["message_id"],
                message["cart_id"],
            )

        def rendered_with(coupon):
            context = build_context(
                cart, org, customer, message["recipient"], coupon=coupon, **context_args
            )
            return context, render(
                message["template"], message["subject"], context, channel=message["channel"]
            )

        coupon = None
        try:
            # discount_offered false: smart discount withheld the code (delivery/smart.py).
            if (
                discounts.offer_of(step) is not None
                and message.get("discount_offered") is not False
            ):
                # A dry run with a placeholder code first: a broken template must not leave a
                # real, unused code behind in the store.
                rendered_with(discounts.preview_coupon(step))
                # Savepoint: a failed coupon insert must not abort the row's transaction.
                with conn.transaction():
                    coupon = coupons.issue(conn, runtime, message, step, cart)
            context, rendered = rendered_with(coupon)
        except RenderError as exc:
            outbox.set_status(conn, message, "held", f"template_error: {exc}"[:1000])
            # Warning: the worker shows warnings by default, and a broken template holds
            # every message of its step until someone fixes it.
            log.warning("message %s held: template_error: %s", message_id, exc)
            return "held"
        except coupons.CouponError as exc:
            attempt = message["attempts"] + 1
            if exc.retryable and attempt < MAX_ATTEMPTS:
                conn.execute(
                    "UPDATE app.outbox SET attempts = attempts + 1 "
                    "WHERE org_id = %s AND message_id = %s",
                    (message["org_id"], message["message_id"]),
                )
                outbox.reschedule(
                    conn,
                    message,
                    RETRY_DELAYS[min(attempt, 2) - 1],
                    f"retry {attempt}: coupon_error: {exc}"[:1000],
                )
                return "scheduled"
            outbox.set_status(conn, message, "held", f"coupon_error: {exc}"[:1000])
            return "held"
        attempt = outbox.start_sending(conn, message)

    outgoing = OutgoingMessage(
        org_id=str(org_id),
        message_id=str(message["message_id"]),
        cart_id=str(message["cart_id"]),
        channel=message["channel"],
        recipient=message["recipient"],
        subject=rendered.subject,
        html=rendered.html,
        text=rendered.text,
        step_index=message["step_index"],
        sender_name=context["store"]["sender_name"] or org.get("name"),
        url=(rendered.data or {}).get("url") or context["restore_url"] or None,
        sender=(
            _sms_sender(org["org_settings"])
            if message["channel"] == "sms"
            else _email_identity(org["org_settings"]).get("from_email")
            if message["channel"] == "email"
            else None
        ),
        reply_to=_email_identity(org["org_settings"]).get("reply_to"),
        unsubscribe_group_id=_email_identity(org["org_settings"]).get("unsubscribe_group_id"),
        unsubscribe_url=context.get("unsubscribe_url") or None,
        template_id=(rendered.data or {}).get("template_id"),
        template_data=(rendered.data or {}).get("dynamic_template_data"),
    )
    try:
        result = provider.send(outgoing)
    except ProviderError as exc:
        telemetry.PROVIDER_ERRORS.labels(
            getattr(provider, "name", "") or "",
            "unknown_outcome"
            if exc.outcome_unknown
            else "retryable"
            if exc.retryable
            else "permanent",
        ).inc()
        with runtime.db.tenant(org_id) as conn:
            if exc.outcome_unknown:
                # Sent but unanswered: as for a send a dead worker interrupted, a duplicate
                # is worse than a missing message (see outbox.fail_interrupted).
                outbox.record_provider_answer(conn, message, getattr(provider, "name", None), None)
                outbox.set_status(conn, message, "failed", f"{UNKNOWN_OUTCOME}: {exc}"[:1000])
                log.error("message %s: outcome unknown, not re-sent: %s", message_id, exc)
                return "failed"
            if exc.retryable and attempt < MAX_ATTEMPTS:
                delay = RETRY_DELAYS[min(attempt, len(RETRY_DELAYS)) - 1]
                if exc.retry_after is not None:
                    # Never sooner than the provider asked.
                    delay = max(delay, timedelta(seconds=exc.retry_after))
                outbox.reschedule(conn, message, delay, f"retry {attempt}: {exc}"[:1000])
                log.warning("message %s attempt %s failed, retrying: %s", message_id, attempt, exc)
                return "scheduled"
            outbox.record_provider_answer(
                conn, message, getattr(provider, "name", None), getattr(exc, "code", None)
            )
            hold = _provider_hold(exc)
            if hold:
                outbox.set_status(conn, message, "held", hold)
                log.warning(
                    "message %s held by the provider's answer: %s (%s)", message_id, hold, exc
                )
                return "held"
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
        sent = outbox.mark_sent(conn, message, result.provider, result.provider_message_id)
        # The row as stored: the job's copy predates sent_at and the provider's id.
        outgoing_webhooks.emit(
            conn, org_id, "message.sent", outgoing_webhooks.message_data(sent or message)
        )
    # The worker's one line per message sent (RQ's own per-job lines are off, see worker.py).
    log.info(
        "message %s sent: %s step %s via %s",
        message_id,
        message["channel"],
        message["step_index"],
        result.provider,
    )
    return "sent"

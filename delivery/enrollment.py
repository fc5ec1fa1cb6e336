"""Abandonment and enrollment: idle carts become abandoned and join one campaign each.

Both happen in the scheduler's transaction, so a cart is marked abandoned exactly when its
enrollment and outbox rows are written; the unique keys on app.enrollments (org, cart) and
app.outbox (org, cart, campaign, step) make a second attempt a no-op.

Matching: the highest-priority active campaign whose trigger conditions hold and whose
re-entry cooldown does not exclude the customer. Carts of a store connection that is no longer
active are abandoned (the fact stays true) but never enrolled. Each step becomes one outbox
row with the step's channel, the recipient's address on that channel and the variant chosen
for the customer (``cartrecovery.assignment``: deterministic on org, step and customer, by
weight, or by a Thompson-sampling share for ``allocation: "thompson"``). A customer in the
campaign's holdout group gets the same rows with status ``held_out``: tracked, never sent.
"""

from __future__ import annotations

from datetime import timedelta
from decimal import Decimal, InvalidOperation
from typing import Any

import psycopg
from psycopg import sql
from psycopg.types.json import Jsonb

from cartrecovery import assignment, bandits
from cartrecovery.applier import no_pending_changes_condition
from cartrecovery.canonical import normalize_email
from cartrecovery.consents import InvalidAddress, to_e164

CHANNELS = ("email", "sms", "push")
# Kept for callers of the first version: the cart column holding each channel's address.
RECIPIENT_FIELD = {"email": "email", "sms": "phone"}


def push_table_exists(conn: psycopg.Connection) -> bool:
    """Whether web push subscriptions are stored in this database (migration 0003)."""
    row = conn.execute("SELECT to_regclass('app.push_subscriptions') IS NOT NULL AS ok")
    return row.fetchone()["ok"]


# A live subscription of the cart itself, of the snippet's cart id, or of its customer.
_PUSH_MATCH = """
  s.org_id = {c}.org_id
  AND (s.expiration_time IS NULL OR s.expiration_time > now())
  AND (s.cart_id = {c}.cart_id
       OR (s.external_cart_id IS NOT NULL AND s.external_cart_id = {c}.external_id)
       OR (s.customer_id IS NOT NULL AND s.customer_id = {c}.customer_id))
"""


def subscription_for(conn: psycopg.Connection, cart: dict) -> str | None:
    """The id of the newest live push subscription for the cart or its customer, or None."""
    if not push_table_exists(conn):
        return None
    row = conn.execute(
        f"""
        SELECT s.subscription_id FROM app.push_subscriptions s,
          (SELECT %s::uuid AS org_id, %s::uuid AS cart_id, %s::text AS external_id,
                  %s::uuid AS customer_id) c
        WHERE {_PUSH_MATCH.format(c="c")}
        ORDER BY s.updated_at DESC, s.created_at DESC LIMIT 1
        """,
        (cart["org_id"], cart["cart_id"], cart.get("external_id"), cart.get("customer_id")),
    ).fetchone()
    return str(row["subscription_id"]) if row else None


def subscription_live(conn: psycopg.Connection, org_id, subscription_id: str | None) -> bool:
    """Whether the push subscription still exists and has not expired."""
    if not subscription_id or not push_table_exists(conn):
        return False
    try:
        return conn.execute(
            "SELECT EXISTS (SELECT 1 FROM app.push_subscriptions WHERE org_id = %s "
            "AND subscription_id = %s::uuid AND (expiration_time IS NULL "
            "OR expiration_time > now())) AS ok",
            (org_id, subscription_id),
        ).fetchone()["ok"]
    except psycopg.errors.InvalidTextRepresentation:
        raise ValueError(f"not a subscription id: {subscription_id!r}") from None


def mark_abandoned(conn: psycopg.Connection, limit: int) -> list[dict]:
    """Active carts someone can be reached about (an email, a phone or a push subscription),
    idle past their org's timeout → 'abandoned' (returned). Carts the platform closed
    (``closed_at``, e.g. Shopify checkouts/delete) are left alone, and so are carts with
    acknowledged changes the applier has not applied yet (``cartrecovery.applier``)."""
    push = (
        f"OR EXISTS (SELECT 1 FROM app.push_subscriptions s WHERE {_PUSH_MATCH.format(c='c')})"
        if push_table_exists(conn)
        else ""
    )
    return conn.execute(
        f"""
        WITH idle AS (
          SELECT c.org_id, c.cart_id
          FROM app.carts c JOIN app.orgs o ON o.org_id = c.org_id
          WHERE c.status = 'active'
            AND c.closed_at IS NULL
            AND (NULLIF(c.email, '') IS NOT NULL OR NULLIF(c.phone, '') IS NOT NULL {push})
            AND c.last_activity_at < now() - make_interval(secs => o.abandonment_timeout_seconds)
            AND {no_pending_changes_condition("c")}
          ORDER BY c.last_activity_at
          LIMIT %s
          FOR UPDATE OF c SKIP LOCKED
        )
        UPDATE app.carts c
        SET status = 'abandoned', abandoned_at = now(), updated_at = now()
        FROM idle
        WHERE c.org_id = idle.org_id AND c.cart_id = idle.cart_id
        RETURNING c.*
        """,
        (limit,),
    ).fetchall()


def _decimal(value) -> Decimal | None:
    if value is None or isinstance(value, bool):
        return None
    try:
        return Decimal(str(value))
    except (InvalidOperation, ValueError):
        return None


def _item_keys(item: dict, fields: tuple[str, ...]) -> set[str]:
    keys = set()
    for field in fields:
        value = item.get(field)
        values = value if isinstance(value, list) else [value]
        keys.update(str(v).strip() for v in values if v is not None and str(v).strip())
    return keys


def _line_items(cart: dict) -> list[dict]:
    items = cart.get("line_items")
    return [i for i in items if isinstance(i, dict)] if isinstance(items, list) else []


LIST_CONDITIONS = (
    "products_include",
    "products_exclude",
    "collections_include",
    "collections_exclude",
    "platforms",
    "connection_ids",
)


def _listed(conditions: dict, key: str) -> set[str] | None:
    value = conditions.get(key)
    return None if value is None else {str(v).strip() for v in value}


# Facts about the cart's customer that need the database; the matcher asks only when a
# condition needs one.
FACTS = ("returning", "repeat")


def campaign_matches(conditions: dict | None, cart: dict, facts: dict | None = None) -> bool:
    """Whether a cart satisfies a campaign's trigger conditions (all of them, bounds inclusive).

    ``facts`` holds ``returning`` (the customer has an earlier order) and ``repeat`` (the
    customer abandoned an earlier cart); a condition on a fact that is not given fails. A
    condition that cannot be read matches nothing, so a bad campaign never sends widely.
    """
    conditions = conditions or {}
    if not isinstance(conditions, dict):
        return False
    if any(
        conditions.get(k) is not None and not isinstance(conditions[k], list)
        for k in LIST_CONDITIONS
    ):
        return False
    facts = facts or {}
    total = _decimal(cart.get("total_price")) or Decimal(0)
    items = _line_items(cart)
    count = cart.get("item_count")
    if not isinstance(count, int) or isinstance(count, bool):
        count = sum(int(_decimal(i.get("quantity")) or 0) for i in items)
    for key, value, check in (
        ("cart_value_min", total, lambda v, b: v >= b),
        ("cart_value_max", total, lambda v, b: v <= b),
        ("item_count_min", count, lambda v, b: v >= b),
        ("item_count_max", count, lambda v, b: v <= b),
    ):
        if conditions.get(key) is not None:
            bound = _decimal(conditions[key])
            if bound is None or not check(Decimal(value), bound):
                return False
    currency = conditions.get("currency")
    if currency and (cart.get("currency") or "").upper() != str(currency).upper():
        return False
    for kind, fields in (
        ("products", ("product_id", "variant_id", "sku")),
        ("collections", ("collections",)),
    ):
        keys = set().union(*(_item_keys(i, fields) for i in items)) if items else set()
        include, exclude = (
            _listed(conditions, f"{kind}_include"),
            _listed(conditions, f"{kind}_exclude"),
        )
        if include is not None and not (keys & include):
            return False
        if exclude is not None and keys & exclude:
            return False
    platforms = _listed(conditions, "platforms")
    if platforms is not None and str(cart.get("platform") or "") not in platforms:
        return False
    connections = _listed(conditions, "connection_ids")
    if connections is not None and str(cart.get("connection_id") or "") not in connections:
        return False
    for key, fact, when_true in (
        ("customer_type", "returning", "returning"),
        ("abandonment", "repeat", "repeat"),
    ):
        wanted = conditions.get(key)
        if wanted is None:
            continue
        if facts.get(fact) is None:
            return False
        if (wanted == when_true) != bool(facts[fact]):
            return False
    return True


def _same_customer(alias: str) -> str:
    """SQL: the row of ``alias`` belongs to the cart's customer (by customer id or email)."""
    return (
        f"(({alias}.customer_id IS NOT NULL AND {alias}.customer_id = %(customer_id)s) "
        f"OR ({alias}.email IS NOT NULL AND lower({alias}.email) = %(email)s))"
    )


def _customer_params(cart: dict) -> dict:
    return {
        "org_id": cart["org_id"],
        "cart_id": cart["cart_id"],
        "customer_id": cart.get("customer_id"),
        "email": normalize_email(cart.get("email")),
        "since": cart.get("abandoned_at") or cart.get("last_activity_at"),
    }


def customer_facts(conn: psycopg.Connection, cart: dict) -> dict:
    """``returning`` (an order of the customer before this cart's abandonment) and ``repeat``
    (another cart of the customer abandoned before this one)."""
    params = _customer_params(cart)
    if params["customer_id"] is None and params["email"] is None:
        return {"returning": False, "repeat": False}
    row = conn.execute(
        f"""
        SELECT
          EXISTS (SELECT 1 FROM app.orders o
                  WHERE o.org_id = %(org_id)s AND {_same_customer("o")}
                    AND o.cart_id IS DISTINCT FROM %(cart_id)s
                    AND o.ordered_at < %(since)s) AS returning,
          EXISTS (SELECT 1 FROM app.carts c
                  WHERE c.org_id = %(org_id)s AND {_same_customer("c")}
                    AND c.cart_id <> %(cart_id)s
                    AND c.abandoned_at IS NOT NULL AND c.abandoned_at < %(since)s) AS repeat
        """,
        params,
    ).fetchone()
    return {"returning": row["returning"], "repeat": row["repeat"]}


def in_cooldown(conn: psycopg.Connection, cart: dict, campaign: dict) -> bool:
    """Whether the cart's customer was enrolled in ``campaign`` within its re-entry cooldown."""
    seconds = campaign.get("reentry_cooldown_seconds")
    params = _customer_params(cart)
    if not seconds or (params["customer_id"] is None and params["email"] is None):
        return False
    return conn.execute(
        f"""
        SELECT EXISTS (
          SELECT 1 FROM app.enrollments e
          JOIN app.carts c ON c.org_id = e.org_id AND c.cart_id = e.cart_id
          WHERE e.org_id = %(org_id)s AND e.campaign_id = %(campaign_id)s
            AND e.cart_id <> %(cart_id)s AND {_same_customer("c")}
            AND e.enrolled_at > now() - make_interval(secs => %(seconds)s)
        ) AS hit
        """,
        {**params, "campaign_id": campaign["campaign_id"], "seconds": seconds},
    ).fetchone()["hit"]


def connection_active(conn: psycopg.Connection, cart: dict) -> bool:
    """False when the cart came through a store connection that is disabled or removed."""
    if not cart.get("connection_id"):
        return True
    row = conn.execute(
        "SELECT status FROM app.connections WHERE org_id = %s AND connection_id = %s",
        (cart["org_id"], cart["connection_id"]),
    ).fetchone()
    return row is not None and row["status"] == "active"


def _needs_facts(conditions: Any) -> bool:
    return isinstance(conditions, dict) and any(
        conditions.get(k) is not None for k in ("customer_type", "abandonment")
    )


def choose_campaign(conn: psycopg.Connection, cart: dict) -> dict | None:
    """The highest-priority active campaign of the cart's org whose conditions match and whose
    re-entry cooldown lets the customer in; None if there is none."""
    campaigns = conn.execute(
        """
        SELECT campaign_id, trigger_conditions, sequence_steps, reentry_cooldown_seconds,
               experiment
        FROM app.campaigns
        WHERE org_id = %s AND status = 'active'
        ORDER BY priority DESC, created_at, campaign_id
        """,
        (cart["org_id"],),
    ).fetchall()
    facts: dict | None = None
    for campaign in campaigns:
        conditions = campaign["trigger_conditions"]
        if facts is None and _needs_facts(conditions):
            facts = customer_facts(conn, cart)
        if campaign_matches(conditions, cart, facts) and not in_cooldown(conn, cart, campaign):
            return campaign
    return None


def choose_variant(
    conn: psycopg.Connection, cart: dict, campaign: dict, index: int, step: dict, customer: str
) -> dict | None:
    """The variant of step ``index`` for the cart's ``customer`` (an assignment unit); None
    for a step without variants. Fixed allocation splits by the variants' weights; Thompson
    allocation keeps a customer's earlier variant, else splits by the bandit's shares."""
    if not assignment.step_variants(step):
        return None
    org_id, campaign_id = cart["org_id"], campaign["campaign_id"]
    weights = None
    if step.get("allocation") == "thompson":
        earlier = bandits.earlier_variant(
            conn, org_id, campaign_id, index, cart["cart_id"], customer
        )
        for variant in assignment.step_variants(step):
            if variant.get("name") == earlier:
                return variant
        weights = bandits.current_weights(conn, org_id, campaign_id, index, step)
    return assignment.choose_variant(org_id, campaign_id, index, step, customer, weights)


def initial_status(held_out: bool, channel: str, recipient: str | None) -> tuple[str, str | None]:
    """An outbox row's first status and reason: ``held_out`` for the holdout group, ``held``
    for a push step without a subscription, else ``scheduled``."""
    if held_out:
        return "held_out", "holdout"
    if channel == "push" and recipient is None:
        return "held", "no_push_subscription"
    return "scheduled", None


def _customer(conn: psycopg.Connection, cart: dict) -> dict:
    if not cart.get("customer_id"):
        return {}
    return (
        conn.execute(
            "SELECT email, phone FROM app.customers WHERE org_id = %s AND customer_id = %s",
            (cart["org_id"], cart["customer_id"]),
        ).fetchone()
        or {}
    )


def recipient_for(
    conn: psycopg.Connection, cart: dict, channel: str, customer: dict | None = None
) -> str | None:
    """The cart's address on ``channel``: email lower-cased; phone in E.164 (as given if it
    cannot be parsed, so the gate can hold it with a reason); a push subscription id."""
    customer = customer if customer is not None else _customer(conn, cart)
    if channel == "email":
        return normalize_email(cart.get("email") or customer.get("email"))
    if channel == "sms":
        phone = (cart.get("phone") or customer.get("phone") or "").strip()
        if not phone:
            return None
        try:
            return to_e164(phone)
        except InvalidAddress:
            return phone
    if channel == "push":
        return subscription_for(conn, cart)
    return None


def enroll(conn: psycopg.Connection, cart: dict) -> int:
    """Enroll an abandoned cart and write its outbox rows; return how many rows were written.

    Each step becomes a row due at ``abandoned_at + delay_seconds`` with the step's channel,
    recipient and variant (its subject/template replace the step's). A push step without a
    subscription is written as held 'no_push_subscription'; every step of a held-out cart as
    'held_out' without a variant. A cart already enrolled, from an inactive connection, or
    with no matching campaign writes nothing. A step with ``smart_send_time``/``smart_discount``
    gets its due time, template and scoring columns from the champion models
    (delivery/smart.py; the fixed rules when there is none).
    """
    if not connection_active(conn, cart):
        return 0
    campaign = choose_campaign(conn, cart)
    if campaign is None:
        return 0
    enrollment = conn.execute(
        """
        INSERT INTO app.enrollments (org_id, cart_id, campaign_id) VALUES (%s, %s, %s)
        ON CONFLICT (org_id, cart_id) DO NOTHING
        RETURNING enrollment_id
        """,
        (cart["org_id"], cart["cart_id"], campaign["campaign_id"]),
    ).fetchone()
    if enrollment is None:
        return 0
    steps = campaign["sequence_steps"] if isinstance(campaign["sequence_steps"], list) else []
    customer = _customer(conn, cart)
    unit = assignment.customer_key(cart, customer)
    held_out = assignment.is_held_out(cart["org_id"], campaign, unit)
    written = 0
    for index, step in enumerate(steps):
        if not isinstance(step, dict):
            continue
        channel = step.get("channel") or "email"
        if channel not in CHANNELS:
            continue
        try:
            delay = max(0, int(step.get("delay_seconds") or 0))
        except (TypeError, ValueError):
            continue
        variant = None if held_out else choose_variant(conn, cart, campaign, index, step, unit)
        recipient = recipient_for(conn, cart, channel, customer)
        status, reason = initial_status(held_out, channel, recipient)
        due_at = cart["abandoned_at"] + timedelta(seconds=delay)
        template = (variant or {}).get("template") or step.get("template")
        scoring: dict = {}
        if status == "scheduled" and smart_step(step):
            due_at, template, scoring = _smart_plan(
                conn, cart, campaign, index, step, channel, recipient, variant, template, due_at
            )
        row = conn.execute(
            """
            INSERT INTO app.outbox (org_id, enrollment_id, cart_id, campaign_id, step_index,
                                    channel, recipient, subject, template, variant, due_at,
                                    status, reason, decided_at)
            VALUES (%s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s, %s,
                    CASE WHEN %s THEN now() END)
            ON CONFLICT (org_id, cart_id, campaign_id, step_index) DO NOTHING
            RETURNING message_id
            """,
            (
                cart["org_id"],
                enrollment["enrollment_id"],
                cart["cart_id"],
                campaign["campaign_id"],
                index,
                channel,
                recipient,
                (variant or {}).get("subject") or step.get("subject"),
                template,
                (variant or {}).get("name"),
                due_at,
                status,
                reason,
                status != "scheduled",
            ),
        ).fetchone()
        if row is not None and scoring:
            _record_scoring(conn, cart["org_id"], row["message_id"], scoring)
        written += row is not None
    return written


# ---- smart send time / smart discount (delivery/smart.py decides) -------------------------


def smart_step(step: dict) -> bool:
    """Whether the step asks the models (``smart_send_time`` or ``smart_discount``)."""
    return bool(step.get("smart_send_time") or step.get("smart_discount"))


def _smart_plan(conn, cart, campaign, index, step, channel, recipient, variant, template, due):
    """(due_at, template, scoring columns) as the champion models decide them."""
    from cartrecovery.org_settings import get_settings

    from . import smart  # imports the gate, which imports this module

    customer = (
        conn.execute(
            "SELECT * FROM app.customers WHERE org_id = %s AND customer_id = %s",
            (cart["org_id"], cart["customer_id"]),
        ).fetchone()
        if cart.get("customer_id")
        else None
    ) or {}
    decided = smart.plan(
        conn,
        cart=cart,
        campaign_id=campaign["campaign_id"],
        index=index,
        step=step,
        channel=channel,
        recipient=recipient,
        variant=(variant or {}).get("name"),
        template=template,
        fixed_due=due,
        settings=get_settings(conn, cart["org_id"]),
        customer=customer,
    )
    return decided.due_at, decided.template, decided.columns


def _record_scoring(conn: psycopg.Connection, org_id, message_id, scoring: dict) -> None:
    """The scoring columns of migration 0014 on the row just written."""
    conn.execute(
        sql.SQL("UPDATE app.outbox SET {} WHERE org_id = %s AND message_id = %s").format(
            sql.SQL(", ").join(sql.SQL("{} = %s").format(sql.Identifier(name)) for name in scoring)
        ),
        (*(Jsonb(v) if isinstance(v, dict) else v for v in scoring.values()), org_id, message_id),
    )

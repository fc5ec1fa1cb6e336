"""`cartrecovery demo`: a demo org with a Shopify connection, an active recovery campaign, and
the simulated store posting signed traffic at the running stack.

Everything is idempotent across runs against the same database: the org, the connection (its
secret kept) and the campaign are reused; older demo API keys are revoked.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import TYPE_CHECKING
from uuid import UUID

from cartrecovery import campaigns, tenancy
from cartrecovery.crypto import load_key, new_secret
from cartrecovery.db import Database
from cartrecovery.org_settings import update_settings

if TYPE_CHECKING:
    from .main import Services

ORG = "Demo Outfitters"
SHOP = "demo-outfitters.myshopify.com"
CAMPAIGN = "Default recovery"
TIMEOUT_SECONDS = 20
STEPS = [
    {
        "channel": "email",
        "delay_seconds": 5,
        "subject": "You left something in your cart",
        "template": "cart_reminder",
    },
    {
        "channel": "email",
        "delay_seconds": 600,
        "subject": "Still thinking it over?",
        "template": "cart_reminder",
    },
]


@dataclass
class DemoStore:
    org_id: UUID
    api_key: str
    connection_id: UUID
    secret: str


def prepare(svc: Services) -> DemoStore:
    """Idempotently create the demo org, a fresh admin key (older demo keys are revoked),
    the Shopify connection (its secret kept across runs) and a short abandonment timeout."""
    settings = svc.settings()
    db = Database(svc.database_url)
    key = load_key(settings.encryption_key, settings.secret_key)
    with db.system() as conn:
        row = conn.execute(
            "SELECT org_id FROM app.orgs WHERE name = %s ORDER BY created_at LIMIT 1", (ORG,)
        ).fetchone()
    org_id = row["org_id"] if row else tenancy.create_org(db, ORG)
    existing = tenancy.find_connection(db, key, "shopify", SHOP)
    if existing is not None and existing.org_id == org_id:
        secret, connection_id = existing.secret, existing.connection_id
    else:
        secret = new_secret(24)
        connection_id = tenancy.add_connection(db, key, org_id, "shopify", SHOP, secret)
    with db.tenant(org_id) as conn:
        # The demo's customers live in many time zones; with quiet hours on, most reminders
        # would wait for their morning and the dashboard would sit still. A real org keeps
        # the 08:00-21:00 default.
        update_settings(
            conn,
            org_id,
            {
                "abandonment_timeout_seconds": TIMEOUT_SECONDS,
                "quiet_hours": {"start": "00:00", "end": "24:00"},
            },
        )
        conn.execute(
            "UPDATE app.api_keys SET revoked_at = now() "
            "WHERE org_id = %s AND name = 'demo' AND revoked_at IS NULL",
            (org_id,),
        )
    api_key = tenancy.create_api_key(db, org_id, "admin", name="demo")
    return DemoStore(org_id, api_key, connection_id, secret)


def ensure_campaign(svc: Services, store: DemoStore, say: Callable[[str], None]) -> dict:
    """The demo org's active default campaign: created, or reactivated if paused."""
    db = Database(svc.database_url)
    with db.tenant(store.org_id) as conn:
        current = next(
            (c for c in campaigns.list_campaigns(conn, store.org_id) if c["name"] == CAMPAIGN),
            None,
        )
        if current is None:
            say(f"demo campaign {CAMPAIGN!r} created")
            return campaigns.create_campaign(
                conn,
                store.org_id,
                {"name": CAMPAIGN, "status": "active", "sequence_steps": STEPS},
            )
        if current["status"] != "active":
            say(f"demo campaign {CAMPAIGN!r} reactivated")
            return campaigns.update_campaign(
                conn, store.org_id, current["campaign_id"], {"status": "active"}
            )
        return current


def simulator_tick(
    svc: Services,
    store: DemoStore,
    base_url: str,
    private_key,
    seed: int | None,
    rate: float,
    say: Callable[[str], None],
) -> Callable[[], None]:
    """One step of the simulated store per call (the supervisor's tick), with a summary
    every 30 seconds."""
    from simulator.store import Behavior, StoreSimulator

    simulator = StoreSimulator(
        base_url,
        SHOP,
        store.secret,
        seed=seed,
        sendgrid_private_key=private_key,
        database_url=svc.database_url,
        org_id=store.org_id,
        behavior=Behavior(
            abandonment_timeout=TIMEOUT_SECONDS,
            # engaged shoppers, so recoveries show within the first minutes
            open_rate=0.7,
            click_rate=0.5,
            clicked_buy_rate=0.6,
            open_delay=(2.0, 8.0),
            order_delay=(3.0, 12.0),
        ),
        # messages of an earlier demo run against the same data are left alone
        engage_since=datetime.now(UTC),
    )
    last_report = [time.monotonic()]

    def tick() -> None:
        simulator.step(rate=rate)
        if time.monotonic() - last_report[0] >= 30:
            last_report[0] = time.monotonic()
            say("simulator: " + simulator.summary())
            while simulator.errors:
                say("simulator: " + simulator.errors.popleft())

    return tick

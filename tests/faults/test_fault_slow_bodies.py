"""Slow bodies (slowloris) against ``cartrecovery serve``: clients that send their body a
byte at a time. ``serve`` runs gunicorn's gthread workers (ingest/gunicorn_conf.py): a slow
client holds one of a worker's threads, not the worker, so every other request is answered
meanwhile; nothing half-read is stored, and the slow clients get no 5xx page. gunicorn's
worker timeout does not cut a gthread request short: a slow client holds its thread until it
gives up (measured and printed here), which is why production puts a reverse proxy that
buffers request bodies in front (docs/scaling.md).
"""

from __future__ import annotations

import socket
import threading
import time

import pytest
import requests
from harness import OwnPostgres, OwnRedis, Product, ProviderStandIn, Store, free_port, wait_for

pytestmark = pytest.mark.faults


@pytest.fixture()
def stack():
    pg, redis = OwnPostgres(), OwnRedis()
    stand_in = ProviderStandIn()
    product = Product(pg.url, redis.url, stand_in.url, GUNICORN_CMD_ARGS="--timeout 3")
    yield pg, redis, stand_in, product
    product.stop_all()
    stand_in.close()
    redis.close()
    pg.drop()


def _slow_client(port: int, path: str, headers: dict, outcome: dict) -> None:
    body = b'{"event": "cart_updated", "cart_data": {"cart_id": "slow"}}' + b" " * 200
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head += f"Content-Length: {len(body)}\r\n\r\n"
    started = time.monotonic()
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(head.encode())
        answer = b""
        try:
            for byte in body[:40]:
                sock.sendall(bytes([byte]))
                time.sleep(0.5)
            answer = sock.recv(4096)
        except OSError:
            pass
    outcome["answer"] = answer
    outcome["seconds"] = time.monotonic() - started


def test_slow_bodies_do_not_take_the_server_down(stack):
    pg, redis, _, product = stack
    store = Store(pg.url, redis.url)
    port = free_port()
    product.start("serve", "serve", "--port", str(port), "--workers", "2")
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: _healthy(base), message="ingest up")

    outcomes = [{} for _ in range(2)]
    slow = [
        threading.Thread(
            target=_slow_client, args=(port, "/api/v1/carts/track", store.headers, outcome)
        )
        for outcome in outcomes
    ]
    for thread in slow:
        thread.start()
    # Others while the slow clients hold a thread of each worker.
    statuses = []
    deadline = time.monotonic() + 25
    while any(t.is_alive() for t in slow) and time.monotonic() < deadline:
        try:
            statuses.append(requests.get(f"{base}/api/health", timeout=5).status_code)
        except requests.RequestException:
            statuses.append(None)
        time.sleep(0.3)
    for thread in slow:
        thread.join(timeout=60)
    after = [requests.get(f"{base}/api/health", timeout=5).status_code for _ in range(5)]
    print(
        f"\nslow clients held for {[round(o.get('seconds', 0), 1) for o in outcomes]} s, "
        f"answers meanwhile {sorted(set(statuses), key=str)} ({len(statuses)} requests), "
        f"answers to the slow clients {[o.get('answer', b'')[:12] for o in outcomes]}"
    )
    assert after == [200] * 5
    assert statuses and set(statuses) == {200}  # nobody waited on the slow clients
    for outcome in outcomes:
        assert not outcome["answer"].startswith(b"HTTP/1.1 5")
    with pg.db.system() as conn:
        stored = conn.execute(
            "SELECT count(*) AS n FROM raw.events WHERE org_id = %s", (store.org_id,)
        ).fetchone()["n"]
    assert stored == 0


def _healthy(base: str) -> bool:
    try:
        return requests.get(f"{base}/api/health", timeout=2).status_code == 200
    except requests.RequestException:
        return False

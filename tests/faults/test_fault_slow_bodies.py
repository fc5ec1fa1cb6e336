"""Slow bodies (slowloris) against ``cartrecovery serve``: clients that send their body a
byte at a time. gunicorn's worker timeout does not cut a gthread request short, so the app
puts a total deadline on reading the body (``BODY_TIMEOUT_SECONDS``, ingest/body_deadline.py):
here one worker with two threads faces a new slow client every 0.7 s, eight in all, each of
which would take 20 s to send its body. Without the deadline the first two would hold both
threads for 20 s and every fast request would wait for them; with it each slow client gets
``408`` after 2 s and its thread is free, so fast requests are answered while other slow
clients are still sending. Nothing half-read is stored.
"""

from __future__ import annotations

import select
import socket
import threading
import time

import pytest
import requests
from harness import Store, fault_stack, free_port, wait_for

pytestmark = pytest.mark.faults


@pytest.fixture()
def stack():
    with fault_stack(GUNICORN_CMD_ARGS="--threads 2", BODY_TIMEOUT_SECONDS="2") as parts:
        yield parts


def _slow_client(port: int, path: str, headers: dict, outcome: dict) -> None:
    """Sends the head at once, then the body a byte every 0.5 s (40 bytes: 20 s), and
    stops when the server answers."""
    body = b'{"event": "cart_updated", "cart_data": {"cart_id": "slow"}}' + b" " * 200
    head = f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
    head += "".join(f"{k}: {v}\r\n" for k, v in headers.items())
    head += f"Content-Length: {len(body)}\r\n\r\n"
    started = time.monotonic()
    outcome["started"] = started
    answer = b""
    with socket.create_connection(("127.0.0.1", port), timeout=60) as sock:
        sock.sendall(head.encode())
        try:
            for byte in body[:40]:
                sock.sendall(bytes([byte]))
                if select.select([sock], [], [], 0.5)[0]:
                    # The whole answer: until the server closes, or 2 s without more.
                    while select.select([sock], [], [], 2)[0] and (chunk := sock.recv(4096)):
                        answer += chunk
                    break
        except OSError:
            pass
    outcome["answer"] = answer
    outcome["seconds"] = time.monotonic() - started


def test_slow_bodies_do_not_take_the_server_down(stack):
    pg, redis, _, product = stack
    store = Store(pg.url, redis.url)
    port = free_port()
    product.start("serve", "serve", "--port", str(port), "--workers", "1")
    base = f"http://127.0.0.1:{port}"
    wait_for(lambda: _healthy(base), message="ingest up")

    outcomes = [{} for _ in range(8)]

    def _start_slow_clients():
        for outcome in outcomes:
            threading.Thread(
                target=_slow_client, args=(port, "/api/v1/carts/track", store.headers, outcome)
            ).start()
            time.sleep(0.7)

    starter = threading.Thread(target=_start_slow_clients)
    starter.start()

    def sending() -> int:  # slow clients started and not yet answered
        return sum(1 for o in outcomes if o.get("started") and "answer" not in o)

    # Fast requests meanwhile; each waits at most 5 s for a thread.
    answered = []  # (status, slow clients still sending when it was answered)
    deadline = time.monotonic() + 40
    while (starter.is_alive() or sending()) and time.monotonic() < deadline:
        try:
            status = requests.get(f"{base}/api/health", timeout=5).status_code
        except requests.RequestException:
            status = None
        answered.append((status, sending()))
        time.sleep(0.2)
    starter.join()
    wait_for(lambda: all("answer" in o for o in outcomes), timeout=40, message="slow clients")
    after = [requests.get(f"{base}/api/health", timeout=5).status_code for _ in range(5)]
    print(
        f"\nslow clients answered after {[round(o.get('seconds', 0), 1) for o in outcomes]} s "
        f"with {[o.get('answer', b'')[:12] for o in outcomes]}; fast requests while they were "
        f"sending (status, slow clients still sending): {answered}"
    )
    assert after == [200] * 5
    # Every fast request was answered (none waited 5 s for a thread), among them some while
    # more slow clients than the worker has threads were connected. Without the deadline the
    # first two slow clients hold both threads for 20 s and fast requests time out.
    assert answered and all(status == 200 for status, _ in answered), answered
    assert any(still > 2 for _, still in answered), answered
    for outcome in outcomes:
        assert outcome["answer"].startswith(b"HTTP/1.1 408"), outcome
        assert b"request_timeout" in outcome["answer"]
        assert outcome["seconds"] < 19  # cut by the server, before the client sent it all
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

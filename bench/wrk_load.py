"""wrk as the webhook load generator of ``bench/ingest.py`` (when ``wrk`` is on PATH).

wrk (C, event loop) costs far less CPU per request than a Python client, which matters when
the servers, PostgreSQL and the load generator share two CPUs. Its Lua script sends signed
Shopify ``checkouts/update`` deliveries: a pool of pre-signed checkout bodies (Shopify signs
the body only), each request with a fresh ``X-Shopify-Webhook-Id`` (run tag, wrk thread,
counter), so every request is a new event for deduplication while the checkouts are updated
again and again, as a store does. ``done()`` prints the summary and 1,000 latency quantiles
as JSON.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from pathlib import Path

WRK_THREADS = 2

_SCRIPT = r"""
local pool = dofile(%(pool)s)
local tag = "t"
local counter = 0
local next_id = 0

function setup(thread)
  thread:set("thread_id", next_id)
  next_id = next_id + 1
end

function init(args)
  if args[1] then tag = args[1] end
end

-- thread_id is a global each thread's state gets from setup() (thread:set).
function request()
  counter = counter + 1
  local item = pool[(counter * 7 + thread_id * 13) %% #pool + 1]
  local headers = {}
  for k, v in pairs(item.headers) do headers[k] = v end
  headers["X-Shopify-Webhook-Id"] = tag .. "-" .. thread_id .. "-" .. counter
  return wrk.format("POST", nil, headers, item.body)
end

function done(summary, latency, requests)
  local q = {}
  for i = 1, 1000 do q[i] = latency:percentile(i / 10.0) / 1000.0 end
  local e = summary.errors
  io.write("WRK-JSON " .. string.format(
    '{"requests": %%d, "duration_us": %%d, "connect": %%d, "read": %%d, "write": %%d, ' ..
    '"status": %%d, "timeout": %%d, "quantiles_ms": [%%s]}',
    summary.requests, summary.duration, e.connect, e.read, e.write, e.status, e.timeout,
    table.concat(q, ",")) .. "\n")
end
"""


def available() -> bool:
    return shutil.which("wrk") is not None


def _lua_string(value: str) -> str:
    level = 0
    while f"]{'=' * level}]" in value:
        level += 1
    eq = "=" * level
    return f"[{eq}[{value}]{eq}]"


def write_script(workdir: Path, requests: list[tuple[dict, bytes]]) -> Path:
    """The Lua script sending ``requests`` (headers, body) with fresh webhook ids."""
    items = []
    for headers, body in requests:
        kept = {k: v for k, v in headers.items() if k.lower() != "x-shopify-webhook-id"}
        head = ", ".join(f"[ {_lua_string(k)} ] = {_lua_string(v)}" for k, v in kept.items())
        items.append(f"{{headers = {{{head}}}, body = {_lua_string(body.decode())}}}")
    pool = workdir / "wrk_pool.lua"
    pool.write_text("return {\n" + ",\n".join(items) + "\n}\n")
    script = workdir / "wrk_webhooks.lua"
    script.write_text(_SCRIPT % {"pool": _lua_string(str(pool))})
    return script


def run(port: int, path: str, script: Path, connections: int, seconds: float, tag: str) -> dict:
    """One wrk run; returns its JSON summary (requests, duration_us, error counts,
    quantiles_ms[0..999] = p0.1 .. p100)."""
    cmd = [
        "wrk",
        f"-t{min(WRK_THREADS, connections)}",
        f"-c{connections}",
        f"-d{max(1, round(seconds))}s",
        "--timeout",
        "10s",
        "-s",
        str(script),
        f"http://127.0.0.1:{port}{path}",
        "--",
        tag,
    ]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True).stdout
    line = next(x for x in out.splitlines() if x.startswith("WRK-JSON "))
    return json.loads(line[len("WRK-JSON ") :])

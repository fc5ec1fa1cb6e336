"""``up`` and ``demo``: the processes of a deployment on one machine (ingest, worker,
scheduler, dashboard; Dagster and MLflow on request), started under one supervisor, their
URLs printed once they answer, and the demo's simulated store."""

from __future__ import annotations

import os
import sys
import time
from pathlib import Path

import click

from .services import BIN, REPO, Services, _upgrade, services

# ---------------------------------------------------------------------------------------
# up / demo
# ---------------------------------------------------------------------------------------


def _fresh_metrics_dir(env: dict[str, str], home: Path) -> None:
    """One Prometheus multiprocess folder for the processes this command starts (gunicorn's
    workers; with ``up`` also the worker and scheduler). The default one, under the data
    folder, is emptied first: samples left by an earlier run would be summed with this one's.
    A folder the operator set is left as it is: other processes may be writing to it (its
    owner empties it before they start; docs/operations.md)."""
    import shutil

    if env.get("PROMETHEUS_MULTIPROC_DIR"):
        Path(env["PROMETHEUS_MULTIPROC_DIR"]).mkdir(parents=True, exist_ok=True)
        return
    folder = home / "prometheus"
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True, exist_ok=True)
    env["PROMETHEUS_MULTIPROC_DIR"] = str(folder)


def _ingest_argv(host: str, port: int, workers: int = 2) -> list[str]:
    return [
        sys.executable,
        "-m",
        "gunicorn",
        "--no-control-socket",
        "-c",
        "python:ingest.gunicorn_conf",
        "-w",
        str(workers),
        "-b",
        f"{host}:{port}",
        "ingest.app:create_app()",
    ]


def _dashboard_argv(host: str, port: int) -> list[str]:
    return [
        sys.executable,
        "-m",
        "streamlit",
        "run",
        str(REPO / "dashboard" / "app.py"),
        "--server.port",
        str(port),
        "--server.address",
        host,
        "--server.headless",
        "true",
        "--browser.gatherUsageStats",
        "false",
        # No "Deploy" button or developer menu for the marketers using it.
        "--client.toolbarMode",
        "viewer",
    ]


def _cli_argv(command: str) -> list[str]:
    return [sys.executable, "-m", "cli.main", command]


def _run_children(children: list[tuple[str, list[str], dict]]) -> int:
    """Run children until a signal (exit 0) or until one of them exits (its code)."""
    from .supervisor import Supervisor

    supervisor = Supervisor()
    supervisor.handle_signals()
    for name, argv, env in children:
        supervisor.start(name, argv, env=env, cwd=REPO)
    exited = supervisor.watch()
    supervisor.stop()
    if exited:
        click.echo(f"{exited.name} exited with code {exited.returncode}", err=True)
        return exited.returncode or 1
    return 0


def _stack(
    host: str,
    port: int,
    dashboard_port: int,
    with_dagster: bool,
    dagster_port: int,
    with_mlflow: bool,
    mlflow_port: int,
    grace: float,
    demo: bool = False,
    seed: int | None = None,
    rate: float = 0.5,
) -> int:
    from .supervisor import Supervisor

    if with_dagster and not (REPO / "workspace.yaml").exists():
        raise click.ClickException(f"--with-dagster needs {REPO / 'workspace.yaml'}")
    supervisor = Supervisor(grace=grace)
    stopping = supervisor.handle_signals()
    say = lambda line: supervisor.log("cartrecovery", line)  # noqa: E731
    with services(need_redis=True) as svc:
        say("applying migrations")
        _upgrade(svc.database_url)
        env = svc.child_env()
        local_url = f"http://{host}:{port}"
        env.setdefault("APP_URL", local_url)
        _fresh_metrics_dir(env, svc.home)
        urls = {
            "ingest API": local_url,
            "health": f"{local_url}/api/health",
            "OpenAPI": f"{local_url}/api/openapi.json",
        }
        # Servers whose URL is printed only once they answer: (url, the address polled).
        later = {
            "dashboard": (
                f"http://{host}:{dashboard_port}",
                f"http://{host}:{dashboard_port}/_stcore/health",
            )
        }
        store = private_key = None
        if demo:
            from simulator.store import sendgrid_keypair

            from . import demo as demo_store

            private_key, public_key = sendgrid_keypair()
            if os.environ.get("SENDGRID_WEBHOOK_PUBLIC_KEY"):
                say("demo: replacing SENDGRID_WEBHOOK_PUBLIC_KEY with the simulator's key")
            env["SENDGRID_WEBHOOK_PUBLIC_KEY"] = public_key
            store = demo_store.prepare(svc)
            env["CARTRECOVERY_ORG"] = str(store.org_id)

        code = 0
        try:
            if with_mlflow:
                mlflow_url = f"http://{host}:{mlflow_port}"
                env["MLFLOW_TRACKING_URI"] = mlflow_url
                # MLflow's job runner (GenAI judges, not used here) ignores SIGTERM and
                # would only ever stop by SIGKILL after the grace period.
                mlflow_env = {"MLFLOW_SERVER_ENABLE_JOB_EXECUTION": "false", **env}
                supervisor.start("mlflow", _mlflow_argv(svc, host, mlflow_port), mlflow_env, REPO)
                later["MLflow"] = (mlflow_url, f"{mlflow_url}/health")
            supervisor.start("ingest", _ingest_argv(host, port), env, REPO)
            supervisor.start("worker", _cli_argv("worker"), env, REPO)
            supervisor.start("scheduler", _cli_argv("scheduler"), env, REPO)
            supervisor.start("dashboard", _dashboard_argv(host, dashboard_port), env, REPO)
            if with_dagster:
                from pipelines.dagster_instance import prepare_dagster_home

                # Dagster's runs, events and schedules live in the product database (its own
                # schema), so they survive restarts and any host can run the daemon.
                dagster_home = prepare_dagster_home(
                    Path(env.get("DAGSTER_HOME") or svc.home / "dagster"), svc.database_url
                )
                env["DAGSTER_HOME"] = str(dagster_home)
                supervisor.start(
                    "dagster",
                    [
                        str(BIN / "dagster"),
                        "dev",
                        "-w",
                        "workspace.yaml",
                        "-h",
                        host,
                        "-p",
                        str(dagster_port),
                    ],
                    env,
                    REPO,
                )
                dagster_url = f"http://{host}:{dagster_port}"
                later["Dagster"] = (dagster_url, f"{dagster_url}/server_info")

            if not wait_healthy(f"{local_url}/api/health", supervisor, timeout=90):
                if not stopping.is_set():
                    say("the ingest server did not become healthy")
                    code = 1
            else:
                tick = None
                if demo:
                    demo_store.ensure_campaign(svc, store, say)
                    tick = demo_store.simulator_tick(
                        svc, store, local_url, private_key, seed, rate, say
                    )
                for name, url in urls.items():
                    say(f"{name:<11} {url}")
                for name, (url, probe) in later.items():
                    announce_when_up(name, url, probe, say, stopping)
                if demo:
                    email, password = demo_store.demo_user(svc, store)
                    say(f"demo org    {store.org_id}")
                    say(f"demo key    {store.api_key}")
                    say(f"dashboard sign-in: {email} / {password}")
                    say(
                        f"try: curl -H 'Authorization: Bearer {store.api_key}' "
                        f"{local_url}/api/v1/analytics/dashboard"
                    )
                    # Dagster's sensor and schedule rebuild the marts when it runs; without
                    # it the demo rebuilds them every few minutes itself.
                    # After the first build (not before: both want the CPU), the first
                    # models, so MLflow and the Models page have something from the start.
                    mlflow_probe = later["MLflow"][1] if with_mlflow else None
                    demo_store.warehouse_builds(
                        svc,
                        say,
                        stopping,
                        None if with_dagster else WAREHOUSE_EVERY,
                        after_first=lambda: demo_store.first_models(
                            env, say, stopping, mlflow_probe
                        ),
                    )
                say("running; Ctrl-C stops everything")
                exited = supervisor.watch(tick=tick, interval=0.25)
                if exited is not None:
                    say(f"{exited.name} exited with code {exited.returncode}; stopping the rest")
                    code = 1
        finally:
            say("stopping")
            codes = supervisor.stop()
            say("stopped: " + ", ".join(f"{n}={c}" for n, c in codes.items()))
    return code


# The demo's marts catch up every minute (a build takes 10-20 s here).
WAREHOUSE_EVERY = 60.0


def announce_when_up(name: str, url: str, probe: str, say, stopping, timeout: float = 300.0):
    """Say ``name url`` once ``probe`` answers 200 (in a thread: the stack keeps running);
    say that it did not if ``timeout`` passes first."""
    import threading

    import requests

    def wait() -> None:
        deadline = time.monotonic() + timeout
        while not stopping.is_set() and time.monotonic() < deadline:
            try:
                if requests.get(probe, timeout=2).status_code == 200:
                    say(f"{name:<11} {url}")
                    return
            except requests.RequestException:
                pass
            stopping.wait(0.5)
        if not stopping.is_set():
            say(f"{name} did not answer at {probe} within {timeout:.0f}s")

    thread = threading.Thread(target=wait, name=f"announce-{name}", daemon=True)
    thread.start()
    return thread


def wait_healthy(url: str, supervisor, timeout: float = 60.0) -> bool:
    """Poll ``url`` until it answers 200; False if a child dies, a stop is requested or
    ``timeout`` passes."""
    import requests

    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if supervisor.exited() or supervisor.stopping.is_set():
            return False
        try:
            if requests.get(url, timeout=2).status_code == 200:
                return True
        except requests.RequestException:
            pass
        supervisor.stopping.wait(0.25)
    return False


def _mlflow_argv(svc: Services, host: str, port: int) -> list[str]:
    from ml import tracking

    # The store `cartrecovery ml train` writes to: MLFLOW_TRACKING_URI when it names a
    # database (its own Postgres database), else the SQLite store under the data folder.
    backend = tracking.tracking_uri(svc.home)
    if backend.startswith(("http://", "https://")):  # a server cannot serve another server
        backend = tracking.local_uri(svc.home)
    artifacts = svc.home / "mlflow" / "artifacts"
    artifacts.mkdir(parents=True, exist_ok=True)
    return [
        str(BIN / "mlflow"),
        "server",
        "--backend-store-uri",
        backend,
        "--artifacts-destination",
        str(artifacts),
        "--host",
        host,
        "--port",
        str(port),
        "--workers",
        "1",
        # One access-log line per tracking call would bury the demo's own lines while the
        # first models are logged (dozens of calls per run).
        "--uvicorn-opts",
        "--no-access-log",
    ]

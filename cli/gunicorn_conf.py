"""gunicorn settings of ``cartrecovery serve`` and ``up`` (``-c python:cli.gunicorn_conf``):
structured logs in every worker process, and a dead worker's Prometheus samples released
(multiprocess mode, ``cartrecovery/telemetry.py``). Command-line flags and
``GUNICORN_CMD_ARGS`` (e.g. ``--timeout``) still apply on top."""

from cartrecovery import logs, telemetry


def post_worker_init(worker):
    logs.configure()


def child_exit(server, worker):
    telemetry.mark_process_dead(worker.pid)

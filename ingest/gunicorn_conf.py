"""gunicorn settings of ``cartrecovery serve`` and ``up`` (``-c python:ingest.gunicorn_conf``).
Command-line flags and ``GUNICORN_CMD_ARGS`` (e.g. ``--timeout``) still apply on top.

``gthread`` workers: each process serves several requests at once on threads, and keeps
connections alive, so the webhook group commit (``ingest/webhooks/committer.py``) has
requests to gather into one transaction; sync workers serve one request at a time, so every
webhook would pay its own commit. Each worker process also runs the applier thread
(``cartrecovery/applier.py``), woken by its committer, so state follows the acknowledgement
within milliseconds. See docs/BENCHMARKS.md ("Ingest") for the measurements behind the choice.
Every worker writes structured logs, and a dead worker's Prometheus samples are released
(multiprocess mode, ``cartrecovery/telemetry.py``).
"""

from __future__ import annotations

from cartrecovery import logs, telemetry

worker_class = "gthread"
# Requests in flight per process: enough for the group commit to gather several while one
# transaction commits; more only adds context switches on a small machine.
threads = 8
# On a stop, in-flight requests (webhook acks take milliseconds) get this long; gthread workers
# would otherwise wait the default 30 s on idle keep-alive connections, past the 10 s after
# which `up` and `demo` kill what is left (cli/supervisor.py).
graceful_timeout = 8


def post_worker_init(worker) -> None:
    from cartrecovery import applier

    logs.configure()
    applier.start_thread(worker.wsgi.extensions["cartrecovery"].db)


def worker_exit(server, worker) -> None:
    from cartrecovery import applier
    from ingest.webhooks import committer

    applier.stop_thread()
    committer.close_all()


def child_exit(server, worker) -> None:
    telemetry.mark_process_dead(worker.pid)

"""A non-forking RQ worker that runs up to N jobs at once in a bounded pool of threads.

Sending a message is mostly waiting (row lock, a provider round trip of tens of
milliseconds), so one process can keep many sends in flight. The worker takes jobs from the
same RQ queue as any RQ worker, so ``jobs.enqueue``, the scheduler, ``/api/health/queues`` and
RQ's registries work unchanged, and it keeps RQ's own bookkeeping per job: the main thread
dequeues (``Queue.dequeue_any``: the job moves to RQ's intermediate queue) and registers the
execution (``prepare_execution``: StartedJobRegistry) before handing the job to a thread,
which runs ``BaseWorker.perform_job`` (finished / failed registries, result and failure TTLs,
exception handlers) exactly as SimpleWorker does. A job is dequeued only when a thread is
free, so no dequeued job waits in memory (a second copy of a running job waits in a thread
of its own, see ``_run``): if the process dies, RQ's maintenance fails the jobs it held
(intermediate queue, expired StartedJobRegistry entries) and the scheduler's stale-row pass
enqueues their still-'enqueued' outbox rows again; ``send_message`` re-checks the row, so a
job that runs twice sends once.

Job timeouts: ``UnixSignalDeathPenalty`` (SIGALRM) only works in the main thread, so jobs use
RQ's ``TimerDeathPenalty`` (an exception raised in the job's thread when ``job_timeout``
passes), the mechanism RQ itself uses where SIGALRM does not exist.

Shutdown: the first SIGINT/SIGTERM stops taking jobs and lets the in-flight ones finish
(provider calls have a timeout); a second one is a cold shutdown for RQ (``SystemExit``), but
running sends still complete before the process exits: a thread cannot be killed safely in
the middle of a send, and an abandoned send would leave its row 'sending'.

Threads share the process's Runtime: the Postgres pool (sized to the thread count by
``ensure_pool_size``), the Redis client and the providers' HTTP connections.
"""

from __future__ import annotations

import logging
import os
import signal
import threading
import time
from concurrent.futures import ThreadPoolExecutor

import redis
from psycopg_pool import ConnectionPool
from rq import SimpleWorker
from rq.defaults import DEFAULT_LOGGING_DATE_FORMAT, DEFAULT_LOGGING_FORMAT
from rq.exceptions import DequeueTimeout, NoSuchJobError, StopRequested
from rq.job import Job
from rq.queue import Queue
from rq.timeouts import TimerDeathPenalty
from rq.worker import WorkerStatus

from cartrecovery.db import get_pool

log = logging.getLogger(__name__)

CONCURRENCY_ENV = "CARTRECOVERY_WORKER_CONCURRENCY"
DEFAULT_CONCURRENCY = 16
# Seconds a blocking dequeue waits before the loop looks at stop requests, heartbeats and
# maintenance again. Short, so a warm shutdown of an idle worker is prompt.
POLL_SECONDS = 1
HEARTBEAT_SECONDS = 15.0
MAX_REDIS_BACKOFF_SECONDS = 30.0


def concurrency_from_env(default: int = DEFAULT_CONCURRENCY) -> int:
    """``CARTRECOVERY_WORKER_CONCURRENCY`` as a positive int, else ``default``."""
    value = os.environ.get(CONCURRENCY_ENV, "").strip()
    if not value:
        return default
    try:
        number = int(value)
    except ValueError:
        raise ValueError(f"{CONCURRENCY_ENV} must be a positive integer, got {value!r}") from None
    if number < 1:
        raise ValueError(f"{CONCURRENCY_ENV} must be a positive integer, got {value!r}")
    return number


def ensure_pool_size(database_url: str, size: int) -> ConnectionPool:
    """The process's Postgres pool for ``database_url``, grown to at least ``size``
    connections (a pool created earlier with a smaller ``max_size`` is resized)."""
    pool = get_pool(database_url, max_size=size)
    if pool.max_size < size:
        pool.resize(min_size=pool.min_size, max_size=size)
    return pool


class ThreadPoolWorker(SimpleWorker):
    """An RQ worker that performs up to ``concurrency`` jobs at once, each in a thread."""

    death_penalty_class = TimerDeathPenalty

    def __init__(self, *args, concurrency: int = DEFAULT_CONCURRENCY, **kwargs):
        if concurrency < 1:
            raise ValueError("concurrency must be at least 1")
        super().__init__(*args, **kwargs)
        self.concurrency = concurrency
        self._slots = threading.Semaphore(concurrency)
        self._in_flight = 0
        self._in_flight_lock = threading.Lock()
        self._all_done = threading.Condition(self._in_flight_lock)
        self._last_beat = 0.0
        # Job id -> set when the latest dequeued copy of that job is done (see ``_run``).
        self._running: dict[str, threading.Event] = {}
        self._running_lock = threading.Lock()
        self._previous_handlers: dict[int, object] = {}

    # --- signals ---------------------------------------------------------------------------

    def _install_signal_handlers(self):
        """Warm shutdown on the first SIGINT/SIGTERM (RQ's ``request_stop``, which only sets
        a flag here: the state is kept BUSY, see ``_shutdown``), cold on the second. Signals
        can only be handled in the main thread; elsewhere (tests, embedding) none are set."""
        if threading.current_thread() is not threading.main_thread():
            return
        for sig in (signal.SIGINT, signal.SIGTERM):
            self._previous_handlers[sig] = signal.getsignal(sig)
            signal.signal(sig, self.request_stop)

    def _restore_signal_handlers(self) -> None:
        for sig, handler in self._previous_handlers.items():
            signal.signal(sig, handler)
        self._previous_handlers.clear()

    def _shutdown(self):
        # RQ raises StopRequested into whatever the main thread is doing when the worker is
        # idle; this loop notices the flag within POLL_SECONDS instead, so a stop never
        # interrupts the bookkeeping of a job that was just dequeued.
        self._stop_requested = True
        try:
            self.set_shutdown_requested_date()
        except redis.RedisError:
            pass  # only informational; the stop itself must not fail
        log.info(
            "worker %s: warm shutdown, finishing %d in-flight job(s)", self.name, self._in_flight
        )

    # --- bookkeeping -----------------------------------------------------------------------

    def _begin(self) -> None:
        with self._in_flight_lock:
            self._in_flight += 1
            first = self._in_flight == 1
        if first:
            self.set_state(WorkerStatus.BUSY)

    def _end(self) -> None:
        with self._in_flight_lock:
            self._in_flight -= 1
            idle = self._in_flight == 0
            if idle:
                self._all_done.notify_all()
        if idle:
            try:
                self.set_state(WorkerStatus.IDLE)
            except redis.RedisError:
                log.warning("worker %s: could not record the idle state", self.name)

    def in_flight(self) -> int:
        with self._in_flight_lock:
            return self._in_flight

    def _wait_idle(self) -> None:
        with self._all_done:
            while self._in_flight:
                self._all_done.wait(POLL_SECONDS)

    def _beat(self) -> None:
        if time.monotonic() - self._last_beat >= HEARTBEAT_SECONDS:
            self.heartbeat()
            self._last_beat = time.monotonic()

    def _run(
        self,
        job: Job,
        queue: Queue,
        execution,
        prior: threading.Event | None,
        done: threading.Event,
    ) -> None:
        """In a pool thread: RQ's own perform_job (it records success or failure).

        RQ 3 enqueues a job id twice as two queue entries sharing one job hash, and RQ's
        bookkeeping assumes one execution per hash at a time (the first to finish deletes the
        hash under the other). A copy dequeued while another copy runs (``prior``) therefore
        waits for it, then runs only if the job still exists, exactly as it would after the
        other on a one-job-at-a-time worker (there, a deleted job is skipped silently).
        """
        job_id = job.id
        try:
            if prior is not None:
                prior.wait()
                try:
                    job = self.job_class.fetch(
                        job_id, connection=self.connection, serializer=self.serializer
                    )
                except NoSuchJobError:
                    queue.intermediate_queue.remove(job_id)
                    return
                execution = self.prepare_execution(job)
            self.perform_job(job, queue, execution)
        except Exception:  # perform_job handles job errors; this is a bookkeeping failure
            log.exception("worker %s: recording the outcome of job %s failed", self.name, job_id)
        finally:
            with self._running_lock:
                if self._running.get(job_id) is done:
                    del self._running[job_id]
            done.set()
            self._end()
            self._slots.release()

    def _start(self, executor: ThreadPoolExecutor, job: Job, queue: Queue) -> None:
        """Register the execution (StartedJobRegistry) and hand the job to a thread."""
        self._begin()
        with self._running_lock:
            prior = self._running.get(job.id)
            done = self._running[job.id] = threading.Event()
        try:
            # A copy of a running job registers its execution once it may run (``_run``).
            execution = None if prior else self.prepare_execution(job)
            executor.submit(self._run, job, queue, execution, prior, done)
        except BaseException:
            with self._running_lock:
                if self._running.get(job.id) is done:
                    del self._running[job.id]
            done.set()
            self._end()
            raise

    def _dequeue(self, burst: bool, backoff: list[float]) -> tuple[Job, Queue] | None:
        try:
            result = self.queue_class.dequeue_any(
                self._ordered_queues,
                None if burst else POLL_SECONDS,
                connection=self.connection,
                job_class=self.job_class,
                serializer=self.serializer,
                death_penalty_class=self.death_penalty_class,
            )
        except DequeueTimeout:
            return None
        except (redis.ConnectionError, redis.TimeoutError) as exc:
            log.error(
                "worker %s: Redis unavailable (%s), retrying in %.0f s", self.name, exc, backoff[0]
            )
            deadline = time.monotonic() + backoff[0]
            while not self._stop_requested and time.monotonic() < deadline:
                time.sleep(min(0.2, max(0.0, deadline - time.monotonic())))
            backoff[0] = min(backoff[0] * 2, MAX_REDIS_BACKOFF_SECONDS)
            return None
        backoff[0] = 1.0
        return result

    # --- the loop --------------------------------------------------------------------------

    def work(
        self,
        burst: bool = False,
        logging_level: str | None = "INFO",
        date_format: str = DEFAULT_LOGGING_DATE_FORMAT,
        log_format: str = DEFAULT_LOGGING_FORMAT,
        max_jobs: int | None = None,
    ) -> bool:
        """Take jobs while a thread is free; in ``burst`` mode return once the queues are
        empty and nothing is in flight; stop taking jobs after ``max_jobs``. Returns whether
        any job was taken. (RQ's ``with_scheduler``, ``max_idle_time`` and dequeue strategies
        are not supported: the product's scheduler enqueues due jobs itself.)"""
        self.bootstrap(logging_level, date_format, log_format)
        self._install_signal_handlers()
        executor = ThreadPoolExecutor(self.concurrency, thread_name_prefix=f"rq-{self.name}")
        taken = 0
        backoff = [1.0]
        try:
            while not self._stop_requested:
                self.check_for_suspension(burst)
                if self.should_run_maintenance_tasks:
                    self.run_maintenance_tasks()
                self._beat()
                if max_jobs is not None and taken >= max_jobs:
                    break
                if not self._slots.acquire(timeout=POLL_SECONDS):
                    continue  # every thread busy: look at stop requests and heartbeats
                handed_over = False
                try:
                    result = None if self._stop_requested else self._dequeue(burst, backoff)
                    if result is not None:
                        self._start(executor, *result)
                        handed_over = True  # the thread releases the slot
                        taken += 1
                finally:
                    if not handed_over:
                        self._slots.release()
                if result is None and burst:
                    if not self.in_flight():
                        break  # queues empty and nothing running: done
                    self._wait_idle()  # then look at the queues once more
        except StopRequested:
            pass
        except redis.exceptions.TimeoutError:
            log.error("worker %s: Redis connection timeout, quitting", self.name)
        except Exception:
            log.exception("worker %s: unexpected error, stopping after in-flight jobs", self.name)
            raise
        finally:
            try:
                self._wait_idle()
                executor.shutdown(wait=True)
            finally:
                self._restore_signal_handlers()
                self.teardown()
        log.info("worker %s: stopped after %d job(s)", self.name, taken)
        return bool(taken)

"""Start, watch and stop the child processes of `cartrecovery up`.

Each child runs in its own session (so its own process group): a Ctrl-C at the terminal
reaches only the supervisor, which then stops every group in an orderly way (SIGTERM, then
SIGKILL after a grace period), grandchildren included (gunicorn workers, Dagster's daemon
and code servers). Children's output is copied line by line, prefixed with their name.
"""

from __future__ import annotations

import collections
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import TextIO


@dataclass
class Child:
    name: str
    argv: list[str]
    process: subprocess.Popen
    lines: collections.deque = field(default_factory=lambda: collections.deque(maxlen=200))
    reader: threading.Thread | None = None

    @property
    def pid(self) -> int:
        return self.process.pid

    @property
    def returncode(self) -> int | None:
        return self.process.poll()


@dataclass(frozen=True)
class Exited:
    """A child that ended while it was expected to run."""

    name: str
    returncode: int


class Supervisor:
    """A set of named child processes that live and die together."""

    def __init__(self, out: TextIO | None = None, grace: float = 10.0):
        self.out = out if out is not None else sys.stdout
        self.grace = grace
        self.children: dict[str, Child] = {}
        self._write_lock = threading.Lock()
        self._stopping = threading.Event()
        self._width = 10

    # -- starting -----------------------------------------------------------------------
    def start(
        self,
        name: str,
        argv: Sequence[str],
        env: Mapping[str, str] | None = None,
        cwd: str | os.PathLike | None = None,
    ) -> Child:
        """Start ``argv`` as child ``name`` in a new process group; its output is prefixed."""
        if name in self.children:
            raise ValueError(f"a child named {name!r} is already running")
        environment = dict(os.environ if env is None else env)
        environment.setdefault("PYTHONUNBUFFERED", "1")  # so log lines arrive as they happen
        process = subprocess.Popen(
            list(argv),
            env=environment,
            cwd=cwd,
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        child = Child(name=name, argv=list(argv), process=process)
        self._width = max(self._width, len(name))
        child.reader = threading.Thread(
            target=self._copy_output, args=(child,), name=f"output-{name}", daemon=True
        )
        child.reader.start()
        self.children[name] = child
        return child

    def _copy_output(self, child: Child) -> None:
        for raw in iter(child.process.stdout.readline, b""):
            line = raw.decode("utf-8", "replace").rstrip("\n")
            child.lines.append(line)
            self.log(child.name, line)
        child.process.stdout.close()

    def log(self, name: str, line: str) -> None:
        """Write one line prefixed with ``name`` (thread-safe)."""
        with self._write_lock:
            try:
                self.out.write(f"{name:<{self._width}} | {line}\n")
                self.out.flush()
            except (ValueError, OSError):  # the stream was closed under us at exit
                pass

    # -- watching -----------------------------------------------------------------------
    def exited(self) -> list[Exited]:
        """Children that have ended (without waiting)."""
        return [
            Exited(c.name, c.returncode) for c in self.children.values() if c.returncode is not None
        ]

    def watch(
        self,
        until: threading.Event | None = None,
        tick: Callable[[], None] | None = None,
        interval: float = 0.5,
        timeout: float | None = None,
    ) -> Exited | None:
        """Block until a child exits (returned), ``until`` is set or ``timeout`` passes
        (None returned). ``tick`` is called between checks (the demo's simulator runs there).
        """
        until = until or self._stopping
        deadline = None if timeout is None else time.monotonic() + timeout
        while not until.is_set():
            dead = self.exited()
            if dead:
                return dead[0]
            if tick is not None:
                tick()
            if deadline is not None and time.monotonic() >= deadline:
                return None
            until.wait(interval)
        return None

    def handle_signals(self) -> threading.Event:
        """Make SIGINT/SIGTERM request a stop; a second signal kills the children at once.

        Returns the event the signals set, for :meth:`watch`. Main thread only.
        """

        def on_signal(signum, _frame):
            if self._stopping.is_set():
                self.kill()
            self._stopping.set()

        signal.signal(signal.SIGINT, on_signal)
        signal.signal(signal.SIGTERM, on_signal)
        return self._stopping

    @property
    def stopping(self) -> threading.Event:
        return self._stopping

    # -- stopping -----------------------------------------------------------------------
    def stop(self, grace: float | None = None) -> dict[str, int | None]:
        """Stop every child's process group: SIGTERM, then SIGKILL for what is left after
        ``grace`` seconds. Returns each child's exit code (negative: the signal)."""
        self._stopping.set()
        grace = self.grace if grace is None else grace
        for child in self.children.values():
            _signal_group(child.pid, signal.SIGTERM)
        deadline = time.monotonic() + grace
        for child in self.children.values():
            remaining = max(0.0, deadline - time.monotonic())
            try:
                child.process.wait(remaining)
            except subprocess.TimeoutExpired:
                pass
        # Grandchildren can outlive their parent in the group; whatever is left goes now.
        while any(_group_alive(c.pid) for c in self.children.values()):
            if time.monotonic() >= deadline:
                self.kill()
                break
            time.sleep(0.05)
        for child in self.children.values():
            child.process.wait()
            if child.reader is not None:
                child.reader.join(timeout=2)
        return {name: child.returncode for name, child in self.children.items()}

    def kill(self) -> None:
        """SIGKILL every child's process group now."""
        for child in self.children.values():
            _signal_group(child.pid, signal.SIGKILL)


def _signal_group(pgid: int, signum: int) -> None:
    try:
        os.killpg(pgid, signum)
    except (ProcessLookupError, PermissionError):
        pass


def _group_alive(pgid: int) -> bool:
    try:
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    # Only zombies left (reaped by init soon) count as gone.
    return _group_has_live_members(pgid)


def _group_has_live_members(pgid: int) -> bool:
    try:
        import psutil
    except ImportError:  # pragma: no cover - psutil ships with pgserver
        return True
    for proc in psutil.process_iter(["pid", "status"]):
        try:
            if os.getpgid(proc.info["pid"]) == pgid and proc.info["status"] != "zombie":
                return True
        except (ProcessLookupError, PermissionError, psutil.Error):
            continue
    return False

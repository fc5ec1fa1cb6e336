"""The champion models as delivery uses them: loaded once per process, reloaded when the
``champion`` alias moves (checked at most every :data:`CHECK_SECONDS`), never raising.

``champion(name).get()`` answers ``(model, version, reason)``: the model object and its
registry version, or ``(None, None, why)`` when there is no registered champion
(``no_model``) or it cannot be loaded (``load_failed: ...``). A failure is remembered until
the next check, so a broken model costs one load attempt per interval, not one per message.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field

from . import tracking

log = logging.getLogger(__name__)

CHECK_SECONDS = 30.0


@dataclass
class Champion:
    name: str
    check_seconds: float = CHECK_SECONDS
    clock: Callable[[], float] = time.monotonic
    _model: object = None
    _version: str | None = None
    _reason: str | None = "not_loaded"
    _checked: float | None = None
    _lock: threading.Lock = field(default_factory=threading.Lock)

    def get(self) -> tuple[object | None, str | None, str | None]:
        now = self.clock()
        if self._checked is not None and now - self._checked < self.check_seconds:
            return self._model, self._version, self._reason
        with self._lock:
            if self._checked is None or now - self._checked >= self.check_seconds:
                self._refresh()
                self._checked = now
        return self._model, self._version, self._reason

    def _refresh(self) -> None:
        try:
            mlflow_client = tracking.client()
            version = tracking.champion_version(mlflow_client, self.name)
        except Exception as exc:  # the tracking store is down: keep what we have
            log.warning("model registry unreachable for %s: %s", self.name, exc)
            if self._model is None:
                self._reason = f"registry_unreachable: {type(exc).__name__}"
            return
        if version is None:
            self._model, self._version, self._reason = None, None, "no_model"
            return
        if version == self._version and (self._model is not None or self._reason):
            return
        try:
            model = tracking.load(self.name, version=version)
        except Exception as exc:
            log.warning("cannot load %s version %s: %s", self.name, version, exc)
            self._model, self._version = None, version
            self._reason = f"load_failed: {type(exc).__name__}: {exc}"[:300]
            return
        log.info("loaded %s version %s", self.name, version)
        self._model, self._version, self._reason = model, version, None


_champions: dict[str, Champion] = {}
_guard = threading.Lock()


def champion(name: str) -> Champion:
    """The process-wide :class:`Champion` of registered model ``name``."""
    with _guard:
        if name not in _champions:
            _champions[name] = Champion(name)
        return _champions[name]


def reset() -> None:
    """Forget every loaded model (tests; a process that changed its tracking store)."""
    with _guard:
        _champions.clear()

"""A small HTTP client for store platform APIs (BigCommerce, Magento, Shopify, WooCommerce).

One ``requests.Session`` per client, a timeout on every call, and bounded retries:

- **429** is retried for every method (the platform refused before doing anything), after the
  wait the response asks for in ``Retry-After`` (seconds or an HTTP date), else exponential
  backoff;
- **5xx** and transport errors (connection refused, timeouts) are retried only for idempotent
  methods (GET, HEAD, OPTIONS, PUT, DELETE) or when the call says ``idempotent=True`` (a
  GraphQL query is a POST that reads): retrying a POST that may have created something
  (a coupon) could create it twice;
- a server asking to wait longer than ``max_retry_after`` seconds is not waited for: the 429
  is returned, so a webhook request never hangs for the platform's quarter hour.

The policy runs on tenacity (``Retrying`` with an injected ``sleep``: callers and tests pass
their own, so tests assert the client was asked to wait the right amount without waiting).
``Retry-After`` itself is parsed by urllib3.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Callable, Mapping
from typing import Any

import requests
from tenacity import RetryCallState, Retrying, stop_after_attempt
from urllib3.exceptions import InvalidHeader
from urllib3.util.retry import Retry

from .storable_json import load_storable_json

log = logging.getLogger(__name__)

IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "PUT", "DELETE"})
TRANSPORT_ERRORS = (requests.ConnectionError, requests.Timeout)
RETRY_STATUSES = frozenset({429, 500, 502, 503, 504})


class StoreApiError(Exception):
    """A store API call that did not give a usable answer.

    ``status`` is the HTTP status (None for transport errors); ``retryable`` says whether
    trying again later may help (429, 5xx, transport) or not (401, 403, 404, bad JSON)."""

    def __init__(self, message: str, status: int | None = None, retryable: bool = False):
        super().__init__(message)
        self.status = status
        self.retryable = retryable


_RETRY_AFTER_PARSER = Retry(0)


def retry_after_seconds(value: str | None) -> float | None:
    """``Retry-After`` as seconds from now (delta-seconds or an HTTP date), None if absent or
    unreadable. A date in the past gives 0."""
    if not value:
        return None
    value = value.strip()
    try:
        return max(0.0, float(value))  # the RFC says integer seconds; some send "1.5"
    except ValueError:
        pass
    try:
        return max(0.0, float(_RETRY_AFTER_PARSER.parse_retry_after(value)))
    except (InvalidHeader, ValueError, TypeError, OverflowError):
        return None


class StoreHttpClient:
    """HTTP calls to one store API.

    ``base_url`` is joined with relative paths (``/v3/carts/x``); an absolute URL (a
    pagination ``Link``) is used as is. ``headers`` go on every request (auth tokens).
    ``max_attempts`` bounds the tries per call (1 = no retry). ``sleep`` is called with the
    seconds to wait between attempts (inject a recorder in tests).
    """

    def __init__(
        self,
        base_url: str,
        headers: Mapping[str, str] | None = None,
        timeout: float = 10,
        max_attempts: int = 5,
        sleep: Callable[[float], Any] = time.sleep,
        *,
        backoff: float = 0.5,
        max_backoff: float = 30.0,
        max_retry_after: float = 120.0,
        auth: Any = None,
        session: requests.Session | None = None,
    ):
        if max_attempts < 1:
            raise ValueError("max_attempts must be at least 1")
        self.base_url = base_url.rstrip("/")
        self.timeout = timeout
        self.max_attempts = max_attempts
        self.sleep = sleep
        self.backoff = backoff
        self.max_backoff = max_backoff
        self.max_retry_after = max_retry_after
        self.session = session or requests.Session()
        self.session.headers.update(headers or {})
        if auth is not None:
            self.session.auth = auth

    def url(self, path: str) -> str:
        if path.startswith(("http://", "https://")):
            return path
        return f"{self.base_url}/{path.lstrip('/')}"

    def request(
        self, method: str, path: str, *, idempotent: bool | None = None, **kw
    ) -> requests.Response:
        """Send one call with the retry policy above; return the last response whatever its
        status (the caller decides what a 404 means). Transport errors that outlive the
        attempts are raised as ``requests.RequestException``."""
        method = method.upper()
        safe = method in IDEMPOTENT_METHODS if idempotent is None else idempotent
        kw.setdefault("timeout", self.timeout)
        url = self.url(path)

        def should_retry(state: RetryCallState) -> bool:
            if state.outcome.failed:
                return safe and isinstance(state.outcome.exception(), TRANSPORT_ERRORS)
            response = state.outcome.result()
            status = response.status_code
            if status not in RETRY_STATUSES or (status != 429 and not safe):
                return False
            wait = retry_after_seconds(response.headers.get("Retry-After"))
            if wait is not None and wait > self.max_retry_after:
                log.warning(
                    "%s %s: server asks to wait %.0fs, more than %.0fs; giving up",
                    method,
                    url,
                    wait,
                    self.max_retry_after,
                )
                return False
            return True

        def before_sleep(state: RetryCallState) -> None:
            wait = state.next_action.sleep
            if state.outcome.failed:
                reason = f"failed ({state.outcome.exception()})"
            else:
                response = state.outcome.result()
                reason = f"answered {response.status_code}"
                response.close()
            log.info("%s %s %s; retrying in %.1fs", method, url, reason, wait)

        retrying = Retrying(
            stop=stop_after_attempt(self.max_attempts),
            retry=should_retry,
            wait=self._wait,
            sleep=self.sleep,
            before_sleep=before_sleep,
            # Out of attempts: the last response as it is, or the last transport error raised.
            retry_error_callback=lambda state: state.outcome.result(),
        )
        return retrying(self.session.request, method, url, **kw)

    def get(self, path: str, **kw) -> requests.Response:
        return self.request("GET", path, **kw)

    def post(self, path: str, **kw) -> requests.Response:
        return self.request("POST", path, **kw)

    def json(self, method: str, path: str, *, allow: tuple[int, ...] = (), **kw) -> Any:
        """The call's JSON body; raises ``StoreApiError`` unless the status is 2xx (or in
        ``allow``, for which None is returned), or when the body is not JSON that Postgres can
        store (see :func:`load_storable_json`: callers keep API answers in raw.events)."""
        try:
            response = self.request(method, path, **kw)
        except requests.RequestException as exc:
            raise StoreApiError(f"{method} {path}: {exc}", None, retryable=True) from exc
        if response.status_code in allow:
            return None
        if not 200 <= response.status_code < 300:
            raise StoreApiError(
                f"{method} {path} answered {response.status_code}",
                response.status_code,
                retryable=response.status_code in RETRY_STATUSES,
            )
        if response.status_code == 204 or not response.content:
            return None
        try:
            return load_storable_json(response.content)
        except (ValueError, UnicodeDecodeError) as exc:
            raise StoreApiError(
                f"{method} {path}: the body is not JSON", response.status_code
            ) from exc

    def close(self) -> None:
        self.session.close()

    def _backoff(self, attempt: int) -> float:
        return min(self.max_backoff, self.backoff * 2 ** (attempt - 1))

    def _wait(self, state: RetryCallState) -> float:
        """What the server asked for in ``Retry-After``, else exponential backoff."""
        if not state.outcome.failed:
            asked = retry_after_seconds(state.outcome.result().headers.get("Retry-After"))
            if asked is not None:
                return asked
        return self._backoff(state.attempt_number)

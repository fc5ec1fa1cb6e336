"""Structured logs: one JSON object per line on stderr, each carrying the id of the request
(or scheduler tick, or the request/tick that enqueued a job) it belongs to.

``LOG_FORMAT=text`` gives plain lines instead (development); ``LOG_LEVEL`` sets the level
(default INFO). The id lives in a context variable: ingest sets it per request (from a
well-formed ``X-Request-ID`` or a new one) and returns it in ``X-Request-ID``; the scheduler
sets one per tick; jobs carry the enqueuing id in their meta and the worker restores it while
the job runs. See docs/operations.md.
"""

from __future__ import annotations

import logging
import os
import re
import uuid
from contextvars import ContextVar

from pythonjsonlogger.json import JsonFormatter

REQUEST_ID: ContextVar[str | None] = ContextVar("cartrecovery_request_id", default=None)
# What a caller may name its request by: short, and nothing a log line or header could be
# forged with.
_VALID_ID = re.compile(r"^[A-Za-z0-9._:-]{1,64}$")


def new_request_id(prefix: str = "") -> str:
    return f"{prefix}{uuid.uuid4().hex}"


def accept_request_id(value: str | None) -> str:
    """The caller's id when it is well formed, else a new one."""
    if value and _VALID_ID.match(value):
        return value
    return new_request_id()


# What must never reach a log in clear (docs/operations.md): contact details, credentials.
_REDACTIONS = (
    (re.compile(r"(?i)\b(bearer|basic)\s+[A-Za-z0-9._~+/=-]{8,}"), r"\1 <redacted>"),
    (re.compile(r"\bcr_[0-9a-f]{32}_[A-Za-z0-9_-]{8,}"), "cr_<redacted>"),
    (re.compile(r"\bSG\.[A-Za-z0-9_-]{6,}\.?[A-Za-z0-9_-]*"), "SG.<redacted>"),
    (re.compile(r"\beyJ[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+\.[A-Za-z0-9_-]+"), "<jwt>"),
    (re.compile(r"[A-Za-z0-9._%+-]+@[A-Za-z0-9.-]+\.[A-Za-z]{2,}"), "<email>"),
    (re.compile(r"\+\d[\d ()-]{7,18}\d"), "<phone>"),
)
_SECRET_SETTINGS = (
    "SECRET_KEY",
    "ENCRYPTION_KEY",
    "SENDGRID_API_KEY",
    "TWILIO_AUTH_TOKEN",
    "VAPID_PRIVATE_KEY",
    "SHOPIFY_API_SECRET",
    "REDIS_PASSWORD",
)


def redact(text: str, secrets: tuple[str, ...] = ()) -> str:
    for secret in secrets:
        text = text.replace(secret, "<secret>")
    for pattern, replacement in _REDACTIONS:
        text = pattern.sub(replacement, text)
    return text


class _Redacting:
    """Mixin for formatters: the finished line, message and traceback alike, redacted."""

    secrets: tuple[str, ...] = ()

    def format(self, record: logging.LogRecord) -> str:
        return redact(super().format(record), self.secrets)


class _JsonFormatter(_Redacting, JsonFormatter):
    pass


class _TextFormatter(_Redacting, logging.Formatter):
    pass


class RequestIdFilter(logging.Filter):
    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


def handler(fmt: str | None = None, stream=None) -> logging.Handler:
    """The structured handler (on ``stream``, default stderr), redacting contact details,
    credentials and the values of the secret settings in the environment."""
    fmt = (fmt or os.environ.get("LOG_FORMAT") or "json").lower()
    out = logging.StreamHandler(stream)
    out.addFilter(RequestIdFilter())
    secrets = tuple(
        v for v in (os.environ.get(name) for name in _SECRET_SETTINGS) if v and len(v) >= 6
    )
    if fmt == "text":
        formatter = _TextFormatter(
            "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
        )
    else:
        formatter = _JsonFormatter(
            "%(asctime)s %(levelname)s %(name)s %(message)s %(request_id)s",
            rename_fields={"asctime": "time", "levelname": "level", "name": "logger"},
            timestamp=False,
        )
    formatter.secrets = secrets
    out.setFormatter(formatter)
    return out


def configure(level: str | None = None, fmt: str | None = None) -> None:
    """Send every log record (the root logger's, and RQ's worker logger, which RQ would
    otherwise give a handler of its own) to one structured handler."""
    level = (level or os.environ.get("LOG_LEVEL") or "INFO").upper()
    out = handler(fmt)
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(out)
    root.setLevel(level)
    rq_logger = logging.getLogger("rq.worker")
    rq_logger.handlers = [out]
    rq_logger.propagate = False

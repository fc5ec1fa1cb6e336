"""JSON errors: every 4xx is ``{"error": {"code", "message", "details"}}``, never a 500 page."""

from __future__ import annotations

import logging

import psycopg
from flask import Flask, jsonify
from psycopg_pool import PoolTimeout
from pydantic import ValidationError
from werkzeug.exceptions import HTTPException

from cartrecovery.canonical import InvalidCanonical
from integrations.base import error_details

log = logging.getLogger(__name__)


class ApiError(Exception):
    def __init__(self, status: int, code: str, message: str, details=None):
        super().__init__(message)
        self.status, self.code, self.message, self.details = status, code, message, details


def error_response(status: int, code: str, message: str, details=None):
    body = {"error": {"code": code, "message": message, "details": details or {}}}
    return jsonify(body), status


def register_error_handlers(app: Flask) -> None:
    @app.errorhandler(ApiError)
    def _api_error(exc: ApiError):
        return error_response(exc.status, exc.code, exc.message, exc.details)

    # A request model's errors, or an adapter's canonical cart/order out of the tables'
    # bounds: the payload's fault either way.
    @app.errorhandler(ValidationError)
    @app.errorhandler(InvalidCanonical)
    def _validation(exc: ValidationError | InvalidCanonical):
        return error_response(
            400, "validation_error", "request body is invalid", error_details(exc)
        )

    @app.errorhandler(HTTPException)
    def _http(exc: HTTPException):
        code = (exc.name or "error").lower().replace(" ", "_")
        return error_response(exc.code or 400, code, exc.description or exc.name)

    # The json module decodes recursively: a body nested deeper than Python's recursion limit
    # (a few kB of brackets) ends in RecursionError while it is parsed. The body's fault.
    @app.errorhandler(RecursionError)
    def _too_deep(exc: RecursionError):
        if "decoding a JSON" not in str(exc):
            return _unexpected(exc)
        return error_response(400, "invalid_json", "JSON body is nested too deeply")

    # PostgreSQL unreachable or restarting (or every pooled connection busy): nothing was
    # stored and nothing was acknowledged, so the sender may simply try again. Platforms retry
    # any non-2xx; 503 with Retry-After says that is all it takes.
    @app.errorhandler(psycopg.OperationalError)
    @app.errorhandler(PoolTimeout)
    def _unavailable(exc: Exception):
        log.warning("database unavailable: %s", exc.__class__.__name__)
        response, status = error_response(
            503, "unavailable", "the database is unavailable; retry shortly", {"retry_after": 1}
        )
        response.headers["Retry-After"] = "1"
        return response, status

    @app.errorhandler(Exception)
    def _unexpected(exc: Exception):
        log.exception("unhandled error")
        return error_response(500, "internal_error", "internal error")

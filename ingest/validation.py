"""Request validation with pydantic models: ``@request_body(Model)`` and
``@request_query(Model)`` on a view.

Each validates its part of the request, passes the result to the view (``body=`` /
``query=``) and marks the view with the model, which the OpenAPI document reads
(``ingest/schemas/document.py``). A failure is a 400 ``validation_error`` whose message names
the field or query parameter at fault and whose ``details.errors`` is pydantic's list.
"""

from __future__ import annotations

from functools import wraps
from typing import Literal

from flask import request
from pydantic import BaseModel, ValidationError

from .errors import ApiError

Part = Literal["body", "query"]

# pydantic prefixes the message of a ValueError raised in a validator with this.
_VALUE_ERROR = "Value error, "


def _where(part: Part, loc: tuple, model: type[BaseModel]) -> str:
    if part == "query":
        if loc:
            return f"query parameter {loc[0]}" + "".join(f".{p}" for p in loc[1:])
        # A rule over several parameters (e.g. "email or phone"): name them all.
        return "query parameters " + ", ".join(model.model_fields)
    return ".".join(str(p) for p in loc) or "body"


def explain(exc: ValidationError, part: Part, model: type[BaseModel]) -> ApiError:
    """The 400 for ``exc``, raised while validating the ``part`` of a request with ``model``."""
    errors = exc.errors(include_url=False, include_context=False, include_input=False)
    summary = "; ".join(
        f"{_where(part, e['loc'], model)}: {e['msg'].removeprefix(_VALUE_ERROR)}"
        for e in errors[:3]
    )
    return ApiError(400, "validation_error", summary, {"errors": errors})


def request_body(model: type[BaseModel], status: int = 200):
    """Validate the JSON body with ``model`` and pass it to the view as ``body=``.

    An empty, non-JSON or invalid body is a 400 ``validation_error`` naming each field.
    ``status`` is the success status the view answers with (for the OpenAPI document).
    """

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            raw = request.get_data(cache=True)
            if not raw.strip():
                raise ApiError(400, "validation_error", "request body must be a JSON object")
            try:
                body = model.model_validate_json(raw)
            except ValidationError as exc:
                raise explain(exc, "body", model) from None
            return view(*args, body=body, **kwargs)

        wrapper.openapi_body = model
        wrapper.openapi_status = status
        return wrapper

    return decorator


def request_query(model: type[BaseModel]):
    """Validate the query string with ``model`` and pass it to the view as ``query=``."""

    def decorator(view):
        @wraps(view)
        def wrapper(*args, **kwargs):
            try:
                query = model.model_validate(request.args.to_dict())
            except ValidationError as exc:
                raise explain(exc, "query", model) from None
            return view(*args, query=query, **kwargs)

        wrapper.openapi_query = model
        return wrapper

    return decorator

"""Pieces every answer shares: the base of response models and the error shape."""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, ConfigDict, Field


class Answer(BaseModel):
    """Base of the response models: a key the model does not name is refused when a test
    validates a real answer, so a view that starts answering a new key must document it."""

    model_config = ConfigDict(extra="forbid")


class ErrorInfo(Answer):
    code: str = Field(
        description="Stable, machine-readable reason.",
        examples=["validation_error", "unauthorized", "not_found"],
    )
    message: str = Field(description="Human-readable explanation; names the field at fault.")
    details: dict[str, Any] = Field(
        description="Context; for validation_error, `errors` lists each failing field "
        "(`loc`, `msg`, `type`)."
    )


class Error(Answer):
    """Every 4xx (and the rare 5xx) answer: ``{"error": {"code", "message", "details"}}``."""

    error: ErrorInfo

"""Decoding JSON that PostgreSQL can store: every inbound body and store API answer goes
through :func:`load_storable_json` before it reaches ``jsonb`` or ``text``.

Postgres refuses NaN/Infinity in jsonb and NUL characters or lone surrogates in text; a
body holding one must be a 400 at the door, not a failed transaction later.

Fast path: msgspec's decoder (C, about 3-5x ``json.loads``) already refuses NaN/Infinity,
out-of-range numbers, lone surrogates and invalid UTF-8, and keeps big integers exact; only
NUL (``\\u0000``) gets through it, so the parsed value is walked only when the bytes hold
that escape. Anything msgspec refuses (a BOM, UTF-16, a huge nesting, or plain bad JSON) is
decoded again by the standard library path, so what is accepted, and the error given, never
depends on the fast path.
"""

from __future__ import annotations

import json
import re
from typing import Any

import msgspec

from .events import find_nul

_FAST = msgspec.json.Decoder()
_FAST_ERRORS = (msgspec.DecodeError, msgspec.ValidationError, RecursionError, UnicodeDecodeError)

# On the standard library path, text Postgres refuses (NUL, lone surrogates) can reach the
# parsed value only through these escapes, or through raw surrogate bytes that the
# "surrogatepass" decoding lets in; a body without any of them needs no walk.
_RISKY = re.compile(rb"\\u(?:0000|[dD][89abcdefABCDEF][0-9a-fA-F]{2})|\xed[\xa0-\xbf]")


def _no_constant(name: str) -> Any:
    raise ValueError(f"{name} is not a JSON number")


def _finite(text: str) -> float:
    value = float(text)
    if value in (float("inf"), float("-inf")):
        raise ValueError(f"number out of range: {text[:40]}")
    return value


_DECODER = json.JSONDecoder(parse_constant=_no_constant, parse_float=_finite)


def load_storable_json(raw: bytes) -> Any:
    """``raw`` decoded as JSON that Postgres jsonb/text can hold, else ValueError: not JSON,
    too deep, NaN/Infinity, or text with NUL characters or lone surrogates."""
    try:
        value = _FAST.decode(raw)
    except _FAST_ERRORS:
        return _load_slow(raw)
    # Only an escape can put NUL into a decoded string (a raw NUL byte is not valid JSON).
    if b"\\u0000" in raw:
        _refuse_unstorable(value)
    return value


def _load_slow(raw: bytes) -> Any:
    encoding = json.detect_encoding(raw)
    try:
        # What json.loads does with bytes, with one decoder built once (not per call).
        value = _DECODER.decode(raw.decode(encoding, "surrogatepass"))
    except RecursionError as exc:
        raise ValueError("JSON nested too deeply") from exc
    # ``in`` scans bytes far faster than the regex: most bodies skip both.
    if encoding != "utf-8" or ((b"\\u" in raw or b"\xed" in raw) and _RISKY.search(raw)):
        _refuse_unstorable(value)
    return value


def _refuse_unstorable(value: Any) -> None:
    where = find_nul(value)
    if where is not None:
        raise ValueError(f"JSON holds text Postgres cannot store at {where}")

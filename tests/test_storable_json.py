"""load_storable_json: the msgspec fast path and the standard-library path accept and refuse
exactly the same bodies (what Postgres jsonb/text can hold)."""

import json

import pytest
from conftest import FIXTURES

from cartrecovery import storable_json
from cartrecovery.storable_json import load_storable_json

ACCEPTED = [
    (b'{"a": 1, "b": [true, null, 1.5]}', {"a": 1, "b": [True, None, 1.5]}),
    (b"[123456789012345678901234567890]", [123456789012345678901234567890]),  # exact, not float
    (b'["\\ud83d\\ude00"]', ["\U0001f600"]),  # a surrogate *pair* is one character
    (b'["\\\\u0000"]', ["\\u0000"]),  # an escaped backslash: the text "\u0000", not NUL
    (b'{"a": 1, "a": 2}', {"a": 2}),
    ('\ufeff{"bom": 1}'.encode(), {"bom": 1}),  # what json.loads accepts, via the slow path
    ('{"utf16": "é"}'.encode("utf-16"), {"utf16": "é"}),
]
REFUSED = [
    b"{not json",
    b"[NaN]",
    b"[Infinity]",
    b"[1e400]",
    b"[-1e400]",
    b'["a\\u0000b"]',
    b'{"k\\u0000": 1}',
    b'["\\ud800"]',
    b'["\\udc00x"]',
    b'["\xed\xa0\x80"]',
    b"\xff\xfe",
    b"[" * 5000 + b"]" * 5000,
]


@pytest.mark.parametrize(("raw", "expected"), ACCEPTED)
def test_accepts_what_postgres_can_store(raw, expected):
    assert load_storable_json(raw) == expected


@pytest.mark.parametrize("raw", REFUSED)
def test_refuses_what_postgres_cannot_store(raw):
    with pytest.raises(ValueError):
        load_storable_json(raw)


@pytest.mark.parametrize("raw", [r for r, _ in ACCEPTED] + REFUSED)
def test_fast_and_slow_paths_agree(raw):
    def outcome(fn):
        try:
            return ("ok", fn(raw))
        except (ValueError, UnicodeDecodeError):
            return ("refused", None)

    assert outcome(load_storable_json) == outcome(storable_json._load_slow)


@pytest.mark.parametrize("path", sorted(FIXTURES.glob("*.json")), ids=lambda p: p.name)
def test_fixture_bodies_decode_like_json_loads(path):
    raw = path.read_bytes()
    assert load_storable_json(raw) == json.loads(raw)

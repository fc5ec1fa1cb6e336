"""The docs match the product: the generated API reference is current."""

from __future__ import annotations

import subprocess
import sys

from conftest import REPO

from ingest.openapi import build_document
from ingest.openapi_docs import render


def test_the_committed_api_reference_is_generated_from_the_document(app):
    committed = (REPO / "docs" / "api-reference.md").read_text()
    assert committed == render(build_document(app)), (
        "docs/api-reference.md is stale: run `make docs` "
        "(python -m ingest.openapi_docs > docs/api-reference.md)"
    )


def test_the_generator_runs_as_documented():
    done = subprocess.run(
        [sys.executable, "-m", "ingest.openapi_docs"],
        cwd=REPO,
        capture_output=True,
        text=True,
        check=True,
        env={"PATH": "/usr/bin:/bin"},
    )
    assert done.stdout == (REPO / "docs" / "api-reference.md").read_text()

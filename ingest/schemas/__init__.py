"""What the HTTP API answers, as pydantic models, and the table of operations that names the
request and response models of every route (``operations.OPERATIONS``). The OpenAPI document
(``ingest/openapi.py``) and the generated reference (``docs/api-reference.md``) are built
from them; tests validate real answers against them, so they cannot drift from the views.
"""

"""The ceiling of the ingest benchmark: a Flask handler that answers at once.

Same server and settings as the product and the bare baseline (``bench/ingest.py``): what
gunicorn, Flask and the load generator cost on this machine with no work at all, so the
product's and the baseline's figures can be read against what the server model allows.
"""

from __future__ import annotations

from flask import Flask

app = Flask(__name__)


@app.post("/", defaults={"path": ""})
@app.post("/<path:path>")
def receive(path: str):
    return {"ok": True}


@app.get("/api/health")
def health():
    return {"status": "ok"}

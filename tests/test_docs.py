"""The docs match the product: the generated API reference is current, and the HTTP
examples of the guides run as written, answering what they show."""

from __future__ import annotations

import json
import re
import subprocess
import sys
import uuid

import pytest
from api_contract import ContractClient
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


# --- the docs' HTTP examples run as written ------------------------------------------------

FENCE = re.compile(r"^```http\n(.*?)^```", re.S | re.M)
ELIDED = "…"


def http_examples(name: str) -> list[tuple[str, str]]:
    """(request, answer) pairs: each ```http block that starts with a method, and the
    ```http block after it, which starts with ``HTTP/1.1 <status>``."""
    blocks = FENCE.findall((REPO / "docs" / name).read_text())
    pairs = []
    for request, answer in zip(blocks[::2], blocks[1::2], strict=True):
        assert not request.startswith("HTTP/"), f"{name}: an answer without its request"
        assert answer.startswith("HTTP/1.1 "), f"{name}: request without an answer:\n{request}"
        pairs.append((request, answer))
    return pairs


def _parse(block: str) -> tuple[str, dict[str, str], str]:
    head, _, body = block.partition("\n\n")
    first, *lines = head.splitlines()
    headers = dict(line.split(": ", 1) for line in lines)
    return first, headers, body.strip()


def _substitute(text: str, variables: dict[str, str]) -> str:
    def value(match: re.Match) -> str:
        name = match.group(1)
        assert name in variables, f"${name} is not known at this point of the docs"
        return variables[name]

    return re.sub(r"\$([A-Za-z_]+)", value, text)


def _check_documented(documented, real) -> None:
    """Every key the docs show is in the answer, with the value shown unless elided."""
    if not isinstance(documented, dict):
        return
    assert isinstance(real, dict), real
    for key, value in documented.items():
        assert key in real, f"documented key {key!r} not in the answer {real}"
        if isinstance(value, dict):
            _check_documented(value, real[key])
        elif value != ELIDED and not isinstance(value, list):
            assert real[key] == value, f"{key}: documented {value!r}, answered {real[key]!r}"


def run_examples(name: str, api: ContractClient, variables: dict[str, str]) -> int:
    pairs = http_examples(name)
    for request, answer in pairs:
        first, headers, body = _parse(_substitute(request, variables))
        method, url = first.split()[:2]
        status_line, _, documented = _parse(answer)
        status = int(status_line.split()[1])
        response = api.call(method, url, headers=headers, data=body.encode() or None)
        assert response.status_code == status, (first, response.get_json())
        if documented:
            _check_documented(json.loads(documented), response.get_json())
        if response.is_json and isinstance(response.get_json(), dict):
            for key, value in response.get_json().items():
                if isinstance(value, str) and (key.endswith("_id") or key in ("key", "secret")):
                    variables[key] = value
    return len(pairs)


@pytest.mark.parametrize("name", ["api.md", "tracking-api.md"])
def test_the_docs_examples_run_as_written(app, client, org, name):
    api = ContractClient(app, client, build_document(app))
    assert run_examples(name, api, {"KEY": org.api_key}) >= 3


def test_the_magento_payloads_of_the_adapter_docs_are_accepted(client, db, runtime, org):
    from cartrecovery import tenancy

    text = (REPO / "docs" / "adapters.md").read_text()
    section = text[text.index("## Magento") : text.index("## Secrets and credentials")]
    payloads = re.findall(r"^```json\n(.*?)^```", section, re.S | re.M)
    assert len(payloads) == 2
    host = f"docs-{uuid.uuid4().hex[:8]}.example.com"
    tenancy.add_connection(db, runtime.encryption_key, org.org_id, "magento", host, "tok-12345678")
    for payload in payloads:
        response = client.post(
            f"/api/webhooks/magento?store={host}",
            data=payload.encode(),
            headers={"X-Cartrec-Hook-Token": "tok-12345678", "Content-Type": "application/json"},
        )
        assert response.status_code == 200, response.get_json()
        assert response.get_json()["op"] == "success"
        assert response.get_json()["status"] == "ok"
    with db.tenant(org.org_id) as conn:
        cart = conn.execute(
            "SELECT external_id, email, total_price, status FROM app.carts WHERE org_id = %s",
            (org.org_id,),
        ).fetchone()
    assert cart["external_id"] == "412" and cart["email"] == "ari.tan@example.com"
    assert cart["status"] == "converted" and float(cart["total_price"]) == 59.0


def test_the_documented_outgoing_signature_check_verifies_our_signature():
    from cartrecovery.outgoing_webhooks import sign

    text = (REPO / "docs" / "api.md").read_text()
    section = text[text.index("## Outgoing webhooks") : text.index("## Privacy")]
    (code,) = re.findall(r"^```python\n(.*?)^```", section, re.S | re.M)
    namespace: dict = {}
    exec(code, namespace)  # the docs' own snippet
    verify, body, secret = namespace["verify"], b'{"id": "e1", "type": "cart.abandoned"}', "whsec_x"
    header = sign(secret, body)
    assert verify(secret, header, body)
    assert not verify(secret, header, body + b" ")
    assert not verify("whsec_other", header, body)


def test_the_settings_table_lists_every_setting():
    from cartrecovery.org_settings import DEFAULTS

    text = (REPO / "docs" / "api.md").read_text()
    section = text[text.index("## Settings") : text.index("## Campaigns")]
    documented = set(re.findall(r"^\| `([a-z_]+)` \|", section, re.M))
    assert documented == set(DEFAULTS)

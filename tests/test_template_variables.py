"""Campaign subjects and templates are checked against the real rendering context when a
campaign is created or changed, and every example in docs/templates.md works as written."""

from __future__ import annotations

import re
import uuid
from pathlib import Path

from test_delivery import (  # noqa: F401  (make_runtime and rt are fixtures)
    burst,
    make_cart,
    make_runtime,
    outbox_rows,
    rt,
    sends_to,
    set_timeout,
)

from cartrecovery import rendering, template_variables
from delivery import scheduler

DOC = Path(__file__).resolve().parents[1] / "docs" / "templates.md"
FENCE = re.compile(r"^```(\w+)\n(.*?)^```", re.MULTILINE | re.DOTALL)
STEP = {"channel": "email", "delay_seconds": 0, "template": "cart_reminder"}


def campaign(**step) -> dict:
    return {"name": f"c-{uuid.uuid4().hex[:6]}", "sequence_steps": [{**STEP, **step}]}


def refused(response) -> dict:
    assert response.status_code == 400, response.get_data(as_text=True)
    error = response.get_json()["error"]
    assert error["code"] == "validation_error"
    (detail,) = error["details"]["errors"]
    assert detail["type"] == "unknown_variable"
    return detail


def campaign_count(db, org) -> int:
    with db.tenant(org.org_id) as conn:
        return conn.execute("SELECT count(*) AS n FROM app.campaigns").fetchone()["n"]


def test_the_docs_subject_example_creates_and_sends(client, db, org, rt, recorder):  # noqa: F811
    """Issue 15, defect C: this subject was accepted and then held every message."""
    set_timeout(db, org.org_id)
    response = client.post(
        "/api/v1/campaigns",
        headers=org.headers,
        json={**campaign(subject="You left {{ cart.item_count }} items"), "status": "active"},
    )
    assert response.status_code == 201, response.get_data(as_text=True)
    email = f"items-{uuid.uuid4().hex[:6]}@example.com"
    cart_id = make_cart(db, org.org_id, email=email)  # 2 + 1 items
    scheduler.tick(rt)
    burst(rt)

    ((_, body),) = sends_to(recorder, email)
    assert body["subject"] == "You left 3 items"
    assert outbox_rows(db, cart_id)[0]["status"] == "sent"


def test_unknown_variable_is_refused_naming_it_and_the_available_ones(client, db, org):
    response = client.post(
        "/api/v1/campaigns", headers=org.headers, json=campaign(subject="Hi {{ frist_name }}")
    )
    detail = refused(response)
    assert detail["loc"] == ["sequence_steps", 0]
    assert "'frist_name'" in detail["msg"]
    assert "customer" in detail["msg"] and "item_count" in detail["msg"]
    assert campaign_count(db, org) == 0


def test_unknown_attribute_is_refused_with_its_siblings(client, db, org):
    detail = refused(
        client.post(
            "/api/v1/campaigns",
            headers=org.headers,
            json=campaign(subject="x", template="<p>{{ cart.itemcount }}</p>"),
        )
    )
    assert "template uses the unknown variable 'cart.itemcount'" in detail["msg"]
    assert "cart.item_count" in detail["msg"] and "cart.total" in detail["msg"]
    assert campaign_count(db, org) == 0


def test_unknown_variable_in_an_untaken_branch_is_refused(client, org):
    body = campaign(subject="{% if false %}{{ customer.nickname }}{% endif %}Hello")
    assert (
        "'customer.nickname'"
        in refused(client.post("/api/v1/campaigns", headers=org.headers, json=body))["msg"]
    )


def test_variants_and_sms_steps_are_checked(client, org):
    variants = campaign(
        subject="s", variants=[{"name": "b", "subject": "{{ store.title }}", "weight": 1}]
    )
    detail = refused(client.post("/api/v1/campaigns", headers=org.headers, json=variants))
    assert "variant 'b' subject uses the unknown variable 'store.title'" in detail["msg"]
    sms = {"name": "sms", "sequence_steps": [{**STEP, "channel": "sms", "template": "{{ url }}"}]}
    assert (
        "'url'" in refused(client.post("/api/v1/campaigns", headers=org.headers, json=sms))["msg"]
    )


def test_coupon_needs_a_discount_or_a_guard(client, org):
    bare = campaign(subject="Use {{ coupon.code }}")
    detail = refused(client.post("/api/v1/campaigns", headers=org.headers, json=bare))
    assert "a step without a discount has no coupon" in detail["msg"]
    offered = {**bare["sequence_steps"][0], "discount": {"type": "percentage", "value": 10}}
    ok = client.post(
        "/api/v1/campaigns", headers=org.headers, json={**bare, "sequence_steps": [offered]}
    )
    assert ok.status_code == 201, ok.get_data(as_text=True)
    guarded = campaign(subject="Hi{% if coupon %}: {{ coupon.code }}{% endif %}")
    assert client.post("/api/v1/campaigns", headers=org.headers, json=guarded).status_code == 201


def test_patch_with_an_unknown_variable_changes_nothing(client, org):
    created = client.post(
        "/api/v1/campaigns", headers=org.headers, json=campaign(subject="{{ item_count }} items")
    ).get_json()
    url = f"/api/v1/campaigns/{created['campaign_id']}"
    patch = {"sequence_steps": [{**STEP, "subject": "{{ items_count }} items"}]}
    assert "'items_count'" in refused(client.patch(url, headers=org.headers, json=patch))["msg"]
    assert client.get(url, headers=org.headers).get_json() == created


def test_loop_variables_and_builtin_templates_pass():
    source = (
        "{% for item in items %}{{ item.title }} {{ loop.index }}{% endfor %}{{ range(2)|list }}"
    )
    template_variables.check_step("email", "s", source, has_discount=False, where="")
    for name, channel in [("cart_reminder", "email"), ("sms_reminder", "sms")]:
        template_variables.check_step(channel, None, name, has_discount=False, where="")
    template_variables.check_step(
        "email", "s", "cart_reminder_discount", has_discount=True, where=""
    )


# --- docs/templates.md -----------------------------------------------------------------------


def doc_blocks() -> list[tuple[str, str]]:
    return [(kind, body) for kind, body in FENCE.findall(DOC.read_text())]


def test_docs_list_exactly_the_variables_messages_get():
    listed = set(re.findall(r"^\| `([^`]+)` \|", DOC.read_text(), re.MULTILINE))
    assert listed == set(template_variables.available_variables())


def test_every_docs_example_renders_as_written():
    blocks = doc_blocks()
    examples = [(i, body) for i, (kind, body) in enumerate(blocks) if kind == "jinja"]
    assert len(examples) >= 6
    subjects = 0
    for index, source in examples:
        source = source.rstrip("\n")
        for discount in (False, True):
            template_variables.check_step(
                "email", None, source, has_discount=discount, where="example "
            )
            context = template_variables.sample_context("email", discount)
            rendered = rendering.render(source, "subject", context, "email")
            assert "{{" not in rendered.html and "{%" not in rendered.html
        follower = blocks[index + 1] if index + 1 < len(blocks) else None
        if follower and follower[0] == "text":  # a subject and what it renders as
            subjects += 1
            context = template_variables.sample_context("email", False)
            assert rendering.render("cart_reminder", source, context).subject == follower[1].rstrip(
                "\n"
            )
    assert subjects == 3


def test_the_docs_campaign_example_is_accepted(client, org):
    import json

    (body,) = [json.loads(text) for kind, text in doc_blocks() if kind == "json" and "name" in text]
    response = client.post("/api/v1/campaigns", headers=org.headers, json=body)
    assert response.status_code == 201, response.get_data(as_text=True)
    assert response.get_json()["sequence_steps"] == body["sequence_steps"]

"""`cartrecovery demo`'s setup (cli/demo.py): idempotent across runs, through core services."""

from __future__ import annotations

from cartrecovery import campaigns, tenancy
from cartrecovery.org_settings import get_settings
from cli import demo
from cli.main import Services


def test_demo_setup_is_idempotent(database_url, db, monkeypatch, tmp_path):
    monkeypatch.setenv("SECRET_KEY", "demo-test-secret")
    monkeypatch.delenv("ENCRYPTION_KEY", raising=False)
    svc = Services(home=tmp_path, database_url=database_url, redis_url=None)
    said: list[str] = []

    first = demo.prepare(svc)
    created = demo.ensure_campaign(svc, first, said.append)
    assert said == [f"demo campaign {demo.CAMPAIGN!r} created"]
    assert created["status"] == "active" and created["sequence_steps"] == demo.STEPS
    with db.tenant(first.org_id) as conn:
        settings = get_settings(conn, first.org_id)
        campaigns.update_campaign(conn, first.org_id, created["campaign_id"], {"status": "paused"})
    assert settings["abandonment_timeout_seconds"] == demo.TIMEOUT_SECONDS
    assert (settings["quiet_hours"]["start"], settings["quiet_hours"]["end"]) == ("00:00", "24:00")

    second = demo.prepare(svc)
    again = demo.ensure_campaign(svc, second, said.append)
    assert (second.org_id, second.connection_id, second.secret) == (
        first.org_id,
        first.connection_id,
        first.secret,
    )
    assert tenancy.verify_api_key(db, first.api_key) is None  # the older demo key is revoked
    assert tenancy.verify_api_key(db, second.api_key).org_id == first.org_id
    assert again["campaign_id"] == created["campaign_id"] and again["status"] == "active"
    assert said[-1] == f"demo campaign {demo.CAMPAIGN!r} reactivated"
    with db.tenant(first.org_id) as conn:
        names = [c["name"] for c in campaigns.list_campaigns(conn, first.org_id)]
    assert names.count(demo.CAMPAIGN) == 1

"""What a Models page shows: each registered model's champion and challenger with their
held-out metrics, and the share of messages each version scored (docs/models.md).
"""

from __future__ import annotations

from pathlib import Path

import psycopg

from . import content, send_time, tracking

MODELS = (
    ("send_time", send_time.NAME, send_time.METRIC, "send_time"),
    ("content", content.NAME, content.METRIC, "content"),
)


def registry_overview(home: Path | None = None) -> list[dict]:
    """One row per model and alias (champion, challenger): version, held-out metric, run id,
    when it was registered. A model never trained has no rows."""
    mlflow_client = tracking.client(home)
    rows = []
    for kind, name, metric, _ in MODELS:
        for alias in (tracking.CHAMPION, tracking.CHALLENGER):
            version = tracking.champion_version(mlflow_client, name, alias)
            if version is None:
                continue
            found = mlflow_client.get_model_version(name, version)
            try:
                value = float(found.tags.get(metric, "nan"))
            except ValueError:
                value = float("nan")
            rows.append(
                {
                    "model": kind,
                    "name": name,
                    "alias": alias,
                    "version": version,
                    "metric": metric,
                    "value": value,
                    "run_id": found.run_id,
                    "registered_at_ms": found.creation_timestamp,
                }
            )
    return rows


def scored_shares(conn: psycopg.Connection, org_id=None, days: int = 30) -> list[dict]:
    """Per model and version (or decision when no model scored: control, fallback), how many
    of the messages enrolled in the last ``days`` it decided and their share among the
    messages of smart steps. ``org_id`` None: every org the connection may see."""
    rows = conn.execute(
        """
        WITH smart AS (
          SELECT 'send_time' AS model, send_time_model_version AS version,
                 split_part(send_time_decision, ':', 1) AS decision
          FROM app.outbox
          WHERE send_time_decision IS NOT NULL AND created_at > now() - make_interval(days => %s)
            AND (%s::uuid IS NULL OR org_id = %s::uuid)
          UNION ALL
          SELECT 'content', content_model_version, split_part(discount_decision, ':', 1)
          FROM app.outbox
          WHERE discount_decision IS NOT NULL AND created_at > now() - make_interval(days => %s)
            AND (%s::uuid IS NULL OR org_id = %s::uuid)
        )
        SELECT model, version, decision, count(*) AS messages,
               count(*)::float8 / sum(count(*)) OVER (PARTITION BY model) AS share
        FROM smart GROUP BY model, version, decision ORDER BY model, messages DESC
        """,
        (days, org_id, org_id, days, org_id, org_id),
    ).fetchall()
    return [dict(r) for r in rows]

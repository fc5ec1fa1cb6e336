"""The code location: one Definitions object (``workspace.yaml`` loads this module).

Loading needs ``dbt/target/manifest.json``: run ``pipelines.dbt_build.prepare_manifest()``
(or ``cd dbt && dbt parse``) first, except under ``dagster dev`` which parses on load.
"""

from __future__ import annotations

import dagster as dg

from pipelines.analytics import analytics_dbt_assets, analytics_job, analytics_schedule
from pipelines.resources import default_resources

defs = dg.Definitions(
    assets=[analytics_dbt_assets],
    jobs=[analytics_job],
    schedules=[analytics_schedule],
    resources=default_resources(),
)

"""The code location: one Definitions object (``workspace.yaml`` loads this module).

Loading needs ``dbt/target/manifest.json``: run ``pipelines.dbt_build.prepare_manifest()``
(or ``cd dbt && dbt parse``) first, except under ``dagster dev`` which parses on load.
``CARTRECOVERY_ENV`` (local, the default, or prod) chooses the resources.
"""

from __future__ import annotations

import os

import dagster as dg

from pipelines.analytics import (
    analytics_dbt_assets,
    analytics_full_refresh_job,
    analytics_job,
    analytics_schedule,
    new_raw_events_sensor,
    nightly_full_build_schedule,
)
from pipelines.checks import warehouse_checks
from pipelines.export_assets import export_assets, export_resources, exports_job
from pipelines.ml_assets import (
    ml_assets,
    ml_checks,
    ml_new_data_sensor,
    ml_resources,
    ml_training_job,
    ml_weekly_schedule,
)
from pipelines.resources import resources_for

defs = dg.Definitions(
    assets=[analytics_dbt_assets, *export_assets, *ml_assets],
    asset_checks=[*warehouse_checks, *ml_checks],
    jobs=[analytics_job, analytics_full_refresh_job, exports_job, ml_training_job],
    schedules=[analytics_schedule, nightly_full_build_schedule, ml_weekly_schedule],
    sensors=[new_raw_events_sensor, ml_new_data_sensor],
    resources=resources_for(os.environ.get("CARTRECOVERY_ENV", "local"))
    | ml_resources()
    | export_resources(),
)

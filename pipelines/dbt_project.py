"""The dbt project, described once for Dagster."""

from __future__ import annotations

from dagster_dbt import DbtProject

from pipelines.dbt_build import DBT_PROJECT_DIR

# Under `dagster dev` the manifest is re-parsed on load; elsewhere it must already exist
# (`pipelines.dbt_build.prepare_manifest()`, or `dbt parse` in the Makefile/CI).
dbt_project = DbtProject(project_dir=DBT_PROJECT_DIR, profiles_dir=DBT_PROJECT_DIR)
dbt_project.prepare_if_dev()

"""The analytics warehouse runtime: dbt builds and the Dagster code location.

- ``pipelines.dbt_build``: run dbt directly (``run_dbt_build``, ``prepare_manifest``);
- ``pipelines.commands``: the ``cartrecovery warehouse`` click group;
- ``pipelines.definitions`` (``workspace.yaml`` loads it): the dbt assets (``analytics``),
  warehouse checks (``checks``), sensor, jobs and schedules, resources per environment
  (``resources``); ``pipelines.dagster_instance`` writes Dagster's ``dagster.yaml``.
"""

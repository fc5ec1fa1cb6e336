"""Dagster code location: the dbt project as assets, its job and schedule.

The definitions live in ``pipelines.definitions`` (``workspace.yaml`` loads that module);
``pipelines.dbt_build`` runs dbt directly for code that does not go through Dagster.
"""

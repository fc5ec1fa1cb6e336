"""The export datasets as Dagster assets: Parquet files per org under the data folder,
written downstream of the marts they read (docs/analytics.md, "Exports as files").

Each asset writes, for every org (or the orgs its config names),
``<data folder>/exports/<org_id>/<dataset>.parquet``; ``recoveries`` writes one file per
attribution model, ``recoveries_<model>.parquet``. The rows are exactly those of
``GET /api/v1/exports/<dataset>.parquet`` (all time): the same query
(``cartrecovery.analytics.exports.export_query``), read under the org's row-level security
through ADBC and written record batch by record batch, so no export sits whole in memory.
A file is written beside its final name and renamed into place, so a reader never sees a
half-written one.
"""

# No `from __future__ import annotations`: Dagster reads config and resource type hints.
import os
import tempfile
from pathlib import Path

import dagster as dg

from cartrecovery.analytics import exports
from cartrecovery.analytics.attribution import MODELS
from cartrecovery.settings import Settings
from pipelines.resources import PostgresDatabase

GROUP = "exports"
# dataset → the dbt mart asset it reads (the asset's upstream dependency).
DATASET_MARTS = {name: spec.mart for name, spec in exports.DATASETS.items()}


class ExportStore(dg.ConfigurableResource):
    """Where export files go: ``home`` is the data folder (None: ``CARTRECOVERY_HOME``, else
    ``.cartrecovery``, when the run starts); files are under its ``exports/``."""

    home: str | None = None

    def root(self) -> Path:
        home = Path(self.home) if self.home else Settings.from_env().home
        return home / "exports"


class ExportConfig(dg.Config):
    """``org_ids`` limits the export to these orgs; empty: every org."""

    org_ids: list[str] = []


def _org_ids(database: PostgresDatabase, config: ExportConfig) -> list[str]:
    if config.org_ids:
        return list(config.org_ids)
    return [str(r["org_id"]) for r in database.fetch("SELECT org_id FROM app.orgs ORDER BY 1")]


def _write(database_url: str, org_id: str, query: str, path: Path) -> int:
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.stem}-", suffix=".parquet", dir=path.parent)
    os.close(fd)
    try:
        rows = exports.write_parquet(database_url, org_id, query, tmp)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return rows


def _export_asset(dataset: str) -> dg.AssetsDefinition:
    mart = DATASET_MARTS[dataset]
    files = [f"recoveries_{m}" for m in MODELS] if dataset == "recoveries" else [dataset]

    @dg.asset(
        name=dataset,
        key_prefix=[GROUP],
        group_name=GROUP,
        deps=[dg.AssetKey(["marts", mart])],
        description=f"`{mart}` as Parquet per org: exports/<org_id>/"
        + ", ".join(f"{f}.parquet" for f in files),
    )
    def export_asset(
        context: dg.AssetExecutionContext,
        config: ExportConfig,
        database: PostgresDatabase,
        export_store: ExportStore,
    ) -> dg.MaterializeResult:
        root = export_store.root()
        orgs = _org_ids(database, config)
        rows = 0
        for org_id in orgs:
            if dataset == "recoveries":
                for model in MODELS:
                    query = exports.export_query(dataset, org_id, model=model)
                    path = root / org_id / f"recoveries_{model}.parquet"
                    rows += _write(database.database_url, org_id, query, path)
            else:
                query = exports.export_query(dataset, org_id)
                rows += _write(
                    database.database_url, org_id, query, root / org_id / f"{dataset}.parquet"
                )
        context.log.info(f"{dataset}: {rows} rows for {len(orgs)} orgs under {root}")
        return dg.MaterializeResult(
            metadata={
                "rows": dg.MetadataValue.int(rows),
                "orgs": dg.MetadataValue.int(len(orgs)),
                "root": dg.MetadataValue.path(str(root)),
            }
        )

    return export_asset


export_assets = [_export_asset(dataset) for dataset in exports.DATASETS]

exports_job = dg.define_asset_job(
    name="exports_job",
    selection=dg.AssetSelection.groups(GROUP),
    description="Write every export dataset as Parquet per org from the current marts.",
)


def export_resources() -> dict:
    # home None: $CARTRECOVERY_HOME (or .cartrecovery) when the run starts.
    return {"export_store": ExportStore()}

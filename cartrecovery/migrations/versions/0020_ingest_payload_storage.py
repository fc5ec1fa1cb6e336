"""Raw event documents stored inline, lz4-compressed: ``raw.events.payload`` and
``raw.pending_changes.change``.

A webhook's document (~4 kB of JSON for a Shopify checkout) is past PostgreSQL's 2 kB TOAST
threshold: by default it is compressed with pglz and, when still over 2 kB, moved to the
TOAST table (a second heap row and index entry per event). lz4 compresses several times
faster, and storage ``main`` keeps the compressed value in the row unless the row cannot fit
a page otherwise. Measured on the ingest benchmark's documents: about half the database CPU
of storing one, at a similar size on disk (docs/BENCHMARKS.md, "Ingest: analysis"). Applies
to rows written from now on; existing rows stay as they are (both read alike). Partitions
created later take the parent's column settings. A server built without lz4 (the embedded
pgserver) keeps PostgreSQL's defaults: pglz with storage ``main`` costs as much as without.

Revision ID: 0020
Revises: 0019
Create Date: 2026-12-06
"""

from alembic import op

revision = "0020"
down_revision = "0019"
branch_labels = None
depends_on = None

COLUMNS = (("raw.events", "payload"), ("raw.pending_changes", "change"))


# SET COMPRESSION on a partitioned table does not reach its existing partitions (SET
# STORAGE does): each one is altered too.
_EACH_PARTITION = """
DO $$
DECLARE part regclass;
BEGIN
  FOR part IN SELECT inhrelid::regclass FROM pg_inherits WHERE inhparent = '{table}'::regclass
  LOOP
    EXECUTE format('ALTER TABLE %s ALTER COLUMN {column} SET COMPRESSION {method}', part);
  END LOOP;
END $$
"""


def _set(compression: str, storage: str) -> None:
    for table, column in COLUMNS:
        op.execute(
            f"ALTER TABLE {table} ALTER COLUMN {column} SET COMPRESSION {compression}, "
            f"ALTER COLUMN {column} SET STORAGE {storage}"
        )
        op.execute(_EACH_PARTITION.format(table=table, column=column, method=compression))


def _has_lz4() -> bool:
    return bool(
        op.get_bind()
        .exec_driver_sql(
            "SELECT 1 FROM pg_settings WHERE name = 'default_toast_compression' "
            "AND 'lz4' = ANY(enumvals)"
        )
        .first()
    )


def upgrade() -> None:
    if _has_lz4():
        _set("lz4", "MAIN")


def downgrade() -> None:
    _set("default", "EXTENDED")

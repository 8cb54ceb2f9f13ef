"""Store tensors out of line without compression: no pglz pass over every weight and payload.

Revision ID: 0013
Revises: 0012
Create Date: 2026-12-05

A bytea column's default storage (EXTENDED) makes PostgreSQL try pglz on every value before it
moves it out of line. Safetensors bytes begin with a JSON header, which compresses, so pglz does
not give up after its first kilobyte: it runs over all 24 MiB of a 64×64 model's weights, finds
too little to gain in float bits and stores them uncompressed after all. That try cost 0.27 s of
the close's 0.38 s publishing transaction (`benchmarks/close_latency.py --backend postgresql`),
0.5 s of each 48 MiB optimizer state, and it ran again for every uploaded result, once in the
upload view's staging table and once when the result was moved to its payload row.

EXTERNAL storage keeps large values out of line, uncompressed, and reads slices without
decompressing. Only new rows are affected. Dataset shards (images) and sample PNGs keep the
default. A no-op on SQLite.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | Sequence[str] | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# (table, column): float tensors in safetensors form, as migrated here.
TENSOR_COLUMNS = (
    ("model_versions", "weights"),
    ("optimizer_states", "state"),
    ("result_payloads", "payload"),
    ("result_uploads", "payload"),
)


def _tables_schema(bind: sa.Connection) -> str:
    name = bind.execute(
        sa.text("SELECT value FROM volunteer.config WHERE key = 'tables_schema'")
    ).scalar_one()
    return '"' + str(name).replace('"', '""') + '"'


def _set_storage(mode: str) -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    t = _tables_schema(bind)
    for table, column in TENSOR_COLUMNS:
        bind.exec_driver_sql(
            f'ALTER TABLE {t}."{table}" ALTER COLUMN "{column}" SET STORAGE {mode}'
        )


def upgrade() -> None:
    """Tensor columns: out of line, never compressed."""
    _set_storage("EXTERNAL")


def downgrade() -> None:
    """Back to PostgreSQL's default for bytea."""
    _set_storage("EXTENDED")

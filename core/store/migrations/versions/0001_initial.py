"""Initial schema: run, dataset shards, model versions, queue, results, workers, log.

Revision ID: 0001
Revises:
Create Date: 2026-05-09
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

# Written out rather than taken from core.store.schema so that later schema changes never
# rewrite history; tests/core/store/test_migrations.py checks both agree.

_SQLITE_AUTOINCREMENT = {"sqlite_autoincrement": True}


def _time(name: str, nullable: bool = False) -> sa.Column:
    return sa.Column(name, sa.Double(), nullable=nullable)


def upgrade() -> None:
    """Create every table and index of the run database."""
    op.create_table(
        "run",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("model_config", sa.Text(), nullable=False),
        sa.Column("settings", sa.Text(), nullable=False),
        sa.Column("dataset_size", sa.Integer(), nullable=False),
        sa.Column("image_size", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("cursor", sa.Integer(), nullable=False),
        _time("created_at"),
        _time("updated_at"),
        sa.PrimaryKeyConstraint("id", name="pk_run"),
        sa.CheckConstraint("id = 1", name="ck_run_single_row"),
        sa.CheckConstraint("status IN ('active', 'paused')", name="ck_run_status"),
    )
    op.create_table(
        "dataset_shards",
        sa.Column("idx", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("count", sa.Integer(), nullable=False),
        sa.Column("image_size", sa.Integer(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("data", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("idx", name="pk_dataset_shards"),
    )
    op.create_table(
        "model_versions",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("weights", sa.LargeBinary(), nullable=False),
        sa.Column("sha256", sa.String(64), nullable=False),
        sa.Column("model_config", sa.Text(), nullable=False),
        sa.Column("is_checkpoint", sa.Boolean(), nullable=False),
        _time("created_at"),
        sa.PrimaryKeyConstraint("version", name="pk_model_versions"),
    )
    op.create_table(
        "optimizer_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("state", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_optimizer_state"),
        sa.CheckConstraint("id = 1", name="ck_optimizer_state_single_row"),
    )
    op.create_table(
        "workers",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("name", sa.String(200), nullable=False),
        sa.Column("hostname", sa.String(255), nullable=False),
        sa.Column("device", sa.String(200), nullable=False),
        _time("created_at"),
        _time("last_seen"),
        sa.Column("state", sa.String(200), nullable=False),
        sa.Column("units", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.Column("images", sa.BigInteger(), server_default=sa.text("0"), nullable=False),
        sa.Column("compute_s", sa.Double(), server_default=sa.text("0"), nullable=False),
        sa.Column("rejected", sa.Integer(), server_default=sa.text("0"), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_workers"),
        **_SQLITE_AUTOINCREMENT,
    )
    op.create_table(
        "work_units",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("unit_index", sa.Integer(), nullable=False),
        sa.Column("copy", sa.Integer(), nullable=False),
        sa.Column("seed", sa.BigInteger(), nullable=False),
        sa.Column("sample_indices", sa.LargeBinary(), nullable=False),
        sa.Column("sample_count", sa.Integer(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("lease_token", sa.String(64), nullable=True),
        _time("lease_expires_at", nullable=True),
        _time("leased_at", nullable=True),
        sa.Column("worker_id", sa.Integer(), nullable=True),
        sa.Column("attempts", sa.Integer(), server_default=sa.text("0"), nullable=False),
        _time("created_at"),
        sa.PrimaryKeyConstraint("id", name="pk_work_units"),
        sa.ForeignKeyConstraint(
            ["worker_id"], ["workers.id"], name="fk_work_units_worker_id_workers"
        ),
        sa.UniqueConstraint(
            "version", "unit_index", "copy", name="uq_work_units_version_unit_index_copy"
        ),
        sa.CheckConstraint(
            "status IN ('pending', 'leased', 'submitted', 'done', 'parked', 'cancelled')",
            name="ck_work_units_status",
        ),
        **_SQLITE_AUTOINCREMENT,
    )
    op.create_index(
        "ix_work_units_claim", "work_units", ["status", "version", "unit_index", "copy"]
    )
    op.create_table(
        "results",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("unit_id", sa.Integer(), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("unit_index", sa.Integer(), nullable=False),
        sa.Column("worker_id", sa.Integer(), nullable=False),
        sa.Column("payload", sa.LargeBinary(), nullable=True),
        sa.Column("precision", sa.String(16), nullable=False),
        sa.Column("claimed_samples", sa.Integer(), nullable=False),
        sa.Column("d_loss", sa.Double(), nullable=True),
        sa.Column("g_loss", sa.Double(), nullable=True),
        sa.Column("d_real", sa.Double(), nullable=True),
        sa.Column("d_fake", sa.Double(), nullable=True),
        sa.Column("compute_s", sa.Double(), nullable=False),
        sa.Column("status", sa.String(16), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        _time("submitted_at"),
        sa.PrimaryKeyConstraint("id", name="pk_results"),
        sa.ForeignKeyConstraint(
            ["unit_id"], ["work_units.id"], name="fk_results_unit_id_work_units"
        ),
        sa.ForeignKeyConstraint(["worker_id"], ["workers.id"], name="fk_results_worker_id_workers"),
        sa.CheckConstraint(
            "status IN ('new', 'accepted', 'rejected', 'crosscheck')", name="ck_results_status"
        ),
        **_SQLITE_AUTOINCREMENT,
    )
    op.create_index("ix_results_status", "results", ["status", "id"])
    op.create_index("ix_results_unit_id", "results", ["unit_id"])
    op.create_index(
        "uq_results_accepted",
        "results",
        ["version", "unit_index"],
        unique=True,
        sqlite_where=sa.text("status = 'accepted'"),
        postgresql_where=sa.text("status = 'accepted'"),
    )
    op.create_table(
        "metrics",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("d_loss", sa.Double(), nullable=True),
        sa.Column("g_loss", sa.Double(), nullable=True),
        sa.Column("d_real", sa.Double(), nullable=True),
        sa.Column("d_fake", sa.Double(), nullable=True),
        sa.Column("images", sa.Integer(), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("parked_units", sa.Integer(), nullable=False),
        sa.Column("close_s", sa.Double(), nullable=False),
        sa.Column("swd", sa.Double(), nullable=True),
        _time("created_at"),
        sa.PrimaryKeyConstraint("version", name="pk_metrics"),
    )
    op.create_table(
        "samples",
        sa.Column("version", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("png", sa.LargeBinary(), nullable=False),
        sa.Column("swd", sa.Double(), nullable=True),
        _time("created_at"),
        sa.PrimaryKeyConstraint("version", name="pk_samples"),
    )
    op.create_table(
        "events",
        sa.Column("id", sa.Integer(), nullable=False),
        _time("at"),
        sa.Column("kind", sa.String(32), nullable=False),
        sa.Column("worker_id", sa.Integer(), nullable=True),
        sa.Column("version", sa.Integer(), nullable=True),
        sa.Column("message", sa.Text(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_events"),
        sa.ForeignKeyConstraint(["worker_id"], ["workers.id"], name="fk_events_worker_id_workers"),
        **_SQLITE_AUTOINCREMENT,
    )


def downgrade() -> None:
    """Drop everything upgrade created (the run is lost)."""
    for table in (
        "events",
        "samples",
        "metrics",
        "results",
        "work_units",
        "workers",
        "optimizer_state",
        "model_versions",
        "dataset_shards",
        "run",
    ):
        op.drop_table(table)

"""Run integrity: the coordinator's epoch (a fence), checksums of optimizer states and result
payloads, and the run's alert.

Revision ID: 0008
Revises: 0007
Create Date: 2026-12-05

`coordinator` holds who serves the run and its epoch; every write transaction of a coordinator
checks the epoch is still its own (core.store.fence). `optimizer_states.sha256` and
`result_payloads.sha256` are checked on every read, as `model_versions.sha256` and
`dataset_shards.sha256` already were; rows stored before this revision get theirs here. On
PostgreSQL a trigger fills in `result_payloads.sha256` when an insert leaves it out (the
volunteers' `volunteer.submit`). `run.alert` says what stops the run, if anything; the view
`volunteer.run` is recreated so volunteers (and the app) see it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | Sequence[str] | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

PIN = "SET search_path = pg_catalog, pg_temp"

PAYLOAD_TRIGGER = f"""
CREATE FUNCTION @T.result_payloads_sha256() RETURNS trigger LANGUAGE plpgsql {PIN} AS $$
BEGIN
    IF NEW.sha256 IS NULL THEN
        NEW.sha256 := encode(sha256(NEW.payload), 'hex');
    END IF;
    RETURN NEW;
END
$$;
CREATE TRIGGER result_payloads_sha256 BEFORE INSERT ON @T.result_payloads
    FOR EACH ROW EXECUTE FUNCTION @T.result_payloads_sha256();
"""


def _tables_schema(bind: sa.Connection) -> str:
    name = bind.execute(sa.text("SELECT current_schema()")).scalar_one()
    return '"' + str(name).replace('"', '""') + '"'


def _has_volunteer_schema(bind: sa.Connection) -> bool:
    found = bind.execute(sa.text("SELECT to_regclass('volunteer.run')")).scalar()
    return found is not None


def _fill_sha256(bind: sa.Connection, table: str, key: str, blob: str) -> None:
    """Checksum every stored row (few: recent optimizer states, unjudged payloads)."""
    keys = [row[0] for row in bind.execute(sa.text(f"SELECT {key} FROM {table}"))]
    for value in keys:
        data = bind.execute(
            sa.text(f"SELECT {blob} FROM {table} WHERE {key} = :k"), {"k": value}
        ).scalar_one()
        bind.execute(
            sa.text(f"UPDATE {table} SET sha256 = :h WHERE {key} = :k"),
            {"h": hashlib.sha256(bytes(data)).hexdigest(), "k": value},
        )


def upgrade() -> None:
    """Add the coordinator table, the checksum columns and run.alert."""
    bind = op.get_bind()
    op.create_table(
        "coordinator",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("epoch", sa.Integer(), nullable=False),
        sa.Column("host", sa.String(255), nullable=False),
        sa.Column("pid", sa.Integer(), nullable=False),
        sa.Column("since", sa.Double(), nullable=False),
        sa.Column("seen_at", sa.Double(), nullable=False),
        sa.PrimaryKeyConstraint("id", name="pk_coordinator"),
        sa.CheckConstraint("id = 1", name="ck_coordinator_single_row"),
    )
    op.execute(
        "INSERT INTO coordinator (id, epoch, host, pid, since, seen_at) VALUES (1, 0, '', 0, 0, 0)"
    )
    op.add_column("run", sa.Column("alert", sa.Text(), nullable=True))
    op.add_column("model_versions", sa.Column("unit_start", sa.Integer(), nullable=True))
    op.add_column("model_versions", sa.Column("unit_count", sa.Integer(), nullable=True))
    for table, key, blob in (
        ("optimizer_states", "version", "state"),
        ("result_payloads", "result_id", "payload"),
    ):
        with op.batch_alter_table(table) as batch:
            batch.add_column(sa.Column("sha256", sa.String(64), nullable=True))
        _fill_sha256(bind, table, key, blob)
        with op.batch_alter_table(table) as batch:
            batch.alter_column("sha256", existing_type=sa.String(64), nullable=False)
    if bind.dialect.name == "postgresql":
        t = _tables_schema(bind)
        bind.exec_driver_sql(
            PAYLOAD_TRIGGER.replace("@T", t), execution_options={"no_parameters": True}
        )
        if _has_volunteer_schema(bind):
            # SELECT * was expanded when the view was made; a new column needs a new view.
            for view in ("run", "model_versions"):
                bind.exec_driver_sql(
                    f"CREATE OR REPLACE VIEW volunteer.{view} AS SELECT * FROM {t}.{view}"
                )


def downgrade() -> None:
    """Drop what upgrade added."""
    bind = op.get_bind()
    volunteer_view = bind.dialect.name == "postgresql" and _has_volunteer_schema(bind)
    if bind.dialect.name == "postgresql":
        t = _tables_schema(bind)
        bind.exec_driver_sql(f"DROP TRIGGER result_payloads_sha256 ON {t}.result_payloads")
        bind.exec_driver_sql(f"DROP FUNCTION {t}.result_payloads_sha256()")
        if volunteer_view:  # they hold the columns dropped below
            bind.exec_driver_sql("DROP VIEW volunteer.run, volunteer.model_versions")
    for table in ("optimizer_states", "result_payloads"):
        with op.batch_alter_table(table) as batch:
            batch.drop_column("sha256")
    op.drop_column("run", "alert")
    op.drop_column("model_versions", "unit_count")
    op.drop_column("model_versions", "unit_start")
    if volunteer_view:
        group = bind.execute(
            sa.text("SELECT value FROM volunteer.config WHERE key = 'group_role'")
        ).scalar_one()
        quoted = '"' + str(group).replace('"', '""') + '"'
        for view in ("run", "model_versions"):
            bind.exec_driver_sql(f"CREATE VIEW volunteer.{view} AS SELECT * FROM {t}.{view}")
            bind.exec_driver_sql(f"GRANT SELECT ON volunteer.{view} TO {quoted}")
    op.drop_table("coordinator")

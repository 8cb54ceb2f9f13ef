"""Credits: accepted units per worker and minute, so the app's figures survive its restarts.

Revision ID: 0012
Revises: 0011
Create Date: 2026-12-05

The app showed "share of the last hour" from the units it had seen finish itself, so after a
restart it said 0 % for a computer that had donated all hour. `credits` keeps, per worker and
minute, the units the coordinator accepted and their images (core/store/credits.py; a day of
them). On PostgreSQL a volunteer reads its own workers' rows through `volunteer.credits` and
the run's sums per minute, which name no worker, through `volunteer.run_credits`.
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | Sequence[str] | None = "0011"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

VIEWS = """
CREATE VIEW volunteer.credits WITH (security_barrier) AS
    SELECT c.* FROM @T.credits c
    WHERE c.worker_id IN (SELECT r.worker_id FROM volunteer.worker_roles r
                          WHERE r.role_name = session_user);
CREATE VIEW volunteer.run_credits AS
    SELECT minute, sum(units) AS units, sum(images) AS images FROM @T.credits GROUP BY minute;
"""


def _quote(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _config(bind: sa.Connection, key: str) -> str:
    return str(
        bind.execute(
            sa.text("SELECT value FROM volunteer.config WHERE key = :key"), {"key": key}
        ).scalar_one()
    )


def _has_volunteers(bind: sa.Connection) -> bool:
    return (
        bind.dialect.name == "postgresql"
        and not bind.execute(sa.text("SELECT to_regnamespace('volunteer') IS NULL")).scalar_one()
    )


def upgrade() -> None:
    """Add the credits table; on PostgreSQL the volunteers' two views of it."""
    op.create_table(
        "credits",
        sa.Column("worker_id", sa.Integer(), nullable=False),
        sa.Column("minute", sa.Double(), nullable=False),
        sa.Column("units", sa.Integer(), nullable=False),
        sa.Column("images", sa.BigInteger(), nullable=False),
        sa.ForeignKeyConstraint(
            ["worker_id"], ["workers.id"], name=op.f("fk_credits_worker_id_workers")
        ),
        sa.PrimaryKeyConstraint("worker_id", "minute", name=op.f("pk_credits")),
    )
    op.create_index("ix_credits_minute", "credits", ["minute"])
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    bind.exec_driver_sql("REVOKE ALL ON credits FROM PUBLIC")
    if not _has_volunteers(bind):
        return
    t, g = _quote(_config(bind, "tables_schema")), _quote(_config(bind, "group_role"))
    bind.exec_driver_sql(VIEWS.replace("@T", t), execution_options={"no_parameters": True})
    bind.exec_driver_sql("REVOKE ALL ON volunteer.credits, volunteer.run_credits FROM PUBLIC")
    bind.exec_driver_sql(f"GRANT SELECT ON volunteer.credits, volunteer.run_credits TO {g}")


def downgrade() -> None:
    """Drop the views and the table."""
    bind = op.get_bind()
    if _has_volunteers(bind):
        bind.exec_driver_sql("DROP VIEW volunteer.run_credits, volunteer.credits")
    op.drop_index("ix_credits_minute", table_name="credits")
    op.drop_table("credits")

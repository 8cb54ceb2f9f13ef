"""Staging table for result payloads sent by binary COPY (PostgreSQL).

Revision ID: 0003
Revises: 0002
Create Date: 2026-05-12
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0003"
down_revision: str | Sequence[str] | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Create result_uploads; on PostgreSQL its owner column defaults to the session's role."""
    postgres = op.get_bind().dialect.name == "postgresql"
    op.create_table(
        "result_uploads",
        sa.Column("lease_token", sa.String(64), nullable=False),
        sa.Column(
            "owner",
            sa.String(63),
            nullable=False,
            # The uploading role, filled in by the server: a volunteer cannot name another.
            server_default=sa.text("session_user") if postgres else None,
        ),
        sa.Column("payload", sa.LargeBinary(), nullable=False),
        sa.PrimaryKeyConstraint("lease_token", "owner", name="pk_result_uploads"),
    )


def downgrade() -> None:
    """Drop result_uploads."""
    op.drop_table("result_uploads")

"""What the watchdog did to each volunteer: sessions ended, when last and why (PostgreSQL).

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-05

`volunteers` and `status` show repeat offenders from these columns, with the `revoke`
command to run. Owner-only, like the rest of `volunteer.volunteers`. A no-op on SQLite.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0007"
down_revision: str | Sequence[str] | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    """Add the watchdog's counters to volunteer.volunteers."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "ALTER TABLE volunteer.volunteers "
        "ADD COLUMN sessions_ended integer NOT NULL DEFAULT 0, "
        "ADD COLUMN last_ended_at double precision, "
        "ADD COLUMN last_ended_why text"
    )


def downgrade() -> None:
    """Drop the watchdog's counters."""
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "ALTER TABLE volunteer.volunteers DROP COLUMN sessions_ended, "
        "DROP COLUMN last_ended_at, DROP COLUMN last_ended_why"
    )

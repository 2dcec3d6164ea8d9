"""segment versions remember how far their backfill of existing profiles went

Revision ID: 0011
Revises: 0010
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "0011"
down_revision: str | None = "0010"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("segment_versions", schema=None) as batch_op:
        batch_op.add_column(sa.Column("backfill_cursor", sa.String(length=36), nullable=True))
        batch_op.add_column(
            sa.Column("backfill_done", sa.Integer(), server_default="0", nullable=False)
        )
        batch_op.add_column(
            sa.Column("backfilled_at", app.db.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("segment_versions", schema=None) as batch_op:
        batch_op.drop_column("backfilled_at")
        batch_op.drop_column("backfill_done")
        batch_op.drop_column("backfill_cursor")

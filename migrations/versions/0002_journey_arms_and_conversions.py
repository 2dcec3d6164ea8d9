"""journey arms and conversions

Revision ID: 0002
Revises: 0001
Create Date: 2026-11-22 22:02:56.972126
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "0002"
down_revision: str | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.add_column(sa.Column("arm", sa.String(length=50), nullable=True))

    with op.batch_alter_table("journey_instances", schema=None) as batch_op:
        batch_op.add_column(sa.Column("arm", sa.String(length=50), nullable=True))
        batch_op.add_column(
            sa.Column("converted_at", app.db.UTCDateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("journey_instances", schema=None) as batch_op:
        batch_op.drop_column("converted_at")
        batch_op.drop_column("arm")

    with op.batch_alter_table("deliveries", schema=None) as batch_op:
        batch_op.drop_column("arm")

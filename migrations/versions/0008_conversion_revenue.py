"""conversion revenue and the message credited with it

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("journey_instances") as batch:
        batch.add_column(sa.Column("revenue", sa.Numeric(18, 4, asdecimal=False), nullable=True))
        batch.add_column(sa.Column("currency", sa.String(length=3), nullable=True))
        batch.add_column(sa.Column("attributed_delivery_id", app.db.BigId, nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("journey_instances") as batch:
        batch.drop_column("attributed_delivery_id")
        batch.drop_column("currency")
        batch.drop_column("revenue")

"""event routing failures: attempts, last error, given up at

Revision ID: 0006
Revises: 0005
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.add_column(
            sa.Column("routing_attempts", sa.Integer(), server_default="0", nullable=False)
        )
        batch.add_column(sa.Column("routing_error", sa.Text(), nullable=True))
        batch.add_column(sa.Column("failed_at", app.db.UTCDateTime(timezone=True), nullable=True))


def downgrade() -> None:
    with op.batch_alter_table("events") as batch:
        batch.drop_column("failed_at")
        batch.drop_column("routing_error")
        batch.drop_column("routing_attempts")

"""a split's declared winner, and trips whose arm it gave rather than the draw

Revision ID: 0014
Revises: 0013
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "split_winners",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            primary_key=True,
            autoincrement=True,
        ),
        sa.Column(
            "journey_version_id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            sa.ForeignKey("journey_versions.id"),
            nullable=False,
        ),
        sa.Column("split_path", sa.String(100), nullable=False),
        sa.Column("arm", sa.String(50), nullable=False),
        sa.Column("metric", sa.String(16), nullable=False),
        sa.Column("p_value", sa.Float(), nullable=False),
        sa.Column("decided_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("journey_version_id", "split_path"),
    )
    with op.batch_alter_table("journey_instances") as batch:
        batch.add_column(
            sa.Column(
                "arm_by_winner", sa.Boolean(), nullable=False, server_default=sa.text("false")
            )
        )


def downgrade() -> None:
    with op.batch_alter_table("journey_instances") as batch:
        batch.drop_column("arm_by_winner")
    op.drop_table("split_winners")

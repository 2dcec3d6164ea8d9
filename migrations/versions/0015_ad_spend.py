"""ad spend read from the ad platforms, per ad set and day, and how its reading goes

Revision ID: 0015
Revises: 0014
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "0015"
down_revision: str | None = "0014"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "ad_spend",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("ad_set", sa.String(64), nullable=False),
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("amount", sa.Numeric(18, 4), nullable=False),
        sa.Column("currency", sa.String(3), nullable=False),
        sa.Column("read_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("channel", "ad_set", "day"),
    )
    op.create_table(
        "spend_reads",
        sa.Column("id", _ID, primary_key=True, autoincrement=True),
        sa.Column("channel", sa.String(32), nullable=False),
        sa.Column("ad_set", sa.String(64), nullable=False),
        sa.Column("read_at", app.db.UTCDateTime(timezone=True)),
        sa.Column("read_through", sa.Date()),
        sa.Column("attempted_at", app.db.UTCDateTime(timezone=True)),
        sa.Column("error", sa.Text()),
        sa.Column("failures", sa.Integer(), nullable=False),
        sa.Column("next_read_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("channel", "ad_set"),
    )


def downgrade() -> None:
    op.drop_table("spend_reads")
    op.drop_table("ad_spend")

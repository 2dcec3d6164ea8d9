"""transactional sends: deliveries without a trip, their idempotency keys; billed units

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("deliveries") as batch:
        batch.alter_column("instance_id", existing_type=sa.BigInteger(), nullable=True)
        batch.add_column(sa.Column("units", sa.Integer(), nullable=True))
        batch.add_column(sa.Column("idempotency_key", sa.String(length=64), nullable=True))
        batch.add_column(sa.Column("request_digest", sa.String(length=64), nullable=True))
        batch.create_unique_constraint("uq_deliveries_idempotency_key", ["idempotency_key"])


def downgrade() -> None:
    # Transactional sends have no trip to point at: they cannot survive the downgrade.
    op.execute(
        "DELETE FROM delivery_events WHERE delivery_id IN "
        "(SELECT id FROM deliveries WHERE instance_id IS NULL)"
    )
    op.execute("DELETE FROM deliveries WHERE instance_id IS NULL")
    with op.batch_alter_table("deliveries") as batch:
        batch.drop_constraint("uq_deliveries_idempotency_key", type_="unique")
        batch.drop_column("request_digest")
        batch.drop_column("idempotency_key")
        batch.drop_column("units")
        batch.alter_column("instance_id", existing_type=sa.BigInteger(), nullable=False)

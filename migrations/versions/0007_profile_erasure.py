"""profile erasure: erased_at, the keyed hashes of erased identities, the audit trail

Revision ID: 0007
Revises: 0006
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

import app.db

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("profiles") as batch:
        batch.add_column(sa.Column("erased_at", app.db.UTCDateTime(timezone=True), nullable=True))
    op.create_table(
        "erased_identities",
        sa.Column("digest", sa.String(length=64), nullable=False),
        sa.Column("profile_id", sa.String(length=36), nullable=False),
        sa.Column("erased_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["profiles.id"],
            name=op.f("fk_erased_identities_profile_id_profiles"),
        ),
        sa.PrimaryKeyConstraint("digest", name=op.f("pk_erased_identities")),
    )
    op.create_index(
        op.f("ix_erased_identities_profile_id"), "erased_identities", ["profile_id"], unique=False
    )
    op.create_table(
        "profile_audit",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("action", sa.String(length=16), nullable=False),
        sa.Column("profile_id", sa.String(length=36), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column(
            "detail", sa.JSON().with_variant(postgresql.JSONB(), "postgresql"), nullable=False
        ),
        sa.Column("note", sa.Text(), nullable=True),
        sa.ForeignKeyConstraint(
            ["profile_id"], ["profiles.id"], name=op.f("fk_profile_audit_profile_id_profiles")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_profile_audit")),
    )
    op.create_index(op.f("ix_profile_audit_profile_id"), "profile_audit", ["profile_id"])


def downgrade() -> None:
    op.drop_index(op.f("ix_profile_audit_profile_id"), table_name="profile_audit")
    op.drop_table("profile_audit")
    op.drop_index(op.f("ix_erased_identities_profile_id"), table_name="erased_identities")
    op.drop_table("erased_identities")
    with op.batch_alter_table("profiles") as batch:
        batch.drop_column("erased_at")

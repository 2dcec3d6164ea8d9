"""computed traits, their windowed events, segment memberships and the loaded segment files

Revision ID: 0010
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

import app.db

revision: str = "0010"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.create_table(
        "segment_versions",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("segment_id", sa.String(length=100), nullable=False),
        sa.Column("version", sa.Integer(), nullable=False),
        sa.Column("checksum", sa.String(length=64), nullable=False),
        sa.Column("file", sa.String(length=500), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("loaded_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("is_current", sa.Boolean(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_segment_versions")),
        sa.UniqueConstraint(
            "segment_id", "version", name=op.f("uq_segment_versions_segment_id_version")
        ),
    )
    with op.batch_alter_table("segment_versions", schema=None) as batch_op:
        batch_op.create_index(
            batch_op.f("ix_segment_versions_segment_id"), ["segment_id"], unique=False
        )

    op.create_table(
        "computed_trait_events",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            autoincrement=True,
            nullable=False,
        ),
        sa.Column("profile_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.Column("value", app.db.JSONType, nullable=True),
        sa.ForeignKeyConstraint(
            ["profile_id"],
            ["profiles.id"],
            name=op.f("fk_computed_trait_events_profile_id_profiles"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_computed_trait_events")),
    )
    with op.batch_alter_table("computed_trait_events", schema=None) as batch_op:
        batch_op.create_index(
            "ix_computed_trait_events_trait", ["profile_id", "name", "at"], unique=False
        )

    op.create_table(
        "computed_traits",
        sa.Column("profile_id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=100), nullable=False),
        sa.Column("value", app.db.JSONType, nullable=True),
        sa.Column("state", app.db.JSONType, nullable=True),
        sa.Column("expires_at", app.db.UTCDateTime(timezone=True), nullable=True),
        sa.Column("updated_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"], ["profiles.id"], name=op.f("fk_computed_traits_profile_id_profiles")
        ),
        sa.PrimaryKeyConstraint("profile_id", "name", name=op.f("pk_computed_traits")),
    )
    with op.batch_alter_table("computed_traits", schema=None) as batch_op:
        batch_op.create_index(
            "ix_computed_traits_due",
            ["expires_at"],
            unique=False,
            postgresql_where=sa.text("expires_at IS NOT NULL"),
            sqlite_where=sa.text("expires_at IS NOT NULL"),
        )

    op.create_table(
        "segment_memberships",
        sa.Column("profile_id", sa.String(length=36), nullable=False),
        sa.Column("segment_id", sa.String(length=100), nullable=False),
        sa.Column("stage", sa.Boolean(), nullable=False),
        sa.Column("entered_at", app.db.UTCDateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["profile_id"], ["profiles.id"], name=op.f("fk_segment_memberships_profile_id_profiles")
        ),
        sa.PrimaryKeyConstraint("profile_id", "segment_id", name=op.f("pk_segment_memberships")),
    )
    with op.batch_alter_table("segment_memberships", schema=None) as batch_op:
        batch_op.create_index(
            "ix_segment_memberships_segment", ["segment_id", "entered_at"], unique=False
        )


def downgrade() -> None:
    with op.batch_alter_table("segment_memberships", schema=None) as batch_op:
        batch_op.drop_index("ix_segment_memberships_segment")

    op.drop_table("segment_memberships")
    with op.batch_alter_table("computed_traits", schema=None) as batch_op:
        batch_op.drop_index(
            "ix_computed_traits_due",
            postgresql_where=sa.text("expires_at IS NOT NULL"),
            sqlite_where=sa.text("expires_at IS NOT NULL"),
        )

    op.drop_table("computed_traits")
    with op.batch_alter_table("computed_trait_events", schema=None) as batch_op:
        batch_op.drop_index("ix_computed_trait_events_trait")

    op.drop_table("computed_trait_events")
    with op.batch_alter_table("segment_versions", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_segment_versions_segment_id"))

    op.drop_table("segment_versions")

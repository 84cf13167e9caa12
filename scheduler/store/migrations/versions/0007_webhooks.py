"""webhooks: delivery statuses parked until their send is recorded

Revision ID: 0007_webhooks
Revises: 0006_privacy
Create Date: 2026-12-06 05:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0007_webhooks"
down_revision = "0006_privacy"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "parked_statuses",
        sa.Column(
            "id",
            sa.BigInteger().with_variant(sa.Integer(), "sqlite"),
            nullable=False,
        ),
        sa.Column("channel", sa.String(length=20), nullable=False),
        sa.Column("external_id", sa.String(length=255), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("error", sa.Text(), nullable=True),
        sa.Column("parked_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("channel", "external_id", "status", name="uq_parked_statuses"),
    )
    op.create_index("ix_parked_statuses_parked_at", "parked_statuses", ["parked_at"], unique=False)


def downgrade() -> None:
    op.drop_index("ix_parked_statuses_parked_at", table_name="parked_statuses")
    op.drop_table("parked_statuses")

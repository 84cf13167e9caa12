"""email: lead email status, index for send caps

Revision ID: 0005
Revises: 0004
Create Date: 2026-11-26 10:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.add_column(sa.Column("email_status", sa.String(length=200), nullable=True))
    op.create_index(
        "ix_outbox_channel_state_updated",
        "outbox",
        ["channel", "state", "updated_at"],
        unique=False,
    )


def downgrade() -> None:
    op.drop_index("ix_outbox_channel_state_updated", table_name="outbox")
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_column("email_status")

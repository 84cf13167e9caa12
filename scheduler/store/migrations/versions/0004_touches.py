"""touches: sent_at and the indexes of the sweeper, reaper, approval queue and dormant job

Revision ID: 0004
Revises: 0003
Create Date: 2026-11-25 14:00:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("touches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("sent_at", sa.DateTime(timezone=True), nullable=True))
    op.create_index(
        "ix_touches_claimed",
        "touches",
        ["claimed_at"],
        postgresql_where=sa.text("status = 'claimed'"),
        sqlite_where=sa.text("status = 'claimed'"),
    )
    op.create_index(
        "ix_touches_awaiting_approval",
        "touches",
        ["id"],
        postgresql_where=sa.text("status = 'awaiting_approval'"),
        sqlite_where=sa.text("status = 'awaiting_approval'"),
    )
    op.create_index(
        "ix_touches_sent_step",
        "touches",
        ["sequence", "step", "sent_at"],
        postgresql_where=sa.text("status = 'sent'"),
        sqlite_where=sa.text("status = 'sent'"),
    )


def downgrade() -> None:
    op.drop_index("ix_touches_sent_step", table_name="touches")
    op.drop_index("ix_touches_awaiting_approval", table_name="touches")
    op.drop_index("ix_touches_claimed", table_name="touches")
    with op.batch_alter_table("touches", schema=None) as batch_op:
        batch_op.drop_column("sent_at")

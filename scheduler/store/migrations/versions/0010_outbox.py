"""outbox: per-row attempt start and claim fence

``sending_started_at`` is written just before a row's own request leaves (after a crash
only rows with it set may have gone out); ``claim_token`` fences that write on the claim
that picked the row, so a row reaped and claimed again elsewhere is never sent twice.

Revision ID: 0010_outbox
Revises: 0009_inputs
Create Date: 2026-12-06 05:00:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0010_outbox"
down_revision = "0009_inputs"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.add_column(sa.Column("claim_token", sa.String(length=36), nullable=True))
        batch_op.add_column(
            sa.Column("sending_started_at", sa.DateTime(timezone=True), nullable=True)
        )


def downgrade() -> None:
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_column("sending_started_at")
        batch_op.drop_column("claim_token")

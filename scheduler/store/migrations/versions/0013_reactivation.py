"""dormant reactivation: reps' time zones and the daily digest (issue 15)

``reps.timezone`` (an IANA name; NULL means ``LEADBOT_DEFAULT_TIMEZONE``) decides when a
rep's daily digest goes out (``LEADBOT_DIGEST_HOUR`` in their own time). An index on
``touches (status, sequence)`` keeps the digest's "drafts awaiting approval in the
reactivation sequences" read from scanning every sent touch.

Revision ID: 0013_reactivation
Revises: 0012_console
Create Date: 2026-12-06 13:30:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0013_reactivation"
down_revision = "0012_console"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Plain ALTER TABLE add column (no batch copy of the table on SQLite).
    op.add_column("reps", sa.Column("timezone", sa.String(64), nullable=True))
    op.create_index("ix_touches_status_sequence", "touches", ["status", "sequence"])


def downgrade() -> None:
    op.drop_index("ix_touches_status_sequence", table_name="touches")
    with op.batch_alter_table("reps", schema=None) as batch_op:
        batch_op.drop_column("timezone")

"""dormant reactivation: reps' time zones and the daily digest (issue 15)

``reps.timezone`` (an IANA name; NULL means ``LEADBOT_DEFAULT_TIMEZONE``) decides when a
rep's daily digest goes out (``LEADBOT_DIGEST_HOUR`` in their own time). The digest reads
through existing indexes (``ix_leads_owner_stage_id``, ``ix_touches_lead_status``); an
index on ``touches (status, sequence)`` was measured and dropped: SQLite's planner chose it
and read every rep's drafts for each rep (bench/README.md).

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


def downgrade() -> None:
    with op.batch_alter_table("reps", schema=None) as batch_op:
        batch_op.drop_column("timezone")

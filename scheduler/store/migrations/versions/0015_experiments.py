"""A/B experiments: the variant of each conversation, as columns (issue 16, item 6)

``dialog_sessions`` gains ``experiment`` and ``variant`` (copied from the stored state when
a session is saved) and a partial index over the conversations that are in an experiment,
so ``leadbot experiments report`` groups by an index instead of parsing every state's JSON.

Revision ID: 0015_experiments
Revises: 0014_crm_sync
Create Date: 2026-12-06 14:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0015_experiments"
down_revision = "0014_crm_sync"
branch_labels = None
depends_on = None

IN_EXPERIMENT = "experiment IS NOT NULL"


def upgrade() -> None:
    # Plain ALTER TABLE (nullable columns): no table copy on SQLite, no rewrite on Postgres.
    op.add_column("dialog_sessions", sa.Column("experiment", sa.String(length=100)))
    op.add_column("dialog_sessions", sa.Column("variant", sa.String(length=50)))
    op.create_index(
        "ix_dialog_sessions_experiment",
        "dialog_sessions",
        ["script_id", "experiment", "variant", "lead_id"],
        postgresql_where=sa.text(IN_EXPERIMENT),
        sqlite_where=sa.text(IN_EXPERIMENT),
    )


def downgrade() -> None:
    op.drop_index("ix_dialog_sessions_experiment", table_name="dialog_sessions")
    with op.batch_alter_table("dialog_sessions", schema=None) as batch_op:
        batch_op.drop_column("variant")
        batch_op.drop_column("experiment")

"""dormant reactivation: reps' time zones and the daily digest (issue 15)

Placeholder until the reactivation work lands: no schema change yet.

Revision ID: 0013_reactivation
Revises: 0012_console
Create Date: 2026-12-06 13:30:00.000000
"""

from __future__ import annotations

revision = "0013_reactivation"
down_revision = "0012_console"
branch_labels = None
depends_on = None


def upgrade() -> None:
    pass


def downgrade() -> None:
    pass

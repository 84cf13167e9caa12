"""HubSpot sync: the contact and deal of each mirrored lead, and the notes pushed (issue 15)

``hubspot_links`` maps a lead to its HubSpot contact and deal (the inbound webhook finds a
deal's lead here); ``hubspot_notes`` records each note we push by its deterministic key, so
a retry never creates a twin note.

Revision ID: 0014_crm_sync
Revises: 0013_reactivation
Create Date: 2026-12-06 13:45:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0014_crm_sync"
down_revision = "0013_reactivation"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def upgrade() -> None:
    op.create_table(
        "hubspot_links",
        sa.Column("lead_id", Id, nullable=False),
        sa.Column("contact_id", sa.String(length=40), nullable=True),
        sa.Column("deal_id", sa.String(length=40), nullable=True),
        sa.Column("synced_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("lead_id"),
        sa.UniqueConstraint("deal_id"),
    )
    op.create_table(
        "hubspot_notes",
        sa.Column("id", Id, nullable=False),
        sa.Column("lead_id", Id, nullable=False),
        sa.Column("note_key", sa.String(length=120), nullable=False),
        sa.Column("hubspot_id", sa.String(length=40), nullable=True),
        sa.Column("started_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("lead_id", "note_key", name="uq_hubspot_notes"),
    )


def downgrade() -> None:
    op.drop_table("hubspot_notes")
    op.drop_table("hubspot_links")

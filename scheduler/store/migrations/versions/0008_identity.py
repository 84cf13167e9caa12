"""identity: contact points, identity audit events and conflicts (one person, one lead)

Revision ID: 0008_identity
Revises: 0007_webhooks
Create Date: 2026-12-06 05:00:00.000000

Backfills a contact point for every existing lead's email and phone.
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0008_identity"
down_revision = "0007_webhooks"
branch_labels = None
depends_on = None

_ID = sa.BigInteger().with_variant(sa.Integer(), "sqlite")


def _lead_fk() -> sa.ForeignKey:
    return sa.ForeignKey("leads.id", ondelete="CASCADE")


def upgrade() -> None:
    op.create_table(
        "contact_points",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("lead_id", _ID, _lead_fk(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("value", sa.String(length=320), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint("kind", "value", name="uq_contact_points_kind_value"),
    )
    op.create_index("ix_contact_points_lead_id", "contact_points", ["lead_id"])
    op.create_table(
        "identity_events",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("lead_id", _ID, _lead_fk(), nullable=False),
        sa.Column("action", sa.String(length=30), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("value", sa.String(length=320), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_identity_events_lead_id", "identity_events", ["lead_id"])
    op.create_table(
        "identity_conflicts",
        sa.Column("id", _ID, primary_key=True),
        sa.Column("lead_id", _ID, _lead_fk(), nullable=False),
        sa.Column("other_lead_id", _ID, _lead_fk(), nullable=False),
        sa.Column("kind", sa.String(length=10), nullable=False),
        sa.Column("value", sa.String(length=320), nullable=False),
        sa.Column("reason", sa.Text(), nullable=False),
        sa.Column("actor", sa.String(length=100), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.UniqueConstraint(
            "lead_id", "other_lead_id", "kind", "value", name="uq_identity_conflicts"
        ),
    )
    op.create_index("ix_identity_conflicts_lead_id", "identity_conflicts", ["lead_id"])
    op.create_index("ix_identity_conflicts_other_lead_id", "identity_conflicts", ["other_lead_id"])
    # Backfill: every existing lead's email and phone become its contact points (both are
    # already unique on leads, so no conflict can arise here).
    for kind, column in (("email", "email"), ("phone", "phone")):
        op.execute(
            sa.text(
                "INSERT INTO contact_points (lead_id, kind, value, created_at) "
                f"SELECT id, '{kind}', {column}, created_at FROM leads "
                f"WHERE {column} IS NOT NULL"
            )
        )


def downgrade() -> None:
    op.drop_table("identity_conflicts")
    op.drop_table("identity_events")
    op.drop_table("contact_points")

"""the console: take-over columns, lead notes, published script versions (issue 14)

``leads`` gains ``human_requested_at`` (the prospect asked for a person) and
``taken_by_user_id``/``taken_at`` (the console user who has the conversation), and an index
for the board's per-owner columns; ``lead_notes`` holds notes on a lead's timeline;
``script_versions`` holds dialog scripts published from the console; ``leads.created_at``
is indexed for the console's Today page and the board's date filter. ``outbox.lead_id`` and
``bookings.lead_id`` get indexes (a lead's page and its erasure look rows up by them).

Revision ID: 0012_console
Revises: 0011_users
Create Date: 2026-12-06 10:20:00.000000
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0012_console"
down_revision = "0011_users"
branch_labels = None
depends_on = None

Id = sa.BigInteger().with_variant(sa.Integer(), "sqlite")
TAKEOVER = "human_requested_at IS NOT NULL OR taken_by_user_id IS NOT NULL"


def upgrade() -> None:
    # Plain ALTER TABLE on every backend: a batch "move and copy" of ``leads`` on SQLite
    # would drop the old table, and with foreign keys on that deletes every row that
    # cascades from a lead (contact points, messages, stage events...).
    op.add_column("leads", sa.Column("human_requested_at", sa.DateTime(timezone=True)))
    if op.get_bind().dialect.name == "sqlite":  # Alembic adds no constraint there: inline
        op.execute("ALTER TABLE leads ADD COLUMN taken_by_user_id INTEGER REFERENCES users (id)")
    else:
        op.add_column(
            "leads",
            sa.Column(
                "taken_by_user_id",
                Id,
                sa.ForeignKey("users.id", name="fk_leads_taken_by_user_id_users"),
                nullable=True,
            ),
        )
    op.add_column("leads", sa.Column("taken_at", sa.DateTime(timezone=True)))
    op.create_index("ix_leads_owner_stage_id", "leads", ["owner_rep_id", "stage", "id"])
    op.create_index("ix_leads_created_at", "leads", ["created_at"])
    op.create_index(
        "ix_leads_takeover",
        "leads",
        ["id"],
        postgresql_where=sa.text(TAKEOVER),
        sqlite_where=sa.text(TAKEOVER),
    )
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_outbox_lead_id"), ["lead_id"], unique=False)
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_bookings_lead_id"), ["lead_id"], unique=False)
    op.create_table(
        "lead_notes",
        sa.Column("id", Id, nullable=False),
        sa.Column("lead_id", Id, nullable=False),
        sa.Column("kind", sa.String(length=20), nullable=False),
        sa.Column("author", sa.String(length=320), nullable=False),
        sa.Column("body", sa.Text(), nullable=False),
        sa.Column("data", sa.JSON(), nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(["lead_id"], ["leads.id"], ondelete="CASCADE"),
        sa.PrimaryKeyConstraint("id"),
    )
    with op.batch_alter_table("lead_notes", schema=None) as batch_op:
        batch_op.create_index(batch_op.f("ix_lead_notes_lead_id"), ["lead_id"], unique=False)
    op.create_table(
        "script_versions",
        sa.Column("id", Id, nullable=False),
        sa.Column("script_id", sa.String(length=100), nullable=False),
        sa.Column("version", sa.String(length=50), nullable=False),
        sa.Column("source", sa.Text(), nullable=False),
        sa.Column("published_by", sa.String(length=320), nullable=False),
        sa.Column("published_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id"),
        sa.UniqueConstraint("script_id", "version", name="uq_script_versions"),
    )


def downgrade() -> None:
    op.drop_table("script_versions")
    with op.batch_alter_table("lead_notes", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_lead_notes_lead_id"))
    op.drop_table("lead_notes")
    with op.batch_alter_table("bookings", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_bookings_lead_id"))
    with op.batch_alter_table("outbox", schema=None) as batch_op:
        batch_op.drop_index(batch_op.f("ix_outbox_lead_id"))
    with op.batch_alter_table("leads", schema=None) as batch_op:
        batch_op.drop_index("ix_leads_takeover")
        batch_op.drop_index("ix_leads_created_at")
        batch_op.drop_index("ix_leads_owner_stage_id")
        if op.get_bind().dialect.name != "sqlite":  # unnamed there: the copy drops it
            batch_op.drop_constraint("fk_leads_taken_by_user_id_users", type_="foreignkey")
        batch_op.drop_column("taken_at")
        batch_op.drop_column("taken_by_user_id")
        batch_op.drop_column("human_requested_at")

"""inputs: external ids (WhatsApp wamids) stored whole, up to 1024 characters

Outbox keys embed the inbound wamid a reply answers ("wa:<wamid>:<n>"), so they grow too.

Meta documents no maximum length for a wamid; the ones seen are 50-100 characters. 255 left
no headroom: a longer id failed the insert (a 500, and Meta retrying for days). The webhook
refuses ids over 1024 bytes with a 400 (bot/whatsapp/envelope.py), so every stored id fits
these columns and the unique indexes on them (PostgreSQL's B-tree entries stop near 2.7 kB).

Revision ID: 0009_inputs
Revises: 0008_identity
Create Date: 2026-12-06 05:05:00
"""

from __future__ import annotations

import sqlalchemy as sa
from alembic import op

revision = "0009_inputs"
down_revision = "0008_identity"
branch_labels = None
depends_on = None

_COLUMNS = (("inbox", False), ("messages", True), ("outbox", True), ("parked_statuses", False))


def upgrade() -> None:
    for table, nullable in _COLUMNS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            batch_op.alter_column(
                "external_id",
                existing_type=sa.String(length=255),
                type_=sa.String(length=1024),
                existing_nullable=nullable,
            )
            if table == "outbox":
                batch_op.alter_column(
                    "key",
                    existing_type=sa.String(length=255),
                    type_=sa.String(length=1124),
                    existing_nullable=False,
                )


def downgrade() -> None:
    for table, nullable in _COLUMNS:
        with op.batch_alter_table(table, schema=None) as batch_op:
            if table == "outbox":
                batch_op.alter_column(
                    "key",
                    existing_type=sa.String(length=1124),
                    type_=sa.String(length=255),
                    existing_nullable=False,
                )
            batch_op.alter_column(
                "external_id",
                existing_type=sa.String(length=1024),
                type_=sa.String(length=255),
                existing_nullable=nullable,
            )

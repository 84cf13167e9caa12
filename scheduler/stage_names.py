"""The names of the pipeline's stages, apart from the tables so that the command line can
offer them as choices without importing SQLAlchemy (``leadbot --help`` stays fast)."""

from __future__ import annotations

from enum import StrEnum


class Stage(StrEnum):
    """Where a lead is in the pipeline. Exactly one per lead."""

    NEW = "new"
    CONTACTED = "contacted"
    QUALIFIED = "qualified"
    PROPOSAL_SENT = "proposal_sent"
    WON = "won"
    LOST = "lost"
    DORMANT = "dormant"

"""Errors of the stage store. Each carries a stable ``code`` (the API puts it in its JSON
error body), an HTTP-ish ``status`` the edge may use, and whether retrying could help."""

from __future__ import annotations


class LeadbotError(Exception):
    """Root of leadbot's own errors."""

    code = "error"
    status = 500
    is_transient = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFoundError(LeadbotError, LookupError):
    """A referenced row does not exist."""

    code = "not_found"
    status = 404


class InvalidLeadError(LeadbotError, ValueError):
    """Intake data that cannot become a lead (no contact, bad email or phone)."""

    code = "invalid_lead"
    status = 422


class TransitionError(LeadbotError):
    """A stage move that must not apply."""

    code = "transition_error"
    status = 409

    def __init__(self, message: str, *, lead_id: int, from_stage: str, to_stage: str) -> None:
        super().__init__(message)
        self.lead_id = lead_id
        self.from_stage = from_stage
        self.to_stage = to_stage


class IllegalTransitionError(TransitionError):
    """The move is not in the table of allowed moves."""

    code = "illegal_transition"


class StaleStageError(TransitionError):
    """The lead moved since the caller looked: the move was computed from a stale stage."""

    code = "stale_stage"
    is_transient = True


class ReasonRequiredError(TransitionError):
    """Moves to ``lost`` and reopening a lost lead need a reason."""

    code = "reason_required"
    status = 422

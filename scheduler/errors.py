"""Errors of the stage store. Each carries a stable ``code`` (the API puts it in its JSON
error body), an HTTP-ish ``status`` the edge may use, and whether retrying could help.

They derive from :class:`dialogs.errors.LeadbotError`, the root of every leadbot error, through
:class:`StoreError`: the API answers a :class:`StoreError` with its ``status`` and ``code``;
any other error it did not expect stays a bare 500."""

from __future__ import annotations

from dialogs.errors import InputError, LeadbotError


class StoreError(LeadbotError):
    """A refusal of the stage store, reported to API clients as ``status`` and ``code``."""

    code = "error"
    status = 500
    is_transient = False

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class NotFoundError(StoreError, LookupError):
    """A referenced row does not exist."""

    code = "not_found"
    status = 404


class InvalidLeadError(StoreError, InputError, ValueError):
    """Intake data that cannot become a lead (no contact, bad email or phone)."""

    code = "invalid_lead"
    status = 422


class InvalidUserError(StoreError, InputError, ValueError):
    """A console user that cannot be created or changed (bad email, role, rep, password)."""

    code = "invalid_user"
    status = 422


class TransitionError(StoreError):
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


class VersionTakenError(StoreError):
    """A script version that is already published (versions are never overwritten)."""

    code = "version_taken"
    status = 409

"""Our seven stages ↔ the HubSpot pipeline's deal stage ids (``LEADBOT_HUBSPOT_STAGE_MAP``).

The map is JSON ``{"new": "<stage id>", …}`` naming every one of our stages; HubSpot stage
ids are the pipeline's *internal* ids (``GET /crm/v3/pipelines/deals``), not its labels.
Several of our stages may share one HubSpot stage (a pipeline with fewer stages); a change
coming back from HubSpot then resolves to the first of them, in the map's order, that the
lead can reach (:meth:`StageMap.ours`). Checked once at startup: a wrong map is named then,
not at the first sync.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import dataclass

from dialogs.errors import ConfigError
from scheduler.stage_names import Stage

DEFAULT_STAGE_MAP: Mapping[str, str] = {
    "new": "appointmentscheduled",
    "contacted": "qualifiedtobuy",
    "qualified": "presentationscheduled",
    "proposal_sent": "contractsent",
    "won": "closedwon",
    "lost": "closedlost",
    "dormant": "closedlost",
}
"""For HubSpot's default sales pipeline: a dormant lead's deal shows as closed lost (it is
not being worked); a deal moved to closed lost in HubSpot makes the lead lost."""


class StageMapError(ConfigError):
    """``LEADBOT_HUBSPOT_STAGE_MAP`` is not a usable map; the message says what is wrong."""


@dataclass(frozen=True, slots=True)
class StageMap:
    """The checked map, both ways."""

    forward: Mapping[Stage, str]

    def hubspot(self, stage: str) -> str:
        """The HubSpot stage id of our ``stage``."""
        return self.forward[Stage(stage)]

    def ours(self, hubspot_stage: str) -> tuple[Stage, ...]:
        """Our stages mapped to ``hubspot_stage``, in the map's order (empty: not mapped)."""
        return tuple(s for s, h in self.forward.items() if h == hubspot_stage)


def parse_stage_map(text: str) -> StageMap:
    """The map of ``text`` (empty: :data:`DEFAULT_STAGE_MAP`); :class:`StageMapError`
    naming the problem otherwise."""
    if not text.strip():
        return StageMap({Stage(k): v for k, v in DEFAULT_STAGE_MAP.items()})
    try:
        raw = json.loads(text)
    except ValueError as exc:
        raise StageMapError(f"LEADBOT_HUBSPOT_STAGE_MAP is not JSON: {exc}") from exc
    if not isinstance(raw, dict):
        raise StageMapError('LEADBOT_HUBSPOT_STAGE_MAP must be a JSON object {"new": "<id>", …}')
    known = [s.value for s in Stage]
    unknown = sorted(set(raw) - set(known))
    missing = [s for s in known if s not in raw]
    if unknown:
        raise StageMapError(
            f"LEADBOT_HUBSPOT_STAGE_MAP: unknown stages {unknown}; ours are {', '.join(known)}"
        )
    if missing:
        raise StageMapError(f"LEADBOT_HUBSPOT_STAGE_MAP: missing stages {missing}")
    bad = sorted(k for k, v in raw.items() if not isinstance(v, str) or not v.strip())
    if bad:
        raise StageMapError(
            f"LEADBOT_HUBSPOT_STAGE_MAP: stages {bad} need a HubSpot stage id (a non-empty string)"
        )
    return StageMap({Stage(k): str(v).strip() for k, v in raw.items()})

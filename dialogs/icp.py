"""The ideal customer profile (ICP) and the pure scorer that turns slot values into a decision.

The ICP is data (``dialogs/icp/default.yaml``, overridable with ``LEADBOT_ICP_FILE``): points per
option for choice/timeline slots, numeric bands for number slots, which dimension (fit or
intent) each slot feeds, the tier thresholds and hard disqualifiers such as ``budget < 2000``.

The LLM never produces a score. :func:`score` is a pure function of the slot values, so a
prospect who writes "mark me qualified" can only move the score by giving real answers.

The decision turns a lead away only on evidence against fit: a disqualifier hit, or answers
that keep the lead below the qualifying tiers even if every unanswered slot earned its best
(the *ceiling*). A lead whose answers qualify it, with every slot the ICP requires for a
booking known, is qualified. Anything between (strong so far but something missing, or not
enough known to tell) is ``undecided``: the script says whether that books or goes to a
person, since turning away a strong lead costs far more than a weak one reaching a rep.
"""

from __future__ import annotations

import operator
import re
from collections.abc import Callable, Mapping
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

from dialogs.errors import FileFormatError
from dialogs.interpretation import SlotScalar, SlotValue
from dialogs.yaml_source import YamlError, load_yaml, parse_value

Dimension = Literal["fit", "intent"]
Tier = Literal["hot", "warm", "cold"]
Decision = Literal["qualified", "disqualified", "undecided"]

DEFAULT_ICP_PATH = Path(__file__).parent / "icp" / "default.yaml"

# Unknown answers ("idk") are answers: they earn this share of the slot's best points unless
# the slot sets ``unknown_points``. Neutral-low: better than silence, worse than a real fit.
UNKNOWN_SHARE = 0.25


class IcpError(FileFormatError, ValueError):
    """An ICP file cannot be used; the message names the file and the reason."""

    def __init__(self, path: Path | str, reason: str, line: int | None = None) -> None:
        super().__init__(f"{path}: {reason}" if line is None else f"{path}:{line}: {reason}")
        self.path = str(path)
        self.reason = reason
        self.line = line


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Band(_Model):
    """A numeric range ``min <= value < max`` worth ``points`` (open ends allowed)."""

    min: float | None = None
    max: float | None = None
    points: int = Field(ge=0)

    def holds(self, value: float) -> bool:
        """Whether ``value`` falls in this band."""
        return (self.min is None or value >= self.min) and (self.max is None or value < self.max)


class SlotRule(_Model):
    """How one slot scores: ``points`` per option id, or ``bands`` for a number."""

    dimension: Dimension
    points: dict[str, int] = {}
    bands: list[Band] = []
    unknown_points: int | None = None  # default: UNKNOWN_SHARE of the best points
    # A choice answered in the prospect's own words (``allow_other``) matches no option id.
    other_points: int = Field(default=0, ge=0)

    @model_validator(mode="after")
    def _one_table(self) -> SlotRule:
        if bool(self.points) == bool(self.bands):
            raise ValueError("give exactly one of 'points' (per option id) or 'bands'")
        if any(p < 0 for p in self.points.values()):
            raise ValueError("points must be >= 0")
        return self

    # Cached: the scorer reads both several times per lead and a rule never changes.
    @cached_property
    def best(self) -> int:
        """The most this slot can earn."""
        return max([*self.points.values(), *(b.points for b in self.bands), self.other_points])

    @cached_property
    def unknown(self) -> int:
        """Points for an "I don't know" answer."""
        if self.unknown_points is not None:
            return min(self.unknown_points, self.best)
        return round(self.best * UNKNOWN_SHARE)


_OPS: dict[str, Callable[[Any, Any], bool]] = {
    "<": operator.lt,
    "<=": operator.le,
    ">": operator.gt,
    ">=": operator.ge,
    "==": operator.eq,
    "!=": operator.ne,
    "in": lambda a, b: a in b,
    "not in": lambda a, b: a not in b,
}
_RULE = re.compile(r"^\s*([a-z][a-z0-9_]*)\s*(<=|>=|==|!=|<|>|not in|in)\s*(.+?)\s*$")


class Disqualifier(_Model):
    """A hard rule such as ``budget < 2000`` or ``company_size in [solo]``.

    Written in YAML as that string; the value after the operator is read as YAML, so lists
    and numbers work. Only a known answer can disqualify: "idk" or a missing slot never does.
    """

    slot: str
    op: str
    value: Any
    text: str

    @model_validator(mode="before")
    @classmethod
    def _parse(cls, data: Any) -> Any:
        if not isinstance(data, str):
            return data
        m = _RULE.match(data)
        if not m:
            raise ValueError(
                f"disqualifier {data!r} is not '<slot> <op> <value>' (ops: {', '.join(_OPS)})"
            )
        slot, op, raw = m.groups()
        try:
            value = parse_value(raw)
        except YamlError as exc:
            raise ValueError(f"disqualifier {data!r}: bad value {raw!r}: {exc.reason}") from exc
        if op in ("in", "not in") and not isinstance(value, list):
            raise ValueError(f"disqualifier {data!r}: '{op}' needs a list like [a, b]")
        return {"slot": slot, "op": op, "value": value, "text": data.strip()}

    def hits(self, value: SlotScalar) -> bool:
        """Whether a known slot value triggers this rule (type mismatches never do)."""
        try:
            return bool(_OPS[self.op](value, self.value))
        except TypeError:  # e.g. "asap" < 2000: not comparable, not a disqualification
            return False


class Thresholds(_Model):
    """Minimum fit and intent scores for a tier."""

    fit: int = Field(ge=0, le=100)
    intent: int = Field(ge=0, le=100)


class Icp(_Model):
    """A versioned ICP: slot rules, tier thresholds, disqualifiers."""

    version: str = Field(min_length=1)
    slots: dict[str, SlotRule]
    hot: Thresholds
    warm: Thresholds
    qualify_tiers: list[Tier] = ["hot", "warm"]
    disqualifiers: list[Disqualifier] = []
    # Slots that must be known (answered, not "I don't know") before a booking; the others
    # only refine the score.
    required_for_booking: list[str] = []

    @model_validator(mode="after")
    def _check(self) -> Icp:
        for dim in ("fit", "intent"):
            if not any(r.dimension == dim for r in self.slots.values()):
                raise ValueError(f"no slot feeds the {dim!r} dimension")
        for d in self.disqualifiers:
            if d.slot not in self.slots:
                raise ValueError(f"disqualifier {d.text!r} names unknown slot {d.slot!r}")
        unknown = sorted(set(self.required_for_booking) - set(self.slots))
        if unknown:
            raise ValueError(f"required_for_booking names unknown slots {unknown}")
        return self

    @cached_property
    def possible(self) -> dict[str, int]:
        """The most each dimension's slots can earn together (the scores' denominators)."""
        totals = {"fit": 0, "intent": 0}
        for rule in self.slots.values():
            totals[rule.dimension] += rule.best
        return totals


class Qualification(_Model):
    """The scorer's verdict; ``model_dump(mode="json")`` is what gets stored and sent."""

    fit_score: int = Field(ge=0, le=100)
    intent_score: int = Field(ge=0, le=100)
    tier: Tier
    # "undecided": nothing known rules the lead out, but the answers do not qualify it yet
    # (or a slot required for a booking is not known); the script decides what follows.
    decision: Decision
    reasons: list[str]
    missing: list[str]
    disqualifiers: list[str]
    # The tier the lead would reach if every missing slot earned its best points.
    ceiling_tier: Tier = "cold"
    missing_for_booking: list[str] = []
    script_id: str
    script_version: str
    prompt_version: str | None
    icp_version: str


def load_icp(path: Path | str = DEFAULT_ICP_PATH) -> Icp:
    """Read and validate an ICP file; :class:`IcpError` names the file and what is wrong."""
    p = Path(path)
    try:
        doc = load_yaml(p, expected="a mapping at the top level")
        doc.refuse_duplicates()
    except YamlError as exc:
        raise IcpError(p, exc.reason, exc.line) from None
    try:
        return Icp.model_validate(doc.data)
    except ValidationError as exc:
        errors = exc.errors()
        problems = "; ".join(
            f"{'.'.join(str(x) for x in e['loc']) or '<icp>'}: {e['msg']}" for e in errors
        )
        raise IcpError(p, problems, doc.line(tuple(errors[0]["loc"]))) from None


def score(
    icp: Icp,
    slots: Mapping[str, SlotValue],
    *,
    script_id: str,
    script_version: str,
    prompt_version: str | None = None,
) -> Qualification:
    """Score ``slots`` against ``icp``. Pure and total: odd values earn 0, never raise.

    Each dimension is the share (0–100) of the best points its slots could earn. Missing
    slots earn nothing and are listed in ``missing``; unknown answers earn the slot's
    neutral-low ``unknown`` points. The decision (see the module docstring): a disqualifier
    hit, or a ceiling below the qualifying tiers, is "disqualified"; a qualifying tier with
    every ``required_for_booking`` slot known is "qualified"; the rest is "undecided".
    """
    earned: dict[str, int] = {"fit": 0, "intent": 0}
    possible = icp.possible
    reasons: list[str] = []
    missing: list[str] = []
    for name, rule in icp.slots.items():
        sv = slots.get(name)
        if sv is None:
            missing.append(name)
            continue
        if sv.unknown or sv.value is None:
            pts, label = rule.unknown, "unknown"
        else:
            pts, label = _points(rule, sv.value), _label(sv.value)
        earned[rule.dimension] += pts
        reasons.append(f"{name}={label}: +{pts}/{rule.best} {rule.dimension}")

    hits = [
        d.text
        for d in icp.disqualifiers
        if (sv := slots.get(d.slot)) is not None
        and not sv.unknown
        and sv.value is not None
        and d.hits(sv.value)
    ]
    fit = _pct(earned["fit"], possible["fit"])
    intent = _pct(earned["intent"], possible["intent"])
    tier: Tier = _tier(icp, fit, intent)
    # The ceiling: each missing slot at its best (what the lead could still turn out to be).
    for name in missing:
        rule = icp.slots[name]
        earned[rule.dimension] += rule.best
    ceiling = _tier(
        icp, _pct(earned["fit"], possible["fit"]), _pct(earned["intent"], possible["intent"])
    )
    for_booking = [
        n for n in icp.required_for_booking if (sv := slots.get(n)) is None or sv.unknown
    ]
    if hits or ceiling not in icp.qualify_tiers:
        decision: Decision = "disqualified"  # evidence against fit, whatever comes next
    elif tier in icp.qualify_tiers and not for_booking:
        decision = "qualified"
    else:
        decision = "undecided"
    return Qualification(
        fit_score=fit,
        intent_score=intent,
        tier=tier,
        decision=decision,
        reasons=reasons,
        missing=missing,
        disqualifiers=hits,
        script_id=script_id,
        script_version=script_version,
        prompt_version=prompt_version,
        icp_version=icp.version,
        ceiling_tier=ceiling,
        missing_for_booking=for_booking,
    )


def _points(rule: SlotRule, value: SlotScalar) -> int:
    if rule.points:
        return rule.points.get(str(value), rule.other_points)
    if isinstance(value, bool) or not isinstance(value, int | float):
        return 0  # a band table needs a number; anything else earns nothing
    return next((b.points for b in rule.bands if b.holds(float(value))), 0)


def _label(value: SlotScalar) -> str:
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _pct(earned: int, possible: int) -> int:
    if possible <= 0:
        return 0
    return max(0, min(100, round(100 * earned / possible)))


def _tier(icp: Icp, fit: int, intent: int) -> Tier:
    if fit >= icp.hot.fit and intent >= icp.hot.intent:
        return "hot"
    if fit >= icp.warm.fit and intent >= icp.warm.intent:
        return "warm"
    return "cold"

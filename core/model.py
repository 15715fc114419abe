"""Domain values: tool contracts, plans and policy.

Every class is an attrs frozen, slotted value. They know nothing about YAML or
JSON: `interlock.core.convert` turns documents into these (and back) and
reports every problem with a JSON pointer. Defaults are the SPEC defaults and
are safe: LIVE is off unless a policy turns it on.
"""

from __future__ import annotations

import enum
from typing import Any

import attrs


class Risk(enum.Enum):
    """Risk of a tool. Ordered: LOW < MEDIUM < HIGH (I3 relies on it)."""

    LOW = "low"
    MEDIUM = "medium"
    HIGH = "high"

    @property
    def rank(self) -> int:
        return _RISK_RANK[self]

    def __lt__(self, other: Risk) -> bool:
        return self.rank < other.rank

    def __le__(self, other: Risk) -> bool:
        return self.rank <= other.rank


_RISK_RANK = {Risk.LOW: 0, Risk.MEDIUM: 1, Risk.HIGH: 2}


class Mode(enum.IntEnum):
    """Execution mode, ordered by power: MOCK < DRY_RUN < LIVE."""

    MOCK = 0
    DRY_RUN = 1
    LIVE = 2

    @property
    def label(self) -> str:
        return self.name.lower()

    @classmethod
    def from_label(cls, label: str) -> Mode:
        return cls[label.upper()]


class Strategy(enum.Enum):
    SERIALIZE = "serialize"
    PRIORITY = "priority"
    DEDUPLICATE = "deduplicate"
    ESCALATE = "escalate"


class ConflictType(enum.Enum):
    WRITE_WRITE = "write_write"
    READ_WRITE = "read_write"
    DUPLICATE_IRREVERSIBLE = "duplicate_irreversible"
    MUTUALLY_EXCLUSIVE = "mutually_exclusive"
    CAPACITY = "capacity"
    DEPENDENCY = "dependency"


class OnDenied(enum.Enum):
    DRY_RUN = "dry_run"
    MOCK = "mock"
    CANCEL = "cancel"


class LockMode(enum.Enum):
    MOCK_ONLY = "mock_only"
    DRY_RUN = "dry_run"


class OnFailure(enum.Enum):
    ROLLBACK = "rollback"
    KEEP = "keep"


# --------------------------------------------------------------------------
# Catalog
# --------------------------------------------------------------------------


@attrs.frozen
class Effects:
    """Resource templates over the call's args, e.g. ``"file:{path}"``."""

    reads: tuple[str, ...] = ()
    writes: tuple[str, ...] = ()


@attrs.frozen
class RollbackSpec:
    """The compensating tool and its arg templates (``{arg}``, ``{result.key}``)."""

    tool: str
    args: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class ToolContract:
    name: str
    risk: Risk
    description: str = ""
    reversible: bool = False
    rollback: RollbackSpec | None = None
    idempotent: bool = False
    supports_dry_run: bool = False
    effects: Effects = Effects()
    conflicts_with: tuple[str, ...] = ()
    max_concurrency: int | None = None
    timeout_s: float = 30.0
    retries: int = 0
    input_schema: dict[str, Any] | None = None
    mock_result: Any = None

    @property
    def guarded_once(self) -> bool:
        """Must each idempotency key of this tool go LIVE at most once, ever (I4)?

        Yes for an irreversible tool, except one whose contract declares that it
        reads and writes nothing: a read has no side effect to duplicate, and the
        SPEC gives read-only tools no other way to say so (``reversible: true``
        needs a rollback). Two agents reading the same file both read it.
        """
        return not self.reversible and not (self.effects.reads and not self.effects.writes)


@attrs.frozen
class Catalog:
    tools: tuple[ToolContract, ...] = ()
    schema_version: int = 1
    by_name: dict[str, ToolContract] = attrs.field(
        init=False, eq=False, repr=False,
        default=attrs.Factory(lambda self: {t.name: t for t in self.tools}, takes_self=True),
    )

    def get(self, name: str) -> ToolContract | None:
        return self.by_name.get(name)


# --------------------------------------------------------------------------
# Plans
# --------------------------------------------------------------------------


@attrs.frozen
class Step:
    id: str
    tool: str
    confidence: float
    args: dict[str, Any] = attrs.field(factory=dict)
    after: tuple[str, ...] = ()
    idempotency_key: str | None = None


@attrs.frozen
class Plan:
    plan_id: str
    agent_id: str
    steps: tuple[Step, ...] = ()
    priority: int = 0
    on_failure: OnFailure = OnFailure.ROLLBACK
    phase21_plan_id: str | None = None
    phase22_validation_id: str | None = None


@attrs.frozen
class PlanSet:
    plans: tuple[Plan, ...] = ()
    schema_version: int = 1


# --------------------------------------------------------------------------
# Policy
# --------------------------------------------------------------------------


@attrs.frozen
class Threshold:
    """Minimum confidence for DRY_RUN and for LIVE at one risk."""

    dry_run: float
    live: float


def _default_thresholds() -> dict[Risk, Threshold]:
    return {
        Risk.LOW: Threshold(dry_run=0.0, live=0.5),
        Risk.MEDIUM: Threshold(dry_run=0.3, live=0.75),
        Risk.HIGH: Threshold(dry_run=0.5, live=0.9),
    }


@attrs.frozen
class ToolOverride:
    """Per-tool policy: deny it, or replace its thresholds / approval need."""

    deny: bool = False
    live: float | None = None
    dry_run: float | None = None
    approval: bool | None = None


@attrs.frozen
class ApprovalPolicy:
    required_for: tuple[Risk, ...] = (Risk.HIGH,)
    timeout_s: float = 300.0
    on_denied: OnDenied = OnDenied.DRY_RUN


@attrs.frozen
class ConflictPolicy:
    write_write: Strategy = Strategy.SERIALIZE
    read_write: Strategy = Strategy.SERIALIZE
    duplicate_irreversible: Strategy = Strategy.DEDUPLICATE
    mutually_exclusive: Strategy = Strategy.PRIORITY
    capacity: Strategy = Strategy.SERIALIZE
    dependency: Strategy = Strategy.ESCALATE

    def strategy(self, kind: ConflictType) -> Strategy:
        return getattr(self, kind.value)


@attrs.frozen
class DriftRule:
    drift_gt: float = 0.4
    severity: int = 7
    action: str = "lock"


@attrs.frozen
class SuccessRule:
    success_lt: float = 0.5
    severity: int = 8
    action: str = "alert"


@attrs.frozen
class RateRule:
    rate_gt: float
    severity: int
    action: str


@attrs.frozen
class AnomalyPolicy:
    window: int = 50
    min_samples: int = 10
    unsafe_escalation: DriftRule = DriftRule()
    repeated_failures: SuccessRule = SuccessRule()
    high_rollback: RateRule = RateRule(rate_gt=0.3, severity=6, action="review")
    high_conflict: RateRule = RateRule(rate_gt=0.5, severity=8, action="reorder")


def _default_floor() -> dict[Risk, float]:
    return {Risk.LOW: 0.30, Risk.MEDIUM: 0.60, Risk.HIGH: 0.85}


@attrs.frozen
class LearningPolicy:
    target_success: float = 0.95
    auto_tune: bool = False
    floor: dict[Risk, float] = attrs.field(factory=_default_floor)


def _default_health_weights() -> dict[str, float]:
    return {
        "tool_success_rate": 0.35,
        "rollback_frequency": 0.15,
        "conflict_rate": 0.10,
        "confidence_drift": 0.25,
        "approval_rate": 0.05,
        "latency": 0.10,
    }


@attrs.frozen
class HealthPolicy:
    """Weights of the documented health score (docs/monitor.md)."""

    weights: dict[str, float] = attrs.field(factory=_default_health_weights)
    latency_budget_ms: float = 1000.0


@attrs.frozen
class Policy:
    schema_version: int = 1
    allow_live: bool = False
    lock_mode: LockMode = LockMode.MOCK_ONLY
    max_concurrency: int = 8
    thresholds: dict[Risk, Threshold] = attrs.field(factory=_default_thresholds)
    approval: ApprovalPolicy = ApprovalPolicy()
    tools: dict[str, ToolOverride] = attrs.field(factory=dict)
    conflicts: ConflictPolicy = ConflictPolicy()
    anomalies: AnomalyPolicy = AnomalyPolicy()
    learning: LearningPolicy = LearningPolicy()
    health: HealthPolicy = HealthPolicy()

    def threshold(self, risk: Risk) -> Threshold:
        return self.thresholds[risk]

    def override(self, tool: str) -> ToolOverride | None:
        return self.tools.get(tool)


def call_id(plan_id: str, step_id: str) -> str:
    """The id of a call: ``plan_id/step_id`` (the form ``after`` uses across plans)."""
    return f"{plan_id}/{step_id}"

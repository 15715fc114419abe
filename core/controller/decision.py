"""Which modes a call may run in right now, and the rule that says so.

Pure function of (contract, confidence, policy, system facts). The result
becomes the guard valuation of the controller and the provenance of every
transition it causes, so an auditor can answer "why LIVE?" from the log.
"""

from __future__ import annotations

import math

import attrs

from interlock.core.model import LockMode, Mode, Policy, Risk, ToolContract


@attrs.frozen
class Decision:
    """Permissions for one call at one moment, with the rule behind each."""

    live_permitted: bool
    dry_run_permitted: bool
    approval_required: bool
    live_rule: str  # why LIVE is (or is not) permitted
    dry_run_rule: str  # why DRY_RUN is (or is not) permitted
    risk: Risk
    confidence: float
    live_threshold: float
    dry_run_threshold: float
    threshold_source: str  # "policy" | "tool_override"
    allow_live: bool
    locked: bool
    lock_mode: LockMode

    @property
    def best_mode(self) -> Mode:
        if self.live_permitted:
            return Mode.LIVE
        if self.dry_run_permitted:
            return Mode.DRY_RUN
        return Mode.MOCK

    def rule_for(self, mode: Mode) -> str:
        """The rule behind ``mode`` as the best permitted mode: what permitted LIVE,
        or what refused the next more powerful mode."""
        if mode is Mode.MOCK:
            return self.dry_run_rule
        return self.live_rule

    def provenance(self) -> dict:
        return {
            "risk": self.risk.value,
            "confidence": self.confidence,
            "thresholds": {"dry_run": self.dry_run_threshold, "live": self.live_threshold},
            "threshold_source": self.threshold_source,
            "allow_live": self.allow_live,
            "locked": self.locked,
            "lock_mode": self.lock_mode.value,
            "approval_required": self.approval_required,
            "live_rule": self.live_rule,
            "dry_run_rule": self.dry_run_rule,
        }


def decide(
    contract: ToolContract,
    confidence: float,
    policy: Policy,
    *,
    locked: bool,
    duplicate_started: bool = False,
) -> Decision:
    """Evaluate SPEC section 2 for one call.

    Rule order for LIVE (first that refuses names the rule): system_locked,
    live_disabled, tool_denied, duplicate_irreversible, then the threshold
    (``tool_override`` when a per-tool value decided, else
    ``threshold.<risk>.live``). A NaN confidence permits nothing (fail closed).
    """
    risk = contract.risk
    base = policy.threshold(risk)
    override = policy.override(contract.name)
    live_t, dry_t, source = base.live, base.dry_run, "policy"
    approval_required = risk in policy.approval.required_for
    denied = False
    if override is not None:
        denied = override.deny
        if override.live is not None:
            live_t, source = override.live, "tool_override"
        if override.dry_run is not None:
            dry_t, source = override.dry_run, "tool_override"
        if override.approval is not None:
            approval_required = override.approval
    valid = isinstance(confidence, (int, float)) and not math.isnan(confidence)
    live_thr_rule = "tool_override" if (override and override.live is not None) else f"threshold.{risk.value}.live"
    dry_thr_rule = "tool_override" if (override and override.dry_run is not None) else f"threshold.{risk.value}.dry_run"

    # LIVE: the first refusing rule names the decision.
    if locked:
        live, live_rule = False, "system_locked"
    elif not policy.allow_live:
        live, live_rule = False, "live_disabled"
    elif denied:
        live, live_rule = False, "tool_denied"
    elif duplicate_started and contract.guarded_once:
        live, live_rule = False, "duplicate_irreversible"
    else:
        live = valid and confidence >= live_t
        live_rule = live_thr_rule

    # DRY_RUN.
    if locked and policy.lock_mode is LockMode.MOCK_ONLY:
        dry, dry_rule = False, "system_locked"
    elif denied:
        dry, dry_rule = False, "tool_denied"
    elif not contract.supports_dry_run:
        dry, dry_rule = False, "no_dry_run_support"
    else:
        dry = valid and confidence >= dry_t
        dry_rule = dry_thr_rule

    return Decision(
        live_permitted=live,
        dry_run_permitted=dry,
        approval_required=approval_required,
        live_rule=live_rule,
        dry_run_rule=dry_rule,
        risk=risk,
        confidence=confidence,
        live_threshold=live_t,
        dry_run_threshold=dry_t,
        threshold_source=source,
        allow_live=policy.allow_live,
        locked=locked,
        lock_mode=policy.lock_mode,
    )

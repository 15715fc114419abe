"""Plan intake: load-validated plans -> calls, plan problems and conflicts (SPEC sections 3-4).

The documents are already well-formed (tools exist, args fit their schemas,
confidences are in range). What is left are *plan problems*: well-formed
input that makes some calls impossible. Those calls are rejected with a
reason naming plan and step; the independent rest goes on (I11: invalid
input is rejected, never a crash).

Rules, in the order they are applied:

Rule 1 (ids): a call is ``plan_id/step_id``. A step id repeated within a plan
    keeps its id the first time; later ones get ``#2``, ``#3``... (never an id
    another step really has) and are rejected. References resolve to the first.
    A plan id repeated in the file is rejected the same way (its calls get
    suffixed ids if they would collide).
Rule 2 (references): ``after: [s]`` names step ``s`` of the same plan;
    ``after: [p/s]`` names step ``s`` of plan ``p`` (the first plan so named).
    A reference that resolves to nothing rejects the call.
Rule 3 (static problems): a negative plan priority rejects all its calls; so
    does a tool the policy denies, a tool missing from the catalog (fail
    closed) and a resource template naming an argument the call does not give.
Rule 4 (cycles): Kahn's algorithm finds the calls that cannot be ordered; of
    those, every call on a cycle (a strongly connected component) is rejected
    with a cycle through it named ("each waits for the next"). Calls merely
    downstream of a cycle are not on it: Rule 5 handles them.
Rule 5 (dependency on a rejected call): the dependent is not rejected; it is a
    ``dependency`` conflict, escalated: granted, it runs without that
    dependency; denied or timed out, it is cancelled. Its own dependents just
    wait for it (I5). Missing dependencies and cycles are recorded as
    ``dependency`` conflicts too, with outcome ``rejected``.

``deps`` of a call are the resolved ids of its ``after`` (hard dependencies:
they must succeed, I5). The ``idempotency_key`` is the given one, else
``sha256(tool + "\\n" + canonical_json(args))``.
"""

from __future__ import annotations

import hashlib
from types import MappingProxyType
from typing import Any, Mapping, Sequence

from interlock.core.audit import canonical_json
from interlock.core.calls import Call, IntakeResult
from interlock.core.conflicts import DependencyProblem, detect
from interlock.core.errors import TemplateError
from interlock.core.model import Catalog, Plan, PlanSet, Policy, Risk, Step, ToolContract, call_id
from interlock.core.resources import Template, parse, render_value

__all__ = ["intake", "default_idempotency_key"]

_NO_LEDGER: Mapping[tuple[str, str], str] = MappingProxyType({})
_CYCLE_SHOWN = 12  # call ids shown when naming a long cycle


def default_idempotency_key(tool: str, args: Mapping[str, Any]) -> str:
    """sha256 hex of ``tool + "\\n" + canonical JSON of args`` (sorted keys, compact)."""
    return hashlib.sha256((tool + "\n" + canonical_json(args)).encode("utf-8")).hexdigest()


def intake(
    plans: PlanSet,
    catalog: Catalog,
    policy: Policy,
    *,
    ledger: Mapping[tuple[str, str], str] = _NO_LEDGER,
) -> IntakeResult:
    """Resolve ``plans`` into calls, reject plan problems, detect and resolve conflicts.

    ``ledger`` maps (tool, idempotency key) to the call id that already started
    it LIVE in an earlier run (I4). Pure: same inputs, same result (I12).
    """
    return _Intake(plans, catalog, policy, ledger).run()


class _Entry:
    """One step on its way to becoming a Call."""

    __slots__ = ("plan", "plan_pos", "step", "call_id", "reasons", "deps")

    def __init__(self, plan: Plan, plan_pos: int, step: Step, cid: str) -> None:
        self.plan = plan
        self.plan_pos = plan_pos
        self.step = step
        self.call_id = cid
        self.reasons: list[str] | None = None
        self.deps: list[int] = []

    def reject(self, reason: str) -> None:
        if self.reasons is None:
            self.reasons = [reason]
        elif reason not in self.reasons:
            self.reasons.append(reason)


class _Intake:
    def __init__(self, plans: PlanSet, catalog: Catalog, policy: Policy,
                 ledger: Mapping[tuple[str, str], str]) -> None:
        self.plans = plans.plans
        self.catalog = catalog
        self.policy = policy
        self.ledger = ledger
        self.entries: list[_Entry] = []
        self.plan_first: dict[str, int] = {}  # plan id -> position of the first plan so named
        self.plan_steps: list[dict[str, int]] = []  # per plan position: step id -> first call index
        self.problems: list[DependencyProblem] = []

    def run(self) -> IntakeResult:
        self._enumerate()
        self._resolve()
        self._cycles()
        calls = self._calls()
        rejected = {e.call_id: "; ".join(e.reasons) for e in self.entries if e.reasons}
        self._rejected_deps(rejected)
        found = detect(calls, rejected, self.policy, ledger=self.ledger,
                       dependency_problems=self.problems)
        return IntakeResult(
            calls=tuple(calls),
            rejected=rejected,
            cancelled=found.cancelled,
            order_edges=found.order_edges,
            escalations=found.escalations,
            conflicts=found.records,
        )

    # ---------------------------------------------------------------- Rule 1

    def _enumerate(self) -> None:
        primary: set[str] = set()
        for pi, plan in enumerate(self.plans):
            if plan.plan_id not in self.plan_first:
                self.plan_first[plan.plan_id] = pi
                seen: set[str] = set()
                for step in plan.steps:
                    if step.id not in seen:
                        seen.add(step.id)
                        primary.add(call_id(plan.plan_id, step.id))
        used = set(primary)
        entries = self.entries
        for pi, plan in enumerate(self.plans):
            repeated_plan = self.plan_first[plan.plan_id] != pi
            steps: dict[str, int] = {}
            self.plan_steps.append(steps)
            for step in plan.steps:
                i = len(entries)
                cid = call_id(plan.plan_id, step.id)
                repeated_step = step.id in steps
                if not repeated_step:
                    steps[step.id] = i
                if repeated_plan or repeated_step:
                    n = 2
                    while f"{cid}#{n}" in used:
                        n += 1
                    cid = f"{cid}#{n}"
                    used.add(cid)
                e = _Entry(plan, pi, step, cid)
                if repeated_plan:
                    first = self.plan_first[plan.plan_id]
                    e.reject(f"duplicate plan id '{plan.plan_id}': plan #{pi + 1} in the file "
                             f"repeats plan #{first + 1}")
                if repeated_step:
                    e.reject(f"duplicate step id '{step.id}' in plan '{plan.plan_id}'")
                entries.append(e)

    # ------------------------------------------------------------ Rules 2, 3

    def _resolve(self) -> None:
        catalog, policy = self.catalog, self.policy
        templates: dict[str, tuple[list[Template], list[Template], str | None]] = {}
        missing: dict[str, list[int]] = {}
        self._reads: list[tuple[str, ...]] = []
        self._writes: list[tuple[str, ...]] = []
        self._keys: list[str] = []
        self._contracts: list[ToolContract] = []
        for i, e in enumerate(self.entries):
            plan, step = e.plan, e.step
            if plan.priority < 0:
                e.reject(f"plan {plan.plan_id}: priority must be >= 0, got {plan.priority}")
            contract = catalog.get(step.tool)
            if contract is None:
                e.reject(f"tool '{step.tool}' is not in the catalog")
                contract = ToolContract(name=step.tool, risk=Risk.HIGH)
            override = policy.tools.get(step.tool)
            if override is not None and override.deny:
                e.reject(f"policy denies tool {step.tool}")
            self._contracts.append(contract)
            # resources
            tpl = templates.get(step.tool)
            if tpl is None:
                tpl = templates[step.tool] = _templates(contract)
            reads_t, writes_t, bad = tpl
            if bad is not None:
                e.reject(bad)
            args = step.args
            self._reads.append(_expand(reads_t, args, e))
            self._writes.append(_expand(writes_t, args, e))
            # idempotency key
            key = step.idempotency_key
            if key is None:
                try:
                    key = default_idempotency_key(step.tool, args)
                except (TypeError, ValueError) as exc:
                    e.reject(f"step {step.id}: args cannot be written as canonical JSON ({exc})")
                    key = hashlib.sha256(repr(args).encode("utf-8")).hexdigest()
            self._keys.append(key)
            # dependencies
            if step.after:
                deps: list[int] = []
                for ref in step.after:
                    j = self._lookup(e.plan_pos, ref)
                    if j is None:
                        qualified = ref if "/" in ref else call_id(plan.plan_id, ref)
                        e.reject(f"plan {plan.plan_id} step {step.id}: dependency '{qualified}' does not exist")
                        missing.setdefault(qualified, []).append(i)
                    elif j not in deps:
                        deps.append(j)
                e.deps = deps
        for ref, who in missing.items():
            ids = tuple(self.entries[i].call_id for i in who)
            self.problems.append(DependencyProblem(
                resource=f"call:{ref}", calls=ids,
                reason=f"dependency '{ref}' does not exist (named by {', '.join(ids)})",
                detail={"missing": ref},
            ))

    def _lookup(self, plan_pos: int, ref: str) -> int | None:
        j = self.plan_steps[plan_pos].get(ref)
        if j is not None:
            return j
        start = 0
        while True:  # "plan/step"; plan ids may themselves contain "/"
            k = ref.find("/", start)
            if k < 0:
                return None
            pp = self.plan_first.get(ref[:k])
            if pp is not None:
                j = self.plan_steps[pp].get(ref[k + 1:])
                if j is not None:
                    return j
            start = k + 1

    # ---------------------------------------------------------------- Rule 4

    def _cycles(self) -> None:
        entries = self.entries
        n = len(entries)
        indeg = [len(e.deps) for e in entries]
        dependents: list[list[int]] = [[] for _ in range(n)]
        for i, e in enumerate(entries):
            for d in e.deps:
                dependents[d].append(i)
        queue = [i for i in range(n) if not indeg[i]]
        head = 0
        while head < len(queue):
            i = queue[head]
            head += 1
            for j in dependents[i]:
                indeg[j] -= 1
                if not indeg[j]:
                    queue.append(j)
        if head == n:
            return
        stuck = [i for i in range(n) if indeg[i]]
        for scc in _sccs(stuck, [e.deps for e in entries]):
            members = set(scc)
            root = scc[0]
            if len(scc) == 1 and root not in entries[root].deps:
                continue  # downstream of a cycle, not on one (Rule 5)
            named, walks = _cycle_through(root, members, entries)
            ids = [e.call_id for e in entries]
            text = _cycle_text([ids[i] for i in named], [], len(named))
            on_named = set(named)
            for v in scc:
                if v in on_named:
                    entries[v].reject(f"dependency cycle: {text}")
                else:
                    entries[v].reject(f"dependency cycle: {walks.text(v, ids)}")
            self.problems.append(DependencyProblem(
                resource=f"cycle:{entries[root].call_id}",
                calls=tuple(entries[i].call_id for i in scc),
                reason=f"dependency cycle: {text}",
                detail={"cycle": [entries[i].call_id for i in named]},
            ))

    # ---------------------------------------------------------------- Rule 5

    def _rejected_deps(self, rejected: Mapping[str, str]) -> None:
        entries = self.entries
        for e in entries:
            if e.reasons or not e.deps:
                continue
            bad = [entries[d].call_id for d in e.deps if entries[d].reasons]
            if not bad:
                continue
            why = ", ".join(f"{d} ({rejected[d]})" for d in bad)
            noun = "call" if len(bad) == 1 else "calls"
            self.problems.append(DependencyProblem(
                resource="call:" + "|".join(bad),
                calls=(e.call_id, *bad),
                reason=f"{e.call_id} depends on rejected {noun} {why}",
                rejected_deps=tuple(bad),
                detail={"dependent": e.call_id, "rejected_deps": bad},
            ))

    # ----------------------------------------------------------------- calls

    def _calls(self) -> list[Call]:
        entries = self.entries
        out = []
        for i, e in enumerate(entries):
            plan, step = e.plan, e.step
            out.append(Call(
                call_id=e.call_id,
                seq=i,
                plan_id=plan.plan_id,
                step_id=step.id,
                agent_id=plan.agent_id,
                priority=plan.priority,
                tool=step.tool,
                contract=self._contracts[i],
                args=step.args,
                confidence=step.confidence,
                deps=tuple(entries[d].call_id for d in e.deps),
                reads=self._reads[i],
                writes=self._writes[i],
                idempotency_key=self._keys[i],
                on_failure=plan.on_failure,
                phase21_plan_id=plan.phase21_plan_id,
                phase22_validation_id=plan.phase22_validation_id,
            ))
        return out


# ------------------------------------------------------------------ helpers


def _templates(contract: ToolContract) -> tuple[list[Template], list[Template], str | None]:
    """The tool's parsed resource templates; a syntax error rejects its calls."""
    out: tuple[list[Template], list[Template]] = ([], [])
    for texts, dest in ((contract.effects.reads, out[0]), (contract.effects.writes, out[1])):
        for text in texts:
            try:
                dest.append(parse(text))
            except TemplateError as exc:
                return [], [], f"tool {contract.name}: {exc}"
    return out[0], out[1], None


def _expand(templates: Sequence[Template], args: Mapping[str, Any], e: _Entry) -> tuple[str, ...]:
    if not templates:
        return ()
    out: list[str] = []
    for t in templates:
        names = t.names
        if len(names) == 1 and names[0] in args:  # the common case: "file:{path}"
            try:
                r = t.literals[0] + render_value(args[names[0]]) + t.literals[1]
            except (TypeError, ValueError) as exc:
                e.reject(f"template '{t.text}': argument '{names[0]}' of step {e.step.id} "
                         f"cannot be rendered ({exc})")
                continue
        else:
            absent = t.missing(args)
            if absent is not None:
                e.reject(f"template '{t.text}' names argument '{absent}' which step "
                         f"{e.step.id} does not give")
                continue
            try:
                r = t.render(args)
            except (TypeError, ValueError) as exc:
                e.reject(f"template '{t.text}' of step {e.step.id} cannot be rendered ({exc})")
                continue
        if r not in out:
            out.append(r)
    return tuple(out)


def _sccs(nodes: Sequence[int], deps: Sequence[Sequence[int]]) -> list[list[int]]:
    """Strongly connected components among ``nodes`` (iterative Tarjan), each
    sorted, listed by smallest member: deterministic."""
    inside = set(nodes)
    index: dict[int, int] = {}
    low: dict[int, int] = {}
    on_stack: set[int] = set()
    stack: list[int] = []
    out: list[list[int]] = []
    counter = 0
    for start in nodes:
        if start in index:
            continue
        work = [(start, 0)]
        index[start] = low[start] = counter
        counter += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            v, k = work[-1]
            succ = deps[v]
            if k < len(succ):
                work[-1] = (v, k + 1)
                w = succ[k]
                if w not in inside:
                    continue
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, 0))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                u = work[-1][0]
                low[u] = min(low[u], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                out.append(sorted(comp))
    out.sort(key=lambda c: c[0])
    return out


class _Walks:
    """Cycles through the members of a component that are off the named cycle:
    ``v -> ... -> root -> ... -> v`` from two BFS trees, written in O(shown)
    per member however long the walk is (no quadratic blow-up on big cycles)."""

    def __init__(self, root: int, fwd_parent: dict[int, int], fwd_dist: dict[int, int],
                 back_next: dict[int, int], back_dist: dict[int, int]) -> None:
        self.root = root
        self.fwd_parent, self.fwd_dist = fwd_parent, fwd_dist
        self.back_next, self.back_dist = back_next, back_dist

    def text(self, v: int, ids: Sequence[str]) -> str:
        total = self.back_dist[v] + self.fwd_dist[v] + 1  # nodes, v at both ends
        half = _CYCLE_SHOWN // 2
        head = [v]  # v -> ... -> root
        while head[-1] != self.root and (total <= _CYCLE_SHOWN or len(head) < half):
            head.append(self.back_next[head[-1]])
        tail = [v]  # ... -> root -> ... -> v, walked backwards
        limit = self.fwd_dist[v] if total <= _CYCLE_SHOWN else half - 1
        while len(tail) <= limit and tail[-1] != self.root:
            tail.append(self.fwd_parent[tail[-1]])
        tail.reverse()
        if total <= _CYCLE_SHOWN:
            return _cycle_text([ids[i] for i in head] + [ids[i] for i in tail[1:]], [], total)
        return _cycle_text([ids[i] for i in head], [ids[i] for i in tail], total)


def _cycle_through(root: int, members: set[int], entries: Sequence[_Entry]) -> tuple[list[int], _Walks]:
    """A shortest cycle through ``root`` (BFS along deps inside its component),
    and the BFS trees that name a cycle through any other member."""
    fwd_parent: dict[int, int] = {}
    fwd_dist = {root: 0}
    closing = -1
    frontier = [root]
    while frontier:
        nxt = []
        for u in frontier:
            for w in entries[u].deps:
                if w == root and closing < 0:
                    closing = u
                if w in members and w not in fwd_dist:
                    fwd_dist[w] = fwd_dist[u] + 1
                    fwd_parent[w] = u
                    nxt.append(w)
        frontier = nxt
    named = [closing]
    while named[-1] != root:
        named.append(fwd_parent[named[-1]])
    named.reverse()  # root -> ... -> closing
    named.append(root)
    rev: dict[int, list[int]] = {}
    for u in sorted(members):
        for w in entries[u].deps:
            if w in members:
                rev.setdefault(w, []).append(u)
    back_next: dict[int, int] = {}
    back_dist = {root: 0}
    frontier = [root]
    while frontier:
        nxt = []
        for w in frontier:
            for u in rev.get(w, ()):
                if u not in back_dist:
                    back_dist[u] = back_dist[w] + 1
                    back_next[u] = w
                    nxt.append(u)
        frontier = nxt
    return named, _Walks(root, fwd_parent, fwd_dist, back_next, back_dist)


def _cycle_text(head: Sequence[str], tail: Sequence[str], total: int) -> str:
    """``a -> b -> a``; a walk longer than ``_CYCLE_SHOWN`` shows its two ends."""
    if not tail:
        if len(head) <= _CYCLE_SHOWN:
            return " -> ".join(head)
        half = _CYCLE_SHOWN // 2
        head, tail = head[:half], head[-half:]
    hidden = total - len(head) - len(tail)
    return " -> ".join(head) + f" -> ... ({hidden} more) -> " + " -> ".join(tail)

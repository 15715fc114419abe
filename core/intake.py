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
import json
from typing import Any, Mapping, Sequence

from interlock.core.calls import Call, IntakeResult
from interlock.core.conflicts import CallTable, DependencyProblem, detect_table
from interlock.core.errors import TemplateError
from interlock.core.model import Catalog, PlanSet, Policy, Risk, Step, ToolContract, call_id
from interlock.core.resources import Template, parse, render_value

__all__ = ["intake", "default_idempotency_key"]

_NO_LEDGER: Mapping[tuple[str, str], str] = {}  # never mutated
#: ``audit.canonical_json``'s settings in one reusable encoder: ``json.dumps``
#: with options builds a new encoder per call, a third of a key's cost.
#: tests/unit/test_intake.py checks that both give the same text.
_CANONICAL = json.JSONEncoder(sort_keys=True, separators=(",", ":"), ensure_ascii=False,
                              allow_nan=False).encode
_CYCLE_SHOWN = 12  # call ids shown when naming a long cycle


def default_idempotency_key(tool: str, args: Mapping[str, Any]) -> str:
    """sha256 hex of ``tool + "\\n" + canonical JSON of args`` (sorted keys, compact)."""
    return hashlib.sha256((tool + "\n" + _CANONICAL(args)).encode("utf-8")).hexdigest()


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


class _Deps:
    """Every call's dependencies (call indices) in CSR form: two flat int lists."""

    __slots__ = ("start", "flat")

    def __init__(self) -> None:
        self.start = [0]
        self.flat: list[int] = []

    def __len__(self) -> int:
        return len(self.start) - 1

    def __getitem__(self, i: int) -> list[int]:
        return self.flat[self.start[i]:self.start[i + 1]]


class _Intake:
    """One intake pass. Per-call data live in parallel lists indexed by
    submission position (no object per step: at 100k calls, per-call
    containers cost more in cyclic-GC passes than the work itself)."""

    def __init__(self, plans: PlanSet, catalog: Catalog, policy: Policy,
                 ledger: Mapping[tuple[str, str], str]) -> None:
        self.plans = plans.plans
        self.catalog = catalog
        self.policy = policy
        self.ledger = ledger
        self.plan_of: list[int] = []  # call -> plan position
        self.steps: list[Step] = []
        self.ids: list[str] = []
        self.deps = _Deps()
        self.reasons: dict[int, list[str]] = {}
        self.plan_first: dict[str, int] = {}  # plan id -> position of the first plan so named
        #: "plan position:step id" -> first call index (one flat dict, not one per plan)
        self.step_index: dict[str, int] = {}
        self.problems: list[DependencyProblem] = []
        self._singles: dict[str, tuple[str]] = {}
        self._reads: list[tuple[str, ...]] = []
        self._writes: list[tuple[str, ...]] = []
        self._keys: list[str] = []
        self._contracts: list[ToolContract] = []
        self._prio: list[int] = []
        self._tools: list[str] = []
        self._after: list[tuple[str, ...]] = []

    def reject(self, i: int, reason: str) -> None:
        have = self.reasons.get(i)
        if have is None:
            self.reasons[i] = [reason]
        elif reason not in have:
            have.append(reason)

    def run(self) -> IntakeResult:
        self._scan()
        self._link()
        self._cycles()
        calls = self._calls()
        ids = self.ids
        rejected = {ids[i]: "; ".join(self.reasons[i]) for i in sorted(self.reasons)}
        self._rejected_deps(rejected)
        table = CallTable(ids, self._prio, self._tools, self._contracts, self._reads, self._writes,
                          self._keys, self.deps.start, self.deps.flat)
        found = detect_table(table, set(self.reasons), self.policy, ledger=self.ledger,
                             dependency_problems=self.problems)
        return IntakeResult(
            calls=tuple(calls),
            rejected=rejected,
            cancelled=found.cancelled,
            order_edges=found.order_edges,
            escalations=found.escalations,
            conflicts=found.records,
        )

    # ------------------------------------------------------------ Rules 1, 3

    def _scan(self) -> None:
        """One pass over the steps in submission order: ids (Rule 1), static
        problems (Rule 3), resources and keys. References wait for
        :meth:`_link`: they may point forward."""
        catalog, policy, plans = self.catalog, self.policy, self.plans
        plan_first = self.plan_first
        for pi, plan in enumerate(plans):
            plan_first.setdefault(plan.plan_id, pi)
        used: set[str] | None = None  # every id a step really has; built at the first repeat
        plan_of, all_steps, ids, steps = self.plan_of, self.steps, self.ids, self.step_index
        templates: dict[str, tuple[list[Template], list[Template], str | None]] = {}
        reads, writes, keys, contracts = self._reads, self._writes, self._keys, self._contracts
        prio, tools, after = self._prio, self._tools, self._after
        denied = {name for name, o in policy.tools.items() if o.deny}
        by_name = catalog.by_name
        for pi, plan in enumerate(plans):
            pid = plan.plan_id
            repeated_plan = plan_first[pid] != pi
            priority = plan.priority
            for step in plan.steps:
                i = len(ids)
                sid = step.id
                cid = f"{pid}/{sid}"
                where = f"{pi}:{sid}"
                repeated_step = where in steps
                if not repeated_step:
                    steps[where] = i
                if repeated_plan or repeated_step:
                    if used is None:
                        used = self._primary_ids()
                    n = 2
                    while f"{cid}#{n}" in used:
                        n += 1
                    cid = f"{cid}#{n}"
                    used.add(cid)
                plan_of.append(pi)
                all_steps.append(step)
                ids.append(cid)
                if repeated_plan:
                    self.reject(i, f"duplicate plan id '{pid}': plan #{pi + 1} in the file "
                                   f"repeats plan #{plan_first[pid] + 1}")
                if repeated_step:
                    self.reject(i, f"duplicate step id '{sid}' in plan '{pid}'")
                # Rule 3
                if priority < 0:
                    self.reject(i, f"plan {pid}: priority must be >= 0, got {priority}")
                tool = step.tool
                contract = by_name.get(tool)
                if contract is None:
                    self.reject(i, f"tool '{tool}' is not in the catalog")
                    contract = ToolContract(name=tool, risk=Risk.HIGH)
                if tool in denied:
                    self.reject(i, f"policy denies tool {tool}")
                contracts.append(contract)
                prio.append(priority)
                tools.append(tool)
                # resources
                tpl = templates.get(tool)
                if tpl is None:
                    tpl = templates[tool] = _templates(contract)
                reads_t, writes_t, bad = tpl
                if bad is not None:
                    self.reject(i, bad)
                args = step.args
                reads.append(self._expand(reads_t, args, i) if reads_t else ())
                writes.append(self._expand(writes_t, args, i) if writes_t else ())
                # idempotency key
                key = step.idempotency_key
                if key is None:
                    try:
                        key = default_idempotency_key(tool, args)
                    except (TypeError, ValueError) as exc:
                        self.reject(i, f"step {sid}: args cannot be written as canonical JSON ({exc})")
                        key = hashlib.sha256(repr(args).encode("utf-8")).hexdigest()
                keys.append(key)
                after.append(step.after)

    def _primary_ids(self) -> set[str]:
        """Ids of every first occurrence: a generated ``#n`` id must not take one."""
        out: set[str] = set()
        for pi, plan in enumerate(self.plans):
            if self.plan_first[plan.plan_id] == pi:
                out.update(call_id(plan.plan_id, step.id) for step in plan.steps)
        return out

    # ---------------------------------------------------------------- Rule 2

    def _link(self) -> None:
        """Resolve ``after`` into the CSR dependency lists; record missing ones."""
        missing: dict[str, list[int]] = {}
        flat, start = self.deps.flat, self.deps.start
        plan_of, plans = self.plan_of, self.plans
        for i, refs in enumerate(self._after):
            if refs:
                deps: list[int] = []
                for ref in refs:
                    j = self._lookup(plan_of[i], ref)
                    if j is None:
                        pid = plans[plan_of[i]].plan_id
                        qualified = ref if "/" in ref else call_id(pid, ref)
                        self.reject(i, f"plan {pid} step {self.steps[i].id}: dependency '{qualified}' "
                                       "does not exist")
                        missing.setdefault(qualified, []).append(i)
                    elif j not in deps:
                        deps.append(j)
                flat.extend(deps)
            start.append(len(flat))
        for ref, who in missing.items():
            ids = tuple(self.ids[i] for i in who)
            self.problems.append(DependencyProblem(
                resource=f"call:{ref}", calls=ids,
                reason=f"dependency '{ref}' does not exist (named by {', '.join(ids)})",
                detail={"missing": ref},
            ))

    def _expand(self, templates: Sequence[Template], args: Mapping[str, Any], i: int) -> tuple[str, ...]:
        if len(templates) == 1:  # the common case: one resource, shared 1-tuples under skew
            t = templates[0]
            names = t.names
            if len(names) == 1 and names[0] in args and isinstance(args[names[0]], str):
                r = t.literals[0] + args[names[0]] + t.literals[1]
                one = self._singles.get(r)
                if one is None:
                    one = self._singles[r] = (r,)
                return one
        out: list[str] = []
        for t in templates:
            names = t.names
            if len(names) == 1 and names[0] in args:  # the common case: "file:{path}"
                value = args[names[0]]
                if isinstance(value, str):
                    r = t.literals[0] + value + t.literals[1]
                else:
                    try:
                        r = t.literals[0] + render_value(value) + t.literals[1]
                    except (TypeError, ValueError) as exc:
                        self.reject(i, f"template '{t.text}': argument '{names[0]}' of step "
                                       f"{self.steps[i].id} cannot be rendered ({exc})")
                        continue
            else:
                absent = t.missing(args)
                if absent is not None:
                    self.reject(i, f"template '{t.text}' names argument '{absent}' which step "
                                   f"{self.steps[i].id} does not give")
                    continue
                try:
                    r = t.render(args)
                except (TypeError, ValueError) as exc:
                    self.reject(i, f"template '{t.text}' of step {self.steps[i].id} cannot be "
                                   f"rendered ({exc})")
                    continue
            if r not in out:
                out.append(r)
        return tuple(out)

    def _lookup(self, plan_pos: int, ref: str) -> int | None:
        j = self.step_index.get(f"{plan_pos}:{ref}")
        if j is not None:
            return j
        start = 0
        while True:  # "plan/step"; plan ids may themselves contain "/"
            k = ref.find("/", start)
            if k < 0:
                return None
            pp = self.plan_first.get(ref[:k])
            if pp is not None:
                j = self.step_index.get(f"{pp}:{ref[k + 1:]}")
                if j is not None:
                    return j
            start = k + 1

    # ---------------------------------------------------------------- Rule 4

    def _cycles(self) -> None:
        deps = self.deps
        n = len(deps)
        start, flat = deps.start, deps.flat
        if not flat:
            return
        indeg = [start[i + 1] - start[i] for i in range(n)]
        rstart = [0] * (n + 1)  # dependents, CSR as well
        for d in flat:
            rstart[d + 1] += 1
        for k in range(n):
            rstart[k + 1] += rstart[k]
        fill = rstart[:]
        rev = [0] * len(flat)
        for i in range(n):
            for k in range(start[i], start[i + 1]):
                d = flat[k]
                rev[fill[d]] = i
                fill[d] += 1
        queue = [i for i in range(n) if not indeg[i]]
        head = 0
        while head < len(queue):
            i = queue[head]
            head += 1
            for k in range(rstart[i], rstart[i + 1]):
                j = rev[k]
                indeg[j] -= 1
                if not indeg[j]:
                    queue.append(j)
        if head == n:
            return
        stuck = [i for i in range(n) if indeg[i]]
        adj = {v: deps[v] for v in stuck}  # only the calls Kahn could not order
        ids = self.ids
        for scc in _sccs(stuck, adj):
            root = scc[0]
            if len(scc) == 1 and root not in adj[root]:
                continue  # downstream of a cycle, not on one (Rule 5)
            named, walks = _cycle_through(root, set(scc), adj)
            text = _cycle_text([ids[i] for i in named], [], len(named))
            on_named = set(named)
            for v in scc:
                if v in on_named:
                    self.reject(v, f"dependency cycle: {text}")
                else:
                    self.reject(v, f"dependency cycle: {walks.text(v, ids)}")
            self.problems.append(DependencyProblem(
                resource=f"cycle:{ids[root]}",
                calls=tuple(ids[i] for i in scc),
                reason=f"dependency cycle: {text}",
                detail={"cycle": [ids[i] for i in named]},
            ))

    # ---------------------------------------------------------------- Rule 5

    def _rejected_deps(self, rejected: Mapping[str, str]) -> None:
        ids, reasons = self.ids, self.reasons
        if not reasons:
            return
        start, flat = self.deps.start, self.deps.flat
        for i in range(len(ids)):
            a, b = start[i], start[i + 1]
            if a == b or i in reasons:
                continue
            bad = [ids[d] for d in flat[a:b] if d in reasons]
            if not bad:
                continue
            why = ", ".join(f"{d} ({rejected[d]})" for d in bad)
            noun = "call" if len(bad) == 1 else "calls"
            self.problems.append(DependencyProblem(
                resource="call:" + "|".join(bad),
                calls=(ids[i], *bad),
                reason=f"{ids[i]} depends on rejected {noun} {why}",
                rejected_deps=tuple(bad),
                detail={"dependent": ids[i], "rejected_deps": bad},
            ))

    # ----------------------------------------------------------------- calls

    def _calls(self) -> list[Call]:
        ids, plans, plan_of = self.ids, self.plans, self.plan_of
        start, flat = self.deps.start, self.deps.flat
        contracts, reads, writes, keys = self._contracts, self._reads, self._writes, self._keys
        out = []
        for i, step in enumerate(self.steps):
            plan = plans[plan_of[i]]
            a, b = start[i], start[i + 1]
            out.append(Call(
                ids[i], i, plan.plan_id, step.id, plan.agent_id, plan.priority, step.tool,
                contracts[i], step.args, step.confidence,
                () if a == b else (ids[flat[a]],) if b - a == 1 else tuple([ids[d] for d in flat[a:b]]),
                reads[i], writes[i], keys[i],
                plan.on_failure, plan.phase21_plan_id, plan.phase22_validation_id,
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


def _sccs(nodes: Sequence[int], deps: Mapping[int, Sequence[int]]) -> list[list[int]]:
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


def _cycle_through(root: int, members: set[int], deps: Mapping[int, Sequence[int]]
                   ) -> tuple[list[int], _Walks]:
    """A shortest cycle through ``root`` (BFS along deps inside its component),
    and the BFS trees that name a cycle through any other member."""
    fwd_parent: dict[int, int] = {}
    fwd_dist = {root: 0}
    closing = -1
    frontier = [root]
    while frontier:
        nxt = []
        for u in frontier:
            for w in deps[u]:
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
        for w in deps[u]:
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

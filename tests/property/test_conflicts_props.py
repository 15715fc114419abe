"""Properties of intake + conflict detection (I5 ordering, I6, I12), by hypothesis.

Every check here is computed the slow, obvious way (pairwise, reachability
searches) -- only in the test; the code under test never enumerates pairs.

- acyclic: deps ∪ order_edges over the calls that may still run has no cycle
  (a cycle would deadlock the run);
- I6 by construction: any two such calls that write the same resource, or
  where one reads what the other writes, are ordered: one is reachable from
  the other through deps ∪ order_edges;
- linear edges: order edges stay within a linear bound of the accesses
  (see ``edge_bound``), never one per conflicting pair;
- I12: same input, same result.

The stateful suite keeps an oracle model of the plans (naive reference
resolution, naive cycle search, naive problem list) and compares intake's
rejections, dependencies and escalations with it after every rule.
"""

from __future__ import annotations

from collections import defaultdict
from itertools import combinations

from hypothesis import given, note, settings
from hypothesis import strategies as st
from hypothesis.stateful import RuleBasedStateMachine, initialize, invariant, precondition, rule

from interlock.core.conflicts import ALLOWED_STRATEGIES, is_irreversible
from interlock.core.intake import intake
from interlock.core.model import (
    Catalog, ConflictPolicy, ConflictType, Effects, Plan, PlanSet, Policy, Risk, RollbackSpec,
    Step, Strategy, ToolContract, ToolOverride,
)

# Skewed popularity: "hot" is drawn far more often than the rest (a lockfile).
RESOURCE = st.one_of(st.just("hot"), st.just("hot"), st.just("hot"), st.just("warm"),
                     st.sampled_from(["a", "b", "c", "d", "e", "f", "g"]))


# ------------------------------------------------------------------- checks


def survivors(res):
    gone = set(res.rejected) | set(res.cancelled)
    return [c for c in res.calls if c.call_id not in gone]


def graph(res):
    live = {c.call_id for c in survivors(res)}
    succ = defaultdict(set)
    for c in res.calls:
        if c.call_id in live:
            for d in c.deps:
                if d in live:
                    succ[d].add(c.call_id)
    for a, b in res.order_edges:
        succ[a].add(b)
    return live, succ


def reachable_from(start, succ):
    seen, todo = {start}, [start]
    while todo:
        for w in succ[todo.pop()]:
            if w not in seen:
                seen.add(w)
                todo.append(w)
    return seen


def assert_acyclic(res):
    live, succ = graph(res)
    indeg = {v: 0 for v in live}
    for a in live:
        for b in succ[a]:
            indeg[b] += 1
    queue = [v for v in live if not indeg[v]]
    seen = 0
    while queue:
        v = queue.pop()
        seen += 1
        for w in succ[v]:
            indeg[w] -= 1
            if not indeg[w]:
                queue.append(w)
    assert seen == len(live), "deps ∪ order_edges has a cycle: the run would deadlock"


def conflicting_pairs(res):
    """Every pair of surviving calls in a write_write or read_write conflict (naive)."""
    calls = survivors(res)
    for x, y in combinations(calls, 2):
        wx, wy = set(x.writes), set(y.writes)
        rx, ry = set(x.reads), set(y.reads)
        if wx & wy or wx & ry or rx & wy:
            yield x, y


def assert_i6(res):
    _, succ = graph(res)
    reach = {}
    for x, y in conflicting_pairs(res):
        rx = reach.setdefault(x.call_id, reachable_from(x.call_id, succ))
        ry = reach.setdefault(y.call_id, reachable_from(y.call_id, succ))
        assert y.call_id in rx or x.call_id in ry, (
            f"I6: {x.call_id} and {y.call_id} share a written resource but are unordered")


def edge_bound(res):
    """A linear bound on order edges. Per resource, write_write and read_write
    add at most k_w - 1 + 2 k_r (a reader between two writers needs one edge
    in and one out, so readers of one gap stay concurrent); duplicate chains
    at most one per call; mutually_exclusive chains at most one per call per
    conflicting partner, on each resource or tool pair."""
    live = survivors(res)
    accesses = sum(len(set(c.reads) | set(c.writes)) for c in live)
    degree = max((len(c.contract.conflicts_with) for c in res.calls), default=0)
    partners = 2 * degree + 1  # named by it or naming it (bounded by the catalog)
    return 2 * accesses + len(live) + partners * (accesses + len(live))


def assert_well_formed(res):
    assert [c.seq for c in res.calls] == list(range(len(res.calls)))
    ids = [c.call_id for c in res.calls]
    assert len(set(ids)) == len(ids)
    assert not (set(res.rejected) & set(res.cancelled))
    assert set(res.rejected) <= set(ids) and set(res.cancelled) <= set(ids)
    gone = set(res.rejected) | set(res.cancelled)
    for a, b in res.order_edges:
        assert a not in gone and b not in gone
    assert len(set(res.order_edges)) == len(res.order_edges)
    assert [c.id for c in res.conflicts] == [f"C{n:04d}" for n in range(1, len(res.conflicts) + 1)]
    known = {c.id for c in res.conflicts}
    for esc in res.escalations:
        assert esc.conflict_id in known and not (set(esc.call_ids) & gone)


def assert_deduplicated(res, policy, ledger):
    if policy.conflicts.duplicate_irreversible is not Strategy.DEDUPLICATE:
        return
    keys = defaultdict(list)
    for c in survivors(res):
        if is_irreversible(c.contract):
            keys[(c.tool, c.idempotency_key)].append(c.call_id)
    for key, who in keys.items():
        holder = ledger.get(key)
        assert len(who) <= 1, f"I4: {who} all keep {key}"
        assert holder is None or who == [holder], f"I4: {who} run {key} already started by {holder}"


def check_all(res, policy, ledger):
    assert_well_formed(res)
    assert_acyclic(res)
    assert_i6(res)
    assert len(res.order_edges) <= edge_bound(res)
    assert_deduplicated(res, policy, ledger)


# ------------------------------------------------------ random catalogs/plans

READS = ["file:{src}", "file:{path}", "lock:{path}"]
WRITES = ["file:{dst}", "file:{path}", "lock:{path}"]


@st.composite
def catalogs(draw):
    n = draw(st.integers(2, 6))
    names = [f"t{i}" for i in range(n)]
    tools = []
    for name in names:
        reversible = draw(st.booleans())
        tools.append(ToolContract(
            name=name, risk=Risk.LOW, reversible=reversible,
            rollback=RollbackSpec(name) if reversible else None,
            effects=Effects(tuple(draw(st.lists(st.sampled_from(READS), max_size=2, unique=True))),
                            tuple(draw(st.lists(st.sampled_from(WRITES), max_size=2, unique=True)))),
            conflicts_with=tuple(draw(st.lists(st.sampled_from(names), max_size=2, unique=True))),
            max_concurrency=draw(st.one_of(st.none(), st.integers(1, 3))),
        ))
    return Catalog(tools=tuple(tools))


def policies(catalog):
    def strat(kind):
        return st.sampled_from(sorted(ALLOWED_STRATEGIES[kind], key=lambda s: s.value))
    return st.builds(
        lambda ww, rw, dup, mx, deny: Policy(
            conflicts=ConflictPolicy(write_write=ww, read_write=rw, duplicate_irreversible=dup,
                                     mutually_exclusive=mx),
            tools={t: ToolOverride(deny=True) for t in deny}),
        strat(ConflictType.WRITE_WRITE), strat(ConflictType.READ_WRITE),
        strat(ConflictType.DUPLICATE_IRREVERSIBLE), strat(ConflictType.MUTUALLY_EXCLUSIVE),
        st.lists(st.sampled_from([t.name for t in catalog.tools]), max_size=1),
    )


_INDEX = st.integers(0, 10**6)  # drawn once and reduced: cheaper than a new strategy per draw
_KEY = st.one_of(st.none(), st.sampled_from(["k1", "k2"]))
_AFTER = st.lists(st.tuples(st.booleans(), _INDEX, _INDEX), max_size=2)


@st.composite
def plan_sets(draw, catalog):
    tools = [t.name for t in catalog.tools]
    n_plans = draw(st.integers(1, 6))
    plans = []
    for p in range(n_plans):
        n_steps = draw(st.integers(1, 5))
        steps = []
        for s in range(n_steps):
            dup = draw(st.integers(0, 5))
            sid = f"s{s}" if dup else f"s{draw(_INDEX) % n_steps}"
            args = {"src": draw(RESOURCE), "dst": draw(RESOURCE), "n": draw(st.integers(0, 2))}
            if draw(st.integers(0, 9)):
                args["path"] = draw(RESOURCE)
            after = [  # same plan (maybe a cycle), or another plan's step (maybe absent)
                f"s{a % n_steps}" if same else f"p{a % (n_plans + 1)}/s{b % 5}"
                for same, a, b in draw(_AFTER)
            ]
            steps.append(Step(id=sid, tool=tools[draw(_INDEX) % len(tools)], confidence=0.9, args=args,
                              after=tuple(after), idempotency_key=draw(_KEY)))
        plans.append(Plan(plan_id=f"p{p}", agent_id=f"agent{p % 3}", steps=tuple(steps),
                          priority=draw(st.integers(-1, 3) if p == 0 else st.integers(0, 3))))
    return PlanSet(plans=tuple(plans))


@st.composite
def batches(draw):
    catalog = draw(catalogs())
    policy = draw(policies(catalog))
    plans = draw(plan_sets(catalog))
    ledger = draw(st.one_of(st.just({}), st.builds(
        lambda t, holder: {(t, "k1"): holder},
        st.sampled_from([t.name for t in catalog.tools]), st.sampled_from(["old/x", "p0/s0", "p1/s0"]))))
    return catalog, policy, plans, ledger


@given(batches())
def test_random_batches_keep_the_ordering_invariants_deterministically(batch):
    catalog, policy, plans, ledger = batch
    res = intake(plans, catalog, policy, ledger=ledger)
    note(f"rejected={res.rejected}\ncancelled={res.cancelled}\nedges={res.order_edges}")
    check_all(res, policy, ledger)
    assert intake(plans, catalog, policy, ledger=dict(ledger)) == res  # I12


HOT = Catalog(tools=(
    ToolContract("w", Risk.LOW, reversible=True, rollback=RollbackSpec("w"), effects=Effects(writes=("file:{p}",))),
    ToolContract("r", Risk.LOW, reversible=True, rollback=RollbackSpec("r"), effects=Effects(reads=("file:{p}",))),
))


@given(st.lists(st.tuples(st.sampled_from("wr"), st.integers(0, 3)), min_size=2, max_size=80))
def test_a_hot_resource_gets_a_chain_not_a_clique(accesses):
    """k unordered accessors of one file: exactly k_w - 1 writer edges plus one
    edge per reader and neighbouring writer; pairwise would be ~k^2/2."""
    plans = PlanSet(plans=tuple(
        Plan(plan_id=f"p{i}", agent_id="a", priority=prio,
             steps=(Step(id="s", tool=kind, confidence=0.9, args={"p": "hot"}),))
        for i, (kind, prio) in enumerate(accesses)))
    res = intake(plans, HOT, Policy())
    # chain order: higher priority first, then submission order
    order = sorted(range(len(accesses)), key=lambda i: (-accesses[i][1], i))
    kinds = [accesses[i][0] for i in order]
    writers = [n for n, k in enumerate(kinds) if k == "w"]
    expected = max(len(writers) - 1, 0)
    if writers:
        for n, k in enumerate(kinds):
            if k == "r":
                expected += (writers[0] < n) + (writers[-1] > n)
    assert len(res.order_edges) == expected
    assert len(res.order_edges) <= 2 * len(accesses)
    check_all(res, Policy(), {})


# ------------------------------------------------------------ stateful suite


def _tool(name, reads=(), writes=(), reversible=True, conflicts_with=(), max_concurrency=None):
    return ToolContract(name=name, risk=Risk.LOW, reversible=reversible,
                        rollback=RollbackSpec(name) if reversible else None,
                        effects=Effects(tuple(reads), tuple(writes)),
                        conflicts_with=tuple(conflicts_with), max_concurrency=max_concurrency)


MODEL_CATALOG = Catalog(tools=(
    _tool("W", writes=["file:{path}"]),
    _tool("R", reads=["file:{path}"]),
    _tool("CP", reads=["file:{src}"], writes=["file:{dst}"]),
    _tool("PAY", reversible=False),
    _tool("WX", writes=["file:{path}"], reversible=False),
    _tool("DEL", writes=["file:{path}"], conflicts_with=["TOUCH"]),
    _tool("TOUCH", reads=["file:{path}"]),
    _tool("G1", conflicts_with=["G2"]),
    _tool("G2"),
    _tool("SLOT", max_concurrency=1),
    _tool("DENY"),
))
NEEDS_PATH = {"W", "R", "WX", "DEL", "TOUCH"}


class IntakeMachine(RuleBasedStateMachine):
    """Plans grow one step at a time; after each rule intake runs on the whole
    batch and is compared with a naive oracle of the same plans."""

    @initialize(
        ww=st.sampled_from(sorted(ALLOWED_STRATEGIES[ConflictType.WRITE_WRITE], key=str)),
        rw=st.sampled_from(sorted(ALLOWED_STRATEGIES[ConflictType.READ_WRITE], key=str)),
        dup=st.sampled_from(sorted(ALLOWED_STRATEGIES[ConflictType.DUPLICATE_IRREVERSIBLE], key=str)),
        mx=st.sampled_from(sorted(ALLOWED_STRATEGIES[ConflictType.MUTUALLY_EXCLUSIVE], key=str)),
        ledger=st.sampled_from([{}, {("PAY", "k1"): "earlier/x"}, {("PAY", "k1"): "p0/s0"}]),
    )
    def setup(self, ww, rw, dup, mx, ledger):
        self.policy = Policy(
            conflicts=ConflictPolicy(write_write=ww, read_write=rw, duplicate_irreversible=dup,
                                     mutually_exclusive=mx),
            tools={"DENY": ToolOverride(deny=True)})
        self.ledger = ledger
        self.plans: list[dict] = []  # the model: {"id", "priority", "steps": [dict]}
        self.res = None

    # ------------------------------------------------------------- rules

    @rule(priority=st.integers(-1, 3), reuse=st.integers(0, 9))
    def add_plan(self, priority, reuse):
        pid = f"p{len(self.plans)}"
        if reuse == 0 and self.plans:  # now and then a repeated plan id
            pid = self.plans[-1]["id"]
        self.plans.append({"id": pid, "priority": priority if reuse else max(priority, 0), "steps": []})
        self._run()

    @precondition(lambda self: self.plans)
    @rule(which=_INDEX, dup=st.integers(0, 5), tool=st.sampled_from([t.name for t in MODEL_CATALOG.tools]),
          src=RESOURCE, dst=RESOURCE, path=st.one_of(st.none(), RESOURCE, RESOURCE, RESOURCE),
          after=st.lists(st.tuples(st.integers(0, 2), _INDEX), max_size=2), key=_KEY)
    def add_step(self, which, dup, tool, src, dst, path, after, key):
        plan = self.plans[which % len(self.plans)]
        n = len(plan["steps"])
        sid = f"s{n}" if dup else f"s{which % (n + 1)}"  # now and then a repeated step id
        args = {"src": src, "dst": dst}
        if path is not None:
            args["path"] = path
        others = [f"{p['id']}/{s['id']}" for p in self.plans for s in p["steps"]] or ["nowhere/s0"]
        refs = [
            f"s{k % (n + 2)}" if kind == 0  # same plan: earlier, itself, or not (yet) there
            else others[k % len(others)] if kind == 1
            else "ghost/s0"
            for kind, k in after
        ]
        plan["steps"].append({"id": sid, "tool": tool, "args": args, "after": refs, "key": key})
        self._run()

    def _run(self):
        self.res = intake(self._planset(), MODEL_CATALOG, self.policy, ledger=self.ledger)
        self.oracle = self._oracle()

    def _planset(self):
        return PlanSet(plans=tuple(
            Plan(plan_id=p["id"], agent_id="a", priority=p["priority"], steps=tuple(
                Step(id=s["id"], tool=s["tool"], confidence=0.9, args=s["args"], after=tuple(s["after"]),
                     idempotency_key=s["key"]) for s in p["steps"]))
            for p in self.plans))

    # ------------------------------------------------------------ oracle

    def _oracle(self):
        """Positions of calls, their resolved deps, and which are rejected -- naively."""
        flat = [(pi, p, s) for pi, p in enumerate(self.plans) for s in p["steps"]]
        first_plan = {}
        for pi, p in enumerate(self.plans):
            first_plan.setdefault(p["id"], pi)
        pos = {}
        for i, (pi, p, s) in enumerate(flat):
            pos.setdefault((pi, s["id"]), i)
        deps, bad = [], set()
        for i, (pi, p, s) in enumerate(flat):
            if first_plan[p["id"]] != pi or pos[(pi, s["id"])] != i:
                bad.add(i)  # repeated plan id or step id
            if p["priority"] < 0 or s["tool"] == "DENY" or (s["tool"] in NEEDS_PATH and "path" not in s["args"]):
                bad.add(i)
            mine = []
            for ref in s["after"]:
                if "/" in ref:
                    q, t = ref.split("/", 1)
                    j = pos.get((first_plan.get(q, -1), t))
                else:
                    j = pos.get((pi, ref))
                if j is None:
                    bad.add(i)
                elif j not in mine:
                    mine.append(j)
            deps.append(mine)
        for i in range(len(flat)):  # on a cycle iff it reaches itself
            seen, todo = set(), list(deps[i])
            while todo:
                j = todo.pop()
                if j == i:
                    bad.add(i)
                    break
                if j not in seen:
                    seen.add(j)
                    todo.extend(deps[j])
        return flat, deps, bad

    # -------------------------------------------------------- invariants

    @invariant()
    def rejections_match_the_oracle(self):
        if self.res is None:
            return
        flat, deps, bad = self.oracle
        assert len(self.res.calls) == len(flat)
        got = {i for i, c in enumerate(self.res.calls) if c.call_id in self.res.rejected}
        assert got == bad

    @invariant()
    def deps_are_the_resolved_after_references(self):
        if self.res is None:
            return
        _, deps, _ = self.oracle
        ids = [c.call_id for c in self.res.calls]
        for c, mine in zip(self.res.calls, deps):
            assert c.deps == tuple(ids[j] for j in mine)

    @invariant()
    def every_dependency_on_a_rejected_call_is_escalated(self):
        # I5: such a call never starts with the dependency silently missing:
        # only a granted escalation drops exactly that (call, dep) pair.
        if self.res is None:
            return
        res = self.res
        want = {(c.call_id, d) for c in res.calls if c.call_id not in res.rejected
                for d in c.deps if d in res.rejected and c.call_id not in res.cancelled}
        got = {pair for e in res.escalations for pair in e.drop_deps}
        assert got == want

    @invariant()
    def ordering_and_i6_hold(self):
        if self.res is not None:
            check_all(self.res, self.policy, self.ledger)

    @invariant()
    def deterministic(self):
        if self.res is not None:
            assert intake(self._planset(), MODEL_CATALOG, self.policy, ledger=dict(self.ledger)) == self.res


# 20 steps reach every rule combination in the default run; the deep profile
# (make verify) keeps its own, longer runs.
if settings.default.stateful_step_count <= 50:
    IntakeMachine.TestCase.settings = settings(settings.default, stateful_step_count=20)
TestIntakeMachine = IntakeMachine.TestCase

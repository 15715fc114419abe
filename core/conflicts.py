"""Conflicts between accepted calls, found before anything runs (SPEC section 4, I6).

A conflict is a **group**: one record per (resource, type) listing every call
involved, never one per pair. k calls writing a hot resource are k(k-1)/2
pairs; enumerating them is quadratic however well it is indexed, so the
detector walks a resource index (resource -> accessors in chain order) once
and spends O(k) per group. ``serialize`` adds a *chain* of ordering edges
(k-1 for k writers; a reader sits between its neighbouring writers, so the
readers of one gap still run concurrently), never an edge per pair.

Rules, as data where possible (``PROCESS_ORDER``, ``ALLOWED_STRATEGIES``):

Rule 1 (one total order, never against dependencies): every chain follows
    ``chain_key = (dependency depth, -priority, seq)`` -- within one
    dependency depth, higher priority first, then submission order. Depth is
    the longest path from a root over accepted calls, so a call sorts after
    every call it depends on; every dependency and every ordering edge then
    points forward in this one order and their union cannot have a cycle
    (a cycle would deadlock the run).
Rule 2 ("unordered" is judged on direct edges only): two calls count as
    ordered only if one lists the other in ``after``. Transitively ordered
    pairs are treated as unordered -- conservative: at worst a redundant
    edge or a conflict record that was not strictly needed. A group is a
    conflict unless every edge its chain needs is already a direct
    dependency.
Rule 3 (greedy, fixed order): types are processed in ``PROCESS_ORDER``; a call
    cancelled by one conflict is skipped in every later group, so it is
    never a winner elsewhere.
Rule 4 (cancel first, order second): strategies that cancel (``priority``,
    ``deduplicate``) run first, over all types in order; chains and
    escalations are built afterwards over the calls that survived, so a
    chain never runs through a call that a later group cancelled (that would
    leave its neighbours unordered and break I6).
Rule 5 (escalate still orders): an escalated group also gets its chain, so if
    the approval gate grants it the calls still never overlap (I6); denied
    or timed out, the orchestrator cancels them.
Rule 6 (duplicates, I4): calls of one irreversible tool with one idempotency
    key form a group (resource ``idempotency:<tool>:<key>``) when there are
    two or more, or when the ledger says another call started the key LIVE
    in an earlier run. ``deduplicate`` keeps one (highest priority, then
    submission order), or none if the ledger holder is someone else; the
    holder itself (a resumed call, same id) is never its own duplicate.
Rule 7 (mutual exclusion): a chain over every call of the two tools on the
    shared resource (``tools:A|B`` when neither declares resources) -- it
    also orders calls of the same tool, which is conservative but keeps the
    edges linear.

Conflict ids ``C0001``... follow the records' order: resources by first
appearance (seq of the first accepted call touching it, then its position in
that call's accesses; synthetic resources such as ``tools:A|B`` after real
ones of the same call), then ``ConflictType`` order.
"""

from __future__ import annotations

from typing import Any, Iterable, Mapping, Sequence

import attrs

from interlock.core.calls import Call, Escalation
from interlock.core.model import ConflictType, Policy, Strategy, ToolContract
from interlock.core.records import ConflictRecord

__all__ = [
    "ALLOWED_STRATEGIES",
    "PROCESS_ORDER",
    "CallTable",
    "DependencyProblem",
    "Detection",
    "chain_order",
    "detect",
    "detect_table",
    "is_irreversible",
]

CT = ConflictType

#: Rule 3: the order types are processed in (cancellations of earlier types win).
PROCESS_ORDER: tuple[ConflictType, ...] = (
    CT.DEPENDENCY,
    CT.DUPLICATE_IRREVERSIBLE,
    CT.MUTUALLY_EXCLUSIVE,
    CT.WRITE_WRITE,
    CT.READ_WRITE,
    CT.CAPACITY,
)

_ORDERING = frozenset({Strategy.SERIALIZE, Strategy.PRIORITY, Strategy.ESCALATE})

#: Strategies that make sense per type (the policy schema offers the same).
#: Anything else falls back to ``_FALLBACK`` -- never to a strategy that cancels.
ALLOWED_STRATEGIES: dict[ConflictType, frozenset[Strategy]] = {
    CT.WRITE_WRITE: _ORDERING,
    CT.READ_WRITE: _ORDERING,
    CT.MUTUALLY_EXCLUSIVE: _ORDERING,
    CT.DUPLICATE_IRREVERSIBLE: frozenset({Strategy.DEDUPLICATE, Strategy.SERIALIZE, Strategy.ESCALATE}),
    CT.CAPACITY: frozenset({Strategy.SERIALIZE}),  # the scheduler enforces max_concurrency
    CT.DEPENDENCY: frozenset({Strategy.ESCALATE}),
}
_FALLBACK: dict[ConflictType, Strategy] = {
    CT.WRITE_WRITE: Strategy.SERIALIZE,
    CT.READ_WRITE: Strategy.SERIALIZE,
    CT.MUTUALLY_EXCLUSIVE: Strategy.SERIALIZE,
    CT.DUPLICATE_IRREVERSIBLE: Strategy.SERIALIZE,
    CT.CAPACITY: Strategy.SERIALIZE,
    CT.DEPENDENCY: Strategy.ESCALATE,
}

_TYPE_RANK = {t: n for n, t in enumerate(ConflictType)}
_SYNTHETIC = 1 << 40  # sorts synthetic resources after the real ones of the same call
_SHOWN = 5  # call ids named in a reason before "... and N more"


def is_irreversible(contract: ToolContract) -> bool:
    """Calls of such a tool must not run twice for one idempotency key (I4)."""
    return contract.guarded_once


def strategy_for(policy: Policy, kind: ConflictType) -> Strategy:
    s = policy.conflicts.strategy(kind)
    return s if s in ALLOWED_STRATEGIES[kind] else _FALLBACK[kind]


@attrs.frozen
class DependencyProblem:
    """A dependency conflict that intake found (missing dependency, cycle, or a
    dependency on a rejected call). ``rejected_deps`` empty: the calls are
    already rejected and the record says so. Non-empty: ``calls[0]`` depends
    on those rejected calls and is escalated (granted: it runs without them)."""

    resource: str
    calls: tuple[str, ...]
    reason: str
    rejected_deps: tuple[str, ...] = ()
    detail: dict[str, Any] = attrs.field(factory=dict)


@attrs.frozen
class Detection:
    records: tuple[ConflictRecord, ...]
    order_edges: tuple[tuple[str, str], ...]
    cancelled: dict[str, str]
    escalations: tuple[Escalation, ...]


class _Group:
    """A record in the making: its id is known only once every group is found."""

    __slots__ = ("kind", "resource", "key", "members", "calls", "strategy", "outcome", "detail",
                 "cancel", "escalate", "drop_deps")

    def __init__(self, kind: ConflictType, resource: str, key: tuple, members: Sequence[int],
                 calls: Sequence[str], strategy: Strategy, outcome: str, detail: dict[str, Any]) -> None:
        self.kind = kind
        self.resource = resource
        self.key = key
        self.members = members  # call indices, in the order of ``calls``
        self.calls = tuple(calls)
        self.strategy = strategy
        self.outcome = outcome
        self.detail = detail
        self.cancel: list[tuple[int, str]] = []  # (call index, reason after "conflict Cnnnn")
        self.escalate: str | None = None  # reason after "conflict Cnnnn", or None
        self.drop_deps: tuple[tuple[str, str], ...] = ()


class CallTable:
    """What detection reads about the calls: parallel lists by submission
    position, dependencies in CSR form (``dep_flat[dep_start[i]:dep_start[i + 1]]``
    are the positions call i depends on). ``intake`` hands over the lists it
    already has; :meth:`from_calls` builds one from ``Call`` values."""

    __slots__ = ("ids", "prio", "tools", "contracts", "reads", "writes", "keys", "dep_start", "dep_flat")

    def __init__(self, ids: list[str], prio: list[int], tools: list[str], contracts: list[ToolContract],
                 reads: list[tuple[str, ...]], writes: list[tuple[str, ...]], keys: list[str],
                 dep_start: list[int], dep_flat: list[int]) -> None:
        self.ids, self.prio, self.tools, self.contracts = ids, prio, tools, contracts
        self.reads, self.writes, self.keys = reads, writes, keys
        self.dep_start, self.dep_flat = dep_start, dep_flat

    @classmethod
    def from_calls(cls, calls: Sequence[Call]) -> CallTable:
        ids = [c.call_id for c in calls]
        pos = {cid: i for i, cid in enumerate(ids)}
        start, flat = [0], []
        for c in calls:
            flat.extend(pos[d] for d in c.deps if d in pos)
            start.append(len(flat))
        return cls(ids, [c.priority for c in calls], [c.tool for c in calls], [c.contract for c in calls],
                   [c.reads for c in calls], [c.writes for c in calls], [c.idempotency_key for c in calls],
                   start, flat)


def chain_order(calls: Sequence[Call], rejected: Mapping[str, str] | Iterable[str] = ()) -> list[int]:
    """Indices of the accepted calls in chain order (Rule 1): dependency depth,
    then higher priority, then submission order."""
    table = CallTable.from_calls(calls)
    return _Index(table, _positions(table.ids, rejected)).order


def _positions(ids: Sequence[str], which: Mapping[str, str] | Iterable[str]) -> set[int]:
    wanted = set(which)
    return {i for i, cid in enumerate(ids) if cid in wanted} if wanted else set()


class _Index:
    """Per-call arrays (by position), built once.

    Hot data are ints in flat lists and sets -- edges as ``a * n + b``, the
    dependency graph in CSR form -- rather than a tuple or set per call: at
    100k calls, per-call containers cost more in cyclic-GC passes than the
    work itself (measured: ~40% of intake time).
    """

    def __init__(self, table: CallTable, rejected: set[int]) -> None:
        n = len(table.ids)
        self.n = n
        self.t = table
        self.ids = table.ids
        self.prio = prio = table.prio
        self.alive = alive = [True] * n
        for i in rejected:
            alive[i] = False
        self._pos: dict[str, int] | None = None
        #: ``d * n + i`` for every direct dependency of call i on call d (Rule 2).
        start, flat = table.dep_start, table.dep_flat
        self.linked = linked = {flat[k] * n + i for i in range(n) for k in range(start[i], start[i + 1])}
        self.depth = depth = self._depths(start, flat)
        live = [i for i in range(n) if alive[i]] if rejected else list(range(n))
        if live:
            top = max(prio[i] for i in live)
            span = top - min(prio[i] for i in live) + 1
            # Rule 1 as one int per call; the sort is stable, so ties keep seq order.
            self.order = sorted(live, key=lambda i: depth[i] * span + top - prio[i])
        else:
            self.order = []
        self.rank = [0] * n
        for r, i in enumerate(self.order):
            self.rank[i] = r

    @property
    def pos(self) -> dict[str, int]:
        if self._pos is None:
            self._pos = {cid: i for i, cid in enumerate(self.ids)}
        return self._pos

    def _depths(self, start: list[int], flat: list[int]) -> list[int]:
        """Longest path from a root over accepted calls (Kahn's algorithm).

        Deps on rejected calls do not count: if the escalation is granted they
        are dropped. Intake rejects every call on a cycle, so all accepted
        calls are reached; any that are not (a caller that skipped intake)
        sort last rather than crash.
        """
        n = self.n
        alive = self.alive
        rstart = [0] * (n + 1)  # CSR of dependents, over accepted calls only
        indeg = [0] * n
        for i in range(n):
            if alive[i]:
                for k in range(start[i], start[i + 1]):
                    d = flat[k]
                    if alive[d]:
                        rstart[d + 1] += 1
                        indeg[i] += 1
        for k in range(n):
            rstart[k + 1] += rstart[k]
        fill = rstart[:]
        succ = [0] * rstart[n]
        for i in range(n):
            if indeg[i]:
                for k in range(start[i], start[i + 1]):
                    d = flat[k]
                    if alive[d]:
                        succ[fill[d]] = i
                        fill[d] += 1
        depth = [0] * n
        queue = [i for i in range(n) if alive[i] and not indeg[i]]
        head = 0
        while head < len(queue):
            i = queue[head]
            head += 1
            di = depth[i] + 1
            for k in range(rstart[i], rstart[i + 1]):
                j = succ[k]
                if depth[j] < di:
                    depth[j] = di
                indeg[j] -= 1
                if not indeg[j]:
                    queue.append(j)
        if head < sum(alive):
            top = max(depth, default=0) + 1
            for i in range(n):
                if alive[i] and indeg[i]:
                    depth[i] = top
        return depth


def detect(
    calls: Sequence[Call],
    rejected: Mapping[str, str] | Iterable[str],
    policy: Policy,
    *,
    ledger: Mapping[tuple[str, str], str] | None = None,
    dependency_problems: Sequence[DependencyProblem] = (),
) -> Detection:
    """Every conflict among the accepted calls, resolved per ``policy``.

    ``calls`` are in submission order (``calls[i].seq == i``); ``rejected`` are
    ids that take no part; ``ledger`` maps (tool, idempotency key) to the call
    that started it LIVE in an earlier run.
    """
    table = CallTable.from_calls(calls)
    return detect_table(table, _positions(table.ids, rejected), policy, ledger=ledger,
                        dependency_problems=dependency_problems)


def detect_table(
    table: CallTable,
    rejected: set[int],
    policy: Policy,
    *,
    ledger: Mapping[tuple[str, str], str] | None = None,
    dependency_problems: Sequence[DependencyProblem] = (),
) -> Detection:
    """:func:`detect` over a :class:`CallTable`; ``rejected`` are positions."""
    return _Detector(table, rejected, policy, ledger or {}, dependency_problems).run()


class _Detector:
    def __init__(self, table: CallTable, rejected: set[int], policy: Policy,
                 ledger: Mapping[tuple[str, str], str],
                 dependency_problems: Sequence[DependencyProblem]) -> None:
        self.x = _Index(table, rejected)
        self.t = table
        self.policy = policy
        self.ledger = ledger
        self.dependency_problems = dependency_problems
        n = len(table.ids)
        self.cancelled = bytearray(n)
        self.groups: list[_Group] = []
        self.edges: list[int] = []  # a * n + b: a before b
        self._edge_seen: set[int] = set()
        self.contract_of = dict(zip(table.tools, table.contracts))  # tool name -> contract
        self._build_resource_index()

    # ------------------------------------------------------------ index

    def _build_resource_index(self) -> None:
        """resource -> entries ``2*i + is_write`` in chain order; first appearance by seq.

        One pass in submission order (the calls' memory order), then each
        shared resource's short list is put in chain order. A call that reads
        and writes one resource counts as a writer there.
        """
        x, t = self.x, self.t
        alive = x.alive
        first: dict[str, int] = {}  # resource -> (seq << 16) | position in that call's accesses
        # A resource one call touches keeps a bare int (no list): under skew most do.
        index: dict[str, Any] = {}
        partners, self.bare = self._mutex_pairs()
        self.partners = partners
        wanted = {tool for tool, c in self.contract_of.items() if c.max_concurrency is not None}
        wanted.update(tool for pair in self.bare for tool in pair)
        by_tool: dict[str, list[int]] = {tool: [] for tool in wanted}
        tools = t.tools
        for i, (reads, writes) in enumerate(zip(t.reads, t.writes)):
            if not alive[i]:
                continue
            if len(reads) + len(writes) > 1 and len(set(reads + writes)) < len(reads) + len(writes):
                writes = tuple(dict.fromkeys(writes))
                reads = tuple(r for r in dict.fromkeys(reads) if r not in writes)
            sub = i << 16
            e = i << 1
            for r in reads:
                lst = index.get(r)
                if lst is None:
                    index[r] = e
                    first[r] = sub
                elif lst.__class__ is int:
                    index[r] = [lst, e]
                else:
                    lst.append(e)
                sub += 1
            e += 1
            for r in writes:
                lst = index.get(r)
                if lst is None:
                    index[r] = e
                    first[r] = sub
                elif lst.__class__ is int:
                    index[r] = [lst, e]
                else:
                    lst.append(e)
                sub += 1
            if wanted and tools[i] in wanted:
                by_tool[tools[i]].append(i)
        rank, order = x.rank, x.order
        shared = []
        for r in first:  # first-appearance order
            lst = index[r]
            if lst.__class__ is list:
                # to chain order: sort plain ints (rank, is_write), then back to positions
                ranked = sorted([(rank[e >> 1] << 1) | (e & 1) for e in lst])
                index[r] = [(order[e >> 1] << 1) | (e & 1) for e in ranked]
                shared.append(r)
        for lst in by_tool.values():
            lst.sort(key=rank.__getitem__)
        self.first = first
        self.index = index
        self.by_tool = by_tool
        self.shared = shared  # resources more than one call touches, by first appearance

    # ------------------------------------------------------------ helpers

    def _key(self, resource: str, kind: ConflictType, members: Sequence[int]) -> tuple:
        f = self.first.get(resource)
        if f is not None:
            return (f >> 16, f & 0xFFFF, _TYPE_RANK[kind], resource)
        return (min(members), _SYNTHETIC, _TYPE_RANK[kind], resource)

    def _chain_needs(self, members: Sequence[int]) -> list[int]:
        """Chain edges (``a * n + b``) between consecutive members that are not
        already a direct dependency (Rule 2)."""
        if len(members) < 2:
            return []
        n, linked = self.x.n, self.x.linked
        out = []
        a = members[0]
        for b in members[1:]:
            e = a * n + b
            if e not in linked:
                out.append(e)
            a = b
        return out

    def _reader_needs(self, entries: Sequence[int]) -> list[int]:
        """prev writer -> reader -> next writer, for every reader (entries in chain order)."""
        n, linked = self.x.n, self.x.linked
        out: list[int] = []
        prev_w = -1
        gap: list[int] = []
        for e in entries:
            i = e >> 1
            if e & 1:
                for r in gap:
                    edge = r * n + i
                    if edge not in linked:
                        out.append(edge)
                gap = []
                prev_w = i
            else:
                if prev_w >= 0:
                    edge = prev_w * n + i
                    if edge not in linked:
                        out.append(edge)
                gap.append(i)
        return out

    def _add_edges(self, edges: Iterable[int]) -> None:
        seen, out = self._edge_seen, self.edges
        for e in edges:
            if e not in seen:
                seen.add(e)
                out.append(e)

    def _ids(self, members: Iterable[int]) -> list[str]:
        ids = self.x.ids
        return [ids[i] for i in members]

    def _names(self, members: Sequence[int]) -> str:
        shown = ", ".join(self._ids(members[:_SHOWN]))
        more = len(members) - _SHOWN
        return shown + (f" and {more} more" if more > 0 else "")

    def _live(self, members: Iterable[int]) -> list[int]:
        c = self.cancelled
        return [i for i in members if not c[i]]

    def _priority(self, g: _Group, members: Sequence[int], side: Any) -> bool:
        """Rule: the side holding the strictly highest priority call wins; the
        others are cancelled. Returns False on a tie at the top (-> escalate)."""
        prio, ids = self.x.prio, self.x.ids
        top = max(prio[i] for i in members)
        top_sides = {side(i) for i in members if prio[i] == top}
        if len(top_sides) > 1:
            return False
        win_side = top_sides.pop()
        winner = min(i for i in members if prio[i] == top and side(i) == win_side)
        losers = [i for i in members if side(i) != win_side]
        where = f" {g.kind.value} on {g.resource}: lost to {ids[winner]}"
        for i in losers:
            g.cancel.append((i, f"{where} (priority {top} > {prio[i]})"))
            self.cancelled[i] = 1
        g.outcome = "prioritized"
        g.detail = {"winner": ids[winner], "priority": top, "cancelled": self._ids(losers)}
        return True

    def _ordered(self, g: _Group, members: Sequence[int], needs: list[int],
                 tie: int | None = None) -> None:
        """serialize / escalate (and a priority tie): the chain, plus an escalation."""
        self._add_edges(needs)
        g.detail = {"order": g.calls if len(g.calls) == len(members) else tuple(self._ids(members))}
        if g.strategy is Strategy.SERIALIZE and tie is None:
            g.outcome = "serialized"
            return
        g.outcome = "escalated"
        if tie is not None:
            tied = [i for i in members if self.x.prio[i] == tie]
            g.detail["tie"] = self._ids(tied)
            g.detail["priority"] = tie
            g.escalate = (f" {g.kind.value} on {g.resource}: priority tie at {tie} between "
                          f"{self._names(tied)}; approve to run all {len(members)} calls one at a time")
        else:
            g.escalate = (f" {g.kind.value} on {g.resource}: {len(members)} calls "
                          f"({self._names(members)}); approve to run them one at a time")

    # ------------------------------------------------------------ run

    def run(self) -> Detection:
        policy = self.policy
        strat = {k: strategy_for(policy, k) for k in PROCESS_ORDER}
        ties: dict[ConflictType, list[tuple[str, Any, int]]] = {k: [] for k in PROCESS_ORDER}
        # Pass 1 (Rule 4): strategies that cancel, in type order (Rule 3).
        for kind in PROCESS_ORDER:
            s = strat[kind]
            if kind is CT.DUPLICATE_IRREVERSIBLE and s is Strategy.DEDUPLICATE:
                self._duplicates(s, cancel=True)
            elif s is Strategy.PRIORITY:
                if kind is CT.MUTUALLY_EXCLUSIVE:
                    self._mutex(s, ties[kind])
                elif kind is CT.WRITE_WRITE:
                    self._write_write(s, ties[kind])
                elif kind is CT.READ_WRITE:
                    self._read_write(s, ties[kind])
        # Pass 2: ordering strategies and escalations over the survivors.
        for kind in PROCESS_ORDER:
            s = strat[kind]
            if kind is CT.DEPENDENCY:
                self._dependencies(s)
            elif kind is CT.DUPLICATE_IRREVERSIBLE:
                if s is not Strategy.DEDUPLICATE:
                    self._duplicates(s, cancel=False)
            elif kind is CT.CAPACITY:
                self._capacity(s)
            elif s is Strategy.PRIORITY:
                for resource, sub, top in ties[kind]:
                    self._tie(kind, resource, sub, top)
            elif kind is CT.MUTUALLY_EXCLUSIVE:
                self._mutex(s, None)
            elif kind is CT.WRITE_WRITE:
                self._write_write(s, None)
            elif kind is CT.READ_WRITE:
                self._read_write(s, None)
        return self._finish()

    # ------------------------------------------------------------ types

    def _dependencies(self, s: Strategy) -> None:
        pos = self.x.pos
        for p in self.dependency_problems:
            members = [pos[c] for c in p.calls if c in pos]
            g = _Group(CT.DEPENDENCY, p.resource, self._key(p.resource, CT.DEPENDENCY, members or [0]),
                       members, p.calls, s, "rejected", dict(p.detail))
            self.groups.append(g)
            if not p.rejected_deps:
                continue
            dependent = p.calls[0]
            if self.cancelled[pos[dependent]]:
                g.outcome = "cancelled"
                g.detail["note"] = "the dependent call was cancelled by another conflict"
                continue
            g.outcome = "escalated"
            g.escalate = f" dependency: {p.reason}; approve to run {dependent} without it"
            g.drop_deps = tuple((dependent, d) for d in p.rejected_deps)

    def _duplicates(self, s: Strategy, cancel: bool) -> None:
        x = self.x
        alive, ids, prio = x.alive, x.ids, x.prio
        irreversible = {tool for tool, c in self.contract_of.items() if is_irreversible(c)}
        groups: dict[tuple[str, str], list[int]] = {}
        if irreversible:
            keys, cancelled = self.t.keys, self.cancelled
            for i, tool in enumerate(self.t.tools):
                if tool in irreversible and alive[i] and not cancelled[i]:
                    k = (tool, keys[i])
                    lst = groups.get(k)
                    if lst is None:
                        groups[k] = [i]
                    else:
                        lst.append(i)
        kind = CT.DUPLICATE_IRREVERSIBLE
        for (tool, key), members in groups.items():
            holder = self.ledger.get((tool, key))
            if len(members) < 2 and (holder is None or holder == ids[members[0]]):
                continue
            resource = f"idempotency:{tool}:{key}"
            members.sort(key=x.rank.__getitem__)  # chain order
            g = _Group(kind, resource, self._key(resource, kind, members), members, self._ids(members), s, "", {})
            self.groups.append(g)
            if not cancel:
                self._ordered(g, members, self._chain_needs(members))
                if holder is not None:
                    g.detail["ledger_holder"] = holder
                continue
            if holder is not None:
                kept = [i for i in members if ids[i] == holder]
                why = f" {kind.value} on {resource}: already started live by {holder} in an earlier run"
            else:
                kept = [min(members, key=lambda i: (-prio[i], i))]
                why = (f" {kind.value} on {resource}: duplicate of {ids[kept[0]]} "
                       "(same irreversible tool and key)")
            losers = [i for i in members if i not in kept]
            for i in losers:
                g.cancel.append((i, why))
                self.cancelled[i] = 1
            g.outcome = "deduplicated"
            g.detail = {"kept": ids[kept[0]] if kept else None, "cancelled": self._ids(losers)}
            if holder is not None:
                g.detail["ledger_holder"] = holder

    def _write_write(self, s: Strategy, ties: list | None) -> None:
        kind = CT.WRITE_WRITE
        c = self.cancelled
        for r in self.shared:
            members = [e >> 1 for e in self.index[r] if e & 1 and not c[e >> 1]]
            if len(members) < 2:
                continue
            needs = self._chain_needs(members)
            if not needs:
                continue
            g = _Group(kind, r, self._key(r, kind, members), members, self._ids(members), s, "", {})
            self.groups.append(g)
            if ties is None:
                self._ordered(g, members, needs)
            elif not self._priority(g, members, int):
                self.groups.pop()
                ties.append((r, None, max(self.x.prio[i] for i in members)))

    def _read_write(self, s: Strategy, ties: list | None) -> None:
        kind = CT.READ_WRITE
        c = self.cancelled
        for r in self.shared:
            entries = [e for e in self.index[r] if not c[e >> 1]]
            if len(entries) < 2:
                continue
            kinds = {e & 1 for e in entries}
            if len(kinds) < 2:
                continue
            needs = self._reader_needs(entries)
            if not needs:
                continue
            members = [e >> 1 for e in entries]
            g = _Group(kind, r, self._key(r, kind, members), members, self._ids(members), s, "", {})
            self.groups.append(g)
            if ties is None:
                # Readers sit between writers; the writers' own chain is write_write's,
                # over the same survivors: serialize/escalate/tie chain them, a
                # priority win leaves one writer. Either way the placement holds (I6).
                self._ordered(g, members, needs)
                g.detail["readers"] = self._ids(e >> 1 for e in entries if not e & 1)
            else:
                writer = {e >> 1 for e in entries if e & 1}
                if not self._priority(g, members, writer.__contains__):
                    self.groups.pop()
                    ties.append((r, None, max(self.x.prio[i] for i in members)))

    def _mutex_pairs(self) -> tuple[dict[str, set[str]], list[tuple[str, str]]]:
        """Conflicting tool pairs (either direction), and the pairs of tools that
        declare no resources at all (they conflict on ``tools:A|B``)."""
        tools = {t.name: t for t in self.contract_of.values()}
        partners: dict[str, set[str]] = {}
        for t in tools.values():
            for u in t.conflicts_with:
                partners.setdefault(t.name, set()).add(u)
                partners.setdefault(u, set()).add(t.name)
        bare = []
        for a in sorted(partners):
            for b in sorted(partners[a]):
                if b < a:
                    continue
                ta, tb = tools.get(a), tools.get(b)
                if ta is None or tb is None:
                    continue
                if not (ta.effects.reads or ta.effects.writes or tb.effects.reads or tb.effects.writes):
                    bare.append((a, b))
        return partners, bare

    def _mutex(self, s: Strategy, ties: list | None) -> None:
        partners, bare = self.partners, self.bare
        if not partners:
            return
        x = self.x
        tools, c = self.t.tools, self.cancelled
        for r in self.shared:
            present: dict[str, int] = {}
            for e in self.index[r]:
                i = e >> 1
                if not c[i]:
                    t = tools[i]
                    if t in partners:
                        present[t] = present.get(t, 0) + 1
            if len(present) < 1:
                continue
            for a in sorted(present):
                for b in sorted(partners[a]):
                    if b < a or b not in present or (a == b and present[a] < 2):
                        continue
                    pair = {a, b}
                    members = [e >> 1 for e in self.index[r]
                               if not c[e >> 1] and tools[e >> 1] in pair]
                    self._mutex_group(s, r, (a, b), members, ties)
        for a, b in bare:
            pair = {a, b}
            members = sorted((i for t in pair for i in self.by_tool.get(t, ()) if not c[i]),
                             key=x.rank.__getitem__)
            if a != b and not (self.by_tool.get(a) and self.by_tool.get(b)):
                continue
            self._mutex_group(s, f"tools:{a}|{b}", (a, b), members, ties)

    def _mutex_group(self, s: Strategy, resource: str, pair: tuple[str, str], members: list[int],
                     ties: list | None) -> None:
        a, b = pair
        tools = self.t.tools
        if len(members) < 2:
            return
        if a != b and len({tools[i] for i in members}) < 2:
            return
        needs = self._chain_needs(members)
        if not needs:
            return
        kind = CT.MUTUALLY_EXCLUSIVE
        g = _Group(kind, resource, self._key(resource, kind, members), members, self._ids(members), s, "", {})
        g_tools = [a, b] if a != b else [a]
        self.groups.append(g)
        if ties is None:
            self._ordered(g, members, needs)
            g.detail["tools"] = g_tools
            return
        side = tools.__getitem__ if a != b else int
        if self._priority(g, members, side):
            g.detail["tools"] = g_tools
        else:
            self.groups.pop()
            ties.append((resource, pair, max(self.x.prio[i] for i in members)))

    def _tie(self, kind: ConflictType, resource: str, pair: Any, _top: int) -> None:
        """A priority tie, escalated: recomputed over the calls that survived pass 1."""
        c, tools = self.cancelled, self.t.tools
        if kind is CT.WRITE_WRITE:
            members = [e >> 1 for e in self.index[resource] if e & 1 and not c[e >> 1]]
            needs = self._chain_needs(members) if len(members) > 1 else []
        elif kind is CT.READ_WRITE:
            entries = [e for e in self.index[resource] if not c[e >> 1]]
            members = [e >> 1 for e in entries]
            needs = self._reader_needs(entries) if len({e & 1 for e in entries}) > 1 else []
        else:
            a, b = pair
            if self.index.get(resource).__class__ is list:
                members = [e >> 1 for e in self.index[resource]
                           if not c[e >> 1] and tools[e >> 1] in pair]
            else:
                members = sorted((i for t in {a, b} for i in self.by_tool.get(t, ()) if not c[i]),
                                 key=self.x.rank.__getitem__)
            sides = len({tools[i] for i in members})
            needs = self._chain_needs(members) if len(members) > 1 and (a == b or sides > 1) else []
        if not needs:
            return
        g = _Group(kind, resource, self._key(resource, kind, members), members, self._ids(members),
                   Strategy.PRIORITY, "", {})
        self.groups.append(g)
        # the tie is named among the survivors (a tied call may have lost elsewhere since)
        self._ordered(g, members, needs, tie=max(self.x.prio[i] for i in members))

    def _capacity(self, s: Strategy) -> None:
        kind = CT.CAPACITY
        for tool, members in self.by_tool.items():
            limit = self.contract_of[tool].max_concurrency
            if limit is None or not members:
                continue
            live = self._live(members)
            if len(live) <= limit:
                continue
            resource = f"tool:{tool}"
            g = _Group(kind, resource, self._key(resource, kind, live), live, self._ids(live), s,
                       f"queued (max_concurrency {limit})", {"max_concurrency": limit, "calls": len(live)})
            self.groups.append(g)

    # ------------------------------------------------------------ output

    def _finish(self) -> Detection:
        ids = self.x.ids
        self.groups.sort(key=lambda g: g.key)
        records: list[ConflictRecord] = []
        escalations: list[Escalation] = []
        cancelled: list[tuple[int, str]] = []
        c = self.cancelled
        for n, g in enumerate(self.groups, 1):
            cid = f"C{n:04d}"
            records.append(ConflictRecord(cid, g.kind.value, g.calls, g.resource, g.strategy.value,
                                          g.outcome, g.detail))
            for i, tail in g.cancel:
                cancelled.append((i, f"conflict {cid}{tail}"))
            if g.escalate is not None:
                if g.kind is CT.DEPENDENCY:
                    who = g.calls[:1]
                else:
                    who = tuple(self.x.ids[i] for i in g.members if not c[i])
                if who:
                    escalations.append(Escalation(cid, who, f"conflict {cid}{g.escalate}", g.drop_deps))
        cancelled.sort()
        n = self.x.n
        edges = []
        for e in self.edges:
            a, b = divmod(e, n)
            if not (c[a] or c[b]):
                edges.append((ids[a], ids[b]))
        return Detection(
            records=tuple(records),
            order_edges=tuple(edges),
            cancelled={ids[i]: why for i, why in cancelled},
            escalations=tuple(escalations),
        )

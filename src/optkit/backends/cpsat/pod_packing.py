"""CP-SAT for pod packing: the lexicographic assignment model, one weighted objective or tier by tier.

Model (see docs/pod_packing.md): x[i, j] = 1 if pod i runs on node j, only for the nodes pod i is
allowed on and fits on when empty; sum_j x[i, j] <= 1; per node and resource, sum_i q_ir x[i, j] <= C_jr;
non-movable pods fixed on their node. Objective terms, in lexicographic order: -c_p for each priority p
from the highest down (c_p = pods of priority p placed; lexicographic on these is the same as on the
cumulative counts of the objective), evictions, moves.

- `mode=weighted` (default): one objective sum_k W_k t_k with W_k = 1 + sum_{l>k} W_l * range(t_l), so that
  it orders solutions exactly lexicographically; falls back to tiers when the weights exceed 2^53.
  The bound CP-SAT proves on the weighted sum is mapped back to a lexicographic bound term by term
  (valid: every solution L with L_1..L_{k-1} equal to the bound's has L_k >= the k-th bound term).
- `mode=tiers`: one solve per term, fixing each proven optimum before the next; the bound is the
  proven prefix, the current term's bound, then the trivial minimum of every later term.
Redundant constraints: total requests of placed pods <= total capacity per resource. Symmetry
breaking: identical pending pods are placed in order; identical nodes with nothing running on them
are ordered by cpu (or first resource) load. Hint: `initial_solution` if given, else kube-default's
placement of the pending pods around the running ones.
`lns=auto|on|off`: on clusters above `lns_vars` candidate pairs, a large-neighbourhood search that
re-packs a few nodes at a time (see `_lns`).
"""

from __future__ import annotations

import itertools
import math
import random
import threading
import time
from collections import defaultdict

from optkit.problems.pod_packing import PodPacking
from optkit.registry import register
from optkit.result import Termination
from optkit.solve import Outcome, SolveOptions


def term_ranges(problem: PodPacking) -> list[tuple[int, int]]:
    """(min, max) of each objective term in the per-priority form: -c_p, evictions, moves."""
    count = defaultdict(int)
    for pod in problem.pods:
        count[pod.priority] += 1
    running = sum(1 for j in problem.current if j is not None)
    return [(-count[p], 0) for p in problem.priorities] + [(0, running), (0, running)]


def to_cumulative(terms: list[int]) -> list[int]:
    """Per-priority terms (-c_p ..., evictions, moves) -> the problem's objective list."""
    k = len(terms) - 2
    out, acc = [], 0
    for t in terms[:k]:
        acc += t
        out.append(acc)
    return out + list(terms[k:])


def weights_for(ranges: list[tuple[int, int]]) -> list[int]:
    w = [0] * len(ranges)
    acc = 0
    for k in range(len(ranges) - 1, -1, -1):
        w[k] = 1 + acc
        acc += w[k] * (ranges[k][1] - ranges[k][0])
    return w


def lex_bound_from_weighted(
    lb: float, weights: list[int], ranges: list[tuple[int, int]]
) -> list[int]:
    """A per-priority-term lexicographic bound implied by sum_k W_k t_k >= lb."""
    out = []
    rest = math.ceil(lb - 1e-6)
    for k, (w, (lo, _hi)) in enumerate(zip(weights, ranges)):
        tail_max = sum(weights[l] * ranges[l][1] for l in range(k + 1, len(ranges)))
        b = max(lo, math.ceil((rest - tail_max) / w))
        out.append(b)
        rest -= w * b
    return out


def load_order(
    problem: PodPacking, where: list[int | None], classes: list[list[int]], r: int
) -> dict[int, int]:
    """Node relabelling that puts each class of identical nodes in decreasing load of resource r (ties keep
    their order): the order the symmetry breaking demands, so that a relabelled hint stays usable."""
    relabel = {}
    for members in classes:
        load = dict.fromkeys(members, 0)
        for i, j in enumerate(where):
            if j in load:
                load[j] += problem.request_matrix[i][r]
        relabel.update(zip(sorted(members, key=lambda j: -load[j]), members))
    return relabel


class PodModel:
    def __init__(
        self,
        problem: PodPacking,
        pods: list[int] | None = None,
        nodes: list[int] | None = None,
        fixed_load=None,
        aggregate: bool = True,
    ):
        """The assignment model over `pods` x `nodes` (default all); `fixed_load[j]` = load already on node j."""
        from ortools.sat.python import cp_model

        self.cp_model = cp_model
        self.p = problem
        self.m = cp_model.CpModel()
        P = problem
        self.pods = list(range(P.n_pods)) if pods is None else pods
        node_set = set(range(P.n_nodes)) if nodes is None else set(nodes)
        self.nodes = sorted(node_set)
        R = P.resources
        req, cap = P.request_matrix, P.capacity_matrix
        self.x: dict[tuple[int, int], object] = {}
        self.placed: dict[int, object] = {}
        by_node: dict[int, list[int]] = defaultdict(list)
        for i in self.pods:
            cands = [j for j in P.candidates[i] if j in node_set]
            pod = P.pods[i]
            for j in cands:
                self.x[i, j] = self.m.new_bool_var(f"x{i}_{j}")
                by_node[j].append(i)
            if not pod.movable:
                cur = P.current[i]
                if (i, cur) in self.x:
                    self.m.add(self.x[i, cur] == 1)
                else:
                    self.m.add_bool_or([])  # a non-movable pod that cannot stay: infeasible
            lits = [self.x[i, j] for j in cands]
            if len(lits) == 1:
                self.placed[i] = lits[0]
            else:
                y = self.m.new_bool_var(f"y{i}")
                self.m.add(sum(lits) == y)
                self.placed[i] = y
        for j in self.nodes:
            for r in range(len(R)):
                c = cap[j][r]
                if c is None:
                    continue
                if fixed_load is not None:
                    c -= fixed_load[j][r]
                terms = [(req[i][r], self.x[i, j]) for i in by_node[j] if req[i][r] > 0]
                if sum(q for q, _ in terms) > c:
                    self.m.add(sum(q * v for q, v in terms) <= c)
        # redundant aggregate capacity per resource
        for r in range(len(R) if aggregate else 0):
            caps = [cap[j][r] for j in self.nodes]
            if any(c is None for c in caps):
                continue
            total = sum(caps) - (
                sum(fixed_load[j][r] for j in self.nodes) if fixed_load is not None else 0
            )
            terms = [(req[i][r], self.placed[i]) for i in self.pods if req[i][r] > 0]
            if sum(q for q, _ in terms) > total:
                self.m.add(sum(q * v for q, v in terms) <= total)
        self._cardinality(by_node, fixed_load)
        self._symmetry(by_node)
        # objective terms (per priority form)
        self.terms = []
        for prio in P.priorities:
            self.terms.append(-sum(self.placed[i] for i in self.pods if P.pods[i].priority == prio))
        running = [i for i in self.pods if P.current[i] is not None]
        self.terms.append(sum(1 - self.placed[i] for i in running))
        self.terms.append(
            sum(
                self.placed[i] - self.x[i, P.current[i]]
                if (i, P.current[i]) in self.x
                else self.placed[i]
                for i in running
            )
        )

    def _cardinality(self, by_node, fixed_load) -> None:
        """Counting cuts: per node, and per priority threshold over the cluster, at most k pods fit,
        where k is the largest count whose k smallest requests fit the capacity (per resource)."""
        P = self.p
        req, cap = P.request_matrix, P.capacity_matrix
        R = range(len(P.resources))

        def max_count(pods, capacity):
            k = len(pods)
            for r in R:
                c = capacity[r]
                if c is None:
                    continue
                acc = n = 0
                for q in sorted(req[i][r] for i in pods):
                    if acc + q > c:
                        break
                    acc += q
                    n += 1
                k = min(k, n)
            return k

        for j in self.nodes:
            pods = by_node[j]
            c = [
                None if cap[j][r] is None else cap[j][r] - (fixed_load[j][r] if fixed_load else 0)
                for r in R
            ]
            k = max_count(pods, c)
            if k < len(pods):
                self.m.add(sum(self.x[i, j] for i in pods) <= k)
        total = []
        for r in R:
            caps = [cap[j][r] for j in self.nodes]
            total.append(
                None
                if any(c is None for c in caps)
                else sum(caps) - (sum(fixed_load[j][r] for j in self.nodes) if fixed_load else 0)
            )
        for prio in P.priorities:
            pods = [i for i in self.pods if P.pods[i].priority >= prio]
            k = max_count(pods, total)
            if k < len(pods):
                self.m.add(sum(self.placed[i] for i in pods) <= k)

    def _symmetry(self, by_node) -> None:
        P = self.p
        groups = defaultdict(list)
        for i in self.pods:
            pod = P.pods[i]
            if P.current[i] is None:
                groups[
                    (P._pod_signature[i], tuple(P.request_matrix[i]), pod.priority, P.candidates[i])
                ].append(i)
        self.pending_groups = [m for m in groups.values() if len(m) > 1]
        for members in self.pending_groups:
            for a, b in itertools.pairwise(members):
                self.m.add_implication(self.placed[b], self.placed[a])
        busy = {P.current[i] for i in range(P.n_pods) if P.current[i] is not None}
        outside = busy | (set(range(P.n_nodes)) - set(self.nodes))
        R = P.resources
        self.r0 = R.index("cpu") if "cpu" in R else 0
        self.ordered_classes = P.identical_nodes(outside) if R else []
        for members in self.ordered_classes:
            loads = [
                sum(P.request_matrix[i][self.r0] * self.x[i, j] for i in by_node[j])
                for j in members
            ]
            for a, b in itertools.pairwise(loads):
                self.m.add(a >= b)

    def canonical(self, where: list[int | None]) -> list[int | None]:
        """The same objective, rearranged to satisfy the symmetry breaking: placed pods first within a group
        of identical pending pods, identical empty nodes in decreasing load."""
        where = list(where)
        for members in self.pending_groups:
            targets = [where[i] for i in members if where[i] is not None]
            for k, i in enumerate(members):
                where[i] = targets[k] if k < len(targets) else None
        relabel = load_order(self.p, where, self.ordered_classes, self.r0)
        return [relabel.get(j, j) for j in where]

    def hint(self, where: list[int | None]) -> None:
        where = self.canonical(where)
        for (i, j), v in self.x.items():
            self.m.add_hint(v, 1 if where[i] == j else 0)
        for i, y in self.placed.items():
            if not any(y is self.x.get((i, j)) for j in self.p.candidates[i]):
                self.m.add_hint(y, 1 if where[i] is not None else 0)

    def read(self, value) -> list[int | None]:
        where: list[int | None] = (
            list(self.p.current) if len(self.pods) < self.p.n_pods else [None] * self.p.n_pods
        )
        for i in self.pods:
            where[i] = None
        for (i, j), v in self.x.items():
            if value(v):
                where[i] = j
        return where


class CountModel:
    """The placement and eviction terms over groups of identical pods: n[g, j] = pods of group g on node j.

    Groups: same requests, priority, allowed nodes, running or pending (movable pods only; non-movable
    pods are fixed load). With `node_symmetry`, identical nodes are ordered by cpu load (placement counts
    and evictions do not depend on which identical node holds what). `add_moves_term` adds the moves:
    identical pods are interchangeable, so the running pods that stay are counted per group and node
    (stay[g, j] <= min(n[g, j], pods of g running on j now)), which is exact and has no pod symmetry."""

    def __init__(self, problem: PodPacking, node_symmetry: bool = True):
        from ortools.sat.python import cp_model

        total_of = cp_model.LinearExpr.sum  # far faster than Python's sum over model variables
        weighted = cp_model.LinearExpr.weighted_sum
        P = self.p = problem
        self.m = cp_model.CpModel()
        R = range(len(P.resources))
        req, cap = P.request_matrix, P.capacity_matrix
        fixed = [[0] * len(R) for _ in range(P.n_nodes)]
        self.fixed_count = defaultdict(int)
        self.pinned: set[int] = set()
        self.groups: dict[tuple, list[int]] = defaultdict(list)
        self.ok = True
        for i, pod in enumerate(P.pods):
            if not pod.movable:
                j = P.current[i]
                if j not in P.candidates[i]:
                    self.ok = False
                for r in R:
                    fixed[j][r] += req[i][r]
                self.fixed_count[pod.priority] += 1
                self.pinned.add(j)
            else:
                self.groups[
                    (tuple(req[i]), pod.priority, P.candidates[i], P.current[i] is not None)
                ].append(i)
        self.keys = list(self.groups)
        self.fixed = fixed
        self.stay: dict[
            tuple[int, int], object
        ] = {}  # the moves term's variables (`add_moves_term`)
        self.here: dict[tuple[int, int], int] = defaultdict(
            int
        )  # (group, node) -> its pods running there now
        for g, key in enumerate(self.keys):
            for i in self.groups[key] if key[3] else ():
                self.here[g, P.current[i]] += 1
        self.n: dict[tuple[int, int], object] = {}
        self.placed = []
        by_node = defaultdict(list)
        for g, key in enumerate(self.keys):
            size = len(self.groups[key])
            cands = key[2]
            for j in cands:
                self.n[g, j] = self.m.new_int_var(0, size, f"n{g}_{j}")
                by_node[j].append(g)
            t = self.m.new_int_var(0, size, f"t{g}")
            self.m.add(total_of([self.n[g, j] for j in cands]) == t)
            self.placed.append(t)
        for j in range(P.n_nodes):
            for r in R:
                c = cap[j][r]
                if c is None:
                    continue
                gs = [g for g in by_node[j] if self.keys[g][0][r] > 0]
                if (
                    sum(self.keys[g][0][r] * len(self.groups[self.keys[g]]) for g in gs)
                    > c - fixed[j][r]
                ):
                    self.m.add(
                        weighted([self.n[g, j] for g in gs], [self.keys[g][0][r] for g in gs])
                        <= c - fixed[j][r]
                    )
                if c - fixed[j][r] < 0:
                    self.ok = False
        for r in R:
            caps = [cap[j][r] for j in range(P.n_nodes)]
            if any(c is None for c in caps):
                continue
            total = sum(caps) - sum(f[r] for f in fixed)
            gs = [g for g in range(len(self.keys)) if self.keys[g][0][r] > 0]
            self.m.add(
                weighted([self.placed[g] for g in gs], [self.keys[g][0][r] for g in gs]) <= total
            )

        # counting cuts: per node and per priority threshold, at most k pods (k smallest requests fit)
        def max_count(sizes_by_r, capacity):
            k = None
            for r in R:
                c = capacity[r]
                if c is None:
                    continue
                acc = n = 0
                for q in sorted(sizes_by_r[r]):
                    if acc + q > c:
                        break
                    acc += q
                    n += 1
                k = n if k is None else min(k, n)
            return k

        def expand(gs):
            return [[self.keys[g][0][r] for g in gs for _ in self.groups[self.keys[g]]] for r in R]

        for j in range(P.n_nodes):
            gs = by_node[j]
            k = max_count(
                expand(gs), [None if cap[j][r] is None else cap[j][r] - fixed[j][r] for r in R]
            )
            if k is not None and k < sum(len(self.groups[self.keys[g]]) for g in gs):
                self.m.add(total_of([self.n[g, j] for g in gs]) <= k)
        totals = []
        for r in R:
            caps = [cap[j][r] for j in range(P.n_nodes)]
            totals.append(
                None if any(c is None for c in caps) else sum(caps) - sum(f[r] for f in fixed)
            )
        self.count_cap: dict[int, int] = {}  # priority p -> most pods of priority >= p that can run
        for prio in P.priorities:
            gs = [g for g, key in enumerate(self.keys) if key[1] >= prio]
            k = max_count(expand(gs), totals)
            size = sum(len(self.groups[self.keys[g]]) for g in gs)
            if k is not None and k < size:
                self.m.add(total_of([self.placed[g] for g in gs]) <= k)
            self.count_cap[prio] = (size if k is None else min(k, size)) + sum(
                c for p, c in self.fixed_count.items() if p >= prio
            )
        # identical nodes: order by load of the first resource
        self.ordered_classes: list[list[int]] = []
        for members in P.identical_nodes(self.pinned) if node_symmetry else ():
            mset = set(members)
            if any(len(mset.intersection(k[2])) not in (0, len(members)) for k in self.keys):
                continue
            users = [g for g in range(len(self.keys)) if members[0] in self.keys[g][2]]
            if not P.resources:
                continue
            loads = [
                weighted([self.n[g, j] for g in users], [self.keys[g][0][0] for g in users])
                for j in members
            ]
            for a, b in itertools.pairwise(loads):
                self.m.add(a >= b)
            self.ordered_classes.append(members)
        self.terms = []
        for prio in P.priorities:
            self.terms.append(
                -total_of([self.placed[g] for g, k in enumerate(self.keys) if k[1] == prio])
                - self.fixed_count[prio]
            )
        running = [g for g, k in enumerate(self.keys) if k[3]]
        self.terms.append(
            sum(len(self.groups[self.keys[g]]) for g in running)
            - total_of([self.placed[g] for g in running])
        )

    def patterns(
        self, k: int, proven: list[int], placements: list[list[int | None]], deadline: float
    ):
        """Column generation (`pod_patterns`) for the k-th term with the terms before it at their proven
        values: the count of pods of priority >= the k-th priority, (k = number of priorities) of
        running pods placed, or (the moves term) of running pods that stay on their node, with every node
        that has such pods a class of its own. `placements`: the incumbent first (the count to prove), then any other
        feasible placements; their nodes are the first columns. Returns (a proven bound on that count or
        None, a packing from the patterns or None, the bound as a cut for the model or None). Only reads
        the model: CP-SAT may be solving it meanwhile."""
        from optkit.backends.cpsat.pod_patterns import NodeClass, PodType, pattern_bound

        P = self.p
        R = range(len(P.resources))
        key_of: dict[tuple, int] = {}
        nodes_of: list[list[int]] = []
        caps: list[tuple] = []
        allowed_by_node = [set() for _ in range(P.n_nodes)]
        for g, key in enumerate(self.keys):
            for j in key[2]:
                allowed_by_node[j].add(g)
        n_prio = len(P.priorities)
        moves = k > n_prio
        home: dict[int, dict[int, int]] = defaultdict(
            dict
        )  # node -> group -> running pods of it there
        for (g, j), c in self.here.items() if moves else ():
            home[j][g] = c
        node_class = []
        for j in range(P.n_nodes):
            free = tuple(
                None
                if P.capacity_matrix[j][r] is None
                else P.capacity_matrix[j][r] - self.fixed[j][r]
                for r in R
            )
            c = key_of.setdefault(
                (free, frozenset(allowed_by_node[j]), j if j in home else None), len(nodes_of)
            )
            if c == len(nodes_of):
                nodes_of.append([])
                caps.append(free)
            nodes_of[c].append(j)
            node_class.append(c)
        types = [
            PodType(key[0], len(self.groups[key]), frozenset(node_class[j] for j in key[2]))
            for key in self.keys
        ]
        classes = [
            NodeClass(cap, len(js), tuple(sorted(home.get(js[0], {}).items())))
            for cap, js in zip(caps, nodes_of)
        ]
        group_of = {i: g for g, key in enumerate(self.keys) for i in self.groups[key]}
        start = []
        for where in placements:
            patterns = [[0] * len(types) for _ in range(P.n_nodes)]
            for i, j in enumerate(where):
                if j is not None and i in group_of:
                    patterns[j][group_of[i]] += 1
            start += [(node_class[j], tuple(pattern)) for j, pattern in enumerate(patterns)]

        def above(prio):
            return (
                {g for g, key in enumerate(self.keys) if key[1] >= prio},
                sum(c for p, c in self.fixed_count.items() if p >= prio),
            )

        at_least = []
        for i in range(min(k, n_prio)):
            gs, fixed = above(P.priorities[i])
            at_least.append((gs, -sum(proven[: i + 1]) - fixed))
        running = {g for g, key in enumerate(self.keys) if key[3]}
        if moves:  # evictions fixed too
            at_least.append(
                (running, sum(len(self.groups[self.keys[g]]) for g in running) - proven[n_prio])
            )
        counted, fixed = above(P.priorities[k]) if k < n_prio else (set() if moves else running, 0)
        where = placements[0]
        if moves:
            target = sum(1 for i in group_of if where[i] is not None and where[i] == P.current[i])
        else:
            target = sum(
                1 for i, j in enumerate(where) if j is not None and group_of.get(i) in counted
            )
        res = pattern_bound(types, classes, counted, at_least, target, deadline, start)
        bound = cut = None
        if res.bound is not None:
            bound = res.bound + fixed
            if moves and self.stay:
                cut = sum(self.stay.values()) <= res.bound
            elif res.bound < sum(t.count for g, t in enumerate(types) if g in counted):
                cut = sum(self.placed[g] for g in counted) <= res.bound
        packed = None if res.packing is None else self.placement(res.packing, nodes_of)
        return bound, packed, cut

    def placement(self, packing, nodes_of: list[list[int]]) -> list[int | None]:
        """The placement of a pattern packing (per class, (pattern over groups, nodes using it)) on the
        classes' nodes: each node first keeps its own pods (as a pattern's worth counts them), then
        takes pending pods, then any other pod of the group left; the non-movable pods stay."""
        P = self.p
        where = [P.current[i] if not P.pods[i].movable else None for i in range(P.n_pods)]
        wanted = []  # (node, group, pods of the group it takes)
        for c, used in enumerate(packing):
            free_nodes = list(nodes_of[c])
            for pattern, n in used:
                for _ in range(n):
                    j = free_nodes.pop()
                    wanted += [(j, g, a) for g, a in enumerate(pattern) if a]
        left = []
        for j, g, a in wanted:
            home = [i for i in self.groups[self.keys[g]] if P.current[i] == j][:a]
            for i in home:
                where[i] = j
            left.append((j, g, a - len(home)))
        for j, g, a in left:
            rest = sorted(
                (i for i in self.groups[self.keys[g]] if where[i] is None),
                key=lambda i: P.current[i] is not None,
            )
            for i in rest[:a]:
                where[i] = j
        return where

    def add_moves_term(self) -> None:
        for (g, j), c in self.here.items():
            if (g, j) in self.n:
                self.stay[g, j] = self.m.new_int_var(0, c, f"s{g}_{j}")
                self.m.add(self.stay[g, j] <= self.n[g, j])
        self.terms.append(
            sum(self.placed[g] for g, key in enumerate(self.keys) if key[3])
            - sum(self.stay.values())
        )

    def hint(self, where) -> None:
        """Hint the counts of a placement, with identical nodes relabelled into the model's load order
        (a hint that breaks the symmetry constraints would be useless to CP-SAT)."""
        relabel = load_order(self.p, where, self.ordered_classes, 0)
        counts = defaultdict(int)
        for g, key in enumerate(self.keys):
            for i in self.groups[key]:
                counts[g, relabel.get(where[i], where[i])] += 1
        for (g, j), v in self.n.items():
            self.m.add_hint(v, counts[g, j])
        for (g, j), v in self.stay.items():
            self.m.add_hint(v, min(counts[g, j], self.here[g, j]))

    def read(self, value) -> list[int | None]:
        """A placement: running pods of a group keep their node where the counts allow."""
        P = self.p
        where: list[int | None] = [None] * P.n_pods
        for i, pod in enumerate(P.pods):
            if not pod.movable:
                where[i] = P.current[i]
        for g, key in enumerate(self.keys):
            left = {j: value(self.n[g, j]) for j in key[2] if value(self.n[g, j])}
            rest = []
            for i in self.groups[key]:
                j = P.current[i]
                if j is not None and left.get(j, 0) > 0:
                    where[i] = j
                    left[j] -= 1
                else:
                    rest.append(i)
            slots = [j for j, c in left.items() for _ in range(c)]
            for i, j in zip(rest, slots):
                where[i] = j
        return where


def _warm(problem: PodPacking, opts: SolveOptions, pool: list | None = None) -> list[int | None]:
    """The best placement of the heuristics (or the given warm start); `pool` collects every feasible one."""
    if opts.initial_solution is not None:
        return problem.placement_of(opts.initial_solution)
    from optkit.backends.heuristics.pod_packing import _fit_decreasing, fewer_moves, kube_schedule

    best, best_obj = list(problem.current), None
    # on big clusters the repair moves get a share of the time (highest priorities are repaired first)
    big = problem.n_pods > 2000
    deadline = time.monotonic() + 0.5 * opts.remaining(default=10.0) if big else None
    heuristics = [
        lambda: kube_schedule(problem, order="priority"),
        lambda: _fit_decreasing(problem, True, True, deadline),
    ]
    if not big:
        heuristics.append(lambda: _fit_decreasing(problem, False, True))
    if not big:
        heuristics.append(lambda: _minmax(problem, opts, best))
    for run in heuristics:
        where = run()
        if where is None:
            continue
        for cand in (where, fewer_moves(problem, where)):
            report = problem.check(problem.to_solution(cand))
            if report.feasible and pool is not None:
                pool.append(cand)
            if report.feasible and (best_obj is None or report.objective < best_obj):
                best, best_obj = cand, report.objective
    return best


def _minmax(
    problem: PodPacking, opts: SolveOptions, best: list[int | None]
) -> list[int | None] | None:
    """The min-max overload search (a third of the time left), when the best start leaves a pod pending
    that has a node: it finds dense packings that the fit heuristics and the first CP-SAT tiers miss."""
    if not any(j is None and problem.candidates[i] for i, j in enumerate(best)):
        return None
    from optkit.backends.minmax.pod_packing import PARAMS, minmax_pod_packing

    sub = SolveOptions(
        time_limit=opts.remaining(default=10.0) / 3,
        threads=opts.threads,
        seed=opts.seed,
        params=dict(PARAMS),
    )
    out = minmax_pod_packing(problem, sub)
    return None if out.solution is None else problem.placement_of(out.solution)


@register(
    "cpsat",
    "pod-packing",
    exact=True,
    bounds=True,
    warm_start=True,
    deterministic=True,
    requires=("ortools",),
    versions=("ortools",),
    params={
        "mode": "tiers",
        "lns": "auto",
        "lns_vars": 400_000,
        "max_shapes": 300,
        "patterns": True,
        "log": False,
    },
    default=True,
)
def cpsat(problem: PodPacking, opts: SolveOptions) -> Outcome:
    """Lexicographic assignment model (weighted or tier by tier), hinted, with symmetry breaking."""
    from optkit.errors import InputError

    mode, lns = opts.params["mode"], opts.params["lns"]
    if mode not in ("weighted", "tiers"):
        raise InputError(f"parameter 'mode': expected weighted or tiers, got {mode!r}")
    if lns not in ("auto", "on", "off"):
        raise InputError(f"parameter 'lns': expected auto, on or off, got {lns!r}")
    if lns == "on":
        return _lns(problem, opts)
    from optkit.backends.cpsat.pod_lexicographic import candidate_pairs, solve_by_terms

    if (
        problem.objective == "per-tier"
        or candidate_pairs(problem) > opts.params["lns_vars"]
        or _shapes(problem) > opts.params["max_shapes"]
    ):
        return solve_by_terms(problem, opts)
    ranges = term_ranges(problem)
    weights = weights_for(ranges)
    if mode == "tiers" or weights[0] * max(1, -ranges[0][0]) > 2**53:
        return _tiers(problem, opts, ranges)
    return _weighted(problem, opts, ranges, weights)


def _shapes(problem: PodPacking) -> int:
    """Distinct pod shapes (requests, constraints, priority): the count model and its pattern bound
    grow with their square (100 nodes x 2,000 shapes took 18 s and 556 MB at a 1 s window)."""
    return len(
        {
            (s, tuple(q), p.priority)
            for s, q, p in zip(problem._pod_signature, problem.request_matrix, problem.pods)
        }
    )


def _weighted(problem, opts, ranges, weights) -> Outcome:
    from optkit.backends.cpsat._common import solve_model

    pm = PodModel(problem)
    pm.m.minimize(sum(w * t for w, t in zip(weights, pm.terms)))
    pm.hint(_warm(problem, opts))

    def extract(value):
        return problem.to_solution(pm.read(value))

    def objective_of(sol):
        return problem.objective_of(problem.placement_of(sol))

    out = solve_model(
        pm.m,
        opts,
        extract,
        objective_of=objective_of,
        bound_of=lambda lb: to_cumulative(lex_bound_from_weighted(lb, weights, ranges)),
    )
    if out.proven_optimal and out.solution is not None:
        out.bound = None  # the facade sets bound = objective
    out.stats["mode"] = "weighted"
    return out


def _tiers(problem: PodPacking, opts: SolveOptions, ranges) -> Outcome:
    """One term at a time, each proven optimum fixed before the next. A term the incumbent does not
    settle by counting gets the pattern bound (`CountModel.patterns`), then CP-SAT with the bound as a
    cut; with `threads` > 1 a CP-SAT run on the other cores races the pattern bound."""
    from ortools.sat.python import cp_model

    from optkit.backends.cpsat._common import parameters, proven_bound
    from optkit.backends.heuristics.pod_packing import fewer_moves

    t_build = time.monotonic()
    pm = CountModel(problem)
    t_build = time.monotonic() - t_build  # the moves term builds a model as big again
    if not pm.ok:
        return Outcome(
            proven_infeasible=True,
            message="non-movable pods do not fit where they are",
            stats={"mode": "tiers"},
        )
    pool: list[
        list[int | None]
    ] = []  # the heuristics' placements: their nodes start the pattern LP
    where = _warm(problem, opts, pool)
    pm.hint(where)
    best_where = where if problem.check(problem.to_solution(where)).feasible else None
    best_obj = problem.objective_of(best_where) if best_where is not None else None
    proven: list[int] = []
    status_names = []
    tier_times: list[float] = []
    bound_terms = None
    n_prio = len(problem.priorities)
    running_movable = sum(
        1 for i, pod in enumerate(problem.pods) if pod.movable and problem.current[i] is not None
    )

    def offer(where: list[int | None], obj: list[int] | None = None) -> None:
        """Make `where` (objective `obj`, computed if not given) the incumbent if it is at least as
        good; it hints the model's next solve."""
        nonlocal best_where, best_obj
        obj = problem.objective_of(where) if obj is None else obj
        if best_obj is None or obj <= best_obj:
            best_where, best_obj = where, obj
            opts.report(problem.to_solution(best_where), best_obj)
            pm.m.clear_hints()
            pm.hint(best_where)

    def finish(solver, status) -> None:
        tier_times[-1] += solver.wall_time
        if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            offer(pm.read(solver.value))

    for k in range(len(ranges)):
        if k == len(ranges) - 1:
            if opts.time_limit is not None and opts.remaining() < 2 * t_build:
                # no time to build the moves model (model building counts in the window)
                bound_terms = proven + [lo for lo, _ in ranges[k:]]
                status_names.append("NO_TIME")
                break
            # moves: a model without node symmetry breaking, the proven counts and evictions fixed
            pm = CountModel(problem, node_symmetry=False)
            pm.add_moves_term()
            for t, v in zip(pm.terms, proven):
                pm.m.add(t == v)
            if best_where is not None:
                pm.hint(best_where)
                relabelled = fewer_moves(problem, best_where)
                obj = problem.objective_of(relabelled)
                if obj < best_obj:
                    offer(relabelled, obj)
        term = pm.terms[k]
        pm.m.minimize(term)
        tier_times.append(0.0)
        status = None  # of a CP-SAT run that raced the pattern bound
        # a term whose incumbent meets its bound (counting, or the pattern bound) needs no search
        known = ranges[k][0]  # the term's proven lower bound so far
        if best_where is not None:
            inc = _per_term(best_obj)[k]
            if k < n_prio:
                placed_above = -sum(proven[:k])
                lb = max(ranges[k][0], placed_above - pm.count_cap[problem.priorities[k]])
            elif k == n_prio:  # evictions: running pods placed
                placed_above, lb = running_movable, ranges[k][0]
            else:  # moves: running pods placed, less those that stay
                placed_above = running_movable - proven[n_prio]
                lb = max(ranges[k][0], int(_must_move(problem, proven)))
            if inc > lb and opts.params["patterns"]:
                race = (
                    _Race(
                        pm.m, lambda solver: parameters(solver, opts, num_workers=opts.threads - 1)
                    )
                    if opts.threads > 1
                    else None
                )
                cap, packed, cut = pm.patterns(
                    k,
                    proven,
                    [best_where] + pool,
                    time.monotonic() + 0.85 * opts.remaining(default=10.0),
                )
                if race is not None:
                    solver, status = race.stop()
                    finish(solver, status)
                    raced = proven_bound(solver, status)
                    if raced is not None:
                        lb = max(lb, math.ceil(raced - 1e-6))
                if cap is not None:
                    lb = max(lb, placed_above - cap)
                if cut is not None:
                    pm.m.add(cut)
                if packed is not None:
                    packed = fewer_moves(problem, packed)
                    report = problem.check(problem.to_solution(packed))
                    if report.feasible and report.objective < best_obj:
                        offer(packed, report.objective)
                inc = _per_term(best_obj)[k]
            known = lb
            if status != cp_model.OPTIMAL and inc == lb and _per_term(best_obj)[:k] == proven:
                proven.append(inc)
                status_names.append("BOUND")
                pm.m.add(term == inc)
                continue
        if status != cp_model.OPTIMAL:
            solver = cp_model.CpSolver()
            parameters(solver, opts)
            status = solver.solve(pm.m)
            finish(solver, status)
        status_names.append(solver.status_name(status))
        if status == cp_model.INFEASIBLE:
            return Outcome(
                proven_infeasible=True, stats={"mode": "tiers", "statuses": status_names}
            )
        if status != cp_model.OPTIMAL:
            lb = proven_bound(solver, status)
            if lb is not None:
                known = max(known, math.ceil(lb - 1e-6))
            bound_terms = proven + [known] + [lo for lo, _ in ranges[k + 1 :]]
            break
        value = round(solver.objective_value)
        proven.append(value)
        pm.m.add(term == value)
    stats = {
        "mode": "tiers",
        "statuses": status_names,
        "tier_wall_s": [round(t, 4) for t in tier_times],
    }
    if best_where is None:
        return Outcome(
            termination=Termination.TIME_LIMIT,
            bound=to_cumulative(bound_terms) if bound_terms else None,
            stats=stats,
        )
    sol = problem.to_solution(best_where)
    if len(proven) == len(ranges):
        return Outcome(solution=sol, proven_optimal=True, stats=stats)
    return Outcome(
        solution=sol,
        termination=Termination.TIME_LIMIT,
        bound=to_cumulative(bound_terms) if bound_terms else None,
        stats=stats,
    )


class _Race:
    """CP-SAT on a model in a thread of its own (it releases the GIL), beside the pattern bound."""

    def __init__(self, model, configure):
        from ortools.sat.python import cp_model

        self.solver = cp_model.CpSolver()
        configure(self.solver)
        self.status = None
        self._thread = threading.Thread(target=self._run, args=(model,), daemon=True)
        self._thread.start()

    def _run(self, model) -> None:
        self.status = self.solver.solve(model)

    def stop(self):
        """(solver, status) once the run has stopped; it is told to stop now."""
        self.solver.stop_search()
        self._thread.join()
        return self.solver, self.status


def _lns(problem: PodPacking, opts: SolveOptions) -> Outcome:
    """Large-neighbourhood search for big clusters: start from kube-default (or the warm start), then
    repeatedly free a few nodes (the fullest-fragmented ones plus random ones), and let CP-SAT re-pack the
    pods on them together with the highest-priority pending pods that could use the space, everything
    else fixed; a neighbourhood's answer is kept when the lexicographic objective improves. No bound."""
    from ortools.sat.python import cp_model

    P = problem
    rng = random.Random(opts.seed)
    where = _warm(P, opts)
    best = P.objective_of(where)
    opts.report(P.to_solution(where), best)
    R = P.resources
    req, cap = P.request_matrix, P.capacity_matrix
    load = [[0] * len(R) for _ in range(P.n_nodes)]
    for i, j in enumerate(where):
        if j is not None:
            for r in range(len(R)):
                load[j][r] += req[i][r]
    iters = improved = 0
    size = min(P.n_nodes, 8)
    deadline = opts.remaining(default=10.0)
    t_end = time.monotonic() + deadline
    while time.monotonic() < t_end - 0.05:
        pending = [i for i in range(P.n_pods) if where[i] is None and P.candidates[i]]
        if not pending:
            break
        iters += 1

        # neighbourhood: nodes with the most free capacity (normalised), plus random nodes
        def free(j):
            return sum((cap[j][r] - load[j][r]) / cap[j][r] for r in range(len(R)) if cap[j][r])

        by_free = sorted(range(P.n_nodes), key=lambda j: -free(j) + rng.random() * 0.05)
        chosen = set(by_free[: size // 2])
        while len(chosen) < size:
            chosen.add(rng.randrange(P.n_nodes))
        nodes = sorted(chosen)
        top = max(P.pods[i].priority for i in pending)
        cand_pending = [
            i
            for i in pending
            if P.pods[i].priority == top and any(j in chosen for j in P.candidates[i])
        ]
        rng.shuffle(cand_pending)
        sub_pods = [i for i in range(P.n_pods) if where[i] in chosen]
        sub_pods += cand_pending[: 4 * size]
        # every pod on the chosen nodes is in sub_pods, so those nodes start empty; the rest stays fixed
        pm = PodModel(P, pods=sub_pods, nodes=nodes)
        sub_where = list(where)
        before_terms = _terms(P, sub_pods, where)
        ranges = [(-sum(1 for i in sub_pods if P.pods[i].priority == p), 0) for p in P.priorities]
        nrun = sum(1 for i in sub_pods if P.current[i] is not None)
        ranges += [(0, nrun), (0, nrun)]
        weights = weights_for(ranges)
        if weights[0] * max(1, -ranges[0][0]) > 2**62:
            break
        pm.m.minimize(sum(w * t for w, t in zip(weights, pm.terms)))
        pm.m.add(
            sum(w * t for w, t in zip(weights, pm.terms))
            <= sum(w * t for w, t in zip(weights, before_terms))
        )
        pm.hint(where)
        solver = cp_model.CpSolver()
        solver.parameters.num_workers = opts.threads
        solver.parameters.random_seed = opts.seed
        solver.parameters.max_time_in_seconds = max(0.05, min(0.3, t_end - time.monotonic()))
        status = solver.solve(pm.m)
        if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            continue
        for i in sub_pods:
            sub_where[i] = None
        for (i, j), v in pm.x.items():
            if solver.value(v):
                sub_where[i] = j
        obj = P.objective_of(sub_where)
        if obj < best:
            for i in sub_pods:
                if where[i] is not None:
                    for r in range(len(R)):
                        load[where[i]][r] -= req[i][r]
                if sub_where[i] is not None:
                    for r in range(len(R)):
                        load[sub_where[i]][r] += req[i][r]
            where, best = sub_where, obj
            improved += 1
            opts.report(P.to_solution(where), best)
    return Outcome(
        solution=P.to_solution(where),
        objective=best,
        termination=Termination.TIME_LIMIT,
        stats={"mode": "lns", "iterations": iters, "improvements": improved},
    )


def _must_move(problem: PodPacking, proven: list[int]) -> bool:
    """Whether the proven counts (per priority, then evictions) need some running pod to move: with no
    running pod evicted and every one where it is now, the pending pods that fit alone in some node's
    free room are too few for a priority. A bound of one move, free where the pattern bound is slow
    (on kwok_nodes64_pods512_prio1_util090_r1 the one pending pod fits no node's free room)."""
    import numpy as np

    P = problem
    n_prio = len(P.priorities)
    if proven[n_prio] != 0 or not P.n_nodes:
        return False
    req = np.array(P.request_matrix, dtype=float).reshape(P.n_pods, len(P.resources))
    free = np.array(
        [[np.inf if c is None else c for c in row] for row in P.capacity_matrix], dtype=float
    ).reshape(P.n_nodes, len(P.resources))
    short = defaultdict(int)  # priority -> pods that must run, less those that can without a move
    for k, p in enumerate(P.priorities):
        short[p] = -proven[k]
    for i, j in enumerate(P.current):
        if j is not None:
            free[j] -= req[i]
            short[P.pods[i].priority] -= 1
    for i, j in enumerate(P.current):
        if (
            j is None
            and P.candidates[i]
            and (req[i] <= free[list(P.candidates[i])]).all(axis=1).any()
        ):
            short[P.pods[i].priority] -= 1
    return any(v > 0 for v in short.values())


def _per_term(objective: list[int]) -> list[int]:
    """The problem's cumulative objective -> per-priority terms (-c_p ..., evictions, moves)."""
    k = len(objective) - 2
    return (
        [objective[0]] + [b - a for a, b in itertools.pairwise(objective[:k])] + list(objective[k:])
    )


def _terms(P: PodPacking, pods: list[int], where) -> list[int]:
    out = [
        -sum(1 for i in pods if P.pods[i].priority == p and where[i] is not None)
        for p in P.priorities
    ]
    running = [i for i in pods if P.current[i] is not None]
    out.append(sum(1 for i in running if where[i] is None))
    out.append(sum(1 for i in running if where[i] is not None and where[i] != P.current[i]))
    return out

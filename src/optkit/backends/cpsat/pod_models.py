"""The CP-SAT models of pod packing: the assignment model (`PodModel`, x[i, j] per pod and node) and
the counting model over groups of identical pods (`CountModel`, n[g, j] per group and node, with
its pattern bound from `optkit.backends.pod_column_generation`)."""

from __future__ import annotations

import itertools
import time
from collections import defaultdict
from typing import NamedTuple

import numpy as np

from optkit.problems.pod_packing import PodPacking


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
        deadline: float | None = None,
    ):
        """The assignment model over `pods` x `nodes` (default all); `fixed_load[j]` = load already on
        node j. Past `deadline` (a `time.monotonic()` value) the build stops with `TimeUp`."""
        from ortools.sat.python import cp_model

        from optkit.solve import TimeUp

        def clock() -> None:
            if deadline is not None and time.monotonic() > deadline:
                raise TimeUp

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
        self._own_placed: list[int] = []  # pods whose placed variable is not one of their x
        by_node: dict[int, list[int]] = defaultdict(list)
        for i in self.pods:
            clock()
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
                self._own_placed.append(i)
                self.m.add(sum(lits) == y)
                self.placed[i] = y
        for j in self.nodes:
            clock()
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
            q = np.array([req[i] for i in pods], dtype=np.int64).reshape(len(pods), len(R))
            one = np.ones(len(pods), dtype=np.int64)
            for r in R:
                if capacity[r] is not None:
                    k = min(k, _smallest_that_fit(q[:, r], one, capacity[r]))
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
                    (P.pod_signature[i], tuple(P.request_matrix[i]), pod.priority, P.candidates[i])
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
        hint = self.m.proto.solution_hint  # in one call each, not a call per variable
        hint.vars.extend([v.index for v in self.x.values()])
        hint.values.extend([int(where[i] == j) for i, j in self.x])
        hint.vars.extend([self.placed[i].index for i in self._own_placed])
        hint.values.extend([int(where[i] is not None) for i in self._own_placed])

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


def _smallest_that_fit(request, count, capacity: int) -> int:
    """How many items fit in `capacity` taken smallest first: `count[g]` items of size `request[g]`
    (arrays over groups)."""
    if capacity < 0:
        return 0
    order = np.argsort(request, kind="stable")
    request, count = request[order], count[order]
    filled = np.cumsum(request * count)
    whole = int(np.searchsorted(filled, capacity, side="right"))  # groups that fit entirely
    n = int(count[:whole].sum())
    if whole < len(request):  # then part of the next group, whose request is > 0
        n += (capacity - (int(filled[whole - 1]) if whole else 0)) // int(request[whole])
    return n


class PodClass(NamedTuple):
    """Movable pods that a count model treats as one: same requests, priority and candidate nodes,
    and all running or all pending."""

    request: tuple[int, ...]
    priority: int
    candidates: tuple[int, ...]  # node indices
    running: bool


class CountModel:
    """The placement and eviction terms over groups of identical pods: n[g, j] = pods of group g on node j.

    Groups: same requests, priority, allowed nodes, running or pending (movable pods only; non-movable
    pods are fixed load). With `node_symmetry`, identical nodes are ordered by cpu load (placement counts
    and evictions do not depend on which identical node holds what). `add_moves_term` adds the moves:
    identical pods are interchangeable, so the running pods that stay are counted per group and node
    (stay[g, j] <= min(n[g, j], pods of g running on j now)), which is exact and has no pod symmetry."""

    def __init__(self, problem: PodPacking, node_symmetry: bool = True):
        # kept whole (142 lines): one model, read top to bottom: classes, variables, capacity rows,
        # terms
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
        self.groups: dict[PodClass, list[int]] = defaultdict(list)
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
                key = PodClass(
                    tuple(req[i]), pod.priority, P.candidates[i], P.current[i] is not None
                )
                self.groups[key].append(i)
        self.keys = list(self.groups)
        self.fixed = fixed
        self.stay: dict[
            tuple[int, int], object
        ] = {}  # the moves term's variables (`add_moves_term`)
        self.here: dict[tuple[int, int], int] = defaultdict(
            int
        )  # (group, node) -> its pods running there now
        for g, key in enumerate(self.keys):
            for i in self.groups[key] if key.running else ():
                self.here[g, P.current[i]] += 1
        self.n: dict[tuple[int, int], object] = {}
        self.placed = []
        by_node = defaultdict(list)
        for g, key in enumerate(self.keys):
            size = len(self.groups[key])
            cands = key.candidates
            for j in cands:
                self.n[g, j] = self.m.new_int_var(0, size, f"n{g}_{j}")
                by_node[j].append(g)
            t = self.m.new_int_var(0, size, f"t{g}")
            self.m.add(total_of([self.n[g, j] for j in cands]) == t)
            self.placed.append(t)
        # per group: requests [group, resource] and pods; per node: free room (None: unlimited)
        q = np.array([key.request for key in self.keys], dtype=np.int64).reshape(
            len(self.keys), len(R)
        )
        size = np.array([len(self.groups[key]) for key in self.keys], dtype=np.int64)
        free = [
            [None if cap[j][r] is None else cap[j][r] - fixed[j][r] for r in R]
            for j in range(P.n_nodes)
        ]
        on = {j: np.array(gs, dtype=np.int64) for j, gs in by_node.items()}
        no_group = np.zeros(0, dtype=np.int64)
        for j in range(P.n_nodes):
            gs = on.get(j, no_group)
            for r in R:
                c = free[j][r]
                if c is None:
                    continue
                used = gs[q[gs, r] > 0]
                if int(q[used, r] @ size[used]) > c:
                    self.m.add(
                        weighted([self.n[g, j] for g in used.tolist()], q[used, r].tolist()) <= c
                    )
                if c < 0:
                    self.ok = False
        totals = []
        for r in R:
            caps = [cap[j][r] for j in range(P.n_nodes)]
            totals.append(
                None if any(c is None for c in caps) else sum(caps) - sum(f[r] for f in fixed)
            )
            if totals[r] is None:
                continue
            used = np.flatnonzero(q[:, r] > 0)
            self.m.add(
                weighted([self.placed[g] for g in used.tolist()], q[used, r].tolist()) <= totals[r]
            )

        # counting cuts: per node and per priority threshold, at most k pods (k smallest requests fit)
        def max_count(gs, capacity):
            k = None
            for r in R:
                if capacity[r] is not None:
                    n = _smallest_that_fit(q[gs, r], size[gs], capacity[r])
                    k = n if k is None else min(k, n)
            return k

        for j in range(P.n_nodes):
            gs = on.get(j, no_group)
            k = max_count(gs, free[j])
            if k is not None and k < int(size[gs].sum()):
                self.m.add(total_of([self.n[g, j] for g in by_node[j]]) <= k)
        self.count_cap: dict[int, int] = {}  # priority p -> most pods of priority >= p that can run
        priority = np.array([key.priority for key in self.keys], dtype=np.int64)
        for prio in P.priorities:
            gs = np.flatnonzero(priority >= prio)
            k = max_count(gs, totals)
            n = int(size[gs].sum())
            if k is not None and k < n:
                self.m.add(total_of([self.placed[g] for g in gs.tolist()]) <= k)
            self.count_cap[prio] = (n if k is None else min(k, n)) + sum(
                c for p, c in self.fixed_count.items() if p >= prio
            )
        # identical nodes: order by load of the first resource
        self.ordered_classes: list[list[int]] = []
        for members in P.identical_nodes(self.pinned) if node_symmetry else ():
            mset = set(members)
            if any(
                len(mset.intersection(k.candidates)) not in (0, len(members)) for k in self.keys
            ):
                continue
            users = [g for g in range(len(self.keys)) if members[0] in self.keys[g].candidates]
            if not P.resources:
                continue
            loads = [
                weighted([self.n[g, j] for g in users], [self.keys[g].request[0] for g in users])
                for j in members
            ]
            for a, b in itertools.pairwise(loads):
                self.m.add(a >= b)
            self.ordered_classes.append(members)
        self.terms = []
        for prio in P.priorities:
            self.terms.append(
                -total_of([self.placed[g] for g, k in enumerate(self.keys) if k.priority == prio])
                - self.fixed_count[prio]
            )
        running = [g for g, k in enumerate(self.keys) if k.running]
        self.terms.append(
            sum(len(self.groups[self.keys[g]]) for g in running)
            - total_of([self.placed[g] for g in running])
        )

    def patterns(
        self, k: int, proven: list[int], placements: list[list[int | None]], deadline: float
    ):
        """Column generation (`optkit.backends.pod_column_generation`) for the k-th term with the terms before it at their proven
        values: the count of pods of priority >= the k-th priority, (k = number of priorities) of
        running pods placed, or (the moves term) of running pods that stay on their node, with every node
        that has such pods a class of its own. `placements`: the incumbent first (the count to prove), then any other
        feasible placements; their nodes are the first columns. Returns (a proven bound on that count or
        None, a packing from the patterns or None, the bound as a cut for the model or None). Only reads
        the model: CP-SAT may be solving it meanwhile."""
        # kept whole (96 lines): the pattern bound's set-up and its answer read the same node and
        # pod classes
        from optkit.backends.pod_column_generation import NodeClass, PodType, pattern_bound

        P = self.p
        R = range(len(P.resources))
        key_of: dict[tuple, int] = {}
        nodes_of: list[list[int]] = []
        caps: list[tuple] = []
        allowed_by_node = [set() for _ in range(P.n_nodes)]
        for g, key in enumerate(self.keys):
            for j in key.candidates:
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
            PodType(
                key.request, len(self.groups[key]), frozenset(node_class[j] for j in key.candidates)
            )
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
                {g for g, key in enumerate(self.keys) if key.priority >= prio},
                sum(c for p, c in self.fixed_count.items() if p >= prio),
            )

        at_least = []
        for i in range(min(k, n_prio)):
            gs, fixed = above(P.priorities[i])
            at_least.append((gs, -sum(proven[: i + 1]) - fixed))
        running = {g for g, key in enumerate(self.keys) if key.running}
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
            sum(self.placed[g] for g, key in enumerate(self.keys) if key.running)
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
        # in one call (a call per variable was 19 ms a hint on 64 nodes x 512 pods)
        hint = self.m.proto.solution_hint
        hint.vars.extend([v.index for v in self.n.values()])
        hint.values.extend([counts.get(gj, 0) for gj in self.n])
        hint.vars.extend([v.index for v in self.stay.values()])
        hint.values.extend([min(counts.get(gj, 0), self.here[gj]) for gj in self.stay])

    def read(self, value) -> list[int | None]:
        """A placement: running pods of a group keep their node where the counts allow."""
        P = self.p
        where: list[int | None] = [None] * P.n_pods
        for i, pod in enumerate(P.pods):
            if not pod.movable:
                where[i] = P.current[i]
        for g, key in enumerate(self.keys):
            left = {j: value(self.n[g, j]) for j in key.candidates if value(self.n[g, j])}
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

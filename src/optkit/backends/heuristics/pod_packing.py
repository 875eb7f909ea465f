"""Pod packing heuristics: a model of kube-scheduler's default placement, and FFD / BFD by priority.

`kube-default` replays what the default kube-scheduler profile does with the pending pods while the
running pods stay where they are:
- queue: PrioritySort (priority, then arrival), or arrival only (`order=arrival`, the paper's
  "before" state: each ReplicaSet is scheduled as it is created);
- filter: NodeResourcesFit (every resource, "pods" included), NodeUnschedulable, NodeAffinity
  (selector and required affinity), TaintToleration (NoSchedule / NoExecute);
- score, with the default weights: NodeResourcesFit/LeastAllocated (1), NodeResourcesBalancedAllocation
  (1), PodTopologySpread with the system default constraints for pods that have an owner
  (hostname maxSkew 3, zone maxSkew 5; weight 2), TaintToleration on PreferNoSchedule taints (3);
  NodeAffinity, InterPodAffinity and ImageLocality score 0 for these pods. Integer arithmetic as in
  the Go code (least: (cap - req) * 100 / cap per resource with the 100m / 200 MiB defaults for a
  missing request, then / weight sum; balanced: int64((1 - |f_cpu - f_mem| / 2) * 100) on actual
  requests, skipped for best-effort pods; spread: round(count * ln(nodes + 2) + maxSkew - 1), then
  normalised 100 * (max + min - s) / max);
- select: the highest total, ties broken by node name (`tie_break=name`), instance order (`index`)
  or a seeded random choice (`random`, as selectHost's reservoir sampling);
- optional DefaultPreemption (`preemption=true`): on a node where removing every lower-priority
  pod makes room, reprieve victims from the most important down (higher priority, then earlier
  start), so the victims are the lowest-priority pods; pick the node by lowest top victim
  priority, smallest victims-priority sum (Go adds 2^31 per victim, so fewer victims first),
  fewest victims, latest start of the top victims, then first. kube-scheduler first minimises the
  victims whose PodDisruptionBudget they would break; in this model a pod under a budget that
  allows no disruption is not movable, so it is never a victim and that count is always 0.
  Victims come back at the end of the queue (their ReplicaSet recreates them);
- unschedulable pods (`retry=true`): a pod that fits nowhere waits aside; when a preemption
  deletes pods, and at the periodic flush once the queue is empty, the waiting pods are queued
  again behind the pods already queued (a failed attempt renews a pod's queue timestamp), until a
  flush places nothing. Without preemption nothing is ever deleted, so this changes nothing.

`order=arrival preemption=true` (one ReplicaSet after the other, as the KWOK runs created them)
leaves 1.3 % more pods pending than the real kube-scheduler over the KWOK scenarios with pending
pods (`benchmarks/k8s_kube_default.py`, docs/kubernetes.md).
"""

from __future__ import annotations

import math
import random
import time
from collections import defaultdict
from heapq import heappop, heappush

from optkit.problems.pod_packing import (
    DEFAULT_MEMORY,
    DEFAULT_MILLI_CPU,
    PodPacking,
    creation_order,
)
from optkit.registry import register
from optkit.solve import Outcome, SolveOptions

MAX_SCORE = 100
BIG = 1 << 62  # "unlimited" capacity (a node that does not list "pods")
HOSTNAME = "kubernetes.io/hostname"
ZONE = "topology.kubernetes.io/zone"
WEIGHTS = {"least": 1, "balanced": 1, "spread": 2, "taint": 3}


class Cluster:
    """Requests on each node as the scheduler's NodeInfo keeps them (actual and non-zero)."""

    def __init__(self, problem: PodPacking):
        import numpy as np

        self.np = np
        self.p = problem
        R = problem.resources
        self.R = R
        self.cap = np.array(
            [[BIG if c is None else c for c in row] for row in problem.capacity_matrix],
            dtype=np.int64,
        ).reshape(problem.n_nodes, len(R))
        self.req = np.array(problem.request_matrix, dtype=np.int64).reshape(problem.n_pods, len(R))
        self.used = np.zeros((problem.n_nodes, len(R)), dtype=np.int64)
        # cpu / memory as scoring sees them: actual and with the non-zero defaults
        self.cpu_r = R.index("cpu") if "cpu" in R else None
        self.mem_r = R.index("memory") if "memory" in R else None
        self.alloc2 = np.zeros((problem.n_nodes, 2), dtype=np.int64)
        for k, r in enumerate((self.cpu_r, self.mem_r)):
            if r is not None:
                self.alloc2[:, k] = np.minimum(self.cap[:, r], BIG)
        self.nz = np.zeros((problem.n_pods, 2), dtype=np.int64)
        self.actual2 = np.zeros((problem.n_pods, 2), dtype=np.int64)
        for i, pod in enumerate(problem.pods):
            self.nz[i, 0] = pod.requests.get("cpu", DEFAULT_MILLI_CPU)
            self.nz[i, 1] = pod.requests.get("memory", DEFAULT_MEMORY)
            self.actual2[i] = (pod.requests.get("cpu", 0), pod.requests.get("memory", 0))
        self.used_nz = np.zeros((problem.n_nodes, 2), dtype=np.int64)
        self.used_actual = np.zeros((problem.n_nodes, 2), dtype=np.int64)
        self.where: list[int | None] = [None] * problem.n_pods
        self.start: list[int] = [
            0
        ] * problem.n_pods  # placement clock (for preemption's start time)
        self.clock = 0
        self.on_node: list[set[int]] = [set() for _ in problem.nodes]
        # PodTopologySpread bookkeeping: owner -> matching pod count per node, made dense on the
        # first score that asks (15,000 ReplicaSets x 5,000 nodes would be 600 MB); until then the
        # nodes of the owner's placed pods
        self._owner_count: dict[str, object] = {}
        self._owner_nodes: dict[str, list[int]] = defaultdict(list)
        self.zone = [n.labels.get(ZONE) for n in problem.nodes]
        self.has_zone = any(z is not None for z in self.zone)
        # PreferNoSchedule taints per node (TaintToleration score)
        self.prefer_taints = [
            [t for t in n.taints if t.effect == "PreferNoSchedule"] for n in problem.nodes
        ]
        self.any_prefer = any(self.prefer_taints)
        self.name_rank = np.empty(problem.n_nodes, dtype=np.int64)
        for rank, j in enumerate(
            sorted(range(problem.n_nodes), key=lambda j: problem.nodes[j].name)
        ):
            self.name_rank[j] = rank
        self._eligible: dict[str, object] = {}

    # -- state ----------------------------------------------------------------------------------
    def place(self, i: int, j: int) -> None:
        self.where[i] = j
        self.used[j] += self.req[i]
        self.used_nz[j] += self.nz[i]
        self.used_actual[j] += self.actual2[i]
        self.on_node[j].add(i)
        self.clock += 1
        self.start[i] = self.clock
        self._count_owner(i, j, +1)

    def place_all(self, pods: list[int], nodes: list[int]) -> None:
        """`place` for each pod in turn, in bulk: the running pods of a cluster of 40,000 took 0.4 s
        one by one."""
        np = self.np
        if not pods:
            return
        i, j = np.asarray(pods), np.asarray(nodes)
        np.add.at(self.used, j, self.req[i])
        np.add.at(self.used_nz, j, self.nz[i])
        np.add.at(self.used_actual, j, self.actual2[i])
        for k, (a, b) in enumerate(zip(pods, nodes), start=self.clock + 1):
            self.where[a] = b
            self.on_node[b].add(a)
            self.start[a] = k
            self._count_owner(a, b, +1)
        self.clock += len(pods)

    def remove(self, i: int) -> None:
        j = self.where[i]
        assert j is not None
        self.where[i] = None
        self.used[j] -= self.req[i]
        self.used_nz[j] -= self.nz[i]
        self.used_actual[j] -= self.actual2[i]
        self.on_node[j].discard(i)
        self._count_owner(i, j, -1)

    def _count_owner(self, i: int, j: int, change: int) -> None:
        """Pod i placed on (+1) or removed from (-1) node j, in its owner's counts."""
        owner = self.p.pods[i].owner
        if not owner:
            return
        counts = self._owner_count.get(owner)
        if counts is not None:
            counts[j] += change
        elif change > 0:
            self._owner_nodes[owner].append(j)
        else:
            self._owner_nodes[owner].remove(j)

    def owner_count(self, owner: str):
        """The pods of `owner` on each node (an array over the nodes)."""
        counts = self._owner_count.get(owner)
        if counts is None:
            on = self._owner_nodes.pop(owner, [])
            counts = self.np.bincount(on, minlength=self.p.n_nodes).astype(self.np.int64)
            self._owner_count[owner] = counts
        return counts

    def eligible_mask(self, i: int):
        """Nodes pod i passes the non-resource filters on."""
        sig = self.p.pod_signature[i]
        mask = self._eligible.get(sig)
        if mask is None:
            mask = self.np.array(self.p.eligible_by_signature[sig], dtype=bool).reshape(
                self.p.n_nodes
            )
            self._eligible[sig] = mask
        return mask

    def feasible(self, i: int):
        np = self.np
        fits = np.all(self.used + self.req[i] <= self.cap, axis=1)
        return fits & self.eligible_mask(i)

    # -- scoring --------------------------------------------------------------------------------
    def scores(self, i: int, nodes):
        """Total default-profile score of pod i on each node in `nodes` (an index array)."""
        np = self.np
        alloc = self.alloc2[nodes]
        # NodeResourcesFit, LeastAllocated (non-zero requests)
        req = self.used_nz[nodes] + self.nz[i]
        valid = alloc > 0
        safe = np.where(valid, alloc, 1)
        per = np.where(req > alloc, 0, ((alloc - req) * MAX_SCORE) // safe)
        per = np.where(valid, per, 0)
        wsum = valid.sum(axis=1)
        least = np.where(wsum > 0, per.sum(axis=1) // np.maximum(wsum, 1), 0)
        total = WEIGHTS["least"] * least
        # NodeResourcesBalancedAllocation (actual requests; skipped for best-effort pods)
        if self.actual2[i].any():
            reqa = self.used_actual[nodes] + self.actual2[i]
            frac = np.minimum(reqa / safe, 1.0)
            both = valid.all(axis=1)
            std = np.where(both, np.abs((frac[:, 0] - frac[:, 1]) / 2), 0.0)
            balanced = np.trunc((1 - std) * float(MAX_SCORE)).astype(np.int64)
            balanced = np.where(valid.any(axis=1), balanced, MAX_SCORE)
            total = total + WEIGHTS["balanced"] * balanced
        # PodTopologySpread, system default constraints (pods with an owner)
        owner = self.p.pods[i].owner
        if owner and self.spread:
            counts = self.owner_count(owner)
            cnt = counts[nodes]
            raw = cnt * math.log(len(nodes) + 2) + (3 - 1)
            if self.has_zone:
                zones = [self.zone[j] for j in nodes]
                zone_tot: dict[str, int] = {}
                for j in range(self.p.n_nodes):
                    if self.zone[j] is not None:
                        zone_tot[self.zone[j]] = zone_tot.get(self.zone[j], 0) + int(counts[j])
                w = math.log(len({z for z in zones if z is not None}) + 2)
                raw = raw + np.array(
                    [0.0 if z is None else zone_tot[z] * w + (5 - 1) for z in zones]
                )
            s = np.floor(raw + 0.5).astype(np.int64)
            lo, hi = int(s.min()), int(s.max())
            spread = (
                np.full(len(nodes), MAX_SCORE, dtype=np.int64)
                if hi == 0
                else MAX_SCORE * (hi + lo - s) // hi
            )
            total = total + WEIGHTS["spread"] * spread
        # TaintToleration (PreferNoSchedule taints the pod does not tolerate; reversed)
        if self.any_prefer:
            tol = [
                t for t in self.p.pods[i].tolerations if t.effect in (None, "", "PreferNoSchedule")
            ]
            bad = np.array(
                [
                    sum(
                        1
                        for taint in self.prefer_taints[j]
                        if not any(t.tolerates(taint) for t in tol)
                    )
                    for j in nodes
                ],
                dtype=np.int64,
            )
            m = int(bad.max()) if len(bad) else 0
            taint = (
                np.full(len(nodes), MAX_SCORE, dtype=np.int64)
                if m == 0
                else MAX_SCORE - MAX_SCORE * bad // m
            )
        else:
            taint = MAX_SCORE
        total = total + WEIGHTS["taint"] * taint
        return total

    spread = True

    def select(self, i: int, nodes, tie_break: str, rng: random.Random) -> int:
        np = self.np
        s = self.scores(i, nodes)
        best = nodes[s == s.max()]
        if len(best) == 1 or tie_break == "index":
            return int(best[0])
        if tie_break == "random":
            return int(best[rng.randrange(len(best))])
        return int(best[np.argmin(self.name_rank[best])])

    # -- DefaultPreemption ----------------------------------------------------------------------
    def preempt(self, i: int) -> tuple[int, list[int]] | None:
        np = self.np
        pod = self.p.pods[i]
        mask = self.eligible_mask(i)
        best_key, best = None, None
        for j in np.flatnonzero(mask):
            j = int(j)
            lower = [
                k
                for k in self.on_node[j]
                if self.p.pods[k].priority < pod.priority and self.p.pods[k].movable
            ]
            if not lower:
                continue
            free = self.cap[j] - self.used[j] + self.req[lower].sum(axis=0)
            if not np.all(self.req[i] <= free):
                continue
            # reprieve the most important first (higher priority, then earlier start)
            lower.sort(key=lambda k: (-self.p.pods[k].priority, self.start[k]))
            victims = []
            free = free - self.req[i]
            for k in lower:
                if np.all(self.req[k] <= free):
                    free = free - self.req[k]
                else:
                    victims.append(k)
            if not victims:  # cannot happen: the pod did not fit before
                continue
            top = max(self.p.pods[k].priority for k in victims)
            sum_p = sum(self.p.pods[k].priority + (1 << 31) for k in victims)
            earliest_top = min(self.start[k] for k in victims if self.p.pods[k].priority == top)
            key = (top, sum_p, len(victims), -earliest_top)
            if best_key is None or key < best_key:
                best_key, best = key, (j, victims)
        return best


def kube_schedule(
    problem: PodPacking,
    *,
    order: str = "priority",
    tie_break: str = "name",
    preemption: bool = False,
    spread: bool = True,
    seed: int = 0,
    retry: bool = True,
    deadline: float | None = None,
) -> list[int | None]:
    """Node index (or None) per pod after kube-scheduler places the pending pods; the pods still
    queued at `deadline` (a `time.monotonic()` value) stay pending.

    Running pods keep their node unless a NoExecute taint evicts them; on a node whose running pods
    overflow it, the lowest-priority movable pods are evicted until it fits (kubelet admission)."""
    # kept whole (81 lines): kube-scheduler's cycle as one loop: queue, filter, score, preempt and
    # retry share the cluster
    import numpy as np

    c = Cluster(problem)
    c.spread = spread
    rng = random.Random(seed)
    arrival = {i: k for k, i in enumerate(creation_order(problem))}
    stay = problem.staying
    in_order = sorted(range(problem.n_pods), key=lambda i: arrival[i])
    running = [i for i in in_order if stay[i] is not None]
    c.place_all(running, [stay[i] for i in running])
    pending = [i for i in in_order if stay[i] is None]
    for j in range(problem.n_nodes):
        while np.any(c.used[j] > c.cap[j]):
            movable = [k for k in c.on_node[j] if problem.pods[k].movable]
            if not movable:
                break
            k = min(movable, key=lambda k: (problem.pods[k].priority, -arrival[k]))
            c.remove(k)
            pending.append(k)
    tick = len(arrival)
    heap: list[tuple] = []

    def push(i: int, t: int) -> None:
        key = (-problem.pods[i].priority, t, i) if order == "priority" else (t, i)
        heappush(heap, (key, i))

    for i in pending:
        push(i, arrival[i])
    unschedulable: list[int] = []

    def requeue() -> None:
        """A cluster event: the unschedulable pods go back, behind the pods already queued."""
        nonlocal tick
        for k in unschedulable:
            tick += 1
            push(k, tick)
        unschedulable.clear()

    for _ in range(problem.n_pods + 1):  # flushes of the unschedulable pods, while they help
        placed = 0
        while heap:
            if deadline is not None and time.monotonic() > deadline:
                return c.where
            _, i = heappop(heap)
            nodes = np.flatnonzero(c.feasible(i))
            if len(nodes):
                c.place(i, c.select(i, nodes, tie_break, rng))
                placed += 1
                continue
            found = c.preempt(i) if preemption else None
            if found is None:
                unschedulable.append(i)
                continue
            j, victims = found
            for k in victims:
                c.remove(k)
            if retry:
                requeue()  # the victims' deletion moves the waiting pods back first
            for k in victims:  # then the victims come back as new pods (their ReplicaSet)
                tick += 1
                push(k, tick)
            c.place(i, j)
            placed += 1
        if not retry or not unschedulable or not placed:
            break
        requeue()  # the periodic flush of pods left unschedulable
    return c.where


def _check_choice(name: str, value: str, allowed: tuple[str, ...]) -> None:
    from optkit.errors import InputError

    if value not in allowed:
        raise InputError(f"parameter '{name}': expected one of {', '.join(allowed)}, got {value!r}")


@register(
    "kube-default",
    "pod-packing",
    deterministic=True,
    requires=("numpy",),
    params={
        "order": "priority",
        "tie_break": "name",
        "preemption": False,
        "spread": True,
        "retry": True,
    },
)
def kube_default(problem: PodPacking, opts: SolveOptions) -> Outcome:
    """kube-scheduler's default profile: queue, filters, default scoring, optional preemption."""
    p = opts.params
    _check_choice("order", p["order"], ("priority", "arrival"))
    _check_choice("tie_break", p["tie_break"], ("name", "index", "random"))
    where = kube_schedule(
        problem,
        order=p["order"],
        tie_break=p["tie_break"],
        preemption=p["preemption"],
        spread=p["spread"],
        seed=opts.seed,
        retry=p["retry"],
        deadline=_deadline(opts),
    )
    return Outcome(solution=problem.to_solution(where), objective=problem.objective_of(where))


# -- first fit / best fit decreasing by priority, with repair moves --------------------------------


def _fit_decreasing(
    problem: PodPacking, best_fit: bool, repair: bool, deadline: float | None = None
) -> list[int | None]:
    """Running pods stay; pending pods by priority (high first), then size (largest first) go to the
    first (or the tightest) node with room. A pod that fits nowhere tries a repair: move one running pod
    of another node out of the way, or else evict one strictly lower-priority pod (which then gets its
    own chance to be placed). Past `deadline` the pods left in the queue stay pending."""
    import numpy as np

    c = Cluster(problem)
    P = problem
    scale = (
        np.maximum(c.cap.max(axis=0), 1).astype(float) if P.n_nodes else np.ones(len(P.resources))
    )
    size = (c.req / scale).sum(axis=1) if P.n_pods else np.zeros(0)
    running = [i for i, j in enumerate(P.staying) if j is not None]
    c.place_all(running, [P.staying[i] for i in running])
    pending = [i for i, j in enumerate(P.staying) if j is None]
    for j in range(P.n_nodes):
        while np.any(c.used[j] > c.cap[j]):
            movable = [k for k in c.on_node[j] if P.pods[k].movable]
            if not movable:
                break
            k = min(movable, key=lambda k: (P.pods[k].priority, -size[k]))
            c.remove(k)
            pending.append(k)
    queue = sorted(pending, key=lambda i: (-P.pods[i].priority, -size[i], i))
    evicted_for: set[int] = set()

    def choose(i: int) -> int | None:
        nodes = np.flatnonzero(c.feasible(i))
        if not len(nodes):
            return None
        if not best_fit:
            return int(nodes[0])
        slack = ((c.cap[nodes] - c.used[nodes] - c.req[i]) / scale).sum(axis=1)
        return int(nodes[np.argmin(slack)])

    k = 0
    while k < len(queue):
        if deadline is not None and time.monotonic() > deadline:
            break  # the pods left in the queue stay pending
        i = queue[k]
        k += 1
        j = choose(i)
        if j is not None:
            c.place(i, j)
            continue
        if not repair:
            continue
        if _repair_move(c, i, choose):
            continue
        victim = _repair_evict(c, i, size)
        if victim is not None and victim not in evicted_for:
            evicted_for.add(victim)
            queue.append(victim)
    return c.where


REPAIR_NODES = 32  # nodes a repair looks at: the ones with the most free room for the pod


def _repair_nodes(c: Cluster, i: int):
    import numpy as np

    nodes = np.flatnonzero(c.eligible_mask(i))
    if len(nodes) > REPAIR_NODES:
        scale = np.maximum(c.cap[nodes], 1).astype(float)
        short = (np.maximum(c.used[nodes] + c.req[i] - c.cap[nodes], 0) / scale).sum(axis=1)
        nodes = nodes[np.argsort(short, kind="stable")[:REPAIR_NODES]]
    return nodes


def _repair_move(c: Cluster, i: int, choose) -> bool:
    """Move one pod k off a node j (to another node with room) so that pod i fits on j (under the
    per-tier order only a pod of lower priority than pod i)."""
    import numpy as np

    P = c.p
    # per-tier: only pods of lower priority move (lowest first), so that the move pays for itself
    per_tier = P.objective == "per-tier"
    sign = 1 if per_tier else -1
    free = c.cap - c.used
    for j in _repair_nodes(c, i):
        j = int(j)
        need = c.req[i] - free[j]
        ks = np.fromiter(c.on_node[j], dtype=np.int64, count=len(c.on_node[j]))
        if not len(ks):
            continue
        ks = ks[np.all(c.req[ks] >= need, axis=1)]
        for k in sorted(ks.tolist(), key=lambda k: (sign * P.pods[k].priority, k)):
            if not P.pods[k].movable or (per_tier and P.pods[k].priority >= P.pods[i].priority):
                continue
            dest = np.all(free >= c.req[k], axis=1) & c.eligible_mask(k)
            dest[j] = False
            if dest.any():
                c.remove(k)
                c.place(k, int(np.argmax(dest)))
                c.place(i, j)
                return True
    return False


def _repair_evict(c: Cluster, i: int, size) -> int | None:
    """Evict the smallest-priority pod k (strictly below pod i's) whose removal lets pod i in."""
    import numpy as np

    P = c.p
    best = None
    for j in _repair_nodes(c, i):
        j = int(j)
        for k in c.on_node[j]:
            if not P.pods[k].movable or P.pods[k].priority >= P.pods[i].priority:
                continue
            if np.all(c.used[j] - c.req[k] + c.req[i] <= c.cap[j]):
                key = (P.pods[k].priority, size[k], k)
                if best is None or key < best[0]:
                    best = (key, k, j)
    if best is None:
        return None
    _, k, j = best
    c.remove(k)
    c.place(i, j)
    return k


@register("ffd", "pod-packing", deterministic=True, requires=("numpy",), params={"repair": True})
def ffd(problem: PodPacking, opts: SolveOptions) -> Outcome:
    """First-fit decreasing by priority then size, running pods kept, with repair moves."""
    where = _fit_decreasing(
        problem, best_fit=False, repair=opts.params["repair"], deadline=_deadline(opts)
    )
    return Outcome(solution=problem.to_solution(where), objective=problem.objective_of(where))


@register("bfd", "pod-packing", deterministic=True, requires=("numpy",), params={"repair": True})
def bfd(problem: PodPacking, opts: SolveOptions) -> Outcome:
    """Best-fit decreasing (tightest node) by priority then size, running pods kept, with repair moves."""
    where = _fit_decreasing(
        problem, best_fit=True, repair=opts.params["repair"], deadline=_deadline(opts)
    )
    return Outcome(solution=problem.to_solution(where), objective=problem.objective_of(where))


def _deadline(opts: SolveOptions) -> float | None:
    """The monotonic time at which placing stops, or None: the time limit less a reserve for the
    checks of the answer (min(0.1 s, 10 % of the limit); they take about 0.1 s at 40,000 pods)."""
    if opts.time_limit is None:
        return None
    return time.monotonic() + max(0.0, opts.remaining() - min(0.1, 0.1 * opts.time_limit))

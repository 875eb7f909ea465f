"""GPU selection heuristics: the single-type baseline and a cost-efficiency first-fit greedy."""

from __future__ import annotations

import math
from fractions import Fraction

from optkit.problems.gpu_selection import Bucket, GpuSelection, first_fit_decreasing
from optkit.registry import register
from optkit.result import Termination
from optkit.solve import Outcome, SolveOptions


def single_type_solution(problem: GpuSelection) -> dict | None:
    """The cheapest deployment that uses one GPU type only (the checker's baseline), or None."""
    base = problem.single_type_baseline
    if base is None:
        return None
    t, count, _ = base
    sf = problem.slice_factor
    n = {(t, b): sf for b in problem.buckets}
    if problem.packing == "pooled":
        return problem.solution_from_counts(n, counts={t: count})
    items = [b for b in problem.buckets for _ in range(sf)]
    bins = first_fit_decreasing([problem.loads[t][b] for b in items])
    instances: dict[tuple[int, Bucket], list[int]] = {(t, b): [] for b in problem.buckets}
    for i, members in enumerate(bins):
        for k in members:
            instances[(t, items[k])].append(i)
    for members in instances.values():
        members.sort()
    return problem.solution_from_counts(n, instances=instances, counts={t: len(bins)})


def integer_loads(problem: GpuSelection) -> tuple[list[int], list[dict[Bucket, int]]]:
    """(scale[t], size[t][b]): each type's loads times their common denominator, exact integers
    (a GPU of type t holds `scale[t]`); integer sums and comparisons are far cheaper than
    fractions'."""
    scales, sizes = [], []
    for row in problem.loads:
        scale = math.lcm(*(x.denominator for x in row.values())) if row else 1
        scales.append(scale)
        sizes.append({b: x.numerator * (scale // x.denominator) for b, x in row.items()})
    return scales, sizes


class _Packing:
    """A partial solution of the greedy: pooled loads and counts, or per-instance rooms and
    contents, in the integer units of `integer_loads`."""

    def __init__(self, problem: GpuSelection, allowed: frozenset[int] | None = None):
        T = len(problem.gpu_types)
        self.p = problem
        self.scale, self.size = integer_loads(problem)
        self.pooled = problem.packing == "pooled"
        self.count = [0] * T
        self.load = [0] * T
        self.rooms: list[list[int]] = [[] for _ in range(T)]
        self.content: list[list[list[Bucket]]] = [[] for _ in range(T)]  # per instance: its slices
        self.n: dict[tuple[int, Bucket], int] = {}
        self.order: dict[Bucket, list[int]] = {
            b: sorted(
                (
                    t
                    for t in range(T)
                    if problem.can_serve(t, b) and (allowed is None or t in allowed)
                ),
                key=lambda t: (problem.costs[t] * problem.loads[t][b], t),
            )
            for b in problem.buckets
        }

    def copy(self) -> _Packing:
        new = object.__new__(_Packing)
        new.p, new.pooled, new.order = self.p, self.pooled, self.order
        new.scale, new.size = self.scale, self.size
        new.count, new.load, new.n = list(self.count), list(self.load), dict(self.n)
        new.rooms = [list(r) for r in self.rooms]
        new.content = [[list(c) for c in inst] for inst in self.content]
        return new

    def cost(self) -> Fraction:
        return sum((c * k for c, k in zip(self.p.costs, self.count)), Fraction(0))

    def place(self, b: Bucket, banned: int | None = None, no_open: int | None = None) -> bool:
        """First fit into capacity already paid for, else open on the most cost-efficient type
        (type `banned` is not used at all, type `no_open` gets no new capacity)."""
        size = self.size
        for t in self.order[b]:
            if t == banned:
                continue
            lo = size[t][b]
            if self.pooled:
                if self.load[t] + lo <= self.count[t] * self.scale[t]:
                    self.load[t] += lo
                    self.n[(t, b)] = self.n.get((t, b), 0) + 1
                    return True
            else:
                for i, r in enumerate(self.rooms[t]):
                    if lo <= r:
                        self.rooms[t][i] -= lo
                        self.content[t][i].append(b)
                        self.n[(t, b)] = self.n.get((t, b), 0) + 1
                        return True
        for t in self.order[b]:
            if t == banned or t == no_open:
                continue
            lo, cap = size[t][b], self.p.gpu_types[t].max_count
            need = -(-(self.load[t] + lo) // self.scale[t]) if self.pooled else self.count[t] + 1
            if cap is not None and need > cap:
                continue
            if self.pooled:
                self.load[t] += lo
                self.count[t] = need
            else:
                self.rooms[t].append(self.scale[t] - lo)
                self.content[t].append([b])
                self.count[t] += 1
            self.n[(t, b)] = self.n.get((t, b), 0) + 1
            return True
        return False

    def without_one_instance(self, t: int, i: int | None = None) -> _Packing | None:
        """Pooled: move slices off type t until it needs one instance less; per instance: empty
        instance i of type t. The moved slices are placed again (not back on t when pooled)."""
        new = self.copy()
        loads, size, scale = self.p.loads[t], self.size[t], self.scale[t]
        if self.pooled:
            excess = new.load[t] - (new.count[t] - 1) * scale

            def relocation(
                b: Bucket,
            ) -> tuple:  # cheapest cost elsewhere per unit of load freed here
                alt = [self.p.costs[u] * self.p.loads[u][b] for u in self.order[b] if u != t]
                return (min(alt) / loads[b] if alt else math.inf, -loads[b], b)

            keys = {b: relocation(b) for (tt, b), k in new.n.items() if tt == t and k}
            mine = [b for b in sorted(keys, key=keys.__getitem__) for _ in range(new.n[(t, b)])]
            moved = []
            for b in mine:
                if excess <= 0:
                    break
                moved.append(b)
                excess -= size[b]
                new.load[t] -= size[b]
                new.n[(t, b)] -= 1
            new.count[t] = -(-new.load[t] // scale)
            banned = t
        else:
            moved = new.content[t].pop(i)
            new.rooms[t].pop(i)
            new.count[t] -= 1
            for b in moved:
                new.n[(t, b)] -= 1
            banned = None
        for b in sorted(moved, key=lambda b: (-loads[b], b)):
            if not new.place(b, banned, no_open=t):
                return None
        return new

    def improve(self, max_rounds: int = 200, opts: SolveOptions | None = None) -> _Packing:
        """Drop one instance at a time while that lowers the cost (best move first), until
        nothing pays or the time limit of `opts` is reached."""
        best = self
        for _ in range(max_rounds):
            if opts is not None and opts.expired():
                return best
            cost, found = best.cost(), None
            for t in range(len(best.count)):
                if best.count[t] == 0:
                    continue
                if best.pooled:
                    tries = [None]
                else:  # the two least loaded instances
                    tries = sorted(range(best.count[t]), key=lambda i: -best.rooms[t][i])[:2]
                for i in tries:
                    cand = best.without_one_instance(t, i)
                    if cand is not None and cand.cost() < cost:
                        cost, found = cand.cost(), cand
            if found is None:
                return best
            best = found
        return best

    def solution(self) -> dict:
        counts = dict(enumerate(self.count))
        if self.pooled:
            return self.p.solution_from_counts(
                {k: v for k, v in self.n.items() if v}, counts=counts
            )
        instances: dict[tuple[int, Bucket], list[int]] = {}
        for t, insts in enumerate(self.content):
            for i, members in enumerate(insts):
                for b in members:
                    instances.setdefault((t, b), []).append(i)
        for members in instances.values():
            members.sort()
        return self.p.solution_from_counts(
            {k: v for k, v in self.n.items() if v}, instances=instances, counts=counts
        )


def first_fit(
    problem: GpuSelection,
    allowed: frozenset[int] | None = None,
    opts: SolveOptions | None = None,
) -> _Packing | None:
    """Cost-efficiency first fit on the `allowed` types (all if None), then instance dropping."""
    state = _Packing(problem, allowed)
    if any(not state.order[b] for b in problem.buckets):
        return None
    first = state.order
    items = sorted(
        problem.buckets,
        key=lambda b: (-problem.costs[first[b][0]] * problem.loads[first[b][0]][b], b),
    )
    for b in items:
        for _ in range(problem.slice_factor):
            if not state.place(b):
                return None
    return state.improve(opts=opts)


def greedy_solution(
    problem: GpuSelection, max_subsets: int = 64, opts: SolveOptions | None = None
) -> dict | None:
    """The cheapest first-fit packing over subsets of the GPU types; None if all get stuck.

    First fit: slices are taken in decreasing order of their cheapest cost (cost_per_hour x load on
    the most cost-efficient type that can serve them). Each goes to the first type, in increasing
    order of cost x load for its bucket, that has room already paid for (pooled: the type's
    instances; per_instance: the first instance of the type with room); if none has room, it opens
    capacity on the most cost-efficient type whose max_count allows it. Then, while it pays, one
    instance is given up and the slices it held are placed again by the same rule on the other
    capacity (this fills the last, partly used instance of a type with a cheaper GPU).
    Efficiency alone rarely picks a small GPU that a big one beats per request, so the first fit
    is run on every subset of types (all of them when there are at most 6 types, else the
    `max_subsets` smallest subsets and the full set) and the cheapest packing is kept.
    With `opts`, each better packing is reported, and the search stops at its time limit with
    the best one so far.
    """
    import itertools

    T = len(problem.gpu_types)
    subsets = [frozenset(c) for k in range(1, T + 1) for c in itertools.combinations(range(T), k)]
    if len(subsets) > max_subsets:
        subsets = subsets[: max_subsets - 1] + [frozenset(range(T))]
    best = None
    # the full set first: the packing most likely to exist, before the clock runs out
    for allowed in [subsets[-1], *subsets[:-1]]:
        if opts is not None and opts.expired() and best is not None:
            break
        packing = first_fit(problem, allowed, opts=opts)
        if packing is not None and (best is None or packing.cost() < best[0]):
            # the solution dict only for a better packing: building one costs more than the packing
            best = (packing.cost(), packing.solution())
            if opts is not None:
                opts.report(best[1], float(best[0]))
    return None if best is None else best[1]


def _no_solution(problem: GpuSelection, what: str) -> Outcome:
    reason = problem.infeasibility_reason()
    if reason:
        return Outcome(proven_infeasible=True, message=f"infeasible: {reason}")
    return Outcome(
        message=f"{what} found no solution (max_count too small for it?); "
        "an exact solver (mip, cpsat) decides feasibility"
    )


@register("single-type", "gpu-selection")
def single_type(problem: GpuSelection, opts: SolveOptions) -> Outcome:
    """The baseline: the cheapest deployment with one GPU type (per_instance: first-fit decreasing)."""
    solution = single_type_solution(problem)
    if solution is None:
        return _no_solution(problem, "no single GPU type serves every bucket within its max_count;")
    opts.report(solution, problem.cost_of(solution["counts"]))
    return Outcome(solution=solution)


@register("greedy", "gpu-selection", params={"subsets": 64})
def greedy(problem: GpuSelection, opts: SolveOptions) -> Outcome:
    """Cost-efficiency first fit over subsets of the GPU types, with instance dropping; never worse
    than the single-type baseline when there is time to compute it."""
    best = None
    solution = greedy_solution(problem, max(1, int(opts.params["subsets"])), opts=opts)
    if solution is not None:
        best = (problem.exact_cost(solution["counts"]), solution)
    # the single-type baseline (0.02 s at slice_factor 64), unless the clock is spent
    if best is None or not opts.expired():
        single = single_type_solution(problem)
        if single is not None:
            cost = problem.exact_cost(single["counts"])
            if best is None or cost < best[0]:
                best = (cost, single)
                opts.report(single, float(cost))
    if best is None:
        return _no_solution(problem, "greedy")
    term = Termination.TIME_LIMIT if opts.expired() else Termination.COMPLETED
    return Outcome(solution=best[1], termination=term)

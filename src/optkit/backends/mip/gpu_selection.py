"""MIP (PuLP, HiGHS or CBC) of GPU selection: Mélange's ILP on slice counts, and the per-instance model.

Pooled (Mélange): n[t, b] in {0..slice_factor} slices of bucket b on type t, count[t] integer,
    sum_t n[t, b] = slice_factor                      for every bucket b with traffic
    sum_b load[t, b] * n[t, b] <= count[t]            for every type t
    min sum_t cost[t] * count[t].
Mélange writes one binary per (slice, type); slices of one bucket are interchangeable, so summing
those binaries per bucket gives this model with the same optimum and far less symmetry.

Per instance: y[t, k] (instance k of type t is rented), x[t, k, b] slices of bucket b on it,
    sum_{t,k} x[t, k, b] = slice_factor;  sum_b load[t, b] x[t, k, b] <= y[t, k];
    y[t, k] <= y[t, k-1] and load(t, k) <= load(t, k-1) (symmetry);  min sum cost[t] y[t, k].
k ranges over `count_upper_bounds` (max_count, slices the type can serve, and the greedy's cost).

The solver computes in floating point with tolerances; its answer is re-checked in exact
arithmetic, and repaired if a tolerance let an instance be overloaded (then not claimed optimal).
Optimality is claimed from the dual bound: costs are multiples of 1/C (C = their common
denominator), so a solution whose cost is the smallest multiple of 1/C at or above the MIP's
proven dual bound is optimal. The gap tolerances are set to prove exactly that.
"""

from __future__ import annotations

import math
from fractions import Fraction

from optkit.problems.gpu_selection import Bucket, GpuSelection
from optkit.registry import register
from optkit.result import Termination
from optkit.solve import Outcome, SolveOptions


def build(
    problem: GpuSelection,
    ub_cost: Fraction | None = None,
    lb_cost: float | None = None,
    opts: SolveOptions | None = None,
):
    """The PuLP model and its variables: (prob, {"n", "count"} or {"x", "y"}). With `opts`, the
    clock is checked per instance while the per-instance model is built (`TimeUp`)."""
    import pulp

    T = range(len(problem.gpu_types))
    sf = problem.slice_factor
    upper = problem.count_upper_bounds(ub_cost)
    loads = problem.loads
    prob = pulp.LpProblem("gpu_selection", pulp.LpMinimize)
    if problem.packing == "pooled":
        n = {
            (t, b): prob.add_variable(f"n_{t}_{b[0]}_{b[1]}", 0, sf, cat=pulp.LpInteger)
            for t in T
            for b in problem.buckets
            if problem.can_serve(t, b) and upper[t] > 0
        }
        count = [prob.add_variable(f"count_{t}", 0, upper[t], cat=pulp.LpInteger) for t in T]
        prob += pulp.lpSum(float(problem.costs[t]) * count[t] for t in T)
        for b in problem.buckets:
            prob += pulp.lpSum(n[(t, b)] for t in T if (t, b) in n) == sf, f"slices_{b[0]}_{b[1]}"
        for t in T:
            terms = [float(loads[t][b]) * v for (tt, b), v in n.items() if tt == t]
            if terms:
                prob += pulp.lpSum(terms) <= count[t], f"capacity_{t}"
        return prob, {"n": n, "count": count}
    y = {
        (t, k): prob.add_variable(f"y_{t}_{k}", cat=pulp.LpBinary)
        for t in T
        for k in range(upper[t])
    }
    x = {}
    for t in T:
        for k in range(upper[t]):
            if opts is not None:
                opts.check_clock()
            for b in problem.buckets:
                if problem.can_serve(t, b):
                    most = min(sf, math.floor(1 / loads[t][b]))
                    x[(t, k, b)] = prob.add_variable(
                        f"x_{t}_{k}_{b[0]}_{b[1]}", 0, most, cat=pulp.LpInteger
                    )
    objective = pulp.lpSum(float(problem.costs[t]) * v for (t, _), v in y.items())
    prob += objective
    if (
        lb_cost is not None
    ):  # the pooled optimum, a proven lower bound (minus a margin for tolerances)
        prob += objective >= lb_cost - 1e-6 * max(1.0, lb_cost), "pooled_bound"
    for b in problem.buckets:
        prob += (
            pulp.lpSum(v for (t, k, bb), v in x.items() if bb == b) == sf,
            f"slices_{b[0]}_{b[1]}",
        )
    for t in T:
        previous = None
        for k in range(upper[t]):
            if opts is not None:
                opts.check_clock()
            load = pulp.lpSum(
                float(loads[t][b]) * x[(t, k, b)] for b in problem.buckets if (t, k, b) in x
            )
            prob += load <= y[(t, k)], f"capacity_{t}_{k}"
            if k > 0:
                prob += y[(t, k)] <= y[(t, k - 1)], f"open_first_{t}_{k}"
                prob += load <= previous, f"fuller_first_{t}_{k}"
            previous = load
    return prob, {"x": x, "y": y}


def _extract(problem: GpuSelection, variables: dict) -> dict:
    from optkit.backends.pulp_model import value

    T = range(len(problem.gpu_types))
    if problem.packing == "pooled":
        n = {key: round(value(v)) for key, v in variables["n"].items() if round(value(v)) > 0}
        counts = {t: round(value(variables["count"][t])) for t in T}
        need = {
            t: sum((problem.loads[t][b] * k for (tt, b), k in n.items() if tt == t), Fraction(0))
            for t in T
        }
        counts = {t: max(counts[t], math.ceil(need[t])) for t in T}  # repair a tolerance overload
        return problem.solution_from_counts(n, counts=counts)
    counts = {t: 0 for t in T}
    content: dict[tuple[int, int], list[Bucket]] = {}
    for (t, k, b), v in variables["x"].items():
        c = round(value(v))
        if c:
            content.setdefault((t, k), []).extend([b] * c)
    # relabel each type's non-empty instances 0, 1, ...; split any instance overloaded in exact terms
    instances: dict[tuple[int, Bucket], list[int]] = {}
    n: dict[tuple[int, Bucket], int] = {}
    for t, k in sorted(content):
        room, inst = Fraction(1), counts[t]
        counts[t] += 1
        for b in sorted(content[(t, k)], key=lambda b: -problem.loads[t][b]):
            if problem.loads[t][b] > room:
                room, inst = Fraction(1), counts[t]
                counts[t] += 1
            room -= problem.loads[t][b]
            instances.setdefault((t, b), []).append(inst)
            n[(t, b)] = n.get((t, b), 0) + 1
    for members in instances.values():
        members.sort()
    return problem.solution_from_counts(n, instances=instances, counts=counts)


@register(
    "mip",
    "gpu-selection",
    exact=True,
    bounds=True,
    warm_start=True,
    deterministic=True,
    default=True,
    requires=("pulp",),
    versions=("pulp", "highspy"),
    params={"backend": "highs", "log": False},
)
def mip(problem: GpuSelection, opts: SolveOptions) -> Outcome:
    """Mélange's ILP on slice counts (pooled) or the per-instance packing model, with PuLP."""
    import time

    from optkit.backends.gpu_selection_exact import prepare
    from optkit.backends.pulp_model import MipAnswer, backend_solver, ensure_time_to_hand_over

    settled, start, ub, lb = prepare(problem, opts, mip)
    if settled is not None:
        return settled
    built = time.monotonic()
    prob, variables = build(problem, ub, opts=opts)  # lb as a constraint slowed HiGHS down
    ensure_time_to_hand_over(opts, time.monotonic() - built)
    scale, _, cost_exact = problem.scaled_costs()
    # stop only when the gap is below one cost step: then the bound proves optimality on the grid
    solver = backend_solver(opts, gap_abs=0.5 / scale if cost_exact else 1e-9)
    code = prob.solve(solver)
    ans = MipAnswer(prob, solver, code)
    stats = {
        "mip_status": ans.detail,
        "variables": len(prob.variables()),
        "constraints": prob.numConstraints(),
    }
    if ans.termination == Termination.ERROR:
        return Outcome(
            termination=Termination.ERROR, message=f"MIP solver failed: {ans.detail}", stats=stats
        )
    if ans.proven_infeasible:
        return Outcome(
            proven_infeasible=True,
            stats=stats,
            message="infeasible: max_count leaves too few GPUs for the workload",
        )
    bound = None
    if ans.bound is not None and math.isfinite(ans.bound):
        if cost_exact:  # round the float bound to the cost grid, after a margin for its tolerance
            bound = float(Fraction(math.ceil(ans.bound * scale - 1e-6), scale))
        else:
            bound = ans.bound - 1e-9 * max(1.0, abs(ans.bound))
    if lb is not None:
        bound = lb if bound is None else max(bound, lb)
    solution = _extract(problem, variables) if ans.has_solution else None
    if solution is not None and not problem.check(solution).feasible:
        solution = None
    if solution is None or (
        start is not None
        and problem.exact_cost(start["counts"]) < problem.exact_cost(solution["counts"])
    ):
        solution = start
    if solution is None:
        return Outcome(termination=ans.termination, bound=bound, stats=stats)
    cost = problem.cost_of(solution["counts"])
    optimal = bound is not None and cost_exact and cost <= bound
    return Outcome(
        solution=solution,
        termination=ans.termination,
        proven_optimal=optimal,
        bound=cost if optimal else bound,
        stats=stats,
    )

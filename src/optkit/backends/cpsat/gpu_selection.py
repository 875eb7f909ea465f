"""CP-SAT models of GPU selection, on integer-scaled loads that keep the answer exact.

Slices of one bucket are interchangeable, so both models count slices instead of assigning each
one: `n[t, b]` = slices of bucket b on type t (pooled), `x[t, k, b]` = slices of bucket b on
instance k of type t (per_instance). That is Mélange's ILP with its symmetric binaries merged.

Exactness: CP-SAT needs integers. Per type, loads are multiplied by their common denominator S
when it is at most 1e6 (then the model is exact). Otherwise S = 1e6 and every load is rounded
*down*, which makes the model a relaxation: its optimum is a proven lower bound, and its solution,
re-checked in exact arithmetic, is optimal whenever it is feasible. When it is not (a type loaded
to within slices x 1e-6 of its capacity), the relaxation is solved again at S = 1e9, then 1e12;
if even that overloads a GPU, a model with loads rounded *up* (a restriction: every solution is
feasible) supplies the solution, and the best relaxation bound is reported without an optimality
claim. Costs are scaled by their common denominator (exact for prices with up to 9 decimals;
otherwise no optimality or bound is claimed). Why 1e6 first: with one worker, CP-SAT closed the
gap on the 6x6 instances much faster with the smaller coefficients.
"""

from __future__ import annotations

import math
from fractions import Fraction
from typing import Any

from optkit.problems.gpu_selection import Bucket, GpuSelection
from optkit.registry import register
from optkit.solve import Outcome, SolveOptions

#: load scales tried in turn while the relaxed model's answer overloads a GPU in exact arithmetic
SCALES = (10**6, 10**9, 10**12)


def slice_counts(problem: GpuSelection, solution: dict) -> tuple[dict, dict]:
    """(n[(t, b)], per-instance counts x[(t, k, b)]) of a solution dict."""
    index = {name: t for t, name in enumerate(problem.names)}
    n: dict[tuple[int, Bucket], int] = {}
    x: dict[tuple[int, int, Bucket], int] = {}
    for a in solution["assignment"]:
        t, b = index[a["gpu_type"]], (a["bucket"][0], a["bucket"][1])
        n[(t, b)] = n.get((t, b), 0) + 1
        if a.get("instance") is not None:
            key = (t, a["instance"], b)
            x[key] = x.get(key, 0) + 1
    return n, x


def build(
    problem: GpuSelection,
    mode: str = "floor",
    ub_cost: Fraction | None = None,
    max_scale: int = 10**6,
    lb_cost: float | None = None,
    opts: SolveOptions | None = None,
):
    """The CP-SAT model and its variables; `mode` rounds inexact loads down (relaxation) or up.
    With `opts`, the clock is checked per instance while the per-instance model is built.

    Returns (model, variables, info) where variables is {"n"/"x": ..., "count"/"y": ...} and
    info = {"exact": loads and costs scaled without rounding, "cost_scale": C}.
    """
    # kept whole (90 lines): one model, read top to bottom against the formulation in
    # docs/gpu_selection.md
    from ortools.sat.python import cp_model

    model = cp_model.CpModel()
    T = range(len(problem.gpu_types))
    sf = problem.slice_factor
    upper = problem.count_upper_bounds(ub_cost)
    cscale, cint, cost_exact = problem.scaled_costs()
    scaled = [problem.scaled_loads(t, mode, max_scale) for t in T]
    exact = cost_exact and all(s[2] for s in scaled)
    info = {"exact": exact, "cost_scale": cscale, "cost_exact": cost_exact, "upper": upper}
    if problem.packing == "pooled":
        n = {
            (t, b): model.new_int_var(0, sf, f"n_{t}_{b[0]}_{b[1]}")
            for t in T
            for b in problem.buckets
            if problem.can_serve(t, b) and upper[t] > 0
        }
        count = [model.new_int_var(0, upper[t], f"count_{t}") for t in T]
        for b in problem.buckets:
            terms = [n[(t, b)] for t in T if (t, b) in n]
            if not terms:  # no type may take this bucket within the cost cap
                model.add_bool_or([])
            else:
                model.add(sum(terms) == sf)
        for t in T:
            scale, load, _ = scaled[t]
            terms = [load[b] * v for (tt, b), v in n.items() if tt == t]
            if terms:
                model.add(sum(terms) <= scale * count[t])
        model.minimize(sum(cint[t] * count[t] for t in T))
        return model, {"n": n, "count": count}, info
    # per_instance: instance k of type t is open (y) and holds x[t, k, b] slices of bucket b
    y = {(t, k): model.new_bool_var(f"y_{t}_{k}") for t in T for k in range(upper[t])}
    x = {}
    for t in T:
        scale, load, _ = scaled[t]
        for k in range(upper[t]):
            if opts is not None:
                opts.check_clock()
            for b in problem.buckets:
                if problem.can_serve(t, b) and load[b] <= scale:
                    most = min(sf, scale // load[b]) if load[b] > 0 else sf
                    x[(t, k, b)] = model.new_int_var(0, most, f"x_{t}_{k}_{b[0]}_{b[1]}")
    for b in problem.buckets:
        terms = [v for (t, k, bb), v in x.items() if bb == b]
        if not terms:
            model.add_bool_or([])
        else:
            model.add(sum(terms) == sf)
    for t in T:
        scale, load, _ = scaled[t]
        inst_load = []
        for k in range(upper[t]):
            if opts is not None:
                opts.check_clock()
            terms = [load[b] * x[(t, k, b)] for b in problem.buckets if (t, k, b) in x]
            expr = sum(terms) if terms else 0
            model.add(expr <= scale * y[(t, k)])
            inst_load.append(expr)
            if k > 0:  # instances of a type are interchangeable: open ones first, fuller ones first
                model.add_implication(y[(t, k)], y[(t, k - 1)])
                if terms:
                    model.add(inst_load[k - 1] >= inst_load[k])
        total = [
            load[b] * x[(t, k, b)]
            for k in range(upper[t])
            for b in problem.buckets
            if (t, k, b) in x
        ]
        if total:  # the pooled capacity, implied but a useful cut
            model.add(sum(total) <= scale * sum(y[(t, k)] for k in range(upper[t])))
    objective = sum(cint[t] * y[(t, k)] for (t, k) in y)
    if lb_cost is not None and cost_exact:  # the pooled optimum: a proven lower bound
        model.add(objective >= math.ceil(Fraction(repr(lb_cost)) * cscale - Fraction(1, 10**6)))
    model.minimize(objective)
    return model, {"x": x, "y": y}, info


def _extract(problem: GpuSelection, variables: dict):
    T = range(len(problem.gpu_types))
    if problem.packing == "pooled":

        def extract(value: Any) -> dict:
            n = {key: int(value(v)) for key, v in variables["n"].items() if value(v) > 0}
            return problem.solution_from_counts(
                n, counts={t: int(value(variables["count"][t])) for t in T}
            )

        return extract

    def extract(value: Any) -> dict:
        n: dict[tuple[int, Bucket], int] = {}
        instances: dict[tuple[int, Bucket], list[int]] = {}
        counts = {t: 0 for t in T}
        for (t, k), v in variables["y"].items():
            if value(v):
                counts[t] = max(counts[t], k + 1)
        for (t, k, b), v in sorted(
            variables["x"].items(), key=lambda kv: (kv[0][0], kv[0][2], kv[0][1])
        ):
            c = int(value(v))
            if c:
                n[(t, b)] = n.get((t, b), 0) + c
                instances.setdefault((t, b), []).extend([k] * c)
        return problem.solution_from_counts(n, instances=instances, counts=counts)

    return extract


def _hint(
    problem: GpuSelection, model: Any, variables: dict, solution: dict, upper: list[int]
) -> None:
    from optkit.backends.cpsat._common import add_hints

    n, x = slice_counts(problem, solution)
    index = {name: t for t, name in enumerate(problem.names)}
    hints = {}
    if problem.packing == "pooled":
        for key, v in variables["n"].items():
            hints[v] = n.get(key, 0)
        for name, c in solution["counts"].items():
            v = variables["count"][index[name]]
            hints[v] = min(c, upper[index[name]])
    else:  # renumber each type's instances by decreasing load, as the model orders them
        order: dict[int, list[int]] = {}
        for t in range(len(problem.gpu_types)):
            ks = sorted(
                {k for (tt, k, _) in x if tt == t},
                key=lambda k: (
                    -sum(
                        problem.loads[t][b] * c
                        for (tt, kk, b), c in x.items()
                        if (tt, kk) == (t, k)
                    )
                ),
            )
            order[t] = ks
        for (t, k), v in variables["y"].items():
            hints[v] = int(k < len(order[t]))
        for (t, k, b), v in variables["x"].items():
            hints[v] = x.get((t, order[t][k], b), 0) if k < len(order[t]) else 0
    add_hints(model, hints)


def _run(
    problem: GpuSelection,
    opts: SolveOptions,
    mode: str,
    start: dict | None,
    ub: Fraction | None,
    max_scale: int = 10**6,
    lb: float | None = None,
) -> tuple[Outcome, dict]:
    model, variables, info = build(problem, mode, ub, max_scale, lb, opts)
    if start is not None and opts.params.get("hint", False):
        _hint(problem, model, variables, start, info["upper"])
    scale = info["cost_scale"]

    def bound_of(raw: float) -> float | None:
        import math

        if not info["cost_exact"]:
            return None
        return float(Fraction(math.ceil(raw - 1e-6), scale))

    from optkit.backends.cpsat._common import solve_model

    # linearization level 2 (the full LP relaxation): these knapsack-like capacity rows need it, at
    # the default level one worker often cannot close the gap
    outcome = solve_model(
        model,
        opts,
        _extract(problem, variables),
        objective_of=lambda s: problem.cost_of(s["counts"]),
        bound_of=bound_of,
        linearization_level=int(opts.params["linearization_level"]),
    )
    return outcome, info


@register(
    "cpsat",
    "gpu-selection",
    exact=True,
    bounds=True,
    warm_start=True,
    deterministic=True,
    requires=("ortools",),
    versions=("ortools",),
    params={"log": False, "linearization_level": 2, "hint": False},
)
def cpsat(problem: GpuSelection, opts: SolveOptions) -> Outcome:
    """CP-SAT on slice counts per (type, bucket) or (instance, bucket); exact; greedy caps the counts.

    The greedy/single-type/initial solution bounds every type's count (floor(cost / price)) and is
    returned if the search finds nothing cheaper. `hint=true` also hints it to CP-SAT; with one
    worker that slowed the proofs down in our runs (see docs/gpu_selection.md), so it is off.
    """
    from optkit.backends.gpu_selection_exact import prepare

    settled, start, ub, lb = prepare(problem, opts, cpsat)
    if settled is not None:
        return settled
    bounds = [lb] if lb is not None else []
    for max_scale in SCALES:
        outcome, info = _run(problem, opts, "floor", start, ub, max_scale, lb)
        if outcome.solution is None:
            if outcome.proven_infeasible:  # the relaxation (or exact model) has no solution
                outcome.message = "infeasible: max_count leaves too few GPUs for the workload"
            elif start is not None:  # nothing better than the start within the time limit
                outcome.solution, outcome.proven_optimal = start, False
            if bounds and outcome.bound is not None:
                outcome.bound = max(bounds + [outcome.bound])
            return outcome
        if problem.check(outcome.solution).feasible:
            if not info["cost_exact"]:
                outcome.proven_optimal, outcome.bound = False, None
            if start is not None and problem.exact_cost(start["counts"]) < problem.exact_cost(
                outcome.solution["counts"]
            ):
                outcome.solution, outcome.proven_optimal = start, False
            if bounds and outcome.bound is not None:
                outcome.bound = max(bounds + [outcome.bound])
            outcome.stats.update(exact_model=info["exact"], load_scale=max_scale)
            return outcome
        # rounding the loads down let a type be overloaded in exact terms: refine the scale
        if outcome.bound is not None:
            bounds.append(outcome.bound)
        if info["exact"] or opts.expired():
            break
    # still overloaded at the finest scale: restrict (loads rounded up) and resolve
    bound = max(bounds) if bounds else None
    second, _ = _run(problem, opts, "ceil", start, ub, SCALES[0], lb)
    best = (
        second.solution
        if second.solution is not None and problem.check(second.solution).feasible
        else start
    )
    if best is None:
        return Outcome(
            termination=second.termination,
            bound=bound,
            stats=outcome.stats,
            message="the relaxed model's solution is infeasible in exact arithmetic and the "
            "restricted model found none within the time limit",
        )
    cost = problem.cost_of(best["counts"])
    return Outcome(
        solution=best,
        termination=second.termination,
        bound=bound,
        proven_optimal=bound is not None and cost <= bound,
        stats={**outcome.stats, "exact_model": False, "restricted_resolve": True},
    )

"""What the two exact solvers of gpu selection (cpsat, mip) share: the warm start, from the
`greedy` solver through the facade, and for per_instance packing the pooled optimum as a bound.
"""

from __future__ import annotations

from fractions import Fraction
from typing import Any

from optkit.backends.starts import start_from
from optkit.problems.gpu_selection import GpuSelection
from optkit.solve import Outcome, SolveOptions


def warm_start(problem: GpuSelection, opts: SolveOptions) -> dict | None:
    """The cheaper of the user's initial solution and the `greedy` solver's packing, or None (both
    were checked by the facade). Pooled: greedy's first fit on all types only (the search over
    subsets costs more time than it saves there); per instance, where the search is hard, the whole
    `greedy`. Either on at most a third of the time left."""
    params = {"subsets": 1} if problem.packing == "pooled" else {}
    found = start_from(problem, "greedy", opts, 1 / 3, **params)
    candidates = [
        s for s in (opts.initial_solution, found.solution if found else None) if s is not None
    ]
    return min(candidates, key=lambda s: problem.exact_cost(s["counts"]), default=None)


def prepare(
    problem: GpuSelection, opts: SolveOptions, exact: Any
) -> tuple[Outcome | None, dict | None, Fraction | None, float | None]:
    """What both exact solvers do first: (an outcome if that already settles it, the warm start,
    its exact cost as an upper bound, and for per_instance packing the pooled optimum as a lower bound)."""
    reason = problem.infeasibility_reason()
    if reason:
        return Outcome(proven_infeasible=True, message=f"infeasible: {reason}"), None, None, None
    start = warm_start(problem, opts)
    ub = problem.exact_cost(start["counts"]) if start is not None else None
    if start is not None:
        opts.report(start, float(ub))  # the answer if the model takes the rest of the time
    lb = None
    if problem.packing == "per_instance" and problem.buckets:
        lb = pooled_bound(problem, opts, exact)
        if start is not None and lb is not None and problem.cost_of(start["counts"]) <= lb:
            return (
                Outcome(
                    solution=start,
                    proven_optimal=True,
                    bound=lb,
                    message="the greedy packing costs the pooled optimum, a lower bound",
                ),
                start,
                ub,
                lb,
            )
    return None, start, ub, lb


def pooled_bound(problem: GpuSelection, opts: SolveOptions, solver: Any) -> float | None:
    """A proven lower bound on a per_instance instance: the pooled optimum (or bound) of the same
    workload, found by `solver` within a quarter of the remaining time. Any per-instance packing is a
    pooled one, so the pooled optimum never exceeds the per-instance optimum."""
    from optkit.solve import SolveOptions as Options
    from optkit.solve import TimeUp

    if opts.expired():
        return None
    limit = None if opts.time_limit is None else opts.remaining() / 4
    sub = Options(time_limit=limit, threads=opts.threads, seed=opts.seed, params=dict(opts.params))
    try:
        out = solver(problem.model_copy(update={"packing": "pooled"}), sub)
    except TimeUp:
        return None
    return out.bound

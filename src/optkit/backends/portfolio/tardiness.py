"""The default tardiness solver: a heuristic for the answer, an exact solver for the proof.

Dynasearch finds the best schedules fast (every optimum of OR-Library wt40-wt100 within 1 s) but
proves nothing; the exact solvers prove optima of small instances and bound the others. `auto`
runs them in turn, each through the `optkit.solve` facade (so every answer it combines was
checked), and returns the best solution with the best proven bound:

1. when n <= `exact_max_n` and there are no release dates: the `dp` solver with the whole limit.
   Its proof ends the run;
2. `dynasearch` with the time left (`heuristic_share` of it when a bound phase follows);
3. when time is left and n <= `bound_max_n`: `cpsat` warm-started with dynasearch's sequence, for
   a proven bound (and sometimes a proof or a better schedule).
"""

from __future__ import annotations

from typing import Any

from optkit.backends.heuristics.dynasearch import KERNELS
from optkit.problems.tardiness import Tardiness
from optkit.registry import register
from optkit.result import Result, Status, Termination
from optkit.solve import Outcome, SolveOptions


def _call(problem: Tardiness, solver: str, opts: SolveOptions, share: float, **kw: Any) -> Result:
    """`optkit.solve` with `share` of the time left, reporting its solutions to `opts`."""
    from optkit.solve import solve

    limit = None if opts.time_limit is None else max(1e-3, share * opts.remaining())
    return solve(
        problem,
        solver,
        time_limit=limit,
        threads=opts.threads,
        seed=opts.seed,
        callback=opts.report,
        **kw,
    )


@register(
    "auto",
    "tardiness",
    exact=True,
    bounds=True,
    warm_start=True,
    deterministic=False,
    default=True,
    requires=("numba", KERNELS),  # imported before the clock, as for dynasearch itself
    why_default="dynasearch's schedules (every wt40-wt100 optimum within 1 s) with the proof of "
    "dp on small instances and a CP-SAT bound on the rest",
    params={"exact_max_n": 20, "bound_max_n": 30, "heuristic_share": 0.8},
)
def auto(problem: Tardiness, opts: SolveOptions) -> Outcome:
    """Dynasearch for the schedule, dp (small n) or CP-SAT for the proof and the bound."""
    p = opts.params
    results: list[Result] = []
    if problem.n <= p["exact_max_n"] and problem.release_dates is None:
        exact = _call(problem, "dp", opts, 1.0)
        results.append(exact)
        if exact.status == Status.OPTIMAL:
            return _best(problem, results, opts)
    if opts.expired():
        return _best(problem, results, opts)
    bound_phase = problem.n <= p["bound_max_n"] and opts.time_limit is not None
    share = p["heuristic_share"] if bound_phase else 1.0
    start = opts.initial_solution
    heuristic = _call(problem, "dynasearch", opts, share, initial_solution=start)
    results.append(heuristic)
    if bound_phase and not opts.expired():
        best = heuristic.solution if heuristic.status.has_solution else start
        results.append(_call(problem, "cpsat", opts, 1.0, initial_solution=best))
    return _best(problem, results, opts)


def _best(problem: Tardiness, results: list[Result], opts: SolveOptions) -> Outcome:
    """The best solution and the best proven bound of the results, and what each solver did."""
    with_solution = [r for r in results if r.status.has_solution]
    bounds = [r.bound for r in results if r.bound is not None]
    stats = {r.solver: {"status": r.status.value, "objective": r.objective} for r in results}
    if not with_solution:
        errors = "; ".join(f"{r.solver}: {r.message}" for r in results if r.message)
        return Outcome(termination=Termination.TIME_LIMIT, message=errors or None, stats=stats)
    best = min(with_solution, key=lambda r: r.objective)
    bound = max(bounds) if bounds else None
    optimal = any(r.status == Status.OPTIMAL for r in results) or (
        bound is not None and bound >= best.objective
    )
    stopped = opts.expired() or any(r.termination == Termination.TIME_LIMIT for r in results)
    return Outcome(
        solution=best.solution,
        objective=best.objective,
        termination=Termination.TIME_LIMIT if stopped and not optimal else Termination.COMPLETED,
        proven_optimal=optimal,
        bound=None if optimal else bound,
        stats={"by_solver": stats, "answer_from": best.solver},
    )

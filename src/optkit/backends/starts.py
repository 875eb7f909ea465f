"""Warm starts for the exact solvers: another registered solver's answer, run through the facade.

An exact model starts from a heuristic's solution (dispatch rules, IMS, greedy packings). Going
through `optkit.solve` keeps every backend apart from the others (none imports another), and the
start is checked by the problem's checker like any answer.
"""

from __future__ import annotations

from typing import Any

from optkit.problem import Problem
from optkit.result import Result, Status
from optkit.solve import SolveOptions


def start_from(
    problem: Problem,
    solver: str,
    opts: SolveOptions,
    share: float = 1.0,
    report: bool = False,
    default: float | None = None,
    **params: Any,
) -> Result | None:
    """The answer of `solver` on at most `share` of the time left of `opts` (with its threads and
    seed), or None if it found no solution. Without a time limit in `opts`, `default` seconds are
    taken as the time left (None: no limit). With `report`, each improving solution it finds is
    reported to `opts` at once, so that a solve cut short still returns it."""
    from optkit.solve import solve

    left = opts.remaining(default) if default is not None else opts.remaining()
    limit = None if left == float("inf") else max(share * left, 0.01)
    result = solve(
        problem,
        solver,
        time_limit=limit,
        threads=opts.threads,
        seed=opts.seed,
        callback=opts.report if report else None,
        **params,
    )
    return result if result.status in (Status.FEASIBLE, Status.OPTIMAL) else None


def best_start(
    problem: Problem, solvers: tuple[str, ...], opts: SolveOptions, share: float = 1.0
) -> Result | None:
    """The best answer among `solvers` (ties go to the first listed), each run by `start_from`;
    None if none found a solution."""
    best = None
    for name in solvers:
        result = start_from(problem, name, opts, share)
        if result is not None and (
            best is None or problem.better(result.objective, best.objective)
        ):
            best = result
    return best

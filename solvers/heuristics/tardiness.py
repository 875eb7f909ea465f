"""Dispatch rules for single-machine tardiness: build a sequence by a priority rule, in one pass."""

from __future__ import annotations

from optkit.problems.tardiness import Tardiness
from optkit.registry import register
from optkit.solve import Outcome, SolveOptions


@register("edd", "tardiness")
def edd(problem: Tardiness, opts: SolveOptions) -> Outcome:
    """Earliest due date first (ties by processing time, then index)."""
    p, d = problem.processing_times, problem.due_dates
    order = sorted(range(problem.n), key=lambda j: (d[j], p[j], j))
    return Outcome(solution={"sequence": order})

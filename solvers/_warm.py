"""Warm starts shared by the exact solvers: the best of a problem's cheap rules (and the user's start)."""

from __future__ import annotations

from typing import Any

from optkit.problem import Problem
from optkit.solve import SolveOptions


def best_start(problem: Problem, opts: SolveOptions, rules: tuple[str, ...]) -> tuple[dict, Any] | None:
    """The best feasible solution among `opts.initial_solution` and the named registered rules."""
    from optkit.registry import solver_specs

    candidates = [opts.initial_solution] if opts.initial_solution is not None else []
    rule_opts = SolveOptions(seed=opts.seed)
    for spec in solver_specs(problem.kind):
        if spec.name in rules:
            rule_opts.params = spec.resolve_params({})
            candidates.append(spec.fn(problem, rule_opts).solution)
    best: tuple[dict, Any] | None = None
    for solution in candidates:
        if solution is None:
            continue
        report = problem.check(solution)
        if report.feasible and (best is None or problem.better(report.objective, best[1])):
            best = (solution, report.objective)
    return best

"""optkit: placement and scheduling problems of GPU and Kubernetes infrastructure.

Each problem is encoded once (validated data and an independent checker) and solved by several
solver families behind one interface:

    import optkit
    problem = optkit.load("instances/tardiness/wt40_001.json")
    result = optkit.solve(problem, solver="cpsat", time_limit=1.0, threads=2, seed=0)
    report = optkit.check(problem, result.solution)
"""

from __future__ import annotations

from typing import Any

from optkit.errors import InputError, OptkitError, SolverError, SolverUnavailable
from optkit.io import dump, load, load_result
from optkit.problem import CheckReport, Problem
from optkit.result import Result, Status, Termination
from optkit.solve import Outcome, SolveOptions, solve

__version__ = "0.1.0"


def check(problem: Problem, solution: Any) -> CheckReport:
    """Feasibility, objective and metrics of `solution`, recomputed by the problem's own checker."""
    return problem.check(solution)


def solvers(problem: str | None = None, available_only: bool = True) -> list[str]:
    """Names of the solvers of `problem` (all problems if None) that can run here.

    The solver families themselves live in `optkit.backends` (one subpackage per family).
    """
    from optkit.registry import solver_specs

    return [s.name for s in solver_specs(problem) if s.available or not available_only]


__all__ = [
    "CheckReport",
    "InputError",
    "OptkitError",
    "Outcome",
    "Problem",
    "Result",
    "SolveOptions",
    "SolverError",
    "SolverUnavailable",
    "Status",
    "Termination",
    "check",
    "dump",
    "load",
    "load_result",
    "solve",
    "solvers",
]

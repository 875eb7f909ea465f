"""What every CP-SAT model shares: parameters from `SolveOptions`, incumbent reporting, status mapping.

Problem modules build a `cp_model.CpModel` and call `solve_model` with a function that reads a
solution out of the solver's values; everything about statuses, bounds and time limits is here.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from ortools.sat.python import cp_model

from optkit.result import Termination
from optkit.solve import Outcome, SolveOptions

#: extract(value) -> solution dict, where value(var) reads a variable of the current solution
Extract = Callable[[Callable[[Any], int]], dict]


def parameters(solver: cp_model.CpSolver, opts: SolveOptions, **extra: Any) -> None:
    """Time limit, workers and seed from the common knobs (one worker is the deterministic mode),
    then any other CP-SAT parameters a model needs (e.g. `linearization_level=2`)."""
    p = solver.parameters
    if opts.time_limit is not None:
        p.max_time_in_seconds = max(1e-3, opts.remaining())
    p.num_workers = opts.threads
    p.random_seed = opts.seed
    p.log_search_progress = bool(opts.params.get("log", False))
    for key, value in extra.items():
        setattr(p, key, value)


def proven_bound(solver: cp_model.CpSolver, status: int) -> float | None:
    """CP-SAT's objective bound, or None where it proves nothing.

    Stopped before it found anything (UNKNOWN), CP-SAT reports 0.0, which is not a bound (measured
    with ortools 9.15 on a model whose optimum is 10,000): only a search that reached a solution or
    a proof has one.
    """
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return None
    raw = solver.best_objective_bound
    return raw if math.isfinite(raw) else None


class _Incumbents(cp_model.CpSolverSolutionCallback):
    def __init__(
        self, extract: Extract, opts: SolveOptions, objective: Callable[[dict], Any] | None
    ):
        super().__init__()
        self._extract, self._opts, self._objective = extract, opts, objective

    def on_solution_callback(self) -> None:
        solution = self._extract(self.Value)
        self._opts.report(solution, self._objective(solution) if self._objective else None)


def solve_model(
    model: cp_model.CpModel,
    opts: SolveOptions,
    extract: Extract,
    *,
    objective_of: Callable[[dict], Any] | None = None,
    bound_of: Callable[[float], Any] | None = None,
    **cpsat_params: Any,
) -> Outcome:
    """Solve `model` and translate CP-SAT's answer into an `Outcome`.

    `bound_of` maps CP-SAT's objective bound to the problem's objective (default: the bound
    rounded towards the feasible side for an integer minimisation). With no objective in the
    model, no bound is reported. `cpsat_params` are set on the solver's parameters.
    """
    if opts.expired():  # model building took the time: no search, the caller keeps its start
        return Outcome(termination=Termination.TIME_LIMIT, message="no time left to search")
    solver = cp_model.CpSolver()
    parameters(solver, opts, **cpsat_params)
    callback = _Incumbents(extract, opts, objective_of) if opts.callback else None
    status = solver.solve(model, callback)
    stats = {
        "cpsat_status": solver.status_name(status),
        "wall_time_s": solver.wall_time,
        "branches": solver.num_branches,
        "conflicts": solver.num_conflicts,
    }
    if status == cp_model.MODEL_INVALID:
        return Outcome(
            termination=Termination.ERROR,
            message=f"CP-SAT: invalid model: {model.validate()}",
            stats=stats,
        )
    if status == cp_model.INFEASIBLE:
        return Outcome(proven_infeasible=True, stats=stats)
    limit_hit = Termination.COMPLETED if status == cp_model.OPTIMAL else Termination.TIME_LIMIT
    raw = proven_bound(solver, status) if model.has_objective() else None
    bound = None if raw is None else bound_of(raw) if bound_of else math.ceil(raw - 1e-9)
    if status == cp_model.UNKNOWN:
        return Outcome(termination=limit_hit, stats=stats)
    solution = extract(solver.value)
    return Outcome(
        solution=solution,
        termination=limit_hit,
        proven_optimal=status == cp_model.OPTIMAL,
        bound=bound,
        stats=stats,
    )


def add_hints(model: cp_model.CpModel, hints: dict[Any, int]) -> None:
    """Warm start: hint each variable with its value in a known solution."""
    for var, value in hints.items():
        model.add_hint(var, int(value))

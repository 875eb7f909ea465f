"""CP-SAT for pod packing, term by term in the instance's order, through the shared driver
(`optkit.problems.pod_lex`), with the targeted repair as start and as the fast path.

- start: the targeted repair of the current placement (`optkit.problems.pod_repair`), and the
  current placement itself when it is feasible;
- exact: the assignment model (`PodModel`) with one linear expression per objective term (from
  `optkit.problems.pod_objective`), minimised one term at a time, each optimum fixed;
- fast path: when the model would not be built and solved within the window (its size estimated
  from the candidate pairs), the repaired placement is the answer, without a bound.
"""

from __future__ import annotations

import math
import time

from ortools.sat.python import cp_model

from optkit.backends.cpsat._common import parameters, proven_bound
from optkit.backends.cpsat.pod_packing import PodModel
from optkit.problems.pod_lex import StageAnswer, solve_lexicographic
from optkit.problems.pod_packing import PodPacking
from optkit.problems.pod_repair import Usage, repair
from optkit.result import Termination
from optkit.solve import Outcome, SolveOptions

#: candidate pairs the model builder gets through per second (measured on this machine, shared,
#: about 60-100k/s); the exact model is built only when it fits a third of the window at this rate
BUILD_PAIRS_PER_S = 50_000
#: share of the window the repair may use before the exact model
REPAIR_SHARE = 0.3


def candidate_pairs(problem: PodPacking) -> int:
    """Pod-node pairs of the assignment model, counted per pod class (cheap at any size)."""
    u = Usage(problem, [None] * problem.n_pods)
    first: dict[tuple, int] = {}
    count: dict[tuple, int] = {}
    for i in range(problem.n_pods):
        key = u.class_of(i)
        first.setdefault(key, i)
        count[key] = count.get(key, 0) + 1
    return sum(n * int(u.eligible(first[key]).sum()) for key, n in count.items())


class CpsatStages:
    """The driver's `Stages` over one assignment model."""

    def __init__(self, problem: PodPacking, opts: SolveOptions):
        self.p, self.opts = problem, opts
        self.pm = PodModel(problem)
        self.exprs = [self._expr(term) for term in problem.objective_terms]

    def _expr(self, term):
        pm = self.pm
        const, placed, stays = term.linear(self.p)
        vars_, coefs = [], []
        for i, a in placed.items():
            vars_.append(pm.placed[i])
            coefs.append(a)
        for i, b in stays.items():
            x = pm.x.get((i, self.p.current[i]))
            if x is not None:
                vars_.append(x)
                coefs.append(b)
        return cp_model.LinearExpr.weighted_sum(vars_, coefs) + const

    def minimise(self, k: int) -> StageAnswer:
        self.pm.m.minimize(self.exprs[k])
        solver = cp_model.CpSolver()
        parameters(solver, self.opts)
        left = len(self.exprs) - k
        if self.opts.time_limit is not None and left > 1:
            solver.parameters.max_time_in_seconds = max(1e-3, 0.5 * self.opts.remaining())
        status = solver.solve(self.pm.m)
        name = {
            cp_model.OPTIMAL: "optimal",
            cp_model.FEASIBLE: "feasible",
            cp_model.INFEASIBLE: "infeasible",
            cp_model.MODEL_INVALID: "error",
        }.get(status, "unknown")
        where = self.pm.read(solver.value) if name in ("optimal", "feasible") else None
        raw = proven_bound(solver, status)
        bound = None if raw is None else math.ceil(raw - 1e-6)
        return StageAnswer(name, where, bound, solver.status_name(status))

    def fix(self, k: int, value: int) -> None:
        self.pm.m.add(self.exprs[k] == value)

    def hint(self, where) -> None:
        self.pm.m.clear_hints()
        self.pm.hint(where)


def solve_by_terms(problem: PodPacking, opts: SolveOptions) -> Outcome:
    """Repair, then the exact model term by term when it fits the window."""
    window = opts.remaining(default=60.0)
    t0 = time.monotonic()
    repaired = repair(problem, deadline=t0 + REPAIR_SHARE * window)
    starts = [repaired]
    if problem.check(problem.current_solution()).feasible:
        starts.append(list(problem.current))
    pairs = candidate_pairs(problem)
    build_s = pairs / BUILD_PAIRS_PER_S
    if opts.time_limit is not None and build_s > opts.remaining() / 3:
        return _repair_only(problem, opts, starts, pairs)
    out = solve_lexicographic(problem, CpsatStages(problem, opts), opts, starts)
    out.stats.update(path="exact", pairs=pairs, repair_s=round(time.monotonic() - t0, 4))
    return out


def _repair_only(problem: PodPacking, opts: SolveOptions, starts, pairs: int) -> Outcome:
    best = min(
        (w for w in starts if problem.check(problem.to_solution(w)).feasible),
        key=problem.objective_of,
        default=None,
    )
    stats = {"path": "repair", "pairs": pairs}
    if best is None:
        return Outcome(termination=Termination.TIME_LIMIT, stats=stats)
    return Outcome(
        solution=problem.to_solution(best),
        objective=problem.objective_of(best),
        termination=Termination.TIME_LIMIT,
        stats=stats,
    )

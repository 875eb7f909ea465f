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
from optkit.backends.cpsat.pod_models import PodModel
from optkit.backends.cpsat.pod_neighbourhoods import improve
from optkit.problems.pod_lex import StageAnswer, answer_without_model, solve_lexicographic
from optkit.problems.pod_packing import PodPacking
from optkit.problems.pod_repair import candidate_pairs, collector_paused, repair_usage
from optkit.solve import Outcome, SolveOptions, TimeUp

#: candidate pairs the model builder gets through per second (measured on this machine, shared,
#: about 60-100k/s); the exact model is built only when it fits a third of the window at this rate
BUILD_PAIRS_PER_S = 50_000
#: the exact model is built only when its estimated build time is at most this share of the
#: window (a third: on the KWOK scenarios of 32 nodes x 256 pods and 64 x 256 at 1 s, the exact
#: path proved none of 21 and the repair with neighbourhoods was better on 20; a fifth keeps them
#: on the fast path)
EXACT_SHARE = 0.2
#: share of the window the repair may use before the exact model
REPAIR_SHARE = 0.3
#: share of what is left that the neighbourhoods get before the exact model (a better start)
LNS_SHARE = 0.2
#: share of what is left that the placement-first solve gets for its placement bounds (per-tier)
PLACEMENT_SHARE = 0.4


class CpsatStages:
    """The driver's `Stages` over one assignment model."""

    def __init__(self, problem: PodPacking, opts: SolveOptions, deadline: float | None = None):
        self.p, self.opts = problem, opts
        # without the redundant aggregate capacity rows: with them, CP-SAT 9.15's presolve called
        # a feasible stage infeasible (kwok_nodes8_pods32_prio2_util105_r2, per-tier, third term)
        self.pm = PodModel(problem, aggregate=False, deadline=deadline)
        self.exprs = [self._expr(term) for term in problem.objective_terms]
        self.fixed: list[tuple[int, cp_model.Constraint]] = []  # (term, its fix)

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

    def fix(self, k: int, value: int, proven: bool = True) -> None:
        ct = self.pm.m.add(self.exprs[k] == value if proven else self.exprs[k] <= value)
        self.fixed.append((k, ct))

    def release(self, k: int) -> None:
        # CP-SAT's model cannot drop a constraint; an emptied one constrains nothing
        for j, ct in self.fixed:
            if j >= k:
                ct.proto.clear_linear()
        self.fixed = [(j, ct) for j, ct in self.fixed if j < k]

    def hint(self, where) -> None:
        self.pm.m.clear_hints()
        self.pm.hint(where)


def placement_bounds(problem: PodPacking, opts: SolveOptions, seconds: float):
    """The placement-first solve (count model, pattern bounds) for `seconds`: its placement, and its
    bound of each placed_prio>=p term spread over the per-tier terms. Valid: the per-tier order
    fixes more before each placed term (the disruption of the tiers above), so its optimum of that
    term is no better than the placement-first one."""
    from optkit.backends.cpsat.pod_packing import _tiers, term_ranges

    first = problem.model_copy(update={"objective": "placement-first"})
    sub = SolveOptions(
        time_limit=max(1e-3, seconds), threads=opts.threads, seed=opts.seed, params=opts.params
    )
    out = _tiers(first, sub, term_ranges(first))
    where = first.placement_of(out.solution) if out.solution is not None else None
    bound = out.bound
    if out.proven_optimal and out.solution is not None:
        bound = first.objective_of(where)
    known: list[int | None] = []
    for k in range(len(problem.priorities)):
        known += [None if bound is None else bound[k], None]
    return where, known


def solve_by_terms(problem: PodPacking, opts: SolveOptions, fast: bool = False) -> Outcome:
    """Repair, then the exact model term by term when it fits the window (else, with `fast`, or
    when its build runs out of time, the repaired placement improved by large neighbourhoods)."""
    with collector_paused():
        return _solve_by_terms(problem, opts, fast)


def _solve_by_terms(problem: PodPacking, opts: SolveOptions, fast: bool) -> Outcome:
    t0 = time.monotonic()
    pairs = candidate_pairs(problem)
    now, window = time.monotonic(), opts.remaining(default=60.0)
    exact = not fast and (
        opts.time_limit is None or pairs / BUILD_PAIRS_PER_S <= window * EXACT_SHARE
    )
    # every phase ends by `end`, which leaves the answer's assembly (solution, bounds, checks) as
    # much time again as the facade keeps for its own check (without it, cpsat ran 1.01-1.09 s of
    # 1 s at 5,000 nodes x 40,000 pods; with it 0.70-0.95 s)
    end = now + window - problem.answer_seconds() if opts.time_limit is not None else None
    # the fast path: the repair first (it may take the whole window), the neighbourhoods after it
    u = repair_usage(problem, deadline=now + REPAIR_SHARE * window if exact else end)
    repaired = list(u.where)
    stats = {"pairs": pairs}
    if exact:
        try:
            stages = CpsatStages(problem, opts, deadline=end)
        except TimeUp:
            exact, stats["build"] = False, "out of time"
    stats["repair_s"] = round(time.monotonic() - t0, 4)
    if not exact:
        stats.update(improve(problem, opts, u, end).stats, path="repair")  # improves u in place
        return answer_without_model(problem, u, stats=stats)
    if opts.time_limit is not None:  # a short run of neighbourhoods: a better start
        improve(problem, opts, u, time.monotonic() + LNS_SHARE * opts.remaining())
    starts, known = [list(u.where), repaired], []
    if (
        problem.objective == "per-tier"
        and opts.params.get("patterns", True)
        and not _meets_trivial_bounds(problem, repaired)
        and not opts.expired()
    ):
        placed, known = placement_bounds(problem, opts, PLACEMENT_SHARE * opts.remaining(60.0))
        starts.append(placed)
    out = solve_lexicographic(problem, stages, opts, starts, known)
    out.stats.update(stats, path="exact")
    return out


def _meets_trivial_bounds(problem: PodPacking, where) -> bool:
    """Does `where` place every pod that has a node? Then no placement bound can say more."""
    from optkit.problems.pod_objective import lower_bounds

    obj, lows = problem.objective_of(where), lower_bounds(problem)
    return all(o <= lo for o, lo, t in zip(obj, lows, problem.objective_terms) if t.gain)

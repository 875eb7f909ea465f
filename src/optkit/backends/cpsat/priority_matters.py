"""`priority-matters`: the CP-SAT model and time split of the "Priority Matters" solver, as a baseline.

Written from the paper and its public solver (scripts/python_solver/main.py of
henrikdchristensen/scheduler-plugins); docs/pod_packing.md lists every difference. Model: placed_i
and assign_ij (only nodes the pod fits on when empty), sum_j assign_ij == placed_i, capacity per
node and resource, a protected (non-movable) running pod stays; in the original's background mode
at least one pending pod must be placed. Stages, for each priority p from the highest: maximise
the pods placed at priority >= p, then minimise the disruption of running pods at priority >= p
(eviction 1, move 2); a stage proven optimal is fixed with ==, a feasible one with >= (<=). Hints:
the current placement first, then every stage's solution. Time: the window less a 0.2 s pad; 60 %
of it is guaranteed to the tiers in equal shares, the other 40 % is a pool the earliest tiers may
use up; a tier gives half its share to placement, the rest to disruption.

`faithful=True` (default) keeps the original's two harmful quirks: the forced pending placement
(so an already optimal cluster gets a worse plan), and, when a stage fails, the plan read from the
solver's last answer (none when that answer has no solution). `faithful=False` drops the forced
placement, keeps the last good stage's plan, and never returns a plan worse than the current one.
With the instance's `objective` set to placement-first, the stages follow that order instead (the
evictions and moves stages share the last tier's disruption time).
"""

from __future__ import annotations

import time
from typing import TYPE_CHECKING

from optkit.problems.pod_packing import PodPacking
from optkit.registry import register
from optkit.result import Termination
from optkit.solve import Outcome, SolveOptions

if TYPE_CHECKING:  # imported in the functions: registry discovery stays cheap
    from ortools.sat.python import cp_model

PARAMS = {
    "faithful": True,
    "pad_s": 0.2,  # the original subtracts 200 ms from its timeout for the Go side
    "guaranteed_tier_fraction": 0.6,
    "move_fraction_of_tier": 0.5,
    "log": False,
}


class _Model:
    """The original's variables and constraints, with each objective term as an expression."""

    def __init__(self, problem: PodPacking, force_pending: bool, deadline: float | None = None):
        """Past `deadline` (a `time.monotonic()` value) the build stops with `TimeUp`: no stage
        has run, so there is no answer (as the original's when its window ends first)."""
        from ortools.sat.python import cp_model

        from optkit.solve import TimeUp

        P = self.p = problem
        m = self.m = cp_model.CpModel()
        self.placed = [m.new_bool_var(f"placed_{i}") for i in range(P.n_pods)]
        self.assign = {}
        for i in range(P.n_pods):
            if deadline is not None and time.monotonic() > deadline:
                raise TimeUp
            for j in P.candidates[i]:
                self.assign[i, j] = m.new_bool_var(f"a_{i}_{j}")
        by_node: dict[int, list[int]] = {}
        for i, j in self.assign:
            by_node.setdefault(j, []).append(i)
        for j, pods in by_node.items():
            if deadline is not None and time.monotonic() > deadline:
                raise TimeUp
            for r in range(len(P.resources)):
                c = P.capacity_matrix[j][r]
                if c is not None:
                    q = [P.request_matrix[i][r] for i in pods]
                    m.add(
                        cp_model.LinearExpr.weighted_sum([self.assign[i, j] for i in pods], q) <= c
                    )
        self.ok = True
        self.solves = 0
        for i in range(P.n_pods):
            lits = [self.assign[i, j] for j in P.candidates[i]]
            m.add(sum(lits) == self.placed[i]) if lits else m.add(self.placed[i] == 0)
            if not P.pods[i].movable and (i, P.current[i]) not in self.assign:
                self.ok = False  # the original answers MODEL_INVALID
            elif not P.pods[i].movable:
                m.add(self.assign[i, P.current[i]] == 1)
        pending = [i for i in range(P.n_pods) if P.current[i] is None]
        if force_pending and pending:
            m.add(sum(self.placed[i] for i in pending) >= 1)
        self.terms = [self._expr(t) for t in P.objective_terms]
        for i, j in enumerate(P.current):
            if j is not None and (i, j) in self.assign:
                m.add_hint(self.placed[i], 1)
                m.add_hint(self.assign[i, j], 1)

    def _expr(self, term):
        from ortools.sat.python import cp_model

        const, placed, stays = term.linear(self.p)
        vars_ = [self.placed[i] for i in placed]
        coefs = list(placed.values())
        for i, b in stays.items():
            if (i, self.p.current[i]) in self.assign:
                vars_.append(self.assign[i, self.p.current[i]])
                coefs.append(b)
        return cp_model.LinearExpr.weighted_sum(vars_, coefs) + const, bool(vars_)

    def read(self, solver: cp_model.CpSolver, as_is: bool = False) -> list[int | None] | None:
        """The placement in the solver's last answer; None when it holds no solution, unless
        `as_is`: then, as the original does, whatever the answer's values say (CP-SAT reads 0 for
        every variable of an answer without a solution: every pod unplaced)."""
        from ortools.sat.python import cp_model

        if self.solves == 0:
            return None  # the original's extraction fails before any solve: no answer
        if not as_is and solver.response_proto.status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            return None
        where: list[int | None] = [None] * self.p.n_pods
        for (i, j), v in self.assign.items():
            if solver.value(v):
                where[i] = j
        return where

    def hint_from(self, solver: cp_model.CpSolver) -> None:
        self.m.clear_hints()
        for v in self.assign.values():
            self.m.add_hint(v, solver.value(v))


def _tiers(problem: PodPacking) -> list[list[int]]:
    """Term indices grouped per priority tier (placement-first: evictions and moves join the last)."""
    groups: list[list[int]] = []
    for k, term in enumerate(problem.objective_terms):
        if term.kind == "placed" or not groups:
            groups.append([k])
        else:
            groups[-1].append(k)
    return groups


class _Clock:
    """The original's pools: a guaranteed share per tier and a free pool the first tiers may burn."""

    def __init__(self, opts: SolveOptions, tiers: int):
        p = opts.params
        limit = opts.time_limit if opts.time_limit is not None else 3.0  # the original's default
        usable = max(0.0, limit - p["pad_s"])
        self.deadline = opts.started + usable
        frac = max(0.0, min(1.0, p["guaranteed_tier_fraction"]))
        self.floor_left, self.pool, self.tiers_left = usable * frac, usable * (1 - frac), tiers

    def remaining(self) -> float:
        return max(0.0, self.deadline - time.monotonic())

    def tier_cap(self) -> float:
        return min(self.remaining(), self.floor_left / max(1, self.tiers_left) + self.pool)

    def spend(self, seconds: float) -> None:
        from_pool = min(self.pool, seconds)
        self.pool -= from_pool
        self.floor_left = max(0.0, self.floor_left - (seconds - from_pool))


def _stage(model: _Model, solver: cp_model.CpSolver, k: int, budget: float) -> tuple[int, float]:
    """Minimise term k within `budget`; fix it (== if optimal, <= if feasible). (status, seconds)."""
    from ortools.sat.python import cp_model

    if budget <= 1e-3:
        return cp_model.UNKNOWN, 0.0
    expr, _ = model.terms[k]
    model.m.minimize(expr)
    solver.parameters.max_time_in_seconds = budget
    t0 = time.monotonic()
    status = solver.solve(model.m)
    model.solves += 1
    spent = min(budget, time.monotonic() - t0)
    if status == cp_model.OPTIMAL:
        model.m.add(expr == round(solver.objective_value))
    elif status == cp_model.FEASIBLE:
        model.m.add(expr <= round(solver.objective_value))
    if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        model.hint_from(solver)
    return status, spent


@register(
    "priority-matters",
    "pod-packing",
    exact=True,
    requires=("ortools",),
    versions=("ortools",),
    params=PARAMS,
)
def priority_matters(problem: PodPacking, opts: SolveOptions) -> Outcome:
    """The Priority Matters solver's lexicographic CP-SAT stages and time split (a baseline)."""
    from ortools.sat.python import cp_model

    from optkit.backends.cpsat._pod_lexicographic import BUILD_PAIRS_PER_S
    from optkit.problems.pod_repair import candidate_pairs

    faithful = bool(opts.params["faithful"])
    end = None if opts.time_limit is None else opts.started + opts.time_limit
    # the model has a variable per candidate pair; the per-pod candidate lists alone take about
    # 40 s at 5,000 nodes x 40,000 pods, before the build's clock checks: a model that would not
    # be built in the window is not started (no stage runs, so no plan, as the original)
    pairs = candidate_pairs(problem)
    if opts.time_limit is not None and pairs / BUILD_PAIRS_PER_S > opts.time_limit:
        return Outcome(
            termination=Termination.TIME_LIMIT,
            message=f"the model's {pairs} candidate pairs would not be built in the window",
        )
    model = _Model(problem, force_pending=faithful, deadline=end)
    if not model.ok:
        return Outcome(message="a non-movable pod cannot stay on its node (MODEL_INVALID)")
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = opts.threads
    solver.parameters.random_seed = opts.seed
    solver.parameters.log_search_progress = bool(opts.params["log"])
    tiers = _tiers(problem)
    clock = _Clock(opts, len(tiers))
    statuses: list[str] = []
    last_good: list[int | None] | None = None
    failed = False
    for group in tiers:
        if clock.remaining() <= 0.0:
            break
        cap = clock.tier_cap()
        if cap <= 1e-3:
            clock.tiers_left -= 1
            continue
        share = cap * (1.0 - opts.params["move_fraction_of_tier"])
        for n, k in enumerate(group):
            if n and not model.terms[k][1]:
                continue  # no running pod counts in this term: the original skips the stage
            budget = share if n == 0 else (cap - share) / (len(group) - 1)
            status, spent = _stage(model, solver, k, min(budget, clock.remaining()))
            statuses.append(solver.status_name(status) if spent or status else "UNKNOWN")
            clock.spend(spent)
            if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
                failed = True
                break
            last_good = model.read(solver)
        if failed:
            break
        clock.tiers_left -= 1
    return _answer(problem, opts, model, solver, statuses, last_good, failed)


def _answer(problem, opts, model, solver, statuses, last_good, failed) -> Outcome:
    """The plan: the original reads the solver's last answer; the fixed variant the last good stage's,
    never worse than the current placement."""
    faithful = bool(opts.params["faithful"])
    where = model.read(solver, as_is=True) if faithful else last_good
    if not faithful:
        current = list(problem.current)
        if problem.check(problem.to_solution(current)).feasible and (
            where is None or problem.objective_of(current) < problem.objective_of(where)
        ):
            where = current
    done = len(statuses) == len(problem.objective_terms) - _skipped(model)
    stats = {"statuses": statuses, "faithful": faithful}
    if where is None:
        return Outcome(termination=Termination.TIME_LIMIT, stats=stats)
    # with the forced placement the stages' optimum is the problem's only when it is no worse
    # than placing no pending pod at all, whose best is the current placement
    current = problem.check(problem.current_solution())
    forced_ok = (
        not faithful
        or all(j is not None for j in problem.current)
        or (current.feasible and problem.objective_of(where) <= current.objective)
    )
    optimal = not failed and done and all(s == "OPTIMAL" for s in statuses) and forced_ok
    return Outcome(
        solution=problem.to_solution(where),
        objective=problem.objective_of(where),
        proven_optimal=optimal,
        # every stage ran to its end: completed, even when the forced placement is no optimum
        termination=Termination.COMPLETED if not failed and done else Termination.TIME_LIMIT,
        stats=stats,
    )


def _skipped(model: _Model) -> int:
    """Stages the original skips: terms other than a tier's first with no running pod in them."""
    groups = _tiers(model.p)
    return sum(1 for g in groups for n, k in enumerate(g) if n and not model.terms[k][1])

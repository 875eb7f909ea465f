"""CP-SAT for pod packing: the lexicographic assignment model, one weighted objective or tier by tier.

Model (see docs/pod_packing.md): x[i, j] = 1 if pod i runs on node j, only for the nodes pod i is
allowed on and fits on when empty; sum_j x[i, j] <= 1; per node and resource, sum_i q_ir x[i, j] <= C_jr;
non-movable pods fixed on their node. Objective terms, in lexicographic order: -c_p for each priority p
from the highest down (c_p = pods of priority p placed; lexicographic on these is the same as on the
cumulative counts of the objective), evictions, moves.

- `mode=weighted` (default): one objective sum_k W_k t_k with W_k = 1 + sum_{l>k} W_l * range(t_l), so that
  it orders solutions exactly lexicographically; falls back to tiers when the weights exceed 2^53.
  The bound CP-SAT proves on the weighted sum is mapped back to a lexicographic bound term by term
  (valid: every solution L with L_1..L_{k-1} equal to the bound's has L_k >= the k-th bound term).
- `mode=tiers`: one solve per term, fixing each proven optimum before the next; the bound is the
  proven prefix, the current term's bound, then the trivial minimum of every later term.
Redundant constraints: total requests of placed pods <= total capacity per resource. Symmetry
breaking: identical pending pods are placed in order; identical nodes with nothing running on them
are ordered by cpu (or first resource) load. Hint: `initial_solution` if given, else kube-default's
placement of the pending pods around the running ones.
`lns=auto|on|off`: on clusters above `lns_vars` candidate pairs (and with `on` always), the fast
path of `_pod_lexicographic`: the targeted repair, then large neighbourhoods re-packed by CP-SAT.
"""

from __future__ import annotations

import itertools
import math
import threading
import time
from collections import defaultdict

from optkit.backends.cpsat.pod_models import CountModel, PodModel
from optkit.backends.starts import start_from
from optkit.problems.pod_packing import PodPacking
from optkit.problems.pod_symmetry import fewer_moves
from optkit.registry import register
from optkit.result import Termination
from optkit.solve import Outcome, SolveOptions


def term_ranges(problem: PodPacking) -> list[tuple[int, int]]:
    """(min, max) of each objective term in the per-priority form: -c_p, evictions, moves."""
    count = defaultdict(int)
    for pod in problem.pods:
        count[pod.priority] += 1
    running = sum(1 for j in problem.current if j is not None)
    return [(-count[p], 0) for p in problem.priorities] + [(0, running), (0, running)]


def to_cumulative(terms: list[int]) -> list[int]:
    """Per-priority terms (-c_p ..., evictions, moves) -> the problem's objective list."""
    k = len(terms) - 2
    out, acc = [], 0
    for t in terms[:k]:
        acc += t
        out.append(acc)
    return out + list(terms[k:])


def weights_for(ranges: list[tuple[int, int]]) -> list[int]:
    w = [0] * len(ranges)
    acc = 0
    for k in range(len(ranges) - 1, -1, -1):
        w[k] = 1 + acc
        acc += w[k] * (ranges[k][1] - ranges[k][0])
    return w


def lex_bound_from_weighted(
    lb: float, weights: list[int], ranges: list[tuple[int, int]]
) -> list[int]:
    """A per-priority-term lexicographic bound implied by sum_k W_k t_k >= lb."""
    out = []
    rest = math.ceil(lb - 1e-6)
    for k, (w, (lo, _hi)) in enumerate(zip(weights, ranges)):
        tail_max = sum(weights[l] * ranges[l][1] for l in range(k + 1, len(ranges)))
        b = max(lo, math.ceil((rest - tail_max) / w))
        out.append(b)
        rest -= w * b
    return out


def _warm(problem: PodPacking, opts: SolveOptions, pool: list | None = None) -> list[int | None]:
    """The best placement of the heuristic solvers, run through the facade (or the given warm
    start); `pool` collects every feasible one."""
    from optkit.problems.pod_repair import repair

    if opts.initial_solution is not None:
        return problem.placement_of(opts.initial_solution)
    best, best_obj = list(problem.current), None
    # on big clusters the repair moves get a share of the time (highest priorities are repaired first)
    big = problem.n_pods > 2000
    if big:
        starts = [("kube-default", 1.0), ("bfd", 0.5)]
    else:
        starts = [("kube-default", 1.0), ("bfd", 1.0), ("ffd", 1.0), ("minmax", 1 / 3)]
    # the targeted repair first (milliseconds); the heuristics only while a quarter of the window
    # is not spent (a cap from when ffd and bfd took 0.25 s each on 64 nodes x 512 pods; now
    # 2-10 ms, and they stop on time)
    stop = None if opts.time_limit is None else opts.started + 0.25 * opts.time_limit

    def consider(where: list[int | None]) -> None:
        nonlocal best, best_obj
        for cand in (where, fewer_moves(problem, where)):
            report = problem.check(problem.to_solution(cand))
            if report.feasible and pool is not None:
                pool.append(cand)
            if report.feasible and (best_obj is None or report.objective < best_obj):
                best, best_obj = cand, report.objective

    consider(repair(problem, deadline=stop))
    for name, share in starts:
        if stop is not None and time.monotonic() > stop:
            break
        if name == "minmax" and not _minmax_may_help(problem, best):
            continue
        found = start_from(problem, name, opts, share, default=10.0)
        if found is not None:
            consider(problem.placement_of(found.solution))
    return best


def _minmax_may_help(problem: PodPacking, best: list[int | None]) -> bool:
    """The min-max overload search (a third of the time left) runs when the best start leaves a pod
    pending that has a node: it finds dense packings that the fit heuristics and the first CP-SAT
    tiers miss."""
    return any(j is None and problem.candidates[i] for i, j in enumerate(best))


@register(
    "cpsat",
    "pod-packing",
    exact=True,
    bounds=True,
    warm_start=True,
    deterministic=True,
    requires=("ortools",),
    versions=("ortools",),
    params={
        "mode": "tiers",
        "lns": "auto",
        "lns_vars": 400_000,
        "max_shapes": 300,
        "patterns": True,
        "log": False,
    },
    default=True,
)
def cpsat(problem: PodPacking, opts: SolveOptions) -> Outcome:
    """Lexicographic assignment model (weighted or tier by tier), hinted, with symmetry breaking."""
    from optkit.errors import InputError

    mode, lns = opts.params["mode"], opts.params["lns"]
    if mode not in ("weighted", "tiers"):
        raise InputError(f"parameter 'mode': expected weighted or tiers, got {mode!r}")
    if lns not in ("auto", "on", "off"):
        raise InputError(f"parameter 'lns': expected auto, on or off, got {lns!r}")
    from optkit.backends.cpsat._pod_lexicographic import solve_by_terms
    from optkit.problems.pod_repair import candidate_pairs

    if lns == "on":
        return solve_by_terms(problem, opts, fast=True)
    if (
        problem.objective == "per-tier"
        or candidate_pairs(problem) > opts.params["lns_vars"]
        or _shapes(problem) > opts.params["max_shapes"]
    ):
        return solve_by_terms(problem, opts)
    ranges = term_ranges(problem)
    weights = weights_for(ranges)
    if mode == "tiers" or weights[0] * max(1, -ranges[0][0]) > 2**53:
        return _tiers(problem, opts, ranges)
    return _weighted(problem, opts, ranges, weights)


def _shapes(problem: PodPacking) -> int:
    """Distinct pod shapes (requests, constraints, priority): the count model and its pattern bound
    grow with their square (100 nodes x 2,000 shapes took 18 s and 556 MB at a 1 s window)."""
    return len(
        {
            (s, tuple(q), p.priority)
            for s, q, p in zip(problem.pod_signature, problem.request_matrix, problem.pods)
        }
    )


def _weighted(problem, opts, ranges, weights) -> Outcome:
    from optkit.backends.cpsat._common import solve_model

    pm = PodModel(problem)
    pm.m.minimize(sum(w * t for w, t in zip(weights, pm.terms)))
    pm.hint(_warm(problem, opts))

    def extract(value):
        return problem.to_solution(pm.read(value))

    def objective_of(sol):
        return problem.objective_of(problem.placement_of(sol))

    out = solve_model(
        pm.m,
        opts,
        extract,
        objective_of=objective_of,
        bound_of=lambda lb: to_cumulative(lex_bound_from_weighted(lb, weights, ranges)),
    )
    if out.proven_optimal and out.solution is not None:
        out.bound = None  # the facade sets bound = objective
    out.stats["mode"] = "weighted"
    return out


def _tiers(problem: PodPacking, opts: SolveOptions, ranges) -> Outcome:
    """One term at a time, each proven optimum fixed before the next. A term the incumbent does not
    settle by counting gets the pattern bound (`CountModel.patterns`), then CP-SAT with the bound as a
    cut; with `threads` > 1 a CP-SAT run on the other cores races the pattern bound."""
    # kept whole (158 lines): one tier loop: each tier's proof, race and cut feed the next tier's
    # bounds
    from ortools.sat.python import cp_model

    from optkit.backends.cpsat._common import parameters, proven_bound

    # the starts before the count model: its build (0.2-0.3 s on 64 nodes x 512 pods) had used up
    # the starts' quarter of a 1 s window, and the first term began from the current placement
    pool: list[
        list[int | None]
    ] = []  # the heuristics' placements: their nodes start the pattern LP
    where = _warm(problem, opts, pool)
    t_build = time.monotonic()
    pm = CountModel(problem)
    t_build = time.monotonic() - t_build  # the moves term builds a model as big again
    if not pm.ok:
        return Outcome(
            proven_infeasible=True,
            message="non-movable pods do not fit where they are",
            stats={"mode": "tiers"},
        )
    pm.hint(where)
    best_where = where if problem.check(problem.to_solution(where)).feasible else None
    best_obj = problem.objective_of(best_where) if best_where is not None else None
    proven: list[int] = []
    status_names = []
    tier_times: list[float] = []
    bound_terms = None
    n_prio = len(problem.priorities)
    running_movable = sum(
        1 for i, pod in enumerate(problem.pods) if pod.movable and problem.current[i] is not None
    )

    def offer(where: list[int | None], obj: list[int] | None = None) -> None:
        """Make `where` (objective `obj`, computed if not given) the incumbent if it is at least as
        good; it hints the model's next solve."""
        nonlocal best_where, best_obj
        obj = problem.objective_of(where) if obj is None else obj
        if best_obj is None or obj <= best_obj:
            best_where, best_obj = where, obj
            opts.report(problem.to_solution(best_where), best_obj)
            pm.m.clear_hints()
            pm.hint(best_where)

    def finish(solver, status) -> None:
        tier_times[-1] += solver.wall_time
        if status in (cp_model.OPTIMAL, cp_model.FEASIBLE):
            offer(pm.read(solver.value))

    for k in range(len(ranges)):
        if k == len(ranges) - 1:
            if opts.time_limit is not None and opts.remaining() < 2 * t_build:
                # no time to build the moves model (model building counts in the window)
                bound_terms = proven + [lo for lo, _ in ranges[k:]]
                status_names.append("NO_TIME")
                break
            # moves: a model without node symmetry breaking, the proven counts and evictions fixed
            pm = CountModel(problem, node_symmetry=False)
            pm.add_moves_term()
            for t, v in zip(pm.terms, proven):
                pm.m.add(t == v)
            if best_where is not None:
                pm.hint(best_where)
                relabelled = fewer_moves(problem, best_where)
                obj = problem.objective_of(relabelled)
                if obj < best_obj:
                    offer(relabelled, obj)
        term = pm.terms[k]
        pm.m.minimize(term)
        tier_times.append(0.0)
        status = None  # of a CP-SAT run that raced the pattern bound
        # a term whose incumbent meets its bound (counting, or the pattern bound) needs no search
        known = ranges[k][0]  # the term's proven lower bound so far
        if best_where is not None:
            inc = _per_term(best_obj)[k]
            if k < n_prio:
                placed_above = -sum(proven[:k])
                lb = max(ranges[k][0], placed_above - pm.count_cap[problem.priorities[k]])
            elif k == n_prio:  # evictions: running pods placed
                placed_above, lb = running_movable, ranges[k][0]
            else:  # moves: running pods placed, less those that stay
                placed_above = running_movable - proven[n_prio]
                lb = max(ranges[k][0], int(_must_move(problem, proven)))
            if inc > lb and opts.params["patterns"]:
                race = (
                    _Race(
                        pm.m, lambda solver: parameters(solver, opts, num_workers=opts.threads - 1)
                    )
                    if opts.threads > 1
                    else None
                )
                cap, packed, cut = pm.patterns(
                    k,
                    proven,
                    [best_where] + pool,
                    time.monotonic() + 0.85 * opts.remaining(default=10.0),
                )
                if race is not None:
                    solver, status = race.stop()
                    finish(solver, status)
                    raced = proven_bound(solver, status)
                    if raced is not None:
                        lb = max(lb, math.ceil(raced - 1e-6))
                if cap is not None:
                    lb = max(lb, placed_above - cap)
                if cut is not None:
                    pm.m.add(cut)
                if packed is not None:
                    packed = fewer_moves(problem, packed)
                    report = problem.check(problem.to_solution(packed))
                    if report.feasible and report.objective < best_obj:
                        offer(packed, report.objective)
                inc = _per_term(best_obj)[k]
            known = lb
            if status != cp_model.OPTIMAL and inc == lb and _per_term(best_obj)[:k] == proven:
                proven.append(inc)
                status_names.append("BOUND")
                pm.m.add(term == inc)
                continue
        if status != cp_model.OPTIMAL:
            solver = cp_model.CpSolver()
            parameters(solver, opts)
            if opts.time_limit is not None:  # the answer's relabelling and checks come after it
                reserve = min(0.05, 0.05 * opts.time_limit)
                solver.parameters.max_time_in_seconds = max(1e-3, opts.remaining() - reserve)
            status = solver.solve(pm.m)
            finish(solver, status)
        status_names.append(solver.status_name(status))
        if status == cp_model.INFEASIBLE:
            return Outcome(
                proven_infeasible=True, stats={"mode": "tiers", "statuses": status_names}
            )
        if status != cp_model.OPTIMAL:
            lb = proven_bound(solver, status)
            if lb is not None:
                known = max(known, math.ceil(lb - 1e-6))
            bound_terms = proven + [known] + [lo for lo, _ in ranges[k + 1 :]]
            break
        value = round(solver.objective_value)
        proven.append(value)
        pm.m.add(term == value)
    stats = {
        "mode": "tiers",
        "statuses": status_names,
        "tier_wall_s": [round(t, 4) for t in tier_times],
    }
    if best_where is None:
        return Outcome(
            termination=Termination.TIME_LIMIT,
            bound=to_cumulative(bound_terms) if bound_terms else None,
            stats=stats,
        )
    sol = problem.to_solution(best_where)
    if len(proven) == len(ranges):
        return Outcome(solution=sol, proven_optimal=True, stats=stats)
    return Outcome(
        solution=sol,
        termination=Termination.TIME_LIMIT,
        bound=to_cumulative(bound_terms) if bound_terms else None,
        stats=stats,
    )


class _Race:
    """CP-SAT on a model in a thread of its own (it releases the GIL), beside the pattern bound."""

    def __init__(self, model, configure):
        from ortools.sat.python import cp_model

        self.solver = cp_model.CpSolver()
        configure(self.solver)
        self.status = None
        self._thread = threading.Thread(target=self._run, args=(model,), daemon=True)
        self._thread.start()

    def _run(self, model) -> None:
        self.status = self.solver.solve(model)

    def stop(self):
        """(solver, status) once the run has stopped; it is told to stop now."""
        self.solver.stop_search()
        self._thread.join()
        return self.solver, self.status


def _must_move(problem: PodPacking, proven: list[int]) -> bool:
    """Whether the proven counts (per priority, then evictions) need some running pod to move: with no
    running pod evicted and every one where it is now, the pending pods that fit alone in some node's
    free room are too few for a priority. A bound of one move, free where the pattern bound is slow
    (on kwok_nodes64_pods512_prio1_util090_r1 the one pending pod fits no node's free room)."""
    import numpy as np

    P = problem
    n_prio = len(P.priorities)
    if proven[n_prio] != 0 or not P.n_nodes:
        return False
    req = np.array(P.request_matrix, dtype=float).reshape(P.n_pods, len(P.resources))
    free = np.array(
        [[np.inf if c is None else c for c in row] for row in P.capacity_matrix], dtype=float
    ).reshape(P.n_nodes, len(P.resources))
    short = defaultdict(int)  # priority -> pods that must run, less those that can without a move
    for k, p in enumerate(P.priorities):
        short[p] = -proven[k]
    for i, j in enumerate(P.current):
        if j is not None:
            free[j] -= req[i]
            short[P.pods[i].priority] -= 1
    for i, j in enumerate(P.current):
        if (
            j is None
            and P.candidates[i]
            and (req[i] <= free[list(P.candidates[i])]).all(axis=1).any()
        ):
            short[P.pods[i].priority] -= 1
    return any(v > 0 for v in short.values())


def _per_term(objective: list[int]) -> list[int]:
    """The problem's cumulative objective -> per-priority terms (-c_p ..., evictions, moves)."""
    k = len(objective) - 2
    return (
        [objective[0]] + [b - a for a, b in itertools.pairwise(objective[:k])] + list(objective[k:])
    )

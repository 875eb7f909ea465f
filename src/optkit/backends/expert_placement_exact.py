"""What the two exact models of expert placement (cpsat, mip) share: the warm start, the size
guard and the layer-by-layer decomposition without a communication term.

The warm start comes from the heuristic solvers through the facade (`optkit.solve`), so that no
backend imports another.
"""

from __future__ import annotations

import math
from typing import Any

from optkit.backends.starts import start_from
from optkit.problems.expert_placement import ExpertPlacement
from optkit.result import Termination
from optkit.solve import Outcome, SolveOptions

#: models with more variables than this are not built; the warm start is returned instead
MAX_VARS = 400_000


def decimal_scale(values, max_decimals: int = 6) -> int | None:
    """Smallest 10^d (d <= max_decimals) making every value an integer, or None."""
    for d in range(max_decimals + 1):
        s = 10**d
        if all(abs(v * s - round(v * s)) <= 1e-9 * max(1.0, abs(v * s)) for v in values):
            return s
    return None


def model_size(problem: ExpertPlacement, K: int) -> int:
    L, E, G = problem.num_layers, problem.num_experts, problem.gpus
    pairs = 0
    if problem.affinity_array is not None:
        pairs = int((problem.affinity_array > 0).sum())
    return L * E * (K + G * K) + pairs * (G + (problem.num_nodes if problem.num_nodes > 1 else 0))


def prepare(
    problem: ExpertPlacement, opts: SolveOptions, exact: Any
) -> tuple[Outcome | None, list, int]:
    """What both exact models do first: report the warm start; return (an outcome if that settles it — the model is too large, or
    without communication the layers separate and `by_layer` solves them one by one — the warm start
    slots, the most replicas an expert may need)."""
    if opts.initial_solution:
        warm = [list(r) for r in opts.initial_solution["slots"]]
    else:
        warm = heuristic_start(problem, opts)
    # reported at once: what a caller's wall clock returns if the solve overruns
    opts.report({"slots": warm}, problem.objective_of(warm))
    K = problem.max_replicas
    if model_size(problem, K) > MAX_VARS:
        return (
            Outcome(
                solution={"slots": warm},
                termination=Termination.COMPLETED,
                message=f"model too large (> {MAX_VARS} variables); returned the heuristic warm start",
            ),
            warm,
            K,
        )
    if not (problem.affinity_array is not None and problem.weight > 0) and problem.num_layers > 1:
        return by_layer(problem, opts, warm, exact), warm, K
    return None, warm, K


def heuristic_start(problem: ExpertPlacement, opts: SolveOptions) -> list[list[int]]:
    """The better (by objective) of greedy-affinity and repaired EPLB, within the time left."""
    num_groups = int(opts.params["num_groups"])
    runs = [start_from(problem, "greedy-affinity", opts, num_groups=num_groups)]
    for ng in sorted({1, num_groups}):  # EPLB cannot split experts into every number of groups
        runs.append(start_from(problem, "eplb", opts, num_groups=ng, repair=True))
    best = min((r for r in runs if r is not None), key=lambda r: r.objective)
    return [list(row) for row in best.solution["slots"]]


def by_layer(problem: ExpertPlacement, opts: SolveOptions, warm, solve_one) -> Outcome:
    """Without communication the layers are independent: solve each alone and add up.

    Optimal only if every layer is; the bound is the sum of the layers' bounds (when all have one).
    """
    from optkit.solve import SolveOptions as Opts
    from optkit.solve import TimeUp

    L = problem.num_layers
    rows, bounds, optimal, term = [], [], True, Termination.COMPLETED
    stats: dict = {"layers_optimal": 0}
    for l in range(L):
        if opts.expired():  # no layer gets a slice of time that is not there: the rest keep warm
            rows.extend(list(r) for r in warm[l:])
            optimal, term = False, Termination.TIME_LIMIT
            bounds.extend([None] * (L - l))
            break
        sub = ExpertPlacement(
            gpus=problem.gpus,
            slots_per_gpu=problem.slots_per_gpu,
            load=[problem.load[l]],
            gpu_node=problem.gpu_node,
        )
        limit = None if opts.time_limit is None else opts.remaining() / (L - l)
        sub_opts = Opts(
            time_limit=limit,
            threads=opts.threads,
            seed=opts.seed,
            initial_solution={"slots": [list(warm[l])]},
            params=opts.params,
        )
        try:
            out = solve_one(sub, sub_opts)
        except TimeUp:  # its share ran out while its model was being built
            out = Outcome(termination=Termination.TIME_LIMIT)
        sol = out.solution["slots"][0] if out.solution else list(warm[l])
        if sub.objective_of([sol]) > sub.objective_of([list(warm[l])]):
            sol = list(warm[l])
        rows.append(sol)
        optimal = optimal and out.proven_optimal
        stats["layers_optimal"] += int(out.proven_optimal)
        bounds.append(sub.objective_of([sol]) if out.proven_optimal else out.bound)
        if out.termination != Termination.COMPLETED:
            term = out.termination
    bound = None
    if not optimal and all(b is not None for b in bounds):
        bound = math.floor(sum(bounds) * 1e6 - 1e-3) / 1e6
    return Outcome(
        solution={"slots": rows},
        termination=term,
        proven_optimal=optimal,
        bound=bound,
        stats=stats,
        message="layers solved one by one (no communication term)",
    )

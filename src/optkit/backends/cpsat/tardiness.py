"""CP-SAT model of 1 | r_j | sum w_j T_j: one interval per job on a no-overlap machine.

Dominance: when p_i <= p_j, w_i >= w_j and d_i <= d_j, with p_i = p_j and r_i <= r_j where release
dates differ, some optimal schedule runs i before j (an interchange argument; ties broken by index
keep the relation acyclic), so these precedences are added. Warm start: dynasearch's schedule
(or the user's start, when better), hinted and bounding the objective from above; the answer
is never worse than that start.
"""

from __future__ import annotations

from optkit.backends.heuristics.dynasearch import KERNELS
from optkit.backends.starts import best_start, start_from
from optkit.problems.tardiness import Tardiness, dominates
from optkit.registry import register
from optkit.solve import Outcome, SolveOptions

RULES = ("edd", "wspt", "mdd", "wmdd", "atc", "eddc", "mddc")


def build(problem: Tardiness, dominance: bool = True, opts: SolveOptions | None = None):
    """The model and its variables (starts, tardiness); for users who want the raw CpModel.

    With `opts`, the clock is checked while the n^2 dominance pairs are added (`TimeUp`)."""
    from ortools.sat.python import cp_model

    n, p, d, w, r = problem.n, problem.processing_times, problem.due_dates, problem.w, problem.r
    horizon = max(r) + sum(p)
    model = cp_model.CpModel()
    start = [model.new_int_var(r[j], horizon - p[j], f"s{j}") for j in range(n)]
    intervals = [model.new_fixed_size_interval_var(start[j], p[j], f"job{j}") for j in range(n)]
    model.add_no_overlap(intervals)
    tardy = [model.new_int_var(0, max(0, horizon - d[j]), f"T{j}") for j in range(n)]
    for j in range(n):
        model.add(tardy[j] >= start[j] + p[j] - d[j])
    if dominance:
        for i in range(n):
            if opts is not None:
                opts.check_clock()
            for j in range(n):
                if i != j and dominates(problem, i, j):
                    model.add(start[i] + p[i] <= start[j])
    model.minimize(sum(w[j] * tardy[j] for j in range(n)))
    return model, start, tardy


@register(
    "cpsat",
    "tardiness",
    exact=True,
    bounds=True,
    warm_start=True,
    deterministic=False,
    requires=("ortools", KERNELS),  # dynasearch's kernels, for the start: loaded off the clock
    versions=("ortools",),
    params={"dominance": True, "start_kicks": 100, "linearization_level": 2, "log": False},
)
def cpsat(problem: Tardiness, opts: SolveOptions) -> Outcome:
    """CP-SAT: intervals, no-overlap, dominance precedences, hinted with dynasearch's schedule
    (`start_kicks` kicks, at most a fifth of the time), whose objective bounds the search."""
    from optkit.backends.cpsat._common import add_hints, solve_model

    found = start_from(problem, "dynasearch", opts, 0.2, iterations=opts.params["start_kicks"])
    if found is None:
        found = best_start(problem, RULES, opts)
    sequence, objective = found.solution["sequence"], found.objective
    if opts.initial_solution is not None:
        given = list(opts.initial_solution["sequence"])
        if problem.total_weighted_tardiness(given) < objective:
            sequence, objective = given, problem.total_weighted_tardiness(given)
    warm = ({"sequence": [int(j) for j in sequence]}, objective)
    opts.report(*warm)  # the answer if the model takes the whole limit to build
    if objective == 0:  # tardiness is never negative: no model needed for the proof
        return Outcome(solution=warm[0], proven_optimal=True)
    model, start, tardy = build(problem, opts.params["dominance"], opts)
    # the start's objective bounds the search from above (the start is the answer otherwise)
    model.add(sum(w * t for w, t in zip(problem.w, tardy)) <= objective)
    completion = problem.completion_times(sequence)
    add_hints(
        model, {start[j]: completion[j] - problem.processing_times[j] for j in range(problem.n)}
    )

    def extract(value) -> dict:
        return {"sequence": sorted(range(problem.n), key=lambda j: (value(start[j]), j))}

    # linearization level 2 (CP-SAT's full LP relaxation): with one worker it proved generated
    # n = 12 instances 2-3 times faster than the default level (docs/notes/tardiness_exact_small.md)
    outcome = solve_model(
        model,
        opts,
        extract,
        objective_of=lambda s: problem.total_weighted_tardiness(s["sequence"]),
        linearization_level=int(opts.params["linearization_level"]),
    )
    found = outcome.solution and problem.total_weighted_tardiness(outcome.solution["sequence"])
    if outcome.solution is None or warm[1] < found:  # never worse than the warm start
        outcome.solution = warm[0]
        outcome.proven_optimal = outcome.bound is not None and outcome.bound >= warm[1]
    return outcome

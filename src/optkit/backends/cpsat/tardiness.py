"""CP-SAT model of 1 | r_j | sum w_j T_j: one interval per job on a no-overlap machine.

Dominance: when p_i <= p_j, w_i >= w_j and d_i <= d_j, with p_i = p_j and r_i <= r_j where release
dates differ, some optimal schedule runs i before j (an interchange argument; ties broken by index
keep the relation acyclic), so these precedences are added. Warm start: the best dispatch rule (or the user's start), and the answer is
never worse than that start.
"""

from __future__ import annotations

from optkit.backends.starts import best_start
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
    requires=("ortools",),
    versions=("ortools",),
    params={"dominance": True, "log": False},
)
def cpsat(problem: Tardiness, opts: SolveOptions) -> Outcome:
    """CP-SAT: intervals, no-overlap, dominance precedences, hinted with the best rule."""
    from optkit.backends.cpsat._common import add_hints, solve_model

    rule = best_start(problem, RULES, opts)
    sequence, objective = rule.solution["sequence"], rule.objective
    if opts.initial_solution is not None:
        given = list(opts.initial_solution["sequence"])
        if problem.total_weighted_tardiness(given) < objective:
            sequence, objective = given, problem.total_weighted_tardiness(given)
    warm = ({"sequence": [int(j) for j in sequence]}, objective)
    opts.report(*warm)  # the answer if the model takes the whole limit to build
    model, start, _ = build(problem, opts.params["dominance"], opts)
    completion = problem.completion_times(sequence)
    add_hints(
        model, {start[j]: completion[j] - problem.processing_times[j] for j in range(problem.n)}
    )

    def extract(value) -> dict:
        return {"sequence": sorted(range(problem.n), key=lambda j: (value(start[j]), j))}

    outcome = solve_model(
        model, opts, extract, objective_of=lambda s: problem.total_weighted_tardiness(s["sequence"])
    )
    found = outcome.solution and problem.total_weighted_tardiness(outcome.solution["sequence"])
    if outcome.solution is None or warm[1] < found:  # never worse than the warm start
        outcome.solution = warm[0]
        outcome.proven_optimal = outcome.bound is not None and outcome.bound >= warm[1]
    return outcome

"""MIP models of 1 | r_j | sum w_j T_j through PuLP (HiGHS or CBC).

- positional: x[j,k] = 1 if job j is k-th; C[k] completion of the k-th job; T[j] >= C[k] - d_j
  when x[j,k] = 1 (big-M tightened per position), plus the valid inequality that the k-th
  completion is at least the release-free sum of the k shortest processing times.
- time-indexed: y[j,t] = 1 if job j starts at t; machine capacity per period; exact costs
  w_j max(0, t + p_j - d_j). A much stronger LP, pseudo-polynomial in size: for short horizons.
"""

from __future__ import annotations

from optkit.backends.starts import best_start
from optkit.problems.tardiness import Tardiness, dominates
from optkit.registry import register
from optkit.solve import Outcome, SolveOptions

FORMULATIONS = ("auto", "positional", "time-indexed")
#: dispatch rules whose best sequence is the answer when the MIP finds nothing better in time
RULES = ("edd", "wspt", "mdd", "wmdd", "atc", "eddc", "mddc")


def positional(problem: Tardiness, opts: SolveOptions | None = None):
    import pulp

    n, p, d, w, r = problem.n, problem.processing_times, problem.due_dates, problem.w, problem.r
    prob = pulp.LpProblem("tardiness_positional", pulp.LpMinimize)
    x = {}
    for j in range(n):
        if opts is not None:
            opts.check_clock()  # n^2 variables: building can take the whole limit
        for k in range(n):
            x[j, k] = prob.add_variable(f"x_{j}_{k}", cat="Binary")
    completion = [prob.add_variable(f"C_{k}", lowBound=0) for k in range(n)]
    tardy = [prob.add_variable(f"T_{j}", lowBound=0) for j in range(n)]
    prob += pulp.lpSum(w[j] * tardy[j] for j in range(n))
    for j in range(n):
        prob += pulp.lpSum(x[j, k] for k in range(n)) == 1
    for k in range(n):
        if opts is not None:
            opts.check_clock()
        prob += pulp.lpSum(x[j, k] for j in range(n)) == 1
        here = pulp.lpSum((r[j] + p[j]) * x[j, k] for j in range(n))
        prob += completion[k] >= here
        if k:
            prob += completion[k] >= completion[k - 1] + pulp.lpSum(
                p[j] * x[j, k] for j in range(n)
            )
    shortest = sorted(p)
    longest = sorted(p, reverse=True)
    for k in range(n):  # valid inequality: k+1 jobs take at least the k+1 shortest processing times
        if opts is not None:
            opts.check_clock()
        prob += completion[k] >= sum(shortest[: k + 1])
        upper = max(r) + sum(longest[: k + 1])  # no k-th completion can be later
        for j in range(n):
            if upper - d[j] > 0:
                prob += tardy[j] >= completion[k] - d[j] - (upper - d[j]) * (1 - x[j, k])

    # dominance (see `dominates`): i runs before j in some optimal schedule
    position = [pulp.lpSum(k * x[j, k] for k in range(n)) for j in range(n)]
    for i in range(n):
        for j in range(n):
            if i != j and dominates(problem, i, j):
                prob += position[i] + 1 <= position[j]

    def decode():
        return sorted(range(n), key=lambda j: max(range(n), key=lambda k: x[j, k].value() or 0))

    return prob, decode


def time_indexed(problem: Tardiness, opts: SolveOptions | None = None):
    import pulp

    n, p, d, w, r = problem.n, problem.processing_times, problem.due_dates, problem.w, problem.r
    horizon = max(r) + sum(p)
    prob = pulp.LpProblem("tardiness_time_indexed", pulp.LpMinimize)
    y = {
        (j, t): prob.add_variable(f"y_{j}_{t}", cat="Binary")
        for j in range(n)
        for t in range(r[j], horizon - p[j] + 1)
    }
    prob += pulp.lpSum(w[j] * max(0, t + p[j] - d[j]) * var for (j, t), var in y.items())
    for j in range(n):
        prob += pulp.lpSum(y[j, t] for t in range(r[j], horizon - p[j] + 1)) == 1
    running: dict[int, list] = {t: [] for t in range(horizon)}
    for (j, t), var in y.items():
        for u in range(t, t + p[j]):
            running[u].append(var)
    for vars_ in running.values():
        if len(vars_) > 1:
            prob += pulp.lpSum(vars_) <= 1

    def decode():
        starts = {j: t for (j, t), var in y.items() if (var.value() or 0) > 0.5}
        return sorted(range(n), key=lambda j: (starts.get(j, 0), j))

    return prob, decode


@register(
    "mip",
    "tardiness",
    exact=True,
    bounds=True,
    deterministic=True,
    requires=("pulp",),
    versions=("pulp", "highspy"),
    params={"backend": "highs", "formulation": "auto", "max_time_indexed_vars": 1500, "log": False},
)
def mip(problem: Tardiness, opts: SolveOptions) -> Outcome:
    """Positional or time-indexed MIP (auto: time-indexed when the horizon is short)."""
    import time

    from optkit.backends.pulp_model import ensure_time_to_hand_over, solve_problem

    form = opts.params["formulation"]
    if form not in FORMULATIONS:
        from optkit.errors import InputError

        raise InputError(
            f"parameter 'formulation': expected one of {', '.join(FORMULATIONS)}, got {form!r}"
        )
    if form == "auto":
        size = problem.n * (max(problem.r) + sum(problem.processing_times))
        form = "time-indexed" if size <= opts.params["max_time_indexed_vars"] else "positional"
    rule = best_start(problem, RULES, opts)
    rule_sequence, rule_objective = rule.solution["sequence"], rule.objective
    opts.report(rule.solution, rule_objective)  # the answer if the model takes the whole limit
    built = time.monotonic()
    prob, decode = (time_indexed if form == "time-indexed" else positional)(problem, opts)
    ensure_time_to_hand_over(opts, time.monotonic() - built)
    ans = solve_problem(prob, opts)
    stats = {"formulation": form, "mip_status": ans.detail}
    bound = _ceil(ans.bound)
    if not ans.has_solution:
        if ans.proven_infeasible:
            return Outcome(termination=ans.termination, stats=stats, proven_infeasible=True)
        sequence, optimal = list(rule_sequence), bound is not None and bound >= rule_objective
    else:
        sequence, optimal = decode(), ans.proven_optimal
        if rule_objective < problem.total_weighted_tardiness(sequence):
            sequence, optimal = list(rule_sequence), bound is not None and bound >= rule_objective
    return Outcome(
        solution={"sequence": sequence},
        termination=ans.termination,
        proven_optimal=optimal,
        bound=bound,
        stats=stats,
        message=None if ans.has_solution else "no MIP solution in time: the best dispatch rule",
    )


def _ceil(bound: float | None) -> int | None:
    """Integer data: the optimum is an integer, so a lower bound may be rounded up (with tolerance)."""
    import math

    return None if bound is None else math.ceil(bound - 1e-6)

"""MIP models of 1 | r_j | sum w_j T_j: positional through PuLP (HiGHS or CBC), time-indexed
built in bulk for HiGHS.

- positional: x[j,k] = 1 if job j is k-th; C[k] completion of the k-th job; T[j] >= C[k] - d_j
  when x[j,k] = 1 (big-M tightened per position), plus the valid inequality that the k-th
  completion is at least the release-free sum of the k shortest processing times.
- time-indexed: y[j,t] = 1 if job j starts at t, with the exact cost w_j max(0, t + p_j - d_j),
  written as a path through the time axis (a unit of flow leaves node 0; job j is an arc
  t -> t + p_j, idle time arcs t -> t + 1 where there are release dates) that uses each job once.
  Its LP is the classical time-indexed relaxation (the capacity rows, differenced), strong but
  pseudo-polynomial in size, with 2-3 nonzeros per column instead of p_j + 1. Each job's start
  window is cut by the dominance rule (`dominates`: the jobs that precede it come first, those it
  precedes come after). The arrays are built with numpy and handed to highspy in one call
  (`passModel`); HiGHS starts from the warm start's schedule, with presolve off (its probing took
  7 s on an n = 12 instance that the search without it proves in about a second).
"""

from __future__ import annotations

from optkit.backends.heuristics.dynasearch import KERNELS
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
        if opts is not None:
            opts.check_clock()  # up to n^2 / 2 rows of 2n terms each
        for j in range(n):
            if i != j and dominates(problem, i, j):
                prob += position[i] + 1 <= position[j]

    def decode():
        return sorted(range(n), key=lambda j: max(range(n), key=lambda k: x[j, k].value() or 0))

    return prob, decode


def time_indexed_arrays(problem: Tardiness) -> dict:
    """The time-indexed path model as arrays: costs, the column-wise matrix, row bounds, and for
    each job its first column and start window. Rows: one per job (used once), one per time node
    t < H (flow out - flow in = 1 at t = 0, else 0); the path ends at H."""
    import numpy as np

    n, p, d, w, r = problem.n, problem.processing_times, problem.due_dates, problem.w, problem.r
    horizon = max(r) + sum(p)
    windows, first, cols = [], [], 0
    for j in range(n):
        before = sum(p[i] for i in range(n) if i != j and dominates(problem, i, j))
        after = sum(p[i] for i in range(n) if i != j and dominates(problem, j, i))
        lo, hi = max(r[j], before), horizon - p[j] - after
        windows.append((lo, hi))
        first.append(cols)
        cols += max(0, hi - lo + 1)
    job = np.repeat(np.arange(n), [max(0, hi - lo + 1) for lo, hi in windows])
    start = np.concatenate([np.arange(lo, hi + 1) for lo, hi in windows] or [np.zeros(0, int)])
    pj = np.asarray(p, dtype=np.int64)[job]
    cost = np.asarray(w, dtype=np.float64)[job] * np.maximum(
        0, start + pj - np.asarray(d, dtype=np.int64)[job]
    )
    col = np.arange(cols)
    moves = pj > 0  # a job of length 0 leaves and enters the same node: no flow entries
    arrives = moves & (start + pj < horizon)
    rows = [job, n + start[moves], n + (start + pj)[arrives]]
    cols_of = [col, col[moves], col[arrives]]
    values = [np.ones(cols), np.ones(moves.sum()), -np.ones(arrives.sum())]
    idle = 0
    if max(r) > 0:  # idle arcs t -> t + 1 (the last one ends the path at H)
        idle = horizon
        t = np.arange(horizon)
        rows += [n + t, n + t[1:]]
        cols_of += [cols + t, cols + t[:-1]]
        values += [np.ones(horizon), -np.ones(horizon - 1)]
        cost = np.concatenate([cost, np.zeros(horizon)])
    row, column, value = (np.concatenate(x) for x in (rows, cols_of, values))
    order = np.lexsort((row, column))
    row_bounds = np.zeros(n + horizon)
    row_bounds[: n + 1] = 1  # each job once; one unit of flow leaves node 0
    return {
        "cost": cost,
        "starts": np.searchsorted(column[order], np.arange(cols + idle + 1)).astype(np.int32),
        "index": row[order].astype(np.int32),
        "value": value[order],
        "rows": row_bounds,
        "first": first,
        "windows": windows,
        "job": job,
        "start": start,
    }


def solve_time_indexed(problem: Tardiness, opts: SolveOptions, warm: list[int]):
    """The time-indexed model solved by HiGHS (highspy) from the sequence `warm`:
    (sequence or None, proven lower bound or None, proven optimal, termination, HiGHS status)."""
    import highspy
    import numpy as np

    from optkit.backends.pulp_model import time_left_for_solver
    from optkit.result import Termination

    arrays = time_indexed_arrays(problem)
    opts.check_clock()
    ncol, nrow = len(arrays["cost"]), len(arrays["rows"])
    lp = highspy.HighsLp()
    lp.num_col_, lp.num_row_ = ncol, nrow
    lp.col_cost_ = arrays["cost"]
    lp.col_lower_, lp.col_upper_ = np.zeros(ncol), np.ones(ncol)
    lp.row_lower_ = lp.row_upper_ = arrays["rows"]
    lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
    lp.a_matrix_.start_ = arrays["starts"]
    lp.a_matrix_.index_ = arrays["index"]
    lp.a_matrix_.value_ = arrays["value"]
    lp.integrality_ = [highspy.HighsVarType.kInteger] * ncol
    h = highspy.Highs()  # a fresh object: HiGHS' time_limit counts every run of one object
    for key, value in (
        ("output_flag", bool(opts.params.get("log", False))),
        ("threads", opts.threads),
        ("random_seed", opts.seed),
        ("presolve", "off"),
        ("mip_rel_gap", 0.0),
        ("mip_abs_gap", 1 - 1e-6),  # integer objective: a gap below 1 proves the optimum
    ):
        h.setOptionValue(key, value)
    h.passModel(lp)
    x0, t = np.zeros(ncol), 0
    idle = np.ones(ncol - len(arrays["job"]), dtype=bool)  # idle arcs (release dates only)
    for j in warm:  # the warm start, where it lies inside the dominance windows
        lo, hi = arrays["windows"][j]
        t = max(t, problem.r[j])
        if not lo <= t <= hi:
            break
        x0[arrays["first"][j] + t - lo] = 1
        idle[t : t + problem.processing_times[j]] = False
        t += problem.processing_times[j]
    else:
        x0[len(arrays["job"]) :] = idle
        solution = highspy.HighsSolution()
        solution.col_value = list(x0)
        solution.value_valid = True
        h.setSolution(solution)
    if opts.time_limit is not None:
        h.setOptionValue("time_limit", max(0.01, time_left_for_solver(opts)))
    h.run()
    status, info = h.getModelStatus(), h.getInfo()
    S = highspy.HighsModelStatus
    termination = (
        Termination.COMPLETED
        if status in (S.kOptimal, S.kInfeasible)
        else Termination.TIME_LIMIT
        if status in (S.kTimeLimit, S.kInterrupt, S.kIterationLimit, S.kSolutionLimit)
        else Termination.ERROR
    )
    sequence = None
    if info.primal_solution_status == 2:  # kSolutionStatusFeasible
        used = np.flatnonzero(np.asarray(h.getSolution().col_value)[: len(arrays["job"])] > 0.5)
        job, start = arrays["job"][used], arrays["start"][used]
        p = np.asarray(problem.processing_times)[job]
        sequence = [int(job[k]) for k in np.lexsort((job, p, start))]
    bound = getattr(info, "mip_dual_bound", None)
    bound = _ceil(bound) if bound is not None and np.isfinite(bound) else None
    if termination == Termination.ERROR:
        bound = None
    optimal = status == S.kOptimal and sequence is not None
    return sequence, bound, optimal, termination, h.modelStatusToString(status)


@register(
    "mip",
    "tardiness",
    exact=True,
    bounds=True,
    deterministic=True,
    requires=("pulp", "highspy", KERNELS),  # dynasearch's kernels (the start), off the clock
    versions=("pulp", "highspy"),
    params={
        "backend": "highs",
        "formulation": "auto",
        "max_time_indexed_vars": 20_000,
        "start_kicks": 100,
        "log": False,
    },
)
def mip(problem: Tardiness, opts: SolveOptions) -> Outcome:
    """Time-indexed (HiGHS, when n x horizon is at most `max_time_indexed_vars`) or positional
    MIP, started from dynasearch's schedule (`start_kicks` kicks, at most a fifth of the time)."""
    from optkit.errors import InputError

    form, backend = opts.params["formulation"], opts.params["backend"]
    if form not in FORMULATIONS:
        raise InputError(
            f"parameter 'formulation': expected one of {', '.join(FORMULATIONS)}, got {form!r}"
        )
    if form == "auto":
        size = problem.n * (max(problem.r) + sum(problem.processing_times))
        small = size <= opts.params["max_time_indexed_vars"]
        form = "time-indexed" if small and backend == "highs" else "positional"
    if form == "time-indexed" and backend != "highs":
        raise InputError("formulation 'time-indexed' is built for HiGHS: use backend=highs")
    start = _start(problem, opts)
    start_objective = problem.total_weighted_tardiness(start)
    opts.report({"sequence": start}, start_objective)  # the answer if the model takes the limit
    if start_objective == 0:  # tardiness is never negative: no model needed for the proof
        return Outcome(
            solution={"sequence": start}, proven_optimal=True, stats={"formulation": form}
        )
    if form == "time-indexed":
        sequence, bound, optimal, termination, detail = solve_time_indexed(problem, opts, start)
        infeasible = False
    else:
        sequence, bound, optimal, termination, detail, infeasible = _positional(problem, opts)
    stats = {"formulation": form, "mip_status": detail}
    if infeasible:
        return Outcome(termination=termination, stats=stats, proven_infeasible=True)
    found = sequence is not None
    if not found or start_objective < problem.total_weighted_tardiness(sequence):
        sequence, optimal = start, bound is not None and bound >= start_objective
    return Outcome(
        solution={"sequence": sequence},
        termination=termination,
        proven_optimal=optimal,
        bound=bound,
        stats=stats,
        message=None if found else "no MIP solution in time: the warm start",
    )


def _start(problem: Tardiness, opts: SolveOptions) -> list[int]:
    """Dynasearch's sequence (iteration-bounded, so repeatable when it finishes), else the best
    dispatch rule's."""
    from optkit.backends.starts import start_from

    found = start_from(problem, "dynasearch", opts, 0.2, iterations=opts.params["start_kicks"])
    if found is None:
        found = best_start(problem, RULES, opts)
    return list(found.solution["sequence"])


def _positional(problem: Tardiness, opts: SolveOptions):
    """The positional model through PuLP: (sequence or None, bound, proven optimal, termination,
    status text, proven infeasible)."""
    import time

    from optkit.backends.pulp_model import ensure_time_to_hand_over, solve_problem

    built = time.monotonic()
    prob, decode = positional(problem, opts)
    ensure_time_to_hand_over(opts, time.monotonic() - built)
    ans = solve_problem(prob, opts)
    sequence = decode() if ans.has_solution else None
    return (
        sequence,
        _ceil(ans.bound),
        ans.proven_optimal,
        ans.termination,
        ans.detail,
        ans.proven_infeasible,
    )


def _ceil(bound: float | None) -> int | None:
    """Integer data: the optimum is an integer, so a lower bound may be rounded up (with tolerance)."""
    import math

    return None if bound is None else math.ceil(bound - 1e-6)

"""Exact dynamic programs for 1 || sum w_j T_j, registered as the `dp` solver.

Two routes: a subset DP for tiny instances (n <= `subset_max_n`), and successive sublimation
dynamic programming (`ssdp.py`) for the rest, which takes dynasearch's answer as its upper bound
and proves it optimal (or finds a better sequence) when its lower bound reaches it.
"""

from __future__ import annotations

import time

import numpy as np

from optkit.problems.tardiness import Tardiness
from optkit.registry import register
from optkit.result import Termination
from optkit.solve import Outcome, SolveOptions

#: dynasearch kicks for the upper bound: this many per job (iteration-bounded, so repeatable)
UB_KICKS_PER_JOB = 20
#: the SSDP's time-indexed arrays hold n (sum p + 1) entries each (8 bytes, several arrays)
MAX_NODES = 25_000_000


@register(
    "dp",
    "tardiness",
    exact=True,
    bounds=True,
    requires=("numpy", "numba"),
    versions=("numpy", "numba"),
    params={"subset_max_n": 12, "max_states": 20_000_000},
)
def dp(problem: Tardiness, opts: SolveOptions) -> Outcome:
    """Subset DP for n <= `subset_max_n`, SSDP beyond (bounded by `max_states` memorised states,
    40 bytes each, twice that while the store grows). No release dates: those need idle time, which neither route models."""
    if problem.release_dates is not None and any(problem.release_dates):
        return Outcome(
            termination=Termination.ERROR,
            message="dp: release dates are not supported (the DP runs jobs without idle time); "
            "use cpsat or mip",
        )
    if problem.n <= opts.params["subset_max_n"]:
        return _subset_dp(problem, opts)
    return _ssdp(problem, opts)


def _ssdp(problem: Tardiness, opts: SolveOptions) -> Outcome:
    from optkit.backends.dp._ssdp import SSDP
    from optkit.solve import solve

    # jobs of length 0 go first at no cost; the SSDP's time-indexed network needs p_j >= 1
    zero = [j for j in range(problem.n) if problem.processing_times[j] == 0]
    jobs = [j for j in range(problem.n) if problem.processing_times[j] > 0]
    start = time.monotonic()
    budget = opts.remaining() if opts.time_limit is not None else None
    heuristic = solve(
        problem,
        "dynasearch",
        time_limit=None if budget is None else max(1e-3, 0.3 * budget),
        seed=opts.seed,
        initial_solution=opts.initial_solution,
        iterations=UB_KICKS_PER_JOB * problem.n,
    )
    if heuristic.solution is None:
        return Outcome(
            termination=Termination.ERROR, message=f"dp: dynasearch: {heuristic.message}"
        )
    opts.report(heuristic.solution, heuristic.objective)
    upper_bound_s = time.monotonic() - start
    nodes = len(jobs) * (sum(problem.processing_times) + 1)
    if nodes > MAX_NODES:
        return Outcome(
            solution=heuristic.solution,
            objective=heuristic.objective,
            termination=Termination.COMPLETED,
            message=f"dp: n (sum p + 1) = {nodes} time-indexed nodes exceeds {MAX_NODES}; "
            "dynasearch's sequence returned without proof",
        )
    order = [j for j in heuristic.solution["sequence"] if j in set(jobs)]
    index = {j: k for k, j in enumerate(jobs)}
    solver = SSDP(
        [problem.processing_times[j] for j in jobs],
        [problem.due_dates[j] for j in jobs],
        [problem.w[j] for j in jobs],
        (heuristic.objective, [index[j] for j in order]),
        deadline=time.monotonic() + _with_margin(opts.remaining()),
        max_states=int(opts.params["max_states"]),
    )
    answer = solver.run()
    sequence = zero + [jobs[k] for k in answer.sequence]
    if answer.cost < heuristic.objective:
        opts.report({"sequence": sequence}, answer.cost)
    stats = answer.stats | {"upper_bound_s": round(upper_bound_s, 4)}
    timed_out = not answer.optimal and solver.expired()
    why = "time limit reached" if timed_out else answer.stats.get("stopped", "not proven")
    return Outcome(
        solution={"sequence": sequence},
        objective=answer.cost,
        bound=answer.bound,
        proven_optimal=answer.optimal,
        termination=Termination.TIME_LIMIT if timed_out else Termination.COMPLETED,
        message=None if answer.optimal else f"dp: {why}; bound {answer.bound}",
        stats=stats,
    )


def _with_margin(seconds: float) -> float:
    """The SSDP's share of the time left: it reads the clock between kernel calls (a fraction of
    a second each on a loaded machine), so it aims 2 % (at most 1 s) early."""
    return max(0.0, seconds - min(1.0, 0.02 * seconds))


def _subset_dp(problem: Tardiness, opts: SolveOptions) -> Outcome:
    """f(S) = min over the last job j of S of f(S - j) + w_j max(0, p(S) - d_j), vectorised over
    all subsets of each size: O(n 2^n) time and 2^n memory."""
    n = problem.n
    p = np.array(problem.processing_times, dtype=np.int64)
    d = np.array(problem.due_dates, dtype=np.int64)
    w = np.array(problem.w, dtype=np.int64)
    masks = np.arange(1 << n, dtype=np.int64)
    load = np.zeros(1 << n, dtype=np.int64)  # p(S) for every subset S
    size = np.zeros(1 << n, dtype=np.int8)
    for j in range(n):  # subsets whose highest job is j extend those of the lower jobs
        load[1 << j : 2 << j] = load[: 1 << j] + p[j]
        size[1 << j : 2 << j] = size[: 1 << j] + 1
    best = np.zeros(1 << n, dtype=np.int64)
    last = np.full(1 << n, -1, dtype=np.int8)
    for k in range(1, n + 1):
        if opts.expired():
            return Outcome(
                termination=Termination.TIME_LIMIT, message=f"dp: stopped at subsets of size {k}"
            )
        layer = masks[size == k]
        layer_best = np.full(layer.size, np.iinfo(np.int64).max, dtype=np.int64)
        layer_last = np.full(layer.size, -1, dtype=np.int8)
        for j in range(n):
            has = (layer >> j) & 1 == 1
            subset = layer[has]
            cost = best[subset ^ (1 << j)] + w[j] * np.maximum(0, load[subset] - d[j])
            idx = np.flatnonzero(has)
            better = cost < layer_best[idx]
            layer_best[idx[better]] = cost[better]
            layer_last[idx[better]] = j
        best[layer] = layer_best
        last[layer] = layer_last
    sequence, state = [], (1 << n) - 1
    while state:
        j = int(last[state])
        sequence.append(j)
        state ^= 1 << j
    sequence.reverse()
    return Outcome(solution={"sequence": sequence}, proven_optimal=True, objective=int(best[-1]))

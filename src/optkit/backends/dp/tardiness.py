"""Exact subset dynamic program for 1 || sum w_j T_j: f(S) = min over the last job j of S of
f(S - j) + w_j max(0, p(S) - d_j). Proves optimality; O(n 2^n) time and 2^n memory, so small n only.
"""

from __future__ import annotations

from optkit.problems.tardiness import Tardiness
from optkit.registry import register
from optkit.result import Termination
from optkit.solve import Outcome, SolveOptions


@register(
    "dp",
    "tardiness",
    exact=True,
    bounds=True,
    requires=("numpy",),
    versions=("numpy",),
    params={"max_n": 22},
)
def dp(problem: Tardiness, opts: SolveOptions) -> Outcome:
    """Subset DP (no release dates), vectorised over all subsets of each size."""
    import numpy as np

    n = problem.n
    if problem.release_dates is not None and any(problem.release_dates):
        return Outcome(
            termination=Termination.ERROR,
            message="dp: release dates make the completion time of a job set order-dependent; "
            "use cpsat or mip",
        )
    if n > opts.params["max_n"]:
        return Outcome(
            termination=Termination.ERROR,
            message=f"dp: n = {n} exceeds max_n = {opts.params['max_n']} (memory grows as 2^n)",
        )
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

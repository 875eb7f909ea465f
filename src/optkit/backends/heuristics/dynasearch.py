"""Iterated enhanced dynasearch for 1 || sum w_j T_j (Congram, Potts and van de Velde 2002;
Grosso, Della Croce and Tadei 2004).

A dynasearch step applies, in one go, the best set of *independent* moves on the current
sequence. A move acts on a block of positions i < j and leaves the completion time C_j of the
block's end unchanged, so moves on disjoint blocks do not interact and the best combination is
a dynamic programme over positions:

    F(j) = min( F(j-1),  min_{i<j} F(i-1) + delta(i, j) )

with delta(i, j) the best of three moves on the block [i..j]:
  * swap: interchange the jobs at positions i and j (Congram et al.);
  * forward insertion: move the job at i to just after j (Grosso et al.);
  * backward insertion: move the job at j to just before i (Grosso et al.).
The two insertion deltas of all O(n^2) blocks cost O(n^2) (running sums of the shifted jobs'
tardiness changes). A swap shifts the jobs between i and j by p_j - p_i, which is O(n) per
block; a lower bound from the weight of the tardy jobs in between discards almost all blocks,
and only the rest are evaluated exactly. The step is a numba kernel (`_dynasearch_kernels`).

The local search repeats dynasearch steps until none improves. The iterated version kicks the
local optimum with 1 to `kick_swaps` random swaps of jobs at most `kick_reach` positions apart,
descends again, and moves to the new local optimum whatever its cost (a random walk over local
optima), returning to the best one found after `patience` kicks without a new best.

Instances with release dates break the block independence (idle time), so there the solver runs
a plain iterated local search over the same moves, each evaluated on the semi-active schedule.
"""

from __future__ import annotations

import random
import time

import numpy as np

from optkit.backends.heuristics.tardiness import START_RULES, best_rule
from optkit.errors import InputError
from optkit.problems.tardiness import Tardiness
from optkit.registry import register
from optkit.result import Termination
from optkit.solve import Outcome, SolveOptions

#: kicks when there is no time limit and `iterations` is 0 (auto); with release dates, where
#: each descent costs O(n^3) in pure Python, far fewer
DEFAULT_ITERATIONS = 1000
KERNELS = "optkit.backends.heuristics._dynasearch_kernels"
DEFAULT_ITERATIONS_RELEASED = 20


class _Weighted:
    """Sequence-level arithmetic of 1 || sum w_j T_j (no release dates): the numba kernels of
    `_dynasearch_kernels` on int64 arrays (the input bounds keep every objective within int64)."""

    def __init__(self, problem: Tardiness):
        from optkit.backends.heuristics import _dynasearch_kernels as kernels

        self.kernels = kernels
        self.n = n = problem.n
        self.p = np.array(problem.processing_times, dtype=np.int64)
        self.d = np.array(problem.due_dates, dtype=np.int64)
        self.w = np.array(problem.w, dtype=np.int64)
        #: steps per kernel call between looks at the clock: about a millisecond of work
        self.chunk = max(1, 2_000_000 // max(1, n * n))

    def cost(self, seq: np.ndarray) -> int:
        return int(self.kernels.cost(seq, self.p, self.d, self.w))

    def descend(self, seq: np.ndarray, cost: int, deadline: float) -> tuple[np.ndarray, int]:
        """Dynasearch steps until none improves (or the deadline)."""
        seq = np.ascontiguousarray(seq, dtype=np.int64).copy()
        while time.monotonic() < deadline:
            gain, done = self.kernels.descend(seq, self.p, self.d, self.w, self.chunk)
            cost -= gain
            if done:
                break
        return seq, cost


class _Released:
    """Fallback arithmetic with release dates: moves evaluated on the semi-active schedule."""

    def __init__(self, problem: Tardiness):
        self.problem = problem
        self.n = problem.n

    def cost(self, seq) -> int:
        return self.problem.total_weighted_tardiness([int(j) for j in seq])

    def descend(self, seq: np.ndarray, cost: int, deadline: float) -> tuple[np.ndarray, int]:
        """First-improvement descent over swaps and insertions (O(n^3) per pass)."""
        s = [int(j) for j in seq]
        n = self.n
        improved = True
        while improved and time.monotonic() < deadline:
            improved = False
            for i in range(n - 1):
                for j in range(i + 1, n):
                    for move in (0, 1, 2):
                        t = list(s)
                        if move == 0:
                            t[i], t[j] = t[j], t[i]
                        elif move == 1:
                            t.insert(j, t.pop(i))
                        else:
                            t.insert(i, t.pop(j))
                        c = self.problem.total_weighted_tardiness(t)
                        if c < cost:
                            s, cost, improved = t, c, True
                if time.monotonic() >= deadline:
                    break
        return np.array(s, dtype=np.int64), cost


def _kick(seq: np.ndarray, rng: random.Random, swaps: int, reach: int) -> np.ndarray:
    """`swaps` random swaps, each of two jobs at most `reach` positions apart."""
    out = seq.copy()
    n = len(out)
    for _ in range(swaps):
        i = rng.randrange(n - 1)
        j = min(n - 1, i + rng.randint(1, reach))
        out[i], out[j] = out[j], out[i]
    return out


@register(
    "dynasearch",
    "tardiness",
    warm_start=True,
    deterministic=False,
    # the kernels' module too: the facade imports it (numba loads or compiles them) off the clock
    requires=("numpy", "numba", KERNELS),
    versions=("numpy", "numba"),
    params={"iterations": 0, "kick_swaps": 5, "kick_reach": 0, "patience": 50, "max_stall": 0},
)
def dynasearch(problem: Tardiness, opts: SolveOptions) -> Outcome:
    """Iterated enhanced dynasearch (swap + two insertion moves, random kicks), seeded and time-limited.

    Parameters: `iterations` (kicks; 0 = until the time limit, or without one 1000, 20 with
    release dates),
    `kick_swaps` (a kick makes 1 to this many random swaps), `kick_reach` (how many positions
    apart the two jobs of a swap may be; 0 = auto, n/2), `patience` (kicks without a new best
    before the walk returns to the best sequence), `max_stall` (stop after this many kicks in a
    row without a new best; 0 = auto, max(300, 50 n)). Stops early at objective 0.
    Iteration-bounded runs (no time limit) are repeatable for a seed; timed runs are not.
    """
    # kept whole (81 lines): the iterated search: kicks, passes and acceptance share the incumbent
    # and the clock
    prm = opts.params
    iterations, swaps, reach, patience, max_stall = (
        int(prm[k]) for k in ("iterations", "kick_swaps", "kick_reach", "patience", "max_stall")
    )
    if min(iterations, reach, max_stall) < 0 or swaps < 1 or patience < 1:
        raise InputError(
            "dynasearch: need iterations, kick_reach, max_stall >= 0 and kick_swaps, patience >= 1"
        )
    n = problem.n
    released = problem.release_dates is not None and any(problem.release_dates)
    engine = _Released(problem) if released else _Weighted(problem)
    if iterations == 0:
        default = DEFAULT_ITERATIONS_RELEASED if released else DEFAULT_ITERATIONS
        iterations = default if opts.time_limit is None else 1 << 62
    deadline = time.monotonic() + opts.remaining()
    rng = random.Random(opts.seed)

    if opts.initial_solution is not None:
        start = np.array(opts.initial_solution["sequence"], dtype=np.int64)
        start_from = "initial solution"
    else:
        start_from, seq0, _ = best_rule(problem, START_RULES)
        start = np.array(seq0, dtype=np.int64)
    start_cost = engine.cost(start)
    best, best_cost = start, start_cost

    def improve(seq: np.ndarray, cost: int) -> None:
        nonlocal best, best_cost
        if cost < best_cost:
            best, best_cost = seq, cost
            opts.report({"sequence": [int(j) for j in seq]}, cost)

    opts.report({"sequence": [int(j) for j in start]}, start_cost)
    cur, cur_cost = engine.descend(start, start_cost, deadline)
    improve(cur, cur_cost)
    kicks = stall = since_best = 0
    reach = reach or max(5, n // 2)
    max_stall = max_stall or max(300, 50 * n)
    while (
        kicks < iterations
        and since_best < max_stall
        and best_cost > 0
        and n >= 2
        and time.monotonic() < deadline
    ):
        kicks += 1
        since_best += 1
        cand = _kick(cur, rng, rng.randint(1, swaps), reach)
        cand, cand_cost = engine.descend(cand, engine.cost(cand), deadline)
        if cand_cost < best_cost:
            stall = since_best = 0
        else:
            stall += 1
        improve(cand, cand_cost)
        cur, cur_cost = cand, cand_cost  # a random walk over local optima ...
        if stall >= patience:  # ... that returns to the best one after `patience` failures
            cur, cur_cost, stall = best, best_cost, 0
    timed_out = (
        time.monotonic() >= deadline
        and opts.time_limit is not None
        and best_cost > 0
        and kicks < iterations
        and since_best < max_stall
    )
    return Outcome(
        solution={"sequence": [int(j) for j in best]},
        objective=best_cost,
        termination=Termination.TIME_LIMIT if timed_out else Termination.COMPLETED,
        stats={"kicks": kicks, "start": start_from, "start_objective": start_cost},
    )

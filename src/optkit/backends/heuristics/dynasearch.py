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
The two insertion deltas of all O(n^2) blocks cost O(n^2) with numpy (prefix sums of the shifted
jobs' tardiness changes). A swap shifts the jobs between i and j by p_j - p_i, which is O(n) per
block; a lower bound from the weight of the tardy jobs in between (prefix sums again) discards
almost all blocks, and only the rest are evaluated exactly.

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

_EPS = 1e-7
#: kicks when there is no time limit and `iterations` is 0 (auto); with release dates, where
#: each descent costs O(n^3) in pure Python, far fewer
DEFAULT_ITERATIONS = 1000
DEFAULT_ITERATIONS_RELEASED = 20


class _Weighted:
    """Sequence-level arithmetic of 1 || sum w_j T_j (no release dates), vectorised with numpy.

    Matrices are indexed [i, j] by the first and last position of a block, i < j.
    """

    def __init__(self, problem: Tardiness):
        self.n = n = problem.n
        # int32 halves the memory traffic where no sum of weighted tardiness can overflow it
        horizon = sum(problem.processing_times) + max(problem.due_dates)
        small = 4 * (n + 1) * max(problem.w) * horizon < 2**31
        self.dtype = dt = np.int32 if small else np.int64
        self.p = np.array(problem.processing_times, dtype=dt)
        self.d = np.array(problem.due_dates, dtype=dt)
        self.w = np.array(problem.w, dtype=dt)
        self.upper = np.triu(np.ones((n, n), dtype=dt), 1)  # [i, k] = 1 iff k > i
        self.upper_b = self.upper.astype(bool)
        self.upper2 = np.triu(self.upper_b, 2)  # [i, j] iff j >= i + 2

    def cost(self, seq: np.ndarray) -> int:
        c = np.cumsum(self.p[seq], dtype=np.int64)
        return int((self.w[seq].astype(np.int64) * np.maximum(0, c - self.d[seq])).sum())

    def step(self, seq: np.ndarray) -> tuple[np.ndarray, int]:
        """One dynasearch step: (new sequence, improvement >= 0); 0 means a local optimum."""
        # kept whole (107 lines): one dynasearch pass: the swap DP and its move reconstruction share
        # the arrays
        n = self.n
        if n < 2:
            return seq, 0
        P, D, W = self.p[seq], self.d[seq], self.w[seq]
        C = np.cumsum(P, dtype=self.dtype)
        Cprev = C - P
        L = C - D  # lateness at each position
        tard = np.maximum(L, 0)
        f = W * tard
        upper = self.upper

        # job i ending the block at C_j: [i, j] -> W_i max(0, C_j - D_i) - f_i
        end_i = np.subtract.outer(-D, -C)
        np.maximum(end_i, 0, out=end_i)
        end_i *= W[:, None]
        end_i -= f[:, None]
        # job j starting the block at C_{i-1}: [i, j] -> W_j max(0, C_{i-1} + P_j - D_j) - f_j
        end_j = np.add.outer(Cprev, P - D)
        np.maximum(end_j, 0, out=end_j)
        end_j *= W[None, :]
        end_j -= f[None, :]

        # forward insertion (job i behind job j): jobs i+1..j complete P_i earlier
        g = np.subtract.outer(-P, -L)  # [i, k] = L_k - P_i
        np.maximum(g, 0, out=g)
        g *= W[None, :]
        g -= f[None, :]
        g *= upper
        fwd = np.cumsum(g, axis=1, dtype=self.dtype)  # [i, j] = sum over k = i+1..j
        fwd += end_i
        # backward insertion (job j before job i): jobs i..j-1 complete P_j later
        h = np.add.outer(L, P)  # [k, j] = L_k + P_j
        np.maximum(h, 0, out=h)
        h *= W[:, None]
        h -= f[:, None]
        h *= upper  # keep k < j
        bwd = np.cumsum(h[::-1], axis=0, dtype=self.dtype)[::-1]  # [i, j] = sum over k = i..j-1
        bwd += end_j
        delta = np.minimum(fwd, bwd)

        # swaps of non-adjacent positions: jobs i+1..j-1 shift by P_j - P_i. A lower bound (the
        # tardy jobs in between shift by exactly that) discards most blocks; the rest are exact.
        swaps: dict[tuple[int, int], int] = {}
        if n >= 3:
            ends = end_i + end_j
            shift = np.subtract.outer(-P, -P)  # [i, j] = P_j - P_i
            tardw = np.concatenate(([0], np.cumsum(np.where(L >= 0, W, 0), dtype=self.dtype)))
            lb = np.subtract.outer(-tardw[1:], -tardw[:-1])  # sum over k = i+1..j-1 of tardy W_k
            lb *= shift
            lb += ends
            ci, cj = np.nonzero((lb < np.minimum(delta, 0) - _EPS) & self.upper2)
            if len(ci):
                # ragged evaluation: one entry per (candidate, job strictly inside its block)
                lens = cj - ci - 1
                starts = np.cumsum(lens) - lens
                total = int(lens.sum())
                cid = np.repeat(np.arange(len(ci)), lens)
                k = np.arange(total) - np.repeat(starts - ci - 1, lens)
                vals = np.maximum(L[k] + shift[ci, cj][cid], 0)
                vals -= tard[k]
                vals *= W[k]
                exact = ends[ci, cj] + np.rint(
                    np.bincount(cid, weights=vals, minlength=len(ci))
                ).astype(self.dtype)
                better = exact < delta[ci, cj]
                bi, bj, ex = ci[better], cj[better], exact[better]
                delta[bi, bj] = ex
                swaps = {(i, j): 1 for i, j in zip(bi.tolist(), bj.tolist())}

        mi, mj = np.nonzero((delta < -_EPS) & self.upper_b)
        if len(mi) == 0:
            return seq, 0
        # dynamic programme over positions, on the improving moves only
        by_end: dict[int, list[tuple[int, int]]] = {}
        for i, j, v in zip(mi.tolist(), mj.tolist(), delta[mi, mj].tolist()):
            by_end.setdefault(j, []).append((i, v))
        best = [0] * (n + 1)  # best[j] = best total change using positions 0..j-1
        choice: list[int] = [-1] * (n + 1)
        for j in range(n):
            bj_, cj_ = best[j], -1
            for i, v in by_end.get(j, ()):
                v += best[i]
                if v < bj_:
                    bj_, cj_ = v, i
            best[j + 1], choice[j + 1] = bj_, cj_
        if best[n] >= 0:
            return seq, 0
        out = seq.copy()
        j = n
        while j > 0:
            a = choice[j]
            if a < 0:
                j -= 1
                continue
            b = j - 1
            if (a, b) in swaps:
                out[a], out[b] = seq[b], seq[a]
            elif fwd[a, b] <= bwd[a, b]:
                out[a:b] = seq[a + 1 : b + 1]
                out[b] = seq[a]
            else:
                out[a + 1 : b + 1] = seq[a:b]
                out[a] = seq[b]
            j = a
        return out, -int(best[n])

    def descend(self, seq: np.ndarray, cost: int, deadline: float) -> tuple[np.ndarray, int]:
        """Dynasearch steps until none improves (or the deadline)."""
        while time.monotonic() < deadline:
            seq, gain = self.step(seq)
            if gain <= 0:
                break
            cost -= gain
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

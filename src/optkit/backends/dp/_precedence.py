"""Job pairs whose order some optimal sequence of 1 || sum w_j T_j respects, and a numbering.

Rules (Emmons 1969, weighted by Rinnooy Kan, Lageweg and Lenstra 1975): i goes before j when
p_i <= p_j, w_i >= w_j and either d_i <= d_j or d_i <= E_j, with E_j = p_j + p(B_j) the earliest
completion of j after the jobs B_j already known to precede it. If j came first, moving i into
j's place costs nothing more: i completes no later than j did, the jobs between move earlier, and
j's extra tardiness (at most the time it moves, times w_j) is matched by i's saving (the same
time, times w_i, as i is tardy from d_i <= C_j on). Pairs are added one at a time, each only if
it closes no cycle, with the transitive closure kept; the rules are swept until none applies.

Why they hold together with the network's interchange tie-break: number the jobs in a
topological order of the pairs and take, among the optimal sequences, one with the fewest
inversions against the numbering. A violated pair would give a violated rule, and the first one
derived has its B_j in place, so its swap keeps the sequence optimal with fewer inversions; an
adjacent tie against the numbering would do the same. So that sequence respects every pair and
breaks every tie by the numbering.
"""

from __future__ import annotations

import numpy as np


def precedences(p, d, w) -> tuple[list[int], np.ndarray]:
    """The numbering (a list: position -> job, a topological order of the pairs, ties in the
    order of (d, p, -w)) and the closed relation `before[a, b]` (a before b) in that numbering."""
    n = len(p)
    p, d, w = (np.asarray(x, np.int64) for x in (p, d, w))
    key = sorted(range(n), key=lambda j: (d[j], p[j], -w[j], j))
    rank = np.empty(n, np.int64)
    rank[key] = np.arange(n)
    before = np.zeros((n, n), bool)
    same = (p[:, None] == p) & (w[:, None] == w) & (d[:, None] == d)
    candidate = (p[:, None] <= p) & (w[:, None] >= w) & ~(same & (rank[:, None] >= rank))
    changed = True
    while changed:
        changed = False
        earliest = p + p @ before
        rule = candidate & ((d[:, None] <= d) | (d[:, None] <= earliest))
        for i, j in zip(*np.nonzero(rule & ~before & ~before.T), strict=True):
            if before[i, j] or before[j, i]:
                continue
            pre, suc = before[:, i].copy(), before[j, :].copy()
            pre[i] = suc[j] = True
            before[np.ix_(pre, suc)] = True
            changed = True
    order, placed = [], np.zeros(n, bool)
    waiting = before.sum(axis=0)
    while len(order) < n:
        j = min((j for j in range(n) if not placed[j] and waiting[j] == 0), key=rank.__getitem__)
        order.append(j)
        placed[j] = True
        waiting -= before[j]
    return order, before[np.ix_(order, order)]

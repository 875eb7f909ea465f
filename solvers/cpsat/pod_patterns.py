"""Column generation over node patterns: the bound and the packing that the counting tiers lack.

The counting cuts of the CP-SAT model only compare total requests with total capacity; on a cluster
at 100 % utilisation every pod fits by volume, yet not into whole nodes, and CP-SAT neither finds the
best packing nor proves it in a second. The pattern (Gilmore-Gomory) relaxation sees the packing: a
*pattern* is a multiset of pods that fits on one node of a class (nodes with the same free capacity
and the same eligible pod groups), and the LP

    max  sum_t w_t x_t     x_t = sum_p a_pt y_p <= n_t,   sum_{p in class k} y_p <= N_k,
                           sum_{t in S_q} x_t >= m_q   (the tiers already proven),   y >= 0

is solved by column generation, with a bounded knapsack (branch and bound) as the pricing problem. At
every iteration `LP value + sum_k N_k max(0, bound on the best reduced cost in class k)` bounds the LP
optimum from above (Lagrangian bound), so its floor bounds the integer optimum even before the
generation converges, and even when a pricing search is cut short (its root bound is used). The generated patterns, solved as an
integer program (HiGHS through scipy), give a packing: often the optimum that the bound then proves.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field


@dataclass(frozen=True)
class PodType:
    """`count` identical pods with per-resource `request`, allowed on the node classes in `classes`."""

    request: tuple[int, ...]
    count: int
    classes: frozenset[int]


@dataclass(frozen=True)
class NodeClass:
    """`size` nodes with the same free capacity per resource (None = unlimited). `home`: (type, count)
    pairs for a class of one node, the pods of each type running on it now; a pattern is worth one more
    per such pod it keeps (`min(a_t, count)`), which turns the count into the pods that stay."""

    capacity: tuple[int | None, ...]
    size: int
    home: tuple[tuple[int, int], ...] = ()


@dataclass
class PatternResult:
    """`bound`: proven upper bound on the weighted count (None if none was proven in time);
    `packing`: per class, the patterns used and how many nodes use each (None if no integer solution)."""

    bound: int | None
    packing: list[list[tuple[tuple[int, ...], int]]] | None = None
    value: int | None = None
    iterations: int = 0
    converged: bool = False
    stats: dict = field(default_factory=dict)


def pattern_bound(types: list[PodType], classes: list[NodeClass], counted: set[int],
                  at_least: list[tuple[set[int], int]], target: int, deadline: float,
                  start: list[tuple[int, tuple[int, ...]]] = ()) -> PatternResult:
    """Column generation for `max sum_{t in counted} x_t` (plus the pods kept home, for classes with a
    `home`) subject to `at_least`; stops at convergence,
    at `deadline` (`time.monotonic()`), or once the bound reaches `target` (the incumbent: a proof).
    Then the generated patterns are solved as an integer program for a packing. `start`: (class,
    pattern) columns to begin with, e.g. the incumbent's nodes (they make `at_least` feasible)."""
    import numpy as np

    T, K = len(types), len(classes)
    columns: list[tuple[int, tuple[int, ...]]] = []
    seen: set[tuple[int, tuple[int, ...]]] = set()

    def add(k: int, pattern: tuple[int, ...]) -> bool:
        if (k, pattern) in seen or not any(pattern):
            return False
        seen.add((k, pattern))
        columns.append((k, pattern))
        return True

    for k, pattern in start:
        add(k, tuple(pattern))
    for k, cls in enumerate(classes):  # one pod of each type alone
        for t, ty in enumerate(types):
            if k in ty.classes and all(c is None or q <= c for q, c in zip(ty.request, cls.capacity)):
                add(k, tuple(int(u == t) for u in range(T)))
    out = PatternResult(bound=None)
    if not columns:
        out.bound, out.converged = 0, True
        return out
    w = np.array([1.0 if t in counted else 0.0 for t in range(T)])
    homes = [dict(cls.home) for cls in classes]

    def worth(k: int, pattern: tuple[int, ...], v) -> float:
        return float(sum(v[t] * a for t, a in enumerate(pattern) if a)
                     + sum(min(pattern[t], h) for t, h in homes[k].items()))

    best = math.inf
    ip_deadline, deadline = deadline, time.monotonic() + 0.75 * (deadline - time.monotonic())
    while time.monotonic() < deadline:
        out.iterations += 1
        values = np.array([worth(k, p, w) for k, p in columns])
        lp = _master(columns, types, classes, values, at_least, integer=False, deadline=deadline)
        if lp is None:
            break
        value, lam = lp
        val = w + lam[:T]
        for (s, _), lq in zip(at_least, lam[T + K:]):
            for t in s:
                val[t] -= lq
        slack = 0.0
        improved = False
        for k, cls in enumerate(classes):
            patterns, upper = _price(types, k, cls, val, deadline)
            slack += cls.size * max(0.0, upper + lam[T + k])
            for pattern in patterns:
                if worth(k, pattern, val) + lam[T + k] > 1e-9 and add(k, pattern):
                    improved = True
        best = min(best, math.floor(value + slack + 1e-6))
        out.bound = int(best)
        if best <= target or not improved:
            out.converged = not improved
            break
    out.stats["columns"] = len(columns)
    values = np.array([worth(k, p, w) for k, p in columns])
    ip = _master(columns, types, classes, values, at_least, integer=True,
                 deadline=max(ip_deadline, time.monotonic() + 0.02))
    if ip is not None:
        value, y = ip
        out.value = int(round(value))
        packing: list[list[tuple[tuple[int, ...], int]]] = [[] for _ in classes]
        for (k, pattern), n in zip(columns, y):
            if round(n) > 0:
                packing[k].append((pattern, int(round(n))))
        out.packing = packing
    return out


def _master(columns, types, classes, values, at_least, integer: bool, deadline: float):
    """The restricted master: LP -> (value, duals), or integer program -> (value, y); None on failure."""
    import numpy as np
    from scipy.optimize import LinearConstraint, linprog, milp

    K = len(classes)
    A = np.array([p for _, p in columns], dtype=float).T  # [T, P]
    rows = [A, np.zeros((K, len(columns)))]
    for c, (k, _) in enumerate(columns):
        rows[1][k, c] = 1.0
    if at_least:
        rows.append(np.array([-(A[sorted(s)].sum(axis=0)) for s, _ in at_least]))
    A_ub = np.vstack(rows)
    b_ub = np.concatenate([[ty.count for ty in types], [c.size for c in classes], [-m for _, m in at_least]])
    c = -values
    if not integer:
        res = linprog(c, A_ub=A_ub, b_ub=b_ub, bounds=(0, None), method="highs")
        return None if res.status != 0 else (-res.fun, res.ineqlin.marginals)
    res = milp(c, constraints=LinearConstraint(A_ub, -np.inf, b_ub), integrality=np.ones(len(columns)),
               bounds=(0, np.inf), options={"time_limit": max(0.01, deadline - time.monotonic())})
    return None if res.x is None else (-res.fun, res.x)


def _price(types: list[PodType], k: int, cls: NodeClass, val, deadline: float):
    """The most valuable patterns of class k, by depth-first branch and bound over the pod types.

    Returns (patterns, an upper bound on the best pattern's value) with patterns best first:
    the last few incumbents of the search, extra columns for the master at no cost. The bound is the
    value found when the search finished, else (node budget or `deadline` hit) the root's bound. Node
    bound: the fractional knapsack on the surrogate resource sum_r q_r / c_r (the types are sorted by
    it, so the remaining ones are a suffix), then on each resource alone when that one does not prune."""
    cap = cls.capacity
    R = [r for r, c in enumerate(cap) if c is not None]
    home = dict(cls.home)
    its = []
    for t, ty in enumerate(types):
        if k not in ty.classes:
            continue
        ub = ty.count
        for r in R:
            if ty.request[r] > 0:
                ub = min(ub, cap[r] // ty.request[r])
        # the pods kept home are worth one more: a separate item, which the search fills first anyway
        kept = min(home.get(t, 0), ub)
        for v, n in ((float(val[t]) + 1.0, kept), (float(val[t]), ub - kept)):
            if n > 0 and v > 1e-12:  # left out: worth at most 1e-12 per pod
                its.append((t, v, tuple(ty.request[r] for r in R), n))
    tol = 1e-9 + sum(ty.count for ty in types) * 1e-12
    if not its:
        return [], tol
    sur = [sum(q / cap[r] for q, r in zip(it[2], R) if cap[r] > 0) for it in its]  # q_r > 0 needs cap[r] > 0
    order = sorted(range(len(its)), key=lambda i: -its[i][1] / sur[i] if sur[i] else -math.inf)
    its, sur = [its[i] for i in order], [sur[i] for i in order]
    n = len(its)
    V, Q, U = [it[1] for it in its], [it[2] for it in its], [it[3] for it in its]
    by_ratio = [sorted(range(n), key=lambda i, r=r: -V[i] / Q[i][r] if Q[i][r] else -math.inf)
                for r in range(len(R))]

    def surrogate(i, rem):
        room, acc = sum(x / cap[r] for x, r in zip(rem, R) if cap[r] > 0), 0.0
        for j in range(i, n):
            if sur[j] == 0 or sur[j] * U[j] <= room:
                acc += V[j] * U[j]
                room -= sur[j] * U[j]
            else:
                return acc + V[j] * room / sur[j]
        return acc

    def per_resource(i, rem):
        bound = math.inf
        for r, ranked in enumerate(by_ratio):
            room, acc = rem[r], 0.0
            for j in ranked:
                if j < i:
                    continue
                if Q[j][r] * U[j] <= room:
                    acc += V[j] * U[j]
                    room -= Q[j][r] * U[j]
                else:
                    acc += V[j] * room / Q[j][r]
                    break
            bound = min(bound, acc)
        return bound

    found: list[tuple[float, list[int]]] = [(0.0, [0] * n)]
    cur = [0] * n
    nodes = [0]

    class Stop(Exception):
        pass

    def dfs(i, rem, value):
        nodes[0] += 1
        if nodes[0] % 1024 == 0 and time.monotonic() > deadline:
            raise Stop
        if value > found[-1][0] + 1e-12:
            found.append((value, cur.copy()))
        if i == n:
            return
        best = found[-1][0] + 1e-12
        if value + surrogate(i, rem) <= best or value + per_resource(i, rem) <= best:
            return
        m = U[i]
        for r, q in enumerate(Q[i]):
            if q:
                m = min(m, rem[r] // q)
        for c in range(m, -1, -1):
            cur[i] = c
            dfs(i + 1, [x - c * q for x, q in zip(rem, Q[i])], value + c * V[i])
        cur[i] = 0

    root = [cap[r] for r in R]
    try:
        dfs(0, root, 0.0)
        upper = found[-1][0]
    except Stop:
        upper = min(surrogate(0, root), per_resource(0, root))
    patterns = []
    for _, counts in reversed(found[-6:]):
        pattern = [0] * len(types)
        for it, c in zip(its, counts):
            pattern[it[0]] += c
        patterns.append(tuple(pattern))
    return patterns, upper + tol

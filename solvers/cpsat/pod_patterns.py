"""Column generation over node patterns: the bound and the packing that the counting tiers lack.

The counting cuts of the CP-SAT model only compare total requests with total capacity; on a cluster
at 100 % utilisation every pod fits by volume, yet not into whole nodes, and CP-SAT neither finds the
best packing nor proves it in a second. The pattern (Gilmore-Gomory) relaxation sees the packing: a
*pattern* is a multiset of pods that fits on one node of a class (nodes with the same free capacity
and the same eligible pod groups), and the LP

    max  sum_t w_t x_t     x_t = sum_p a_pt y_p <= n_t,   sum_{p in class k} y_p <= N_k,
                           sum_{t in S_q} x_t >= m_q   (the tiers already proven),   y >= 0

is solved by column generation, with a bounded knapsack (CP-SAT) as the pricing problem. At every
iteration `LP value + sum_k N_k max(0, best reduced cost in class k)` bounds the LP optimum from above
(Lagrangian bound), so its floor bounds the integer optimum even before the generation converges; the
worst-case error of the pricing's integer scaling is added. The generated patterns, solved as an
integer program (HiGHS through scipy), give a packing: often the optimum that the bound then proves.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

PRICE_SCALE = 10**6


@dataclass(frozen=True)
class PodType:
    """`count` identical pods with per-resource `request`, allowed on the node classes in `classes`."""

    request: tuple[int, ...]
    count: int
    classes: frozenset[int]


@dataclass(frozen=True)
class NodeClass:
    """`size` nodes with the same free capacity per resource (None = unlimited)."""

    capacity: tuple[int | None, ...]
    size: int


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
    """Column generation for `max sum_{t in counted} x_t` subject to `at_least`; stops at convergence,
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
    best = math.inf
    ip_deadline, deadline = deadline, time.monotonic() + 0.75 * (deadline - time.monotonic())
    while time.monotonic() < deadline:
        out.iterations += 1
        lp = _master(columns, types, classes, w, at_least, integer=False, deadline=deadline)
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
            priced = _price(types, k, cls, val, deadline)
            if priced is None:
                slack = math.inf
                break
            pattern, gain, err = priced
            rc = gain + lam[T + k]
            slack += cls.size * max(0.0, rc + err)
            if rc > 1e-9 and add(k, pattern):
                improved = True
        if slack < math.inf:
            best = min(best, math.floor(value + slack + 1e-6))
            out.bound = int(best)
        if best <= target or not improved:
            out.converged = not improved
            break
    out.stats["columns"] = len(columns)
    ip = _master(columns, types, classes, w, at_least, integer=True, deadline=max(ip_deadline, time.monotonic() + 0.02))
    if ip is not None:
        value, y = ip
        out.value = int(round(value))
        packing: list[list[tuple[tuple[int, ...], int]]] = [[] for _ in classes]
        for (k, pattern), n in zip(columns, y):
            if round(n) > 0:
                packing[k].append((pattern, int(round(n))))
        out.packing = packing
    return out


def _master(columns, types, classes, w, at_least, integer: bool, deadline: float):
    """The restricted master: LP -> (value, duals), or integer program -> (value, y); None on failure."""
    import numpy as np
    from scipy.optimize import LinearConstraint, linprog, milp

    T, K = len(types), len(classes)
    A = np.array([p for _, p in columns], dtype=float).T  # [T, P]
    rows = [A, np.zeros((K, len(columns)))]
    for c, (k, _) in enumerate(columns):
        rows[1][k, c] = 1.0
    if at_least:
        rows.append(np.array([-(A[sorted(s)].sum(axis=0)) for s, _ in at_least]))
    A_ub = np.vstack(rows)
    b_ub = np.concatenate([[ty.count for ty in types], [c.size for c in classes], [-m for _, m in at_least]])
    c = -(w @ A)
    if not integer:
        res = linprog(c, A_ub=A_ub, b_ub=b_ub, bounds=(0, None), method="highs")
        return None if res.status != 0 else (-res.fun, res.ineqlin.marginals)
    res = milp(c, constraints=LinearConstraint(A_ub, -np.inf, b_ub), integrality=np.ones(len(columns)),
               bounds=(0, np.inf), options={"time_limit": max(0.01, deadline - time.monotonic())})
    return None if res.x is None else (-res.fun, res.x)


def _price(types: list[PodType], k: int, cls: NodeClass, val, deadline: float):
    """The most valuable pattern of class k: (pattern, its value, the value's worst rounding error)."""
    from ortools.sat.python import cp_model

    items = [t for t, ty in enumerate(types) if k in ty.classes and val[t] > 1e-12]
    # types left out are worth at most 1e-12 per pod
    err = sum(ty.count for ty in types) * 1e-12
    if not items:
        return tuple(0 for _ in types), 0.0, err
    m = cp_model.CpModel()
    a, ubs = {}, {}
    for t in items:
        ub = types[t].count
        for q, c in zip(types[t].request, cls.capacity):
            if c is not None and q > 0:
                ub = min(ub, c // q)
        a[t], ubs[t] = m.new_int_var(0, ub, f"a{t}"), ub
    for r, c in enumerate(cls.capacity):
        if c is not None and any(types[t].request[r] for t in items):
            m.add(sum(types[t].request[r] * a[t] for t in items) <= c)
    m.maximize(sum(round(val[t] * PRICE_SCALE) * a[t] for t in items))
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.cp_model_presolve = False  # a tiny knapsack: presolve costs more than it saves
    solver.parameters.max_time_in_seconds = max(0.01, deadline - time.monotonic())
    if solver.solve(m) != cp_model.OPTIMAL:
        return None
    pattern = tuple(solver.value(a[t]) if t in a else 0 for t in range(len(types)))
    gain = float(sum(val[t] * pattern[t] for t in items))
    # rounding each value to 1/scale moves a pattern's value by at most 0.5/scale per pod, so the best
    # true pattern is worth at most gain + pods/scale
    return pattern, gain, err + sum(ubs.values()) / PRICE_SCALE

"""Column generation over node patterns: the bound and the packing that the counting tiers lack.

The counting cuts of the CP-SAT model only compare total requests with total capacity; on a cluster
at 100 % utilisation every pod fits by volume, yet not into whole nodes, and CP-SAT neither finds the
best packing nor proves it in a second. The pattern (Gilmore-Gomory) relaxation sees the packing: a
*pattern* is a multiset of pods that fits on one node of a class (nodes with the same free capacity
and the same eligible pod groups), and the LP

    max  sum_t w_t x_t     x_t = sum_p a_pt y_p <= n_t,   sum_{p in class k} y_p <= N_k,
                           sum_{t in S_q} x_t >= m_q   (the tiers already proven),   y >= 0

is solved by column generation: the master in HiGHS (kept warm between rounds), the pricing a
bounded knapsack per class (breadth-first branch and bound), the duals smoothed (Wentges). At any
row prices u >= 0, `L(u) = rhs.u + sum_k N_k max(0, best reduced cost in class k)` bounds every
packing (Lagrangian bound), so the bound holds before convergence too. The generated patterns,
solved as an integer program, give a packing. When the bound is still above it, the gap is closed
top down: for each value v from the bound down, every pattern whose reduced cost allows a packing
worth v is enumerated, and the integer program over them either finds such a packing (optimal) or
proves there is none (the bound drops by one).
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

_MAX_STATES = 500_000  # a search that has kept more patterns (8 bytes each) gives up
_INCUMBENTS = 6  # the pricing returns its last incumbents: extra columns at no cost
_ENUMERATION_LIMIT = 20_000  # the gap closing gives up when a level needs more patterns
_PACKING_SHARE = 0.4  # of the time left, for the integer program over the generated patterns
_OPEN_GAP = 2  # ... and starts before the column generation has converged only this close to the incumbent
_SMOOTHING = 0.5  # weight of the best-bound duals in the pricing point (0: plain Kelley column generation)
_ROUNDING = 1e-6  # a real-valued bound b proves floor(b + _ROUNDING): the LP's and HiGHS's noise is no proof


def _proven(b: float) -> int:
    """The integer bound that a real-valued bound (Lagrangian, dual) proves, with its rounding slack."""
    return math.floor(b + _ROUNDING)


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
    `home`) subject to `at_least`; stops at convergence, at three quarters of the time to `deadline`
    (`time.monotonic()`), or once the bound reaches `target` (the incumbent's worth: a proof). Then
    the generated patterns are solved as an integer program for a packing, and, if the bound is still
    above it, the gap is closed by reduced-cost enumeration (`_close_gap`) when the generation has
    converged or the gap is at most `_OPEN_GAP`. `start`: (class, pattern) columns to
    begin with, e.g. the incumbent's nodes (they make `at_least` feasible)."""
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
    w = [1.0 if t in counted else 0.0 for t in range(T)]
    homes = [dict(cls.home) for cls in classes]

    def worth(k: int, pattern: tuple[int, ...], v: list[float]) -> float:
        return float(sum(v[t] * a for t, a in enumerate(pattern) if a)
                     + sum(min(pattern[t], h) for t, h in homes[k].items()))

    lp = _Master(types, classes, at_least)
    lp.add([(k, p, worth(k, p, w)) for k, p in columns])
    rhs = np.array([ty.count for ty in types] + [c.size for c in classes] + [-m for _, m in at_least], float)

    def pod_values(u):
        """Each type's value per pod at the row prices u: its weight less its price."""
        val = np.array(w) - u[:T]
        for (s, _), uq in zip(at_least, u[T + K:]):
            for t in s:
                val[t] += uq
        return val

    def price(u):
        """Columns with a positive reduced cost at the row prices u >= 0, and the Lagrangian bound at u:
        rhs.u + sum_k N_k max(0, the best reduced cost in class k), valid for any u >= 0."""
        val, slack, new = pod_values(u), 0.0, []
        values = val.tolist()
        priced = _price_all(types, classes, val, u[T:T + K], deadline) if K > 1 else None
        if priced is None:
            priced = [_price(types, k, cls, val, deadline, floor=u[T + k]) for k, cls in enumerate(classes)]
        for k, (cls, (patterns, upper)) in enumerate(zip(classes, priced)):
            slack += cls.size * max(0.0, upper - u[T + k])
            for pattern in patterns:
                if worth(k, pattern, values) - u[T + k] > 1e-9 and add(k, pattern):
                    new.append((k, pattern, worth(k, pattern, w)))
        return new, float(rhs @ u) + slack

    best, center = math.inf, None
    began = time.monotonic()
    ip_deadline, deadline = deadline, time.monotonic() + 0.75 * (deadline - time.monotonic())
    while time.monotonic() < deadline:
        out.iterations += 1
        solved = lp.solve(deadline)
        if solved is None:
            break
        u_lp = np.maximum(0.0, -solved[1])
        # Wentges smoothing: price at a point between the LP duals and the best-bound duals so far,
        # which damps the duals' oscillation; only the LP duals themselves can prove convergence
        u = u_lp if center is None or not _SMOOTHING else _SMOOTHING * center + (1 - _SMOOTHING) * u_lp
        new, lagrangian = price(u)
        tried = [(lagrangian, u)]
        if not new and u is not u_lp:  # mispricing: try the LP duals
            new, lagrangian = price(u_lp)
            tried.append((lagrangian, u_lp))
        for lagrangian, at in tried:
            if lagrangian < best:
                best, center = lagrangian, at
        out.bound = _proven(best)
        lp.add(new)
        if out.bound <= target or not new:
            out.converged = not new
            break
    out.stats["columns"] = len(columns)
    out.stats["generation_s"] = round(time.monotonic() - began, 3)
    if out.bound is not None and out.bound <= target:
        return out  # the incumbent is proven optimal: no packing needed

    def solve_packing(until: float, at_least_worth=None, excluded=()):
        value, y, upper = lp.solve_integer(max(until, time.monotonic() + 0.02), at_least_worth, excluded)
        if y is not None and (out.value is None or value > out.value + 0.5):
            out.value = round(value)
            out.packing = [[] for _ in classes]
            for (k, pattern), n in zip(columns, y):
                if round(n) > 0:
                    out.packing[k].append((pattern, round(n)))
        return upper

    # the generated patterns as an integer program, for a packing
    began = time.monotonic()
    solve_packing(time.monotonic() + _PACKING_SHARE * (ip_deadline - time.monotonic()))
    out.stats["packing_s"] = round(time.monotonic() - began, 3)
    incumbent = max(target, out.value or 0)
    # before convergence only a close bound is worth it: the enumeration would include every pattern
    # still priced positive
    if center is not None and out.bound > incumbent and (out.converged or out.bound - incumbent <= _OPEN_GAP):
        _close_gap(out, classes, types, lp, columns, add, worth, w, pod_values(center), center[T:T + K], best,
                   incumbent, ip_deadline, solve_packing)
    return out


def _close_gap(out, classes, types, lp, columns, add, worth, w, val, floors, lagrangian, incumbent, deadline,
               solve_packing) -> None:
    """Reduced-cost enumeration, top down. At row prices u >= 0 (pod values `val`, class prices
    `floors`), any packing is worth at most L(u) + the sum of its patterns' negative reduced costs,
    so one worth at least v uses only patterns with rc(u) >= -(L(u) - v). For v = the bound, then
    one less, and so on down to the incumbent + 1: enumerate all those patterns and solve the integer
    program for a packing worth at least v over them (the other columns held at 0: reduced-cost
    fixing). A packing found is optimal (the levels above had none); none found lowers the bound to
    v - 1. Near the LP bound the sets are small; it stops when one passes `_ENUMERATION_LIMIT`
    patterns, at half the time left for the enumerations, or when an integer program runs out of time."""
    values = val.tolist()
    began = time.monotonic()
    stop = began + 0.5 * (deadline - began)
    out.stats["closed"], out.stats["enumerated"], out.stats["levels"] = False, 0, 0

    def enumerate_level(gap: float) -> bool:
        """Add every pattern with rc >= -gap as a column; False when there are too many or no time."""
        found_here = 0
        for k, cls in enumerate(classes):
            found, _, complete = _Knapsack(types, k, cls, val, every_item=True).search(
                floors[k] - gap - 1e-7, stop, enumerate_all=True, limit=_ENUMERATION_LIMIT - found_here)
            if not complete:
                out.stats["enumeration_stop"] = "time" if time.monotonic() > stop else "size"
                return False
            found_here += len(found)
            lp.add([(k, pattern, worth(k, pattern, w)) for pattern in found if add(k, pattern)])
        out.stats["enumerated"] = max(out.stats["enumerated"], found_here)
        return True

    level = out.bound
    while level > incumbent:
        gap = lagrangian + _ROUNDING - level  # >= 0 however L was rounded into the bound (`_proven`)
        if not enumerate_level(gap):
            break
        out.stats["levels"] += 1
        excluded = [c for c, (k, p) in enumerate(columns) if worth(k, p, values) - floors[k] < -gap - 1e-7]
        upper = solve_packing(deadline, level, excluded)
        if out.value is not None and out.value >= level:  # optimal: the levels above had no packing
            out.stats["closed"] = True
            break
        if upper is None:  # out of time, no bound
            break
        if _proven(upper) >= level:  # out of time, with the integer program's own bound
            out.bound = min(out.bound, _proven(upper))
            break
        out.bound = level = level - 1  # no packing worth `level`
        out.stats["closed"] = level <= incumbent
    out.stats["enumeration_s"] = round(time.monotonic() - began, 3)


class _Master:
    """The restricted master in HiGHS, kept between iterations: new columns join a solved model, so
    each LP solve restarts from the last basis instead of from scratch. Rows: pods per type <= count,
    patterns per class <= nodes in it, and -(pods of each `at_least` set) <= -its minimum."""

    def __init__(self, types: list[PodType], classes: list[NodeClass], at_least):
        import highspy
        import numpy as np

        self.T, self.K = len(types), len(classes)
        self.at_least = [sorted(s) for s, _ in at_least]
        self.worth_row = None  # index of the "worth at least" row of `solve_integer`, while there is one
        self.h = highspy.Highs()
        self.h.setOptionValue("output_flag", False)
        upper = [ty.count for ty in types] + [c.size for c in classes] + [-m for _, m in at_least]
        self.h.addRows(len(upper), np.full(len(upper), -highspy.kHighsInf), np.array(upper, dtype=float),
                       0, np.array([], dtype=np.int32), np.array([], dtype=np.int32), np.array([]))

    def add(self, columns) -> None:
        """Columns as (class, pattern, value) triples."""
        import highspy
        import numpy as np

        if not columns:
            return
        starts, index, coef = [], [], []
        for k, pattern, _ in columns:
            starts.append(len(index))
            rows = {t: float(a) for t, a in enumerate(pattern) if a}
            rows[self.T + k] = 1.0
            for q, s in enumerate(self.at_least):
                if (a := sum(pattern[t] for t in s)):
                    rows[self.T + self.K + q] = -float(a)
            index += rows
            coef += rows.values()
        n = len(columns)
        self.h.addCols(n, np.array([-value for *_, value in columns]), np.zeros(n), np.full(n, highspy.kHighsInf),
                       len(index), np.array(starts, dtype=np.int32), np.array(index, dtype=np.int32),
                       np.array(coef))

    def solve(self, deadline: float):
        """(LP value, row duals: <= 0 for binding rows), or None on failure."""
        import highspy
        import numpy as np

        self.h.setOptionValue("time_limit", max(0.01, deadline - time.monotonic()))
        self.h.run()
        if self.h.getModelStatus() != highspy.HighsModelStatus.kOptimal:
            return None
        return -self.h.getInfo().objective_function_value, np.array(self.h.getSolution().row_dual)

    def solve_integer(self, deadline: float, at_least_worth: int | None = None, excluded=()):
        """The integer program over the columns so far (integer from then on), optionally only for
        packings worth at least `at_least_worth` and without the `excluded` columns: (value, y) of
        the best packing found or (None, None), and a proven upper bound on the packings sought
        (`at_least_worth - 1` when there are none), or None."""
        import highspy
        import numpy as np

        n = self.h.getNumCol()
        every = np.arange(n, dtype=np.int32)
        self.h.changeColsIntegrality(n, every, np.full(n, highspy.HighsVarType.kInteger))
        self.h.changeColsBounds(n, every, np.zeros(n), np.full(n, highspy.kHighsInf))
        if self.worth_row is not None:  # the row of an earlier call: new columns join it, its bound may change
            self.h.deleteRows(1, np.array([self.worth_row], dtype=np.int32))
            self.worth_row = None
        if at_least_worth is not None:  # worth = -cost, integer valued
            cost = np.array(self.h.getLp().col_cost_)
            self.worth_row = self.h.getNumRow()
            self.h.addRow(-highspy.kHighsInf, -(at_least_worth - 0.5), n, every, cost)
        if len(excluded):
            self.h.changeColsBounds(len(excluded), np.array(excluded, dtype=np.int32), np.zeros(len(excluded)),
                                    np.zeros(len(excluded)))
        # HiGHS's presolve ignores the time limit on thousands of general integers (measured: 2.2 s
        # for 0.3 s asked, 13,000 columns, 20 rows)
        self.h.setOptionValue("presolve", "off")
        self.h.setOptionValue("time_limit", max(0.01, deadline - time.monotonic()))
        self.h.run()
        if at_least_worth is not None and self.h.getModelStatus() == highspy.HighsModelStatus.kInfeasible:
            return None, None, at_least_worth - 1
        info = self.h.getInfo()
        upper = -info.mip_dual_bound if abs(info.mip_dual_bound) < highspy.kHighsInf else None
        if info.primal_solution_status != highspy.SolutionStatus.kSolutionStatusFeasible:
            return None, None, upper
        return -info.objective_function_value, np.array(self.h.getSolution().col_value), upper


def _price(types: list[PodType], k: int, cls: NodeClass, val, deadline: float, floor: float = 0.0):
    """The most valuable patterns of class k at pod values `val` (a pod kept home worth one more).

    Only patterns worth more than `floor` are sought (the master's columns of class k are worth it
    already, so nothing below it is a column). Returns (patterns, an upper bound on max(floor, the best
    pattern's value)), the patterns best first: the last few incumbents of the search, extra columns
    for the master at no cost. The bound is the best value when the search finished, else (`deadline`
    hit) the root's fractional bound."""
    knapsack = _Knapsack(types, k, cls, val)
    patterns, best, complete = knapsack.search(max(floor, 0.0), deadline)
    upper = best if complete else max(floor, knapsack.root_bound())
    return patterns[::-1], upper + knapsack.tol


def _price_all(types: list[PodType], classes: list[NodeClass], val, floors, deadline: float):
    """`_price` for every class at once: their breadth-first searches run level by level in the same
    arrays (a pattern row carries its class), so the numpy calls per level do not grow with the number
    of classes; the moves tier has a class per node. Returns [(patterns, upper)] per class, the same
    as `_price`, or None when the patterns kept pass `_MAX_STATES` times the classes (at most 8): each
    class then searches alone."""
    import numpy as np

    ks = [_Knapsack(types, k, cls, val) for k, cls in enumerate(classes)]
    K, n, R = len(ks), max(kn.n for kn in ks), len(classes[0].capacity)
    bar = np.array([max(f, 0.0) for f in floors])
    if n == 0:
        return [([], b + kn.tol) for b, kn in zip(bar, ks)]
    V, SUR, VPART = np.zeros((K, n + 1)), np.zeros((K, n + 1)), np.zeros((K, n + 1))
    U, SURAT = np.zeros((K, n + 1), dtype=np.int64), np.ones((K, n + 1))
    REACH, GAIN = np.zeros((K, n + 1)), np.zeros((K, n + 1))
    Q = np.zeros((K, n + 1, R), dtype=np.int64)
    rem0 = np.full((K, R), np.iinfo(np.int64).max // 4, dtype=np.int64)  # resources left out: no limit
    TI = np.zeros((K, 2, len(types)), dtype=np.int64)
    for c, kn in enumerate(ks):
        m = kn.n
        V[c, :m], U[c, :m], SUR[c, :m] = kn.V, kn.U, kn.sur
        Q[c, :m][:, kn.resources] = kn.Q
        rem0[c, kn.resources] = kn.capacity
        padded = np.minimum(np.arange(n + 1), m)  # past its own items, a class's prefix sums stay put
        REACH[c], GAIN[c] = kn.reach[padded], kn.gain[padded]
        VPART[c, :m + 1], SURAT[c, :m + 1] = kn.v_part, kn.sur_at
        TI[c] = np.where(kn.type_items == m, n, kn.type_items)
    POS = np.array([kn.positive for kn in ks])
    offset = float(REACH.max()) + max(kn.room for kn in ks) + 1.0
    flat = (REACH + np.arange(K)[:, None] * offset).ravel()  # one sorted array: class c's row shifted

    def fractional(i, room, cls):
        ii = np.minimum(i, POS[cls])
        end = REACH[cls, ii] + np.maximum(room, 0.0)
        m = np.searchsorted(flat, end + cls * offset, side="right") - 1 - cls * (n + 1)
        m = np.minimum(np.maximum(m, ii), POS[cls])
        return GAIN[cls, m] - GAIN[cls, ii] + VPART[cls, m] * (end - REACH[cls, m]) / SURAT[cls, m]

    cls = np.arange(K)
    value, room, rem = np.zeros(K), np.array([kn.room for kn in ks]), rem0.copy()
    chosen: list[tuple] = []
    hits: list[tuple] = []  # (item i, parents, counts, classes) of each level's new incumbents
    stored, complete = 0, True
    for i in range(n):
        if time.monotonic() > deadline:
            complete = False
            break
        if stored > _MAX_STATES * min(K, 8):
            return None
        most = U[cls, i]
        Qi = Q[cls, i]
        for r in range(R):
            q = Qi[:, r]
            most = np.where(q > 0, np.minimum(most, rem[:, r] // np.maximum(q, 1)), most)
        parent, count = _branch(most)
        cls = cls[parent]
        value, room = value[parent] + count * V[cls, i], room[parent] - count * SUR[cls, i]
        better = np.flatnonzero(value > bar[cls] + 1e-12)
        if len(better):  # each class's best pattern at this level, if it beats that class's bar
            order = better[np.lexsort((-value[better], cls[better]))]
            _, first = np.unique(cls[order], return_index=True)
            top = order[first]
            bar[cls[top]] = value[top]
            hits.append((i, parent[top], count[top], cls[top]))
        keep = value + fractional(i + 1, room, cls) > bar[cls] + 1e-12
        parent, count, value, room, cls = parent[keep], count[keep], value[keep], room[keep], cls[keep]
        chosen.append((parent.astype(np.int32), count.astype(np.int32)))
        stored += len(parent)
        rem = rem[parent] - count[:, None] * Q[cls, i]
        if not len(value):
            break
    found: list[list[tuple[int, ...]]] = [[] for _ in range(K)]
    if hits:
        counts = _trace_back(chosen, hits, n + 1)
        row_cls = np.concatenate([h[3] for h in hits])
        rows = np.arange(len(counts))[:, None]
        by_type = counts[rows, TI[row_cls, 0]] + counts[rows, TI[row_cls, 1]]
        for c, pattern in zip(row_cls.tolist(), by_type.tolist()):
            found[c].append(tuple(pattern))
    out = []
    for c, kn in enumerate(ks):
        upper = float(bar[c]) if complete else max(floors[c], kn.root_bound())
        out.append((found[c][::-1][:_INCUMBENTS], upper + kn.tol))
    return out


class _Knapsack:
    """The pricing problem of one node class: a bounded knapsack over pod types in several resources.

    Items: per pod type, its pods kept home (worth one more) and the others, capped by count and
    capacity, sorted by value per unit of a surrogate resource sum_r mu_r q_r / c_r. Resources that
    all items together cannot exceed are left out. Search: breadth first over the items, level i
    holding the patterns over items < i still worth extending (numpy arrays, one row per pattern);
    a pattern is dropped when its value plus the fractional knapsack of the remaining items in its
    remaining surrogate capacity cannot beat the bar."""

    def __init__(self, types: list[PodType], k: int, cls: NodeClass, val, every_item: bool = False):
        import numpy as np

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
            kept = min(home.get(t, 0), ub)
            for v, n in ((float(val[t]) + 1.0, kept), (float(val[t]), ub - kept)):
                if n > 0 and (every_item or v > 1e-12):  # else left out: worth at most 1e-12 a pod
                    its.append((t, v, tuple(ty.request[r] for r in R), n))
        self.tol = 1e-9 + sum(ty.count for ty in types) * 1e-12
        binding = [x for x, r in enumerate(R) if sum(it[2][x] * it[3] for it in its) > cap[r]]
        R = [R[x] for x in binding]
        its = [(t, v, tuple(q[x] for x in binding), n) for t, v, q, n in its]
        gains = [it for it in its if it[1] > 0]  # only these matter to a bound
        mu = _surrogate_weights([it[1] for it in gains], [[q / cap[r] for q, r in zip(it[2], R)] for it in gains],
                                [it[3] for it in gains]) if gains else [1.0] * len(R)
        sur = [sum(m * q / cap[r] for m, q, r in zip(mu, it[2], R)) for it in its]
        order = sorted(range(len(its)), key=lambda i: -its[i][1] / sur[i] if sur[i]
                       else (-math.inf if its[i][1] > 0 else math.inf))
        its, sur = [its[i] for i in order], [sur[i] for i in order]
        n = self.n = len(its)
        self.positive = sum(1 for it in its if it[1] > 0)  # the first ones, the only ones a bound takes
        self.V, self.U, self.sur = [it[1] for it in its], [it[3] for it in its], sur
        self.Q = np.array([it[2] for it in its], dtype=np.int64).reshape(n, len(R))
        self.resources, self.capacity, self.room = R, [cap[r] for r in R], float(sum(mu))
        self.reach, self.gain = np.zeros(n + 1), np.zeros(n + 1)  # prefix sums of sur_j U_j and V_j U_j
        self.reach[1:], self.gain[1:] = np.cumsum(np.array(sur) * self.U), np.cumsum(np.array(self.V) * self.U)
        # per item, for the part-filled one of a fractional knapsack (item n: nothing left; a zero
        # size, never part-filled, is 1 to keep the division defined)
        self.v_part, self.sur_at = np.array(self.V + [0.0]), np.array([x or 1.0 for x in sur] + [1.0])
        self.v_part[self.positive:] = 0.0  # items after the positive ones add nothing
        # a type's pods are at most two items (kept home, the others): its count is the sum of the
        # two columns, index n being a column of zeros
        self.type_items = np.full((2, len(types)), n)
        for j, it in enumerate(its):
            self.type_items[int(self.type_items[0, it[0]] < n), it[0]] = j

    def fractional(self, i: int, room):
        """The fractional knapsack of items i.. in each surrogate capacity of the array `room`."""
        import numpy as np

        i = min(i, self.positive)
        end = self.reach[i] + np.maximum(room, 0.0)
        m = np.minimum(np.searchsorted(self.reach, end, side="right") - 1, self.positive)  # i..m-1 whole
        return self.gain[m] - self.gain[i] + self.v_part[m] * (end - self.reach[m]) / self.sur_at[m]

    def root_bound(self) -> float:
        import numpy as np

        return float(self.fractional(0, np.array([self.room]))[0])

    def search(self, bar: float, deadline: float, enumerate_all: bool = False, limit: int = _MAX_STATES):
        """Patterns worth more than `bar`: the last `_INCUMBENTS` incumbents (the bar rising with each),
        or with `enumerate_all` every pattern worth at least `bar` (the bar fixed, none returned if the
        search stops early). Returns (patterns,
        the bar at the end, whether the search finished before `deadline`, having kept at most
        `_MAX_STATES` patterns and found at most `limit`)."""
        import numpy as np

        rem = np.array([self.capacity], dtype=np.int64)
        room, value = np.array([self.room]), np.zeros(1)
        chosen: list[tuple] = []  # per level: (parent, count of item i) of the patterns kept
        stored = 0
        hits: list[tuple] = []  # (item i, parents at level i - 1, counts of item i) of the patterns found
        found = 0

        def result(complete):
            """The patterns of `hits` (only the last `_INCUMBENTS` when not enumerating; none from an
            enumeration cut short, which is of no use), traced back through the levels together."""
            entries = (hits if complete else []) if enumerate_all else hits[-_INCUMBENTS:]
            if not entries:
                return [], bar, complete
            counts = _trace_back(chosen, entries, self.n + 1)
            by_type = counts[:, self.type_items[0]] + counts[:, self.type_items[1]]
            return [tuple(row) for row in by_type.tolist()], bar, complete

        for i in range(self.n):
            if time.monotonic() > deadline or stored > _MAX_STATES or found > limit:
                return result(False)
            most = np.full(len(value), self.U[i], dtype=np.int64)
            for r, q in enumerate(self.Q[i]):
                if q:
                    most = np.minimum(most, rem[:, r] // q)
            parent, count = _branch(most)
            value, room = value[parent] + count * self.V[i], room[parent] - count * self.sur[i]
            if enumerate_all:
                hit = np.nonzero((count > 0) & (value >= bar - 1e-9))[0]
                if len(hit):
                    hits.append((i, parent[hit], count[hit]))
                    found += len(hit)
                keep = value + self.fractional(i + 1, room) >= bar - 1e-9
            else:
                top = int(np.argmax(value))
                if value[top] > bar + 1e-12:
                    bar = float(value[top])
                    hits.append((i, parent[top:top + 1], count[top:top + 1]))
                keep = value + self.fractional(i + 1, room) > bar + 1e-12
            parent, count, value, room = parent[keep], count[keep], value[keep], room[keep]
            chosen.append((parent.astype(np.int32), count.astype(np.int32)))
            stored += len(parent)
            rem = rem[parent] - count[:, None] * self.Q[i]
            if not len(value):
                break
        return result(found <= limit)


def _branch(most):
    """One breadth-first level: pattern p branches into counts 0..most[p] of the next item. Returns
    (parent, count) per child, the children of each pattern together and in order."""
    import numpy as np

    parent = np.repeat(np.arange(len(most)), most + 1)
    return parent, np.arange(len(parent)) - np.repeat(np.cumsum(most + 1) - (most + 1), most + 1)


def _trace_back(chosen: list[tuple], hits: list[tuple], width: int):
    """Item counts `[patterns, width]` of the patterns found by a breadth-first search: `hits` holds,
    in level order, (level i, parents at level i - 1, counts of item i, ...) and `chosen` the
    (parent, count) arrays of the patterns kept at each level. All are traced back together, level by
    level: going down, the patterns traced so far are a suffix of the rows."""
    import numpy as np

    first = np.concatenate([[0], np.cumsum([len(h[1]) for h in hits])])
    counts = np.zeros((int(first[-1]), width), dtype=np.int64)
    parent = np.zeros(len(counts), dtype=np.int64)
    lo, e = len(counts), len(hits) - 1
    for level in range(hits[-1][0], -1, -1):
        if lo < len(counts):
            parents, level_counts = chosen[level]
            back = parent[lo:]
            counts[lo:, level] = level_counts[back]
            parent[lo:] = parents[back]
        while e >= 0 and hits[e][0] == level:
            lo = int(first[e])
            parent[lo:first[e + 1]], counts[lo:first[e + 1], level] = hits[e][1], hits[e][2]
            e -= 1
    return counts


def _surrogate_weights(values, sizes, counts):
    """Weights mu >= 0 (summing to 1) of the resources for the surrogate constraint
    sum_r mu_r q_r / c_r <= 1 whose fractional knapsack bound is lowest, searched on a grid over each
    pair of resources (with two resources, the best weights make it the LP relaxation of the whole
    knapsack; the grid comes close). Any weights >= 0 give a valid bound."""
    import numpy as np

    R = len(sizes[0]) if sizes else 0
    if R <= 1:
        return [1.0] * R
    v, q, u = np.array(values), np.array(sizes), np.array(counts, dtype=float)
    grid = np.linspace(0.0, 1.0, 21)
    candidates = []
    for a in range(R):
        for b in range(a + 1, R):
            mus = np.zeros((len(grid), R))
            mus[:, a], mus[:, b] = grid, 1.0 - grid
            candidates.append(mus)
    mus = np.vstack([np.full((1, R), 1.0 / R)] + candidates)  # [M, R]
    s = mus @ q.T  # [M, n] surrogate size of each item
    ratio = np.where(s > 0, v / np.maximum(s, 1e-300), np.inf)
    order = np.argsort(-ratio, axis=1)
    ss = np.take_along_axis(s * u, order, axis=1)
    vv = np.take_along_axis(np.broadcast_to(v * u, s.shape), order, axis=1)
    reach = np.cumsum(ss, axis=1)
    whole = reach <= 1.0 + 1e-12
    before = np.concatenate([np.zeros((len(mus), 1)), reach[:, :-1]], axis=1)
    part = np.where(~whole & (before < 1.0), vv * (1.0 - before) / np.maximum(ss, 1e-300), 0.0)
    bound = (vv * whole).sum(axis=1) + part.sum(axis=1)
    return list(mus[int(np.argmin(bound))])

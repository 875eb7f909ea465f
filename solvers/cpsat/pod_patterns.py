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
solved as an integer program, give a packing. When the bound is still above it, every pattern whose
reduced cost could belong to a better packing is enumerated; the integer program over them is then
exact, and either finds the better packing or proves the incumbent optimal.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

_MAX_STATES = 500_000  # a search that has kept more patterns (8 bytes each) gives up
_ENUMERATION_GAP = 2.0  # enumerate the patterns that may close the gap when the bound is this close
_ENUMERATION_LIMIT = 20_000  # ... and give up when there are more
_SMOOTHING = 0.5  # weight of the best-bound duals in the pricing point (0: plain Kelley column generation)


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
    above it, the gap is closed by enumeration when it is small. `start`: (class, pattern) columns to
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
    w = np.array([1.0 if t in counted else 0.0 for t in range(T)])
    homes = [dict(cls.home) for cls in classes]

    def worth(k: int, pattern: tuple[int, ...], v) -> float:
        return float(sum(v[t] * a for t, a in enumerate(pattern) if a)
                     + sum(min(pattern[t], h) for t, h in homes[k].items()))

    lp = _Master(types, classes, at_least)
    lp.add([(k, p, worth(k, p, w)) for k, p in columns])
    rhs = np.array([ty.count for ty in types] + [c.size for c in classes] + [-m for _, m in at_least], float)

    def pod_values(u):
        """Each type's value per pod at the row prices u: its weight less its price."""
        val = w - u[:T]
        for (s, _), uq in zip(at_least, u[T + K:]):
            for t in s:
                val[t] += uq
        return val

    def price(u):
        """Columns with a positive reduced cost at the row prices u >= 0, and the Lagrangian bound at u:
        rhs.u + sum_k N_k max(0, the best reduced cost in class k), valid for any u >= 0."""
        val, slack, new = pod_values(u), 0.0, []
        for k, cls in enumerate(classes):
            patterns, upper = _price(types, k, cls, val, deadline, floor=u[T + k])
            slack += cls.size * max(0.0, upper - u[T + k])
            for pattern in patterns:
                if worth(k, pattern, val) - u[T + k] > 1e-9 and add(k, pattern):
                    new.append((k, pattern, worth(k, pattern, w)))
        return new, float(rhs @ u) + slack

    best, center = math.inf, None
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
        out.bound = math.floor(best + 1e-6)
        lp.add(new)
        if out.bound <= target or not new:
            out.converged = not new
            break
    out.stats["columns"] = len(columns)
    if out.bound is not None and out.bound <= target:
        return out  # the incumbent is proven optimal: no packing needed

    def solve_packing(until: float, better_than=None, excluded=()):
        value, y, upper = lp.solve_integer(max(until, time.monotonic() + 0.02), better_than, excluded)
        if y is not None and (out.value is None or value > out.value + 0.5):
            out.value = round(value)
            out.packing = [[] for _ in classes]
            for (k, pattern), n in zip(columns, y):
                if round(n) > 0:
                    out.packing[k].append((pattern, round(n)))
        return upper

    solve_packing(time.monotonic() + 0.4 * (ip_deadline - time.monotonic()))
    incumbent = max(target, out.value or 0)
    if center is not None and best - incumbent - 1 < _ENUMERATION_GAP and out.bound > incumbent:
        # Reduced-cost enumeration: at row prices u >= 0, any packing y is worth at most
        # L(u) + sum_{p: rc_p(u) < 0} rc_p(u) y_p (the positive reduced costs are in L), so one worth
        # more than the incumbent (at least incumbent + 1) uses only patterns with
        # rc_p(u) >= -(L(u) - incumbent - 1). With all of them, the integer program is exact for every
        # better packing, and its dual bound a proof.
        gap, val = best - incumbent - 1, pod_values(center)
        closed, left = True, _ENUMERATION_LIMIT
        began = time.monotonic()
        stop = began + 0.5 * (ip_deadline - began)
        for k, cls in enumerate(classes):
            found, _, complete = _Knapsack(types, k, cls, val, every_item=True).search(
                center[T + k] - gap - 1e-7, stop, enumerate_all=True, limit=left)
            if not complete:
                closed = False
                out.stats["enumeration_stop"] = "time" if time.monotonic() > stop else "size"
                break
            left -= len(found)
            lp.add([(k, pattern, worth(k, pattern, w)) for pattern in found if add(k, pattern)])
        out.stats["closed"], out.stats["enumerated"] = closed, _ENUMERATION_LIMIT - left
        out.stats["enumeration_s"] = round(time.monotonic() - began, 3)
        if closed:  # ... and the others cannot be in a better packing (reduced-cost fixing)
            excluded = [c for c, (k, p) in enumerate(columns) if worth(k, p, val) - center[T + k] < -gap - 1e-7]
            upper = solve_packing(ip_deadline, incumbent, excluded)
            if upper is not None:
                out.bound = min(out.bound, max(incumbent, math.floor(upper + 1e-6)))
    return out


class _Master:
    """The restricted master in HiGHS, kept between iterations: new columns join a solved model, so
    each LP solve restarts from the last basis instead of from scratch. Rows: pods per type <= count,
    patterns per class <= nodes in it, and -(pods of each `at_least` set) <= -its minimum."""

    def __init__(self, types: list[PodType], classes: list[NodeClass], at_least):
        import highspy
        import numpy as np

        self.T, self.K = len(types), len(classes)
        self.at_least = [sorted(s) for s, _ in at_least]
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

    def solve_integer(self, deadline: float, better_than: float | None = None, excluded=()):
        """The integer program over the columns so far (integer from then on), optionally only for
        packings worth more than `better_than` (an integer) and without the `excluded` columns:
        (value, y) of the best packing found or (None, None), and a proven upper bound on the
        packings sought (`better_than` itself when there are none), or None."""
        import highspy
        import numpy as np

        n = self.h.getNumCol()
        self.h.changeColsIntegrality(n, np.arange(n, dtype=np.int32),
                                     np.full(n, highspy.HighsVarType.kInteger))
        if better_than is not None:  # values are integers: worth more means at least better_than + 1
            cost = np.array(self.h.getLp().col_cost_)
            self.h.addRow(-highspy.kHighsInf, -(better_than + 0.5), n, np.arange(n, dtype=np.int32), cost)
        if len(excluded):
            self.h.changeColsBounds(len(excluded), np.array(excluded, dtype=np.int32), np.zeros(len(excluded)),
                                    np.zeros(len(excluded)))
        # HiGHS's presolve ignores the time limit on thousands of general integers (measured: 2.2 s
        # for 0.3 s asked, 13,000 columns, 20 rows)
        self.h.setOptionValue("presolve", "off")
        self.h.setOptionValue("time_limit", max(0.01, deadline - time.monotonic()))
        self.h.run()
        if better_than is not None and self.h.getModelStatus() == highspy.HighsModelStatus.kInfeasible:
            return None, None, better_than
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
    return patterns[::-1][:6], upper + knapsack.tol


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
        self.capacity, self.room = [cap[r] for r in R], float(sum(mu))
        self.reach, self.gain = np.zeros(n + 1), np.zeros(n + 1)  # prefix sums of sur_j U_j and V_j U_j
        self.reach[1:], self.gain[1:] = np.cumsum(np.array(sur) * self.U), np.cumsum(np.array(self.V) * self.U)
        # per item, for the part-filled one of a fractional knapsack (item n: nothing left; a zero
        # size, never part-filled, is 1 to keep the division defined)
        self.v_at, self.sur_at = np.array(self.V + [0.0]), np.array([x or 1.0 for x in sur] + [1.0])
        self.to_types = np.zeros((n, len(types)), dtype=np.int64)
        for j, it in enumerate(its):
            self.to_types[j, it[0]] = 1

    def fractional(self, i: int, room):
        """The fractional knapsack of items i.. in each surrogate capacity of the array `room`."""
        import numpy as np

        i = min(i, self.positive)
        end = self.reach[i] + np.maximum(room, 0.0)
        m = np.clip(np.searchsorted(self.reach, end, side="right") - 1, i, self.positive)  # i..m-1 whole
        part = np.where(m < self.positive, self.v_at[m] * (end - self.reach[m]) / self.sur_at[m], 0.0)
        return self.gain[m] - self.gain[i] + part

    def root_bound(self) -> float:
        import numpy as np

        return float(self.fractional(0, np.array([self.room]))[0])

    def search(self, bar: float, deadline: float, enumerate_all: bool = False, limit: int = _MAX_STATES):
        """Patterns worth more than `bar`: the successive incumbents (the bar rising with each), or with
        `enumerate_all` every pattern worth at least `bar` (the bar fixed). Returns (patterns, the bar
        at the end, whether the search finished before `deadline`, having kept at most `_MAX_STATES`
        patterns and found at most `limit`)."""
        import numpy as np

        rem = np.array([self.capacity], dtype=np.int64)
        room, value = np.array([self.room]), np.zeros(1)
        chosen: list[tuple] = []  # per level: (parent, count of item i) of the patterns kept
        stored = 0
        found: list[tuple[int, ...]] = []

        def trace(i, parent, count):
            counts = np.zeros((len(parent), self.n), dtype=np.int64)
            counts[:, i] = count
            for level in range(i - 1, -1, -1):
                parents, level_counts = chosen[level]
                counts[:, level] = level_counts[parent]
                parent = parents[parent]
            return [tuple(map(int, row)) for row in counts @ self.to_types]

        for i in range(self.n):
            if time.monotonic() > deadline or stored > _MAX_STATES or len(found) > limit:
                return found, bar, False
            most = np.full(len(value), self.U[i], dtype=np.int64)
            for r, q in enumerate(self.Q[i]):
                if q:
                    most = np.minimum(most, rem[:, r] // q)
            parent = np.repeat(np.arange(len(value)), most + 1)
            count = np.arange(len(parent)) - np.repeat(np.cumsum(most + 1) - (most + 1), most + 1)
            value, room = value[parent] + count * self.V[i], room[parent] - count * self.sur[i]
            if enumerate_all:
                hit = np.nonzero((count > 0) & (value >= bar - 1e-9))[0]
                if len(hit):
                    found += trace(i, parent[hit], count[hit])
                keep = value + self.fractional(i + 1, room) >= bar - 1e-9
            else:
                top = int(np.argmax(value))
                if value[top] > bar + 1e-12:
                    bar = float(value[top])
                    found += trace(i, parent[top:top + 1], count[top:top + 1])
                keep = value + self.fractional(i + 1, room) > bar + 1e-12
            parent, count, value, room = parent[keep], count[keep], value[keep], room[keep]
            chosen.append((parent.astype(np.int32), count.astype(np.int32)))
            stored += len(parent)
            rem = rem[parent] - count[:, None] * self.Q[i]
            if not len(value):
                break
        return found, bar, len(found) <= limit


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

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
packing (Lagrangian bound), so the bound holds before convergence too. A packing comes from a dive
(the LP's whole columns fixed, the pods and nodes left solved by the same column generation), else
from the generated patterns solved as an integer program. When the bound is still above it, the gap is closed
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
_FIXING_SHARE = (
    0.7  # of the time left after the generation, first for the dive (`_fix_and_regenerate`)
)
_OPEN_GAP = (
    2  # the gap closing starts before the generation has converged only this close to the incumbent
)
_SMOOTHING = (
    0.5  # weight of the best-bound duals in the pricing point (0: plain Kelley column generation)
)
_SURROGATE_GRID = 21  # weights tried per pair of resources for a knapsack's surrogate constraint
_DIVE_STEPS = 200  # LP solves of a rounding dive at most
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


def pattern_bound(
    types: list[PodType],
    classes: list[NodeClass],
    counted: set[int],
    at_least: list[tuple[set[int], int]],
    target: int,
    deadline: float,
    start: list[tuple[int, tuple[int, ...]]] = (),
) -> PatternResult:
    """Column generation for `max sum_{t in counted} x_t` (plus the pods kept home, for classes with a
    `home`) subject to `at_least`; stops at convergence, at three quarters of the time to `deadline`
    (`time.monotonic()`), or once the bound reaches `target` (the incumbent's worth: a proof). Then
    a packing: by diving (`_fix_and_regenerate`: the LP's whole columns fixed, the rest solved by this
    function in turn), then from the generated patterns as an integer program, and, if the bound is
    still above it, by closing the gap with reduced-cost enumeration (`_close_gap`) when the
    generation has converged or the gap is at most `_OPEN_GAP`. `start`: (class, pattern) columns to
    begin with, e.g. the incumbent's nodes (they make `at_least` feasible)."""
    # kept whole (182 lines): one column-generation loop: master LP, pricing and the integer program
    # share its columns and duals
    import numpy as np

    T, K = len(types), len(classes)
    columns = _Columns(classes, T)
    R = len(types[0].request) if types else len(classes[0].capacity) if classes else 0
    req = np.array([ty.request for ty in types], dtype=float).reshape(T, R)
    cap = np.array(
        [[np.inf if c is None else c for c in cls.capacity] for cls in classes], dtype=float
    ).reshape(K, R)
    fits = (req[None, :, :] <= cap[:, None, :]).all(axis=2)  # [class, type]
    on = np.array([[k in ty.classes for k in range(K)] for ty in types], dtype=bool).reshape(T, K)
    left = np.array(
        [ty.count > 0 for ty in types], dtype=bool
    )  # a dive's rest may have types used up
    alone_t, alone_k = np.nonzero(fits.T & on & left[:, None])  # type by type
    alone = np.zeros((len(alone_k), T), dtype=np.int64)
    alone[np.arange(len(alone_k)), alone_t] = 1
    ks0, A0 = _arrays(start, T)
    # the incumbents' nodes, one pod of each type alone
    first = columns.new(np.concatenate([ks0, alone_k]), np.concatenate([A0, alone]))
    out = PatternResult(bound=None)
    if not len(columns):
        out.bound, out.converged = 0, True
        return out
    w = np.array([1.0 if t in counted else 0.0 for t in range(T)])
    lp = _Master(types, classes, at_least)
    lp.add(*first, columns.worth(*first, w))
    rhs = np.array(
        [ty.count for ty in types] + [c.size for c in classes] + [-m for _, m in at_least], float
    )

    def pod_values(u):
        """Each type's value per pod at the row prices u: its weight less its price."""
        val = np.array(w) - u[:T]
        for (s, _), uq in zip(at_least, u[T + K :]):
            for t in s:
                val[t] += uq
        return val

    def price(u):
        """Columns with a positive reduced cost at the row prices u >= 0, and the Lagrangian bound at u:
        rhs.u + sum_k N_k max(0, the best reduced cost in class k), valid for any u >= 0."""
        val, slack, found = pod_values(u), 0.0, []
        priced = _price_all(types, classes, val, u[T : T + K], deadline) if K > 1 else None
        if priced is None:
            priced = [
                _price(types, k, cls, val, deadline, floor=u[T + k])
                for k, cls in enumerate(classes)
            ]
        for k, (cls, (patterns, upper)) in enumerate(zip(classes, priced)):
            slack += cls.size * max(0.0, upper - u[T + k])
            found += [(k, pattern) for pattern in patterns]
        new = columns.new(
            *_arrays(found, T), lambda ks, A: columns.worth(ks, A, val) - u[T + ks] > 1e-9
        )
        return new, float(rhs @ u) + slack

    best, center = math.inf, None

    def generate(until: float, goal: int) -> None:
        """Rounds of pricing until `until`, convergence, or a bound of at most `goal`."""
        nonlocal best, center
        began = time.monotonic()
        while time.monotonic() < until:
            out.iterations += 1
            solved = lp.solve(until)
            if solved is None:
                break
            u_lp = np.maximum(0.0, -solved[1])
            # Wentges smoothing: price at a point between the LP duals and the best-bound duals so far,
            # which damps the duals' oscillation; only the LP duals themselves can prove convergence
            u = (
                u_lp
                if center is None or not _SMOOTHING
                else _SMOOTHING * center + (1 - _SMOOTHING) * u_lp
            )
            new, lagrangian = price(u)
            tried = [(lagrangian, u)]
            if not len(new[0]) and u is not u_lp:  # mispricing: try the LP duals
                new, lagrangian = price(u_lp)
                tried.append((lagrangian, u_lp))
            for lagrangian, at in tried:
                if lagrangian < best:
                    best, center = lagrangian, at
            out.bound = _proven(best)
            lp.add(*new, columns.worth(*new, w))
            if out.bound <= goal or not len(new[0]):
                out.converged = not len(new[0])
                break
        out.stats["columns"] = len(columns)
        out.stats["generation_s"] = round(
            out.stats.get("generation_s", 0.0) + time.monotonic() - began, 3
        )

    ip_deadline = deadline
    generate(time.monotonic() + 0.75 * (deadline - time.monotonic()), target)
    if out.bound is None or out.bound <= target:
        # the incumbent is proven optimal: no packing needed; or no pricing round finished, and an
        # integer program over the start columns alone would only recombine the start placements
        # (on the moves tier of kwok_nodes64_pods512_prio4_util095_r1 at 1 s: 13,592 columns, 0.13 s
        # of HiGHS, past the deadline)
        return out

    def solve_packing(until: float, at_least_worth=None, excluded=None):
        if time.monotonic() >= until:  # HiGHS's setup alone overran: 0.15 s on 12,610 columns
            return None
        value, y, upper = lp.solve_integer(
            max(until, time.monotonic() + 0.02), at_least_worth, excluded
        )
        if y is not None and (out.value is None or value > out.value + 0.5):
            out.value = round(value)
            out.packing = [[] for _ in classes]
            for c in np.flatnonzero(np.round(y) > 0):
                out.packing[columns.ks[c]].append((columns.pattern(c), round(y[c])))
        return upper

    began = time.monotonic()
    _fix_and_regenerate(
        out,
        lp,
        columns,
        types,
        classes,
        counted,
        at_least,
        w,
        target,
        time.monotonic() + _FIXING_SHARE * (ip_deadline - time.monotonic()),
    )
    if out.value is not None and out.value < out.bound and not out.converged:
        # a packing to prove: the generation goes on until its bound meets it
        generate(time.monotonic() + 0.75 * (ip_deadline - time.monotonic()), out.value)
        if out.bound <= out.value:
            return out
    # the generated patterns as an integer program, for a packing: first one worth the bound (optimal;
    # the tight row helps HiGHS), then, if there is none and time is left, any better than the incumbent
    until = time.monotonic() + _PACKING_SHARE * (ip_deadline - time.monotonic())
    if out.value is None or out.value < out.bound:
        solve_packing(until, out.bound)
    if out.value is None and out.bound > target + 1 and time.monotonic() < until:
        solve_packing(until, target + 1)
    out.stats["packing_s"] = round(time.monotonic() - began, 3)
    incumbent = max(target, out.value or 0)
    # before convergence only a close bound is worth it: the enumeration would include every pattern
    # still priced positive
    if (
        center is not None
        and out.bound > incumbent
        and (out.converged or out.bound - incumbent <= _OPEN_GAP)
    ):
        _close_gap(
            out,
            classes,
            types,
            lp,
            columns,
            w,
            pod_values(center),
            center[T : T + K],
            best,
            incumbent,
            ip_deadline,
            solve_packing,
        )
    return out


def _fix_and_regenerate(
    out, lp, columns, types, classes, counted, at_least, w, target, deadline
) -> None:
    """A packing by diving with column generation: the LP's whole columns (floor y) are fixed, and
    the pods and nodes they leave are packed by a column generation of their own (`pattern_bound`,
    which fixes again in turn), started from the LP's fractional rest. The restricted integer
    program lacks the patterns that complete a packing; the rest's generation finds them. On the
    moves tier of n32/ppn4/K2/util 0.95 at 1 s the LP fixes 25 of 32 nodes and the rest's gap closing
    finds the packing worth the bound (13 moves; the run had ended at 35 before). Sets `out`'s packing
    if the one found is worth more than `target` (the incumbent's worth; `out` has no packing yet)."""
    import numpy as np

    y = lp.values(deadline)
    if y is None:
        return
    ks, A = columns.matrix()
    fixed = np.floor(y + 1e-6)
    rest = np.flatnonzero(y - fixed > 1e-6)
    if not fixed.any() or not len(rest):
        # nothing whole (rounding the largest column up instead: 5 of 16 scenarios proven at 1 s, not
        # 6), or the LP is integral: the integer program takes it as it is
        return
    counts = np.array([ty.count for ty in types]) - (fixed @ A).astype(np.int64)
    sizes = np.array([c.size for c in classes]) - np.bincount(
        ks, fixed, minlength=len(classes)
    ).astype(np.int64)
    if (counts < 0).any() or (sizes < 0).any():  # an LP value past its bound by the tolerance
        return
    worth_fixed = round(float(fixed @ columns.worth(ks, A, w)))
    kept = np.flatnonzero(sizes > 0)
    new_index = {int(k): i for i, k in enumerate(kept)}
    sub_types = [
        PodType(ty.request, int(c), frozenset(new_index[k] for k in ty.classes if k in new_index))
        for ty, c in zip(types, counts)
    ]
    sub_classes = [NodeClass(classes[k].capacity, int(sizes[k]), classes[k].home) for k in kept]
    sub_at_least = [(s, m - int(fixed @ A[:, sorted(s)].sum(axis=1))) for s, m in at_least]
    start = [(new_index[int(ks[c])], tuple(int(a) for a in A[c])) for c in rest]
    sub = pattern_bound(
        sub_types,
        sub_classes,
        counted,
        [q for q in sub_at_least if q[1] > 0],
        target - worth_fixed,
        deadline,
        start,
    )
    out.stats["fixed"] = int(fixed.sum())
    if sub.packing is None or sub.value + worth_fixed <= target:
        return
    out.value = sub.value + worth_fixed
    out.packing = [[] for _ in classes]
    for c in np.flatnonzero(fixed):
        out.packing[ks[c]].append((columns.pattern(c), int(fixed[c])))
    for k, used in zip(kept, sub.packing):
        out.packing[k] += used


def _close_gap(
    out, classes, types, lp, columns, w, val, floors, lagrangian, incumbent, deadline, solve_packing
) -> None:
    """Reduced-cost enumeration, top down. At row prices u >= 0 (pod values `val`, class prices
    `floors`), any packing is worth at most L(u) + the sum of its patterns' negative reduced costs,
    so one worth at least v uses only patterns with rc(u) >= -(L(u) - v). For v = the bound, then
    one less, and so on down to the incumbent + 1: enumerate all those patterns and solve the integer
    program for a packing worth at least v over them (the other columns held at 0: reduced-cost
    fixing). A packing found is optimal (the levels above had none); none found lowers the bound to
    v - 1. Near the LP bound the sets are small; it stops when one passes `_ENUMERATION_LIMIT`
    patterns, at half the time left for the enumerations, or when an integer program runs out of time."""
    import numpy as np

    began = time.monotonic()
    stop = began + 0.5 * (deadline - began)
    out.stats["closed"], out.stats["enumerated"], out.stats["levels"] = False, 0, 0
    items = _Items(types, list(enumerate(classes)), val, every_item=True)

    def enumerate_level(gap: float) -> bool:
        """Add every pattern with rc >= -gap as a column; False when there are too many or no time."""
        found_here = 0
        for k in range(len(classes)):
            found, _, complete = _Knapsack(items, k).search(
                floors[k] - gap - 1e-7,
                stop,
                enumerate_all=True,
                limit=_ENUMERATION_LIMIT - found_here,
            )
            if not complete:
                out.stats["enumeration_stop"] = "time" if time.monotonic() > stop else "size"
                return False
            found_here += len(found)
            new = columns.new(*_arrays([(k, pattern) for pattern in found], len(types)))
            lp.add(*new, columns.worth(*new, w))
        out.stats["enumerated"] = max(out.stats["enumerated"], found_here)
        return True

    level = out.bound
    while level > incumbent:
        gap = (
            lagrangian + _ROUNDING - level
        )  # >= 0 however L was rounded into the bound (`_proven`)
        if not enumerate_level(gap):
            break
        out.stats["levels"] += 1
        ks, A = columns.matrix()
        excluded = np.flatnonzero(columns.worth(ks, A, val) - np.asarray(floors)[ks] < -gap - 1e-7)
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


def _arrays(found, T: int):
    """(class, pattern) pairs as arrays: classes [n], patterns [n, T]."""
    import numpy as np

    return (
        np.array([k for k, _ in found], dtype=np.int64),
        np.array([p for _, p in found], dtype=np.int64).reshape(len(found), T),
    )


def _homes(classes: list[NodeClass], T: int):
    """[class, type]: the pods of each type running on the class's node now (0 for a class of several)."""
    import numpy as np

    home = np.zeros((len(classes), T))
    for k, cls in enumerate(classes):
        for t, h in cls.home:
            home[k, t] = h
    return home


class _Columns:
    """The patterns generated so far, each (class, pattern) once, and their worth at pod values: a
    pod of type t is worth v_t, one more on a class of one node where it runs now (kept home)."""

    def __init__(self, classes: list[NodeClass], T: int):
        self.T = T
        self.home = _homes(classes, T)
        self.ks: list[int] = []
        self._blocks: list = []  # the patterns, [n, T] arrays in the order they came
        self._seen: set[tuple[int, bytes]] = set()
        self._matrix = None

    def __len__(self) -> int:
        return len(self.ks)

    def new(self, ks, A, keep=None):
        """Record the (class `ks[c]`, pattern `A[c]`) pairs not seen before (and, given `keep(ks, A)`,
        only those it marks); returns them as arrays (classes, patterns [n, T])."""
        import numpy as np

        mask = A.any(axis=1) if keep is None or not len(ks) else A.any(axis=1) & keep(ks, A)
        fresh = []
        for c in np.flatnonzero(mask):
            key = (int(ks[c]), A[c].tobytes())
            if key not in self._seen:
                self._seen.add(key)
                self.ks.append(key[0])
                fresh.append(c)
        added = A[fresh]
        if fresh:
            self._matrix = None
            self._blocks.append(added)
        return ks[fresh], added

    def matrix(self):
        """All columns as arrays (classes, patterns [n, T])."""
        import numpy as np

        if self._matrix is None:
            A = (
                np.concatenate(self._blocks)
                if self._blocks
                else np.zeros((0, self.T), dtype=np.int64)
            )
            self._blocks = [A]
            self._matrix = (np.array(self.ks, dtype=np.int64), A)
        return self._matrix

    def pattern(self, c: int) -> tuple[int, ...]:
        """Column c's pattern: pods per type."""
        return tuple(int(a) for a in self.matrix()[1][c])

    def worth(self, ks, A, v):
        """Per pattern, its pods' values `v` plus its pods kept home."""
        import numpy as np

        c, t = np.nonzero(A)  # sparse: a pattern holds few pod types
        kept = np.bincount(c, np.minimum(A[c, t], self.home[ks[c], t]), minlength=len(ks))
        return A @ v + kept


class _Master:
    """The restricted master in HiGHS, kept between iterations: new columns join a solved model, so
    each LP solve restarts from the last basis instead of from scratch. Rows: pods per type <= count,
    patterns per class <= nodes in it, and -(pods of each `at_least` set) <= -its minimum."""

    def __init__(self, types: list[PodType], classes: list[NodeClass], at_least):
        import highspy
        import numpy as np

        self.T, self.K = len(types), len(classes)
        self.at_least = [sorted(s) for s, _ in at_least]
        self.worth_row = (
            None  # index of the "worth at least" row of `solve_integer`, while there is one
        )
        self.counts = np.array([ty.count for ty in types], dtype=np.int64)
        self.sizes = np.array([c.size for c in classes], dtype=np.int64)
        self.most: list[
            int
        ] = []  # per column, at most this many nodes use it: 0/1 on a class of one node
        self.h = highspy.Highs()
        self.h.setOptionValue("output_flag", False)
        # primal simplex: the last basis stays primal feasible when columns join. Measured on the
        # moves tier of n32/ppn8/K1/util 0.95: 9 ms a solve instead of 19 ms (dual simplex), and a
        # bound that meets the incumbent in 18 rounds where dual simplex's had not converged in 30
        self.h.setOptionValue("simplex_strategy", 4)
        upper = [ty.count for ty in types] + [c.size for c in classes] + [-m for _, m in at_least]
        self.h.addRows(
            len(upper),
            np.full(len(upper), -highspy.kHighsInf),
            np.array(upper, dtype=float),
            0,
            np.array([], dtype=np.int32),
            np.array([], dtype=np.int32),
            np.array([]),
        )

    def add(self, ks, A, value) -> None:
        """Columns: class `ks[c]`, pattern `A[c]` (pods per type), worth `value[c]`."""
        import highspy
        import numpy as np

        n = len(ks)
        if not n:
            return
        col, row = np.nonzero(A)  # the entries, sparse: a column has few pod types
        fits = self.sizes[ks].copy()  # nodes that can use the column: at most its class's
        np.minimum.at(fits, col, self.counts[row] // A[col, row])  # and as often as its pods last
        self.most += fits.tolist()
        entries = [(col, row, A[col, row]), (np.arange(n), self.T + ks, np.ones(n))]
        for q, s in enumerate(self.at_least):
            pods = -A[:, s].sum(axis=1)
            used = np.flatnonzero(pods)
            entries.append((used, np.full(len(used), self.T + self.K + q), pods[used]))
        col, row, val = (np.concatenate(part) for part in zip(*entries))
        order = np.lexsort((row, col))  # column by column, rows in order
        col, row, val = col[order], row[order], val[order].astype(float)
        starts = np.searchsorted(col, np.arange(n))
        self.h.addCols(
            n,
            -np.asarray(value, dtype=float),
            np.zeros(n),
            np.full(n, highspy.kHighsInf),
            len(row),
            starts.astype(np.int32),
            row.astype(np.int32),
            val,
        )

    def solve(self, deadline: float):
        """(LP value, row duals: <= 0 for binding rows), or None on failure."""
        import highspy
        import numpy as np

        if _run(self.h, deadline) != highspy.HighsModelStatus.kOptimal:
            return None
        return -self.h.getInfo().objective_function_value, np.array(self.h.getSolution().row_dual)

    def values(self, deadline: float):
        """The LP's column values (re-solved: columns may have joined since), or None on failure."""
        import highspy
        import numpy as np

        if _run(self.h, deadline) != highspy.HighsModelStatus.kOptimal:
            return None
        return np.array(self.h.getSolution().col_value)

    def _dive(self, upper, deadline: float):
        """A packing from the LP relaxation (columns bounded by `upper`, changed here), rounded one
        column at a time: the fractional column closest to its ceiling is rounded up, or down when up
        makes the LP infeasible. A quick primal heuristic for the models with a "worth at least" row,
        whose LP is tight: on a gap-closing level of n16/ppn4/K1/util 1.05 (5,031 columns) it found
        the packing in 0.10 s, HiGHS's root heuristics in 1.0 s. The integral y, or None."""
        import highspy
        import numpy as np

        n = len(upper)
        every = np.arange(n, dtype=np.int32)
        self.h.changeColsIntegrality(n, every, np.full(n, highspy.HighsVarType.kContinuous))
        lower = np.zeros(n)
        self.h.changeColsBounds(n, every, lower, upper)

        def optimal() -> bool:
            return _run(self.h, deadline) == highspy.HighsModelStatus.kOptimal

        feasible = optimal()
        for _ in range(_DIVE_STEPS):
            if not feasible or time.monotonic() > deadline:
                return None
            y = np.array(self.h.getSolution().col_value)
            rounded = np.round(y)
            off = np.flatnonzero(np.abs(y - rounded) > 1e-6)
            if not len(off):
                return rounded
            j = int(off[np.argmax(y[off] - np.floor(y[off]))])
            self.h.changeColBounds(j, float(np.ceil(y[j])), float(upper[j]))
            if optimal():
                lower[j] = np.ceil(y[j])
            else:  # down instead: one LP solve per step either way
                upper[j] = np.floor(y[j])
                self.h.changeColBounds(j, float(lower[j]), float(upper[j]))
                feasible = optimal()
        return None

    def solve_integer(self, deadline: float, at_least_worth: int | None = None, excluded=None):
        """The integer program over the columns so far, optionally only for packings worth at least
        `at_least_worth` (first by a rounding dive, then by HiGHS) and without the `excluded` columns:
        (value, y) of the best packing found or (None, None), and a proven upper bound on the packings
        sought (`at_least_worth - 1` when there are none), or None."""
        import highspy
        import numpy as np

        n = self.h.getNumCol()
        every = np.arange(n, dtype=np.int32)
        upper = np.array(self.most, dtype=float)
        if excluded is not None:
            upper[excluded] = 0.0
        if (
            self.worth_row is not None
        ):  # the row of an earlier call: new columns join it, its bound may change
            self.h.deleteRows(1, np.array([self.worth_row], dtype=np.int32))
            self.worth_row = None
        cost = np.array(self.h.getLp().col_cost_)
        if at_least_worth is not None:  # worth = -cost, integer valued
            self.worth_row = self.h.getNumRow()
            self.h.addRow(-highspy.kHighsInf, -(at_least_worth - 0.5), n, every, cost)
            y = self._dive(upper.copy(), deadline)
            if y is not None:
                return float(-cost @ y), y, None
        self.h.changeColsIntegrality(n, every, np.full(n, highspy.HighsVarType.kInteger))
        self.h.changeColsBounds(n, every, np.zeros(n), upper)
        # HiGHS's presolve ignores the time limit on thousands of general integers (measured: 2.2 s
        # for 0.3 s asked, 13,000 columns, 20 rows)
        self.h.setOptionValue("presolve", "off")
        status = _run(self.h, deadline, shared_clock=True)
        if at_least_worth is not None and status == highspy.HighsModelStatus.kInfeasible:
            return None, None, at_least_worth - 1
        info = self.h.getInfo()
        upper = -info.mip_dual_bound if abs(info.mip_dual_bound) < highspy.kHighsInf else None
        if info.primal_solution_status != highspy.SolutionStatus.kSolutionStatusFeasible:
            return None, None, upper
        return -info.objective_function_value, np.array(self.h.getSolution().col_value), upper


def _run(h, deadline: float, shared_clock: bool = False):
    """Run the HiGHS object `h` (the master of one pattern bound) until `deadline`
    (`time.monotonic()`) at the latest; its model status.

    HiGHS compares `time_limit` with the run time summed over all runs of the object (HiGHS issues
    1331 and 1477), so the limit is counted from the run time already spent: the generation's LPs
    and the rounding dive's are short, warm-started, and stop at `deadline` by themselves. On the
    shared clock they stopped once the master's HiGHS time in all reached the time left: the moves
    tier's generation of n32/ppn8/K4/util 0.95 at 1 s after 0.35 s of its 0.58 s, one round short
    of the proof; the dive's LPs after 6 ms of 0.18 s.
    `shared_clock`: the limit is the time left, so the run also stops once the master's HiGHS time
    in all reaches it. For HiGHS's branch and bound, which overruns its limit (0.56 s for 0.19 s
    asked on 1,560 columns, 0.7 s of set-up on 13,000): given the time left in full it took the
    later tiers' time (at 1 s, grid 43 and 48 of 84 proven, 6 and 3 runs over the window by 10 %,
    against 49-54 and none); late in a bound it gets little time or none, and CP-SAT, which follows
    the bound with its cut, finds the packing."""
    spent = 0.0 if shared_clock else h.getRunTime()
    h.setOptionValue("time_limit", spent + max(0.01, deadline - time.monotonic()))
    h.run()
    return h.getModelStatus()


def _price(types: list[PodType], k: int, cls: NodeClass, val, deadline: float, floor: float = 0.0):
    """The most valuable patterns of class k at pod values `val` (a pod kept home worth one more).

    Only patterns worth more than `floor` are sought (the master's columns of class k are worth it
    already, so nothing below it is a column). Returns (patterns, an upper bound on max(floor, the best
    pattern's value)), the patterns best first: the last few incumbents of the search, extra columns
    for the master at no cost. The bound is the best value when the search finished, else (`deadline`
    hit) the root's fractional bound."""
    knapsack = _Knapsack(_Items(types, [(k, cls)], val))
    patterns, best, complete = knapsack.search(max(floor, 0.0), deadline)
    upper = best if complete else max(floor, knapsack.root_bound())
    return patterns[::-1], upper + knapsack.tol


def _price_all(types: list[PodType], classes: list[NodeClass], val, floors, deadline: float):
    """`_price` for every class at once: their breadth-first searches run level by level in the same
    arrays (a pattern row carries its class), so the numpy calls per level do not grow with the number
    of classes; the moves tier has a class per node. Returns [(patterns, upper)] per class, the same
    as `_price`, or None when the patterns kept pass `_MAX_STATES` times the classes (at most 8): each
    class then searches alone."""
    # kept whole (89 lines): one pricing round over every class: the knapsacks share the duals and
    # the dedup table
    import numpy as np

    items = _Items(types, list(enumerate(classes)), val)
    K, n, R = len(classes), items.n, len(classes[0].capacity)
    bar = np.array([max(f, 0.0) for f in floors])
    if n == 0:
        return [([], b + items.tol) for b in bar]
    pad = np.zeros((K, 1))
    V, SUR = np.concatenate([items.V, pad], axis=1), np.concatenate([items.SUR, pad], axis=1)
    U = np.concatenate([items.U, pad.astype(np.int64)], axis=1)
    Q = np.concatenate([items.Q, np.zeros((K, 1, R), dtype=np.int64)], axis=1)
    REACH, GAIN, VPART, SURAT, POS = (
        items.reach,
        items.gain,
        items.v_part,
        items.sur_at,
        items.positive,
    )
    TI = items.type_items
    offset = float(REACH.max()) + float(items.room.max()) + 1.0
    flat = (
        REACH + np.arange(K)[:, None] * offset
    ).ravel()  # one sorted array: class c's row shifted

    def fractional(i, room, cls):
        ii = np.minimum(i, POS[cls])
        end = REACH[cls, ii] + np.maximum(room, 0.0)
        m = np.searchsorted(flat, end + cls * offset, side="right") - 1 - cls * (n + 1)
        m = np.minimum(np.maximum(m, ii), POS[cls])
        return GAIN[cls, m] - GAIN[cls, ii] + VPART[cls, m] * (end - REACH[cls, m]) / SURAT[cls, m]

    cls = np.arange(K)
    value, room, rem = np.zeros(K), items.room.copy(), items.rem.copy()
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
        parent, count, value, room, cls = (
            parent[keep],
            count[keep],
            value[keep],
            room[keep],
            cls[keep],
        )
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
    for c in range(K):
        upper = float(bar[c]) if complete else max(floors[c], _Knapsack(items, c).root_bound())
        out.append((found[c][::-1][:_INCUMBENTS], upper + items.tol))
    return out


class _Items:
    """The items of the pricing knapsacks of several node classes at pod values `val`, built together
    in arrays [class, item] (the moves tier has a class per node, priced every round).

    Per pod type and class, two items: its pods kept home (worth one more) and the others, each capped
    by count and capacity; items worth nothing are left out unless `every_item`. A resource that all
    of a class's items together cannot exceed is no limit there. Items are sorted by value per unit
    of a surrogate resource sum_r mu_r q_r / c_r, the weights chosen per class (`_surrogate_weights`);
    a class's columns past its own `N` items are zeros."""

    def __init__(
        self,
        types: list[PodType],
        classes: list[tuple[int, NodeClass]],
        val,
        every_item: bool = False,
    ):
        import numpy as np

        T, C, R = len(types), len(classes), len(classes[0][1].capacity)
        big = np.iinfo(np.int64).max // 4
        req = np.array([ty.request for ty in types], dtype=np.int64).reshape(T, R)
        cap = np.array([[c or 0 for c in cls.capacity] for _, cls in classes], dtype=np.int64)
        limited = np.array(
            [[c is not None for c in cls.capacity] for _, cls in classes], dtype=bool
        )
        eligible = np.array(
            [[k in ty.classes for ty in types] for k, _ in classes], dtype=bool
        ).reshape(C, T)
        home = _homes([cls for _, cls in classes], T).astype(np.int64)
        fits = np.where(
            limited[:, None, :] & (req[None] > 0), cap[:, None, :] // np.maximum(req[None], 1), big
        )
        ub = np.where(eligible, np.minimum(fits.min(axis=2), [ty.count for ty in types]), 0)
        kept = np.minimum(home, ub)
        # the 2T item slots of a class: the pods of each type kept home, then the others; a class's own
        # items first, in arrays as wide as the most any class has
        v = np.broadcast_to(
            np.concatenate([np.asarray(val, float) + 1.0, np.asarray(val, float)]), (C, 2 * T)
        )
        n = np.concatenate([kept, ub - kept], axis=1)
        valid = (n > 0) & (every_item | (v > 1e-12))
        self.N = valid.sum(axis=1)
        width = self.n = int(self.N.max(initial=0))
        slot = np.argsort(~valid, axis=1, kind="stable")[:, :width]
        live = np.arange(width)[None, :] < self.N[:, None]
        v = np.where(live, np.take_along_axis(v, slot, axis=1), 0.0)
        n = np.where(live, np.take_along_axis(n, slot, axis=1), 0)
        q = np.where(live[:, :, None], np.concatenate([req, req])[slot], 0)  # [C, width, R]
        binding = limited & (np.einsum("ci,cir->cr", n, q) > cap)
        size = np.where(binding[:, None, :], q / np.where(binding, cap, 1)[:, None, :], 0.0)
        mu = _surrogate_weights(np.where(v > 0, v, 0.0) * n, size * n[:, :, None], binding)
        sur = np.einsum("cir,cr->ci", size, mu)
        key = np.where(sur > 0, -v / np.where(sur > 0, sur, 1.0), np.where(v > 0, -np.inf, np.inf))
        order = np.argsort(
            np.where(live, key, np.nan), axis=1, kind="stable"
        )  # live ones stay first
        self.V, self.U = np.take_along_axis(v, order, axis=1), np.take_along_axis(n, order, axis=1)
        self.SUR = np.where(live, np.take_along_axis(sur, order, axis=1), 0.0)
        self.Q = np.take_along_axis(q, order[:, :, None], axis=1)  # [C, n, R]
        self.rem = np.where(binding, cap, big)  # the capacity left at the root
        self.room = (mu * binding).sum(axis=1)  # ... in the surrogate resource
        self.positive = (self.V > 0).sum(axis=1)  # the first items, the only ones a bound takes
        # prefix sums of sur_j U_j and V_j U_j; per item, for the part-filled one of a fractional
        # knapsack (past the positive ones: nothing; a zero size, never part-filled, is 1 to keep the
        # division defined)
        zero = np.zeros((C, 1))
        self.reach = np.concatenate([zero, np.cumsum(self.SUR * self.U, axis=1)], axis=1)
        self.gain = np.concatenate([zero, np.cumsum(self.V * self.U, axis=1)], axis=1)
        self.v_part = np.concatenate([self.V, zero], axis=1)
        self.v_part[np.arange(width + 1)[None, :] >= self.positive[:, None]] = 0.0
        self.sur_at = np.concatenate([np.where(self.SUR > 0, self.SUR, 1.0), zero + 1.0], axis=1)
        # a type's pods are at most two items (kept home, the others): its count is the sum of their
        # two columns, column `n` being zeros for an item left out
        slot = np.take_along_axis(slot, order, axis=1)
        rows, cols = np.nonzero(live)
        self.type_items = np.full((C, 2 * T), width)
        self.type_items[rows, slot[rows, cols]] = cols
        self.type_items = self.type_items.reshape(C, 2, T)
        self.tol = 1e-9 + sum(ty.count for ty in types) * 1e-12


class _Knapsack:
    """The pricing problem of one node class: a bounded knapsack over pod types in several resources,
    with the items of `_Items`. Search: breadth first over the items, level i holding the patterns
    over items < i still worth extending (numpy arrays, one row per pattern); a pattern is dropped
    when its value plus the fractional knapsack of the remaining items in its remaining surrogate
    capacity cannot beat the bar."""

    def __init__(self, items: _Items, c: int = 0):
        n = self.n = int(items.N[c])
        self.V, self.U, self.sur = (
            items.V[c, :n].tolist(),
            items.U[c, :n].tolist(),
            items.SUR[c, :n].tolist(),
        )
        self.Q, self.capacity, self.room = items.Q[c, :n], items.rem[c], float(items.room[c])
        self.positive, self.tol = int(items.positive[c]), items.tol
        self.reach, self.gain = items.reach[c, : n + 1], items.gain[c, : n + 1]
        self.v_part, self.sur_at = items.v_part[c, : n + 1], items.sur_at[c, : n + 1]
        self.type_items = items.type_items[c].clip(max=n)

    def fractional(self, i: int, room):
        """The fractional knapsack of items i.. in each surrogate capacity of the array `room`."""
        import numpy as np

        i = min(i, self.positive)
        end = self.reach[i] + np.maximum(room, 0.0)
        m = np.minimum(
            np.searchsorted(self.reach, end, side="right") - 1, self.positive
        )  # i..m-1 whole
        return self.gain[m] - self.gain[i] + self.v_part[m] * (end - self.reach[m]) / self.sur_at[m]

    def root_bound(self) -> float:
        import numpy as np

        return float(self.fractional(0, np.array([self.room]))[0])

    def search(
        self, bar: float, deadline: float, enumerate_all: bool = False, limit: int = _MAX_STATES
    ):
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
        hits: list[
            tuple
        ] = []  # (item i, parents at level i - 1, counts of item i) of the patterns found
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
                    hits.append((i, parent[top : top + 1], count[top : top + 1]))
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
            parent[lo : first[e + 1]], counts[lo : first[e + 1], level] = hits[e][1], hits[e][2]
            e -= 1
    return counts


def _surrogate_weights(gain, size, binding):
    """Per class, weights mu >= 0 of the resources for the surrogate constraint
    sum_r mu_r q_r / c_r <= sum_r mu_r (over the class's binding resources) whose fractional knapsack
    bound is lowest: `gain` [class, item] the items' total values, `size` [class, item, resource] their
    total sizes per unit of capacity (0 where not binding). Searched on a grid over each pair of the
    resources binding somewhere (with two resources the best weights make it the LP relaxation of the
    whole knapsack; the grid comes close). Any weights >= 0 give a valid bound."""
    import numpy as np

    C, _, R = size.shape
    active = np.flatnonzero(binding.any(axis=0))
    uniform = np.zeros((1, R))
    uniform[0, active if len(active) else slice(None)] = 1.0
    candidates = [uniform]
    grid = np.linspace(0.0, 1.0, _SURROGATE_GRID)
    for x, a in enumerate(active):
        for b in active[x + 1 :]:
            mus = np.zeros((len(grid), R))
            mus[:, a], mus[:, b] = grid, 1.0 - grid
            candidates.append(mus)
    mus = np.vstack(candidates)  # [M, R]
    if len(mus) == 1:
        return np.repeat(mus, C, axis=0)
    room = (binding @ mus.T)[:, :, None]  # [C, M, 1]
    s = np.einsum("cir,mr->cmi", size, mus)
    vv = np.broadcast_to(gain[:, None, :], s.shape)
    ratio = np.where(s > 0, vv / np.where(s > 0, s, 1.0), np.where(vv > 0, np.inf, -np.inf))
    order = np.argsort(-ratio, axis=2)
    ss, vv = np.take_along_axis(s, order, axis=2), np.take_along_axis(vv, order, axis=2)
    reach = np.cumsum(ss, axis=2)
    whole = reach <= room + 1e-12
    before = reach - ss
    part = np.where(~whole & (before < room), vv * (room - before) / np.where(ss > 0, ss, 1.0), 0.0)
    bound = (vv * whole + part).sum(axis=2)  # [C, M]
    return mus[np.argmin(bound, axis=1)]

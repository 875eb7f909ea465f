"""Discrete min-max violation (DMMV) local search, written once against an array module.

The problem (`MinMaxModel`): choose each variable x_j from a finite set of values so as to minimise

    max_i  w_i * max(0, lower_i - r_i, r_i - upper_i),      r = offset + A x,

the largest (scaled) violation of the rows lower <= Ax <= upper; it is 0 exactly when every row
holds. Ties are broken by the sum of violations (`tiebreak="sum"`) or by the number of rows at the
maximum (`tiebreak="count"`). A may be dense (NumPy) or sparse (scipy.sparse).

Assignment structure is kept exact by the moves: a *group* is a list of binary variables of which
exactly one is 1 (an item choosing one of its options). Position k of every group is option k (for
example GPU k or node k); `-1` marks an option the item may not take. Grouped variables never move
alone: a *transfer* moves a group's 1 to another of its options, a *group swap* exchanges the
options of two groups (which also keeps every option's item count exact).

The search (`solve`), in the spirit of the GPU heuristic of "Discrete Optimization of Min-Max
Violation" (2025):

* every iteration evaluates a whole batch of moves as array operations: all single-variable
  changes, all transfers, pairs of +-1 steps and sampled swaps;
* top-K worst-row screening: a move changes the residual by a vector d; over any set S of rows,
  LB = max_{i in S} viol_i(r + d) is a lower bound of the new maximum. With S = the K worst rows,
  a move with LB >= the current maximum cannot lower the maximum, and is pruned before the exact
  evaluation. In particular a move that leaves one of the worst rows untouched is pruned (the
  paper's "a move must touch every worst row"); `screen` exposes this test;
* the survivors (at most `max_eval`) are evaluated exactly over all rows (an m x C array; with
  NumPy and a sparse A, on each move's touched rows only, same numbers), the best is applied with
  an incremental residual update r += sum_t (v_t' - v_t) A[:, j_t], together with up to `multi`
  disjoint moves that improve the tie-break (sparse A);
* at a local optimum: perturbation (destroy a few variables touching the worst rows, repair each by
  its best response), with threshold acceptance against the best solution so far;
* deterministic for a seed and a backend: all random choices come from one NumPy generator on the
  host, and selections use stable sorts on the host. Stops at a maximum violation of 0 (proven
  optimal), the time limit, the iteration limit, or after `max_stall` rounds without improvement.

`xp` is `numpy` or `cupy` (see `backend.py`); nothing else in this file depends on which.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from optkit.backends.minmax.backend import Backend, get_backend
from optkit.errors import InputError

__all__ = [
    "MinMaxModel",
    "MinMaxParams",
    "MinMaxResult",
    "evaluate",
    "screen",
    "solve",
    "violations",
]


# ------------------------------------------------------------------------------------------------
# The model
# ------------------------------------------------------------------------------------------------


@dataclass
class MinMaxModel:
    """lower <= offset + A x <= upper over finite per-variable domains, plus exactly-one groups."""

    A: Any  # m x n: numpy array or scipy.sparse matrix
    lower: Any  # m (may hold -inf)
    upper: Any  # m (may hold +inf)
    domains: Any  # n lists of allowed values, or an n x D array padded with nan
    groups: Any = None  # list of lists of variable indices (position = option), -1 = not allowed
    offset: Any = None  # m constants added to Ax
    weights: Any = None  # m row scales (>= 0)
    fixed: Any = None  # n booleans: variables that never move

    def __post_init__(self) -> None:
        import scipy.sparse as sp

        A = self.A
        if sp.issparse(A):
            self.A = sp.csr_matrix(A, dtype=np.float64)
        else:
            self.A = np.atleast_2d(np.asarray(A, dtype=np.float64))
        m, n = self.A.shape
        self.lower = _vector(self.lower, m, "lower", -np.inf)
        self.upper = _vector(self.upper, m, "upper", np.inf)
        self.offset = _vector(self.offset, m, "offset", 0.0)
        self.weights = _vector(self.weights, m, "weights", 1.0)
        if np.any(self.weights < 0) or not np.all(np.isfinite(self.weights)):
            raise InputError("field 'weights': row weights must be finite and >= 0")
        if np.any(np.isnan(self.lower)) or np.any(np.isnan(self.upper)):
            raise InputError("field 'lower'/'upper': nan bound")
        # domains -> n x D padded with nan, sorted ascending, no duplicates
        self.domains = _domain_array(self.domains, n)
        dom = self.domains
        self.fixed = (
            np.zeros(n, bool) if self.fixed is None else np.asarray(self.fixed, bool).ravel()
        )
        if self.fixed.shape != (n,):
            raise InputError(f"field 'fixed': expected {n} booleans")
        # groups -> G x K int array padded with -1
        if isinstance(self.groups, np.ndarray) and self.groups.ndim == 2:
            gc = self.groups.astype(np.int64)
        else:
            groups = [] if self.groups is None else [list(map(int, g)) for g in self.groups]
            K = max((len(g) for g in groups), default=0)
            gc = np.full((len(groups), K), -1, dtype=np.int64)
            for g, cols in enumerate(groups):
                gc[g, : len(cols)] = cols
        if gc.size:
            bad = np.argwhere((gc < -1) | (gc >= n))
            if len(bad):
                g, k = bad[0]
                raise InputError(f"field 'groups.{g}': variable {gc[g, k]} out of range")
            used = gc[gc >= 0]
            counts = np.bincount(used, minlength=n)
            if (counts > 1).any():
                v = int(np.flatnonzero(counts > 1)[0])
                raise InputError(f"field 'groups': variable {v} is in more than one group")
            d = dom[used]
            ok = np.isnan(d) | (d == 0.0) | (d == 1.0)
            if not ok.all():
                v = int(used[np.flatnonzero(~ok.all(axis=1))[0]])
                raise InputError(f"field 'domains.{v}': a grouped variable must be binary (0/1)")
            empty = np.flatnonzero((gc < 0).all(axis=1))
            if empty.size:
                raise InputError(f"field 'groups.{int(empty[0])}': has no allowed option")
        self.groups = gc

    @property
    def shape(self) -> tuple[int, int]:
        return self.A.shape

    def default_start(self) -> np.ndarray:
        """Ungrouped variables at their value closest to 0; each group at its first allowed option."""
        n = self.shape[1]
        k = np.argmin(np.where(np.isnan(self.domains), np.inf, np.abs(self.domains)), axis=1)
        x = self.domains[np.arange(n), k].copy()
        if self.groups.size:
            valid = self.groups >= 0
            x[self.groups[valid]] = 0.0
            first = np.argmax(valid, axis=1)
            x[self.groups[np.arange(self.groups.shape[0]), first]] = 1.0
        return x

    def check_start(self, x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64).ravel()
        n = self.shape[1]
        if x.shape != (n,):
            raise InputError(f"x0: expected {n} values, got {x.size}")
        ok = np.any(self.domains == x[:, None], axis=1)
        if not ok.all():
            j = int(np.flatnonzero(~ok)[0])
            raise InputError(f"x0: value {x[j]} of variable {j} is not in its domain")
        if self.groups.size:
            valid = self.groups >= 0
            sums = np.where(valid, x[np.where(valid, self.groups, 0)], 0.0).sum(axis=1)
            if (sums != 1.0).any():
                g = int(np.flatnonzero(sums != 1.0)[0])
                raise InputError(f"x0: group {g} must have exactly one variable at 1")
        return x


def _domain_array(domains: Any, n: int) -> np.ndarray:
    """n x D float array of sorted distinct values padded with nan (validated)."""
    if isinstance(domains, np.ndarray) and domains.ndim == 2:
        rows = None
        arr = np.asarray(domains, dtype=np.float64)
    else:
        rows = [np.asarray(d, dtype=np.float64).ravel() for d in domains]
        sizes = {r.size for r in rows}
        arr = np.array(rows) if len(sizes) == 1 else None
    if arr is None:  # ragged: pad
        width = max((r.size for r in rows), default=1)
        arr = np.full((len(rows), width), np.nan)
        for j, r in enumerate(rows):
            arr[j, : r.size] = r
    if arr.shape[0] != n:
        raise InputError(f"field 'domains': {arr.shape[0]} domains for {n} variables")
    if np.isinf(arr).any():
        raise InputError("field 'domains': values must be finite")
    arr = np.sort(arr, axis=1)  # nan last
    dup = np.zeros(arr.shape, dtype=bool)
    dup[:, 1:] = arr[:, 1:] == arr[:, :-1]
    if dup.any():
        arr = np.where(dup, np.nan, arr)
        arr = np.sort(arr, axis=1)
    empty = np.isnan(arr).all(axis=1) if arr.shape[1] else np.ones(n, bool)
    if empty.any():
        raise InputError(
            f"field 'domains.{int(np.flatnonzero(empty)[0])}': must be a non-empty list of finite values"
        )
    width = int((~np.isnan(arr)).sum(axis=1).max()) if n else 1
    return arr[:, : max(1, width)]


def _vector(v: Any, m: int, name: str, default: float) -> np.ndarray:
    if v is None:
        return np.full(m, default)
    a = np.asarray(v, dtype=np.float64).ravel()
    if a.size == 1:
        a = np.full(m, float(a[0]))
    if a.shape != (m,):
        raise InputError(f"field '{name}': expected {m} values, got {a.size}")
    return a


def violations(model: MinMaxModel, x: np.ndarray) -> np.ndarray:
    """Per-row scaled violation of `x`, recomputed from scratch in float64 on the host."""
    r = model.offset + model.A @ np.asarray(x, dtype=np.float64)
    return model.weights * np.maximum(0.0, np.maximum(model.lower - r, r - model.upper))


def evaluate(model: MinMaxModel, x: np.ndarray) -> tuple[float, float, int]:
    """(max violation, sum of violations, rows at the max) of `x`, recomputed from scratch."""
    v = violations(model, x)
    mx = float(v.max()) if v.size else 0.0
    count = int(np.sum(v >= mx - _tol(mx))) if mx > 0 else 0
    return mx, float(v.sum()), count


def _tol(value: float) -> float:
    return 1e-9 * max(1.0, abs(value))


# ------------------------------------------------------------------------------------------------
# Parameters and result
# ------------------------------------------------------------------------------------------------

#: Tie-breaks between moves with the same maximum violation M (current maximum M0):
#: "pnorm": sum_i (v_i / M0)^16, a smooth stand-in for "the next-worst rows" (the default);
#: "sum": the sum of violations; "count": the number of rows at the maximum.
TIEBREAKS = ("pnorm", "sum", "count")
PNORM_SQUARINGS = 4  # p = 2^4 = 16


@dataclass
class MinMaxParams:
    backend: str = "auto"  # auto | numpy | cupy
    seed: int = 0
    time_limit: float | None = None  # seconds
    max_iters: int | None = None  # applied moves + perturbation rounds
    max_stall: int = 50  # perturbation rounds without a new best before stopping
    top_k: int = 16  # worst rows used by the screen
    max_eval: int = 256  # moves evaluated exactly per iteration
    swap_sample: int = 4096  # swap / pair candidates generated per iteration (at most)
    tiebreak: str = "pnorm"  # pnorm | sum | count (see TIEBREAKS)
    single: bool = True  # single-variable moves
    transfer: bool = True  # group transfers (keeps exactly-one, changes option counts)
    swap: bool = True  # group swaps and swaps of two ungrouped variables
    pairs: bool = True  # two ungrouped variables each one domain step up or down
    sparse_eval: bool = True  # NumPy + sparse A: evaluate moves on their touched rows only
    multi: int = 32  # sparse A: also apply up to this many disjoint improving moves per step
    block: int = 4  # blocks of this many ungrouped variables, each one step up or down (0: off)
    perturb_size: int | None = None  # variables/groups destroyed per round (None: automatic)
    perturb_radius: int = 3  # domain steps of a perturbed ungrouped variable
    accept: float = 0.05  # accept a local optimum within (1 + accept) of the best max violation
    recompute_every: int = 500  # recompute the residual from scratch every so many moves
    callback: Callable[[np.ndarray, float], None] | None = None  # on each new best

    def __post_init__(self) -> None:
        if self.tiebreak not in TIEBREAKS:
            raise InputError(
                f"parameter 'tiebreak': expected one of {', '.join(TIEBREAKS)}, got {self.tiebreak!r}"
            )
        for name in ("top_k", "max_eval", "swap_sample", "recompute_every"):
            if getattr(self, name) < 1:
                raise InputError(f"parameter '{name}': must be >= 1")


@dataclass
class MinMaxResult:
    x: np.ndarray  # best assignment (values)
    max_violation: float  # recomputed from scratch for x
    sum_violation: float
    rows_at_max: int
    optimal: bool  # max_violation == 0: nothing can be better
    termination: str  # optimal | time_limit | iteration_limit | stalled
    iterations: int
    rounds: int
    evaluated: int  # moves evaluated exactly
    screened: int  # moves scored by the top-K screen
    pruned: int  # of those, pruned by it
    runtime_s: float
    backend: str
    device: str
    history: list = field(default_factory=list)  # (seconds, max violation) at each new best


# ------------------------------------------------------------------------------------------------
# The matrix on the device
# ------------------------------------------------------------------------------------------------


class _Matrix:
    """A on the backend: dense, or sparse kept in CSR (row gathers) and CSC (column gathers)."""

    def __init__(self, A: Any, be: Backend):
        import scipy.sparse as sp

        self.be, xp = be, be.xp
        self.sparse = sp.issparse(A) and be.sparse is not None
        if self.sparse:
            self.csr = be.sparse.csr_matrix(A) if be.name == "cupy" else sp.csr_matrix(A)
            self.csc = be.sparse.csc_matrix(A) if be.name == "cupy" else sp.csc_matrix(A)
        else:
            self.dense = xp.asarray(A.toarray() if sp.issparse(A) else A, dtype=xp.float64)
        self.m, self.n = A.shape

    def matvec(self, x: Any) -> Any:
        return self.csr @ x if self.sparse else self.dense @ x

    def rows(self, S: np.ndarray) -> Any:
        """Dense |S| x n block of rows S."""
        if self.sparse:
            return self.be.xp.asarray(
                self.csr[self.be.asarray(S) if self.be.name == "cupy" else S].toarray()
            )
        return self.dense[self.be.asarray(S)]

    def cols(self, c: np.ndarray) -> Any:
        """Dense m x |c| block of columns c."""
        if self.sparse:
            idx = self.be.asarray(c) if self.be.name == "cupy" else c
            return self.be.xp.asarray(self.csc[:, idx].toarray())
        return self.dense[:, self.be.asarray(c)]


def screen(
    r_S: Any, lower_S: Any, upper_S: Any, w_S: Any, delta_S: Any, current_max: float, xp: Any = np
) -> Any:
    """The top-K screen: True for the moves kept, False for those pruned.

    `delta_S` (|S| x C) is the change of the residual on rows S made by each of C moves. A move is
    pruned when max_{i in S} viol_i(r + d) >= current_max: that is a lower bound of its new
    maximum, so a pruned move can never lower the maximum (whatever rows S are).
    """
    lb = _lower_bound(r_S, lower_S, upper_S, w_S, delta_S, xp)
    return lb < current_max - _tol(current_max)


def _lower_bound(r_S, lower_S, upper_S, w_S, delta_S, xp):
    nr = r_S[:, None] + delta_S
    v = w_S[:, None] * xp.maximum(0.0, xp.maximum(lower_S[:, None] - nr, nr - upper_S[:, None]))
    return v.max(axis=0)


# ------------------------------------------------------------------------------------------------
# The search
# ------------------------------------------------------------------------------------------------


class _Search:
    def __init__(self, model: MinMaxModel, params: MinMaxParams, x0: np.ndarray | None):
        self.model, self.p = model, params
        self.be = get_backend(params.backend)
        xp = self.xp = self.be.xp
        self.rng = np.random.default_rng(params.seed)
        self.M = _Matrix(model.A, self.be)
        if self.M.sparse:
            import scipy.sparse as sp

            self.host_csc = sp.csc_matrix(model.A)
        self.sparse_eval = (
            self.M.sparse
            and self.be.name == "numpy"
            and params.sparse_eval
            and params.tiebreak != "count"
        )
        self._prefix = None
        m, n = model.shape
        self.m, self.n = m, n
        self.lo = xp.asarray(model.lower)
        self.up = xp.asarray(model.upper)
        self.w = xp.asarray(model.weights)
        self.off = xp.asarray(model.offset)
        self.dom = model.domains
        self.dsize = np.sum(~np.isnan(self.dom), axis=1)
        self.x = model.default_start() if x0 is None else model.check_start(x0).copy()
        # groups
        self.gc = model.groups
        self.G = self.gc.shape[0]
        self.var_group = np.full(n, -1, dtype=np.int64)
        self.var_pos = np.full(n, -1, dtype=np.int64)
        valid = self.gc >= 0
        gg, kk = np.nonzero(valid)
        self.var_group[self.gc[gg, kk]] = gg
        self.var_pos[self.gc[gg, kk]] = kk
        if self.G:
            on = np.where(valid, self.x[np.where(valid, self.gc, 0)], 0.0)
            self.gactive = np.argmax(on == 1.0, axis=1).astype(np.int64)
            gfixed = (valid & model.fixed[np.where(valid, self.gc, 0)]).any(axis=1)
        else:
            self.gactive = np.zeros(0, dtype=np.int64)
            gfixed = np.zeros(0, dtype=bool)
        self.gfree = np.flatnonzero(~gfixed)
        # ungrouped free variables with a choice, and their domain positions
        self.free = np.flatnonzero((self.var_group < 0) & ~model.fixed & (self.dsize > 1))
        self.xi = np.where(
            self.var_group < 0, np.argmax(self.dom == self.x[:, None], axis=1), 0
        ).astype(np.int64)
        # static move lists
        if params.single and self.free.size:
            jj, kk = np.nonzero(~np.isnan(self.dom[self.free]))
            self.single_var = self.free[jj]
            self.single_val = self.dom[self.free[jj], kk]
        else:
            self.single_var = np.zeros(0, np.int64)
            self.single_val = np.zeros(0)
        if params.transfer and self.gfree.size:
            gg, kk = np.nonzero(self.gc[self.gfree] >= 0)
            self.tr_group, self.tr_pos = self.gfree[gg], kk
        else:
            self.tr_group = self.tr_pos = np.zeros(0, np.int64)
        self.counters = {
            "iterations": 0,
            "rounds": 0,
            "evaluated": 0,
            "screened": 0,
            "pruned": 0,
            "applied": 0,
        }
        self.recompute()

    # -- state -----------------------------------------------------------------------------------
    def recompute(self) -> None:
        xp = self.xp
        self.r = self.off + self.M.matvec(xp.asarray(self.x))
        self._refresh()

    def _viol(self, r: Any, rows: Any = None) -> Any:
        xp = self.xp
        if rows is None:
            lo, up, w = self.lo, self.up, self.w
        else:
            lo, up, w = self.lo[rows], self.up[rows], self.w[rows]
        if r.ndim == 2:
            lo, up, w = lo[:, None], up[:, None], w[:, None]
        return w * xp.maximum(0.0, xp.maximum(lo - r, r - up))

    def _refresh(self) -> None:
        self._prefix = None
        self.v = self._viol(self.r)
        self.maxv = self.be.scalar(self.v.max()) if self.m else 0.0  # also the pnorm's scale
        self.tie = self._tie(self.v[:, None], np.array([self.maxv]))[0]

    def _tie(self, V: Any, maxes: np.ndarray) -> np.ndarray:
        """Tie-break values of the columns of V (m x C) whose maxima are `maxes` (host)."""
        xp = self.xp
        if self.p.tiebreak == "sum":
            return self.be.to_host(V.sum(axis=0))
        if self.p.tiebreak == "pnorm":
            scale = self.maxv if getattr(self, "maxv", 0.0) > 0 else 1.0
            y = V / scale
            for _ in range(PNORM_SQUARINGS):
                y = y * y
            return self.be.to_host(y.sum(axis=0))
        thr = xp.asarray(maxes - 1e-9 * np.maximum(1.0, np.abs(maxes)))
        cnt = self.be.to_host((V >= thr[None, :]).sum(axis=0)).astype(np.float64)
        return np.where(maxes > 0, cnt, 0.0)

    def score(self) -> tuple[float, float]:
        return self.maxv, self.tie

    def snapshot(self) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        return self.x.copy(), self.xi.copy(), self.gactive.copy()

    def restore(self, snap: tuple[np.ndarray, np.ndarray, np.ndarray]) -> None:
        self.x, self.xi, self.gactive = snap[0].copy(), snap[1].copy(), snap[2].copy()
        self.recompute()

    def apply(self, vars_: np.ndarray, vals: np.ndarray) -> None:
        """Set x[vars_] = vals and update the residual incrementally."""
        coef = vals - self.x[vars_]
        nz = coef != 0
        if nz.any():
            cols = self.M.cols(vars_[nz])
            self.r = self.r + cols @ self.xp.asarray(coef[nz])
        self.x[vars_] = vals
        for v, val in zip(vars_.tolist(), vals.tolist()):
            g = self.var_group[v]
            if g >= 0:
                if val == 1.0:
                    self.gactive[g] = self.var_pos[v]
            else:
                self.xi[v] = int(np.flatnonzero(self.dom[v] == val)[0])
        self.counters["applied"] += 1
        if self.counters["applied"] % self.p.recompute_every == 0:
            self.recompute()
        else:
            self._refresh()

    # -- move generation (host) ------------------------------------------------------------------
    def worst_rows(self) -> np.ndarray:
        """The top-K rows by violation, worst first (stable order for equal violations)."""
        K = min(self.p.top_k, self.m)
        v = self.be.to_host(self.v)
        if K < self.m:
            part = np.argpartition(-v, K - 1)[:K]
            # include every row tied with the K-th value deterministically: sort the partition
            part = part[np.lexsort((part, -v[part]))]
        else:
            part = np.lexsort((np.arange(self.m), -v))
        return part

    def moves(self, w: int | None, sample: bool) -> list[tuple[np.ndarray, np.ndarray]]:
        """Batches (vars C x T, vals C x T) of candidate moves.

        With `w` (a worst row) the swaps are built around the variables touching it; `sample`
        draws swaps / pairs at random instead.
        """
        out = []
        x = self.x
        if self.single_var.size:
            keep = self.single_val != x[self.single_var]
            out.append((self.single_var[keep][:, None], self.single_val[keep][:, None]))
        if self.tr_group.size:
            keep = self.tr_pos != self.gactive[self.tr_group]
            g, k = self.tr_group[keep], self.tr_pos[keep]
            frm = self.gc[g, self.gactive[g]]
            to = self.gc[g, k]
            out.append((np.stack([frm, to], 1), np.tile([0.0, 1.0], (g.size, 1))))
        row_w = None
        if w is not None and (self.p.swap or self.p.pairs):
            row_w = self.be.to_host(self.M.rows(np.array([w])))[0]
        budget = self.p.swap_sample
        if self.p.swap and self.gfree.size > 1:
            out.append(self._group_swaps(row_w, budget))
        if self.p.swap and self.free.size > 1:
            out.append(self._var_swaps(row_w, budget))
        if self.p.pairs and self.free.size > 1:
            out.append(self._pairs(row_w, budget))
        if self.p.block > 2 and self.free.size >= self.p.block:
            out.append(self._blocks(row_w, budget))
        return [b for b in out if b[0].shape[0]]

    def _touching(
        self, cand: np.ndarray, row_w: np.ndarray | None, vars_of: np.ndarray
    ) -> np.ndarray:
        if row_w is None:
            return cand
        t = cand[row_w[vars_of] != 0]
        return t if t.size else cand

    def _group_swaps(self, row_w, budget):
        gf = self.gfree
        g1 = self._touching(gf, row_w, self.gc[gf, self.gactive[gf]])
        if g1.size * gf.size > budget:
            n1 = min(g1.size, max(1, budget // max(1, min(gf.size, 256))))
            g1 = np.sort(self.rng.choice(g1, n1, replace=False)) if g1.size > n1 else g1
            per = max(1, budget // g1.size)
            g2 = np.stack([self.rng.choice(gf, min(per, gf.size), replace=False) for _ in g1])
            a = np.repeat(g1, g2.shape[1])
            b = g2.ravel()
        else:
            a = np.repeat(g1, gf.size)
            b = np.tile(gf, g1.size)
        k1, k2 = self.gactive[a], self.gactive[b]
        ok = (a != b) & (k1 != k2)
        a, b, k1, k2 = a[ok], b[ok], k1[ok], k2[ok]
        ok = (self.gc[a, k2] >= 0) & (self.gc[b, k1] >= 0)
        a, b, k1, k2 = a[ok], b[ok], k1[ok], k2[ok]
        vars_ = np.stack([self.gc[a, k1], self.gc[a, k2], self.gc[b, k2], self.gc[b, k1]], 1)
        return vars_, np.tile([0.0, 1.0, 0.0, 1.0], (a.size, 1))

    def _var_swaps(self, row_w, budget):
        fr = self.free
        j1 = self._touching(fr, row_w, fr)
        if j1.size > 64:
            j1 = np.sort(self.rng.choice(j1, 64, replace=False))
        per = max(1, min(fr.size, budget // j1.size))
        k = np.stack([self.rng.choice(fr, per, replace=False) for _ in j1]).ravel()
        j = np.repeat(j1, per)
        xj, xk = self.x[j], self.x[k]
        ok = (
            (xj != xk)
            & np.any(self.dom[j] == xk[:, None], 1)
            & np.any(self.dom[k] == xj[:, None], 1)
        )
        j, k = j[ok], k[ok]
        return np.stack([j, k], 1), np.stack([self.x[k], self.x[j]], 1)

    def _pairs(self, row_w, budget):
        fr = self.free
        j1 = self._touching(fr, row_w, fr)
        if j1.size > 64:
            j1 = np.sort(self.rng.choice(j1, 64, replace=False))
        per = max(1, min(fr.size, budget // (4 * j1.size)))
        k = np.stack([self.rng.choice(fr, per, replace=False) for _ in j1]).ravel()
        j = np.repeat(j1, per)
        ok = j != k
        j, k = j[ok], k[ok]
        steps = np.array([[1, 1], [1, -1], [-1, 1], [-1, -1]])
        j = np.repeat(j, 4)
        k = np.repeat(k, 4)
        s = np.tile(steps, (j.size // 4, 1))
        ij, ik = self.xi[j] + s[:, 0], self.xi[k] + s[:, 1]
        ok = (ij >= 0) & (ij < self.dsize[j]) & (ik >= 0) & (ik < self.dsize[k])
        j, k, ij, ik = j[ok], k[ok], ij[ok], ik[ok]
        return np.stack([j, k], 1), np.stack([self.dom[j, ij], self.dom[k, ik]], 1)

    def _blocks(self, row_w, budget):
        """Random blocks of q variables (at least one touching row w), all 2^q sign patterns of +-1 step."""
        q, fr = self.p.block, self.free
        signs = np.array(list(itertools.product((-1, 1), repeat=q)))
        n_blocks = max(1, budget // (2 * signs.shape[0]))
        touch = self._touching(fr, row_w, fr)
        first = self.rng.choice(touch, n_blocks)
        rest = np.stack([self.rng.choice(fr, q - 1, replace=False) for _ in range(n_blocks)])
        J = np.concatenate([first[:, None], rest], axis=1)
        J = J[np.array([len(set(r)) == q for r in J.tolist()], dtype=bool)]
        J = np.repeat(J, signs.shape[0], axis=0)
        steps = np.tile(signs, (J.shape[0] // signs.shape[0], 1))
        idx = self.xi[J] + steps
        ok = np.all((idx >= 0) & (idx < self.dsize[J]), axis=1)
        J, idx = J[ok], idx[ok]
        return J, self.dom[J, idx]

    # -- evaluation (device) ---------------------------------------------------------------------
    def lower_bounds(
        self, S: np.ndarray, AS: Any, batch: tuple[np.ndarray, np.ndarray]
    ) -> np.ndarray:
        """The screen's lower bound of the new maximum of each move of the batch, on rows S."""
        return self._screen(S, AS, batch)[0]

    def _screen(self, S: np.ndarray, AS: Any, batch: tuple[np.ndarray, np.ndarray]):
        """(lower bound of the new max, change of the summed violation) on rows S, per move."""
        xp = self.xp
        vars_, vals = batch
        C = vars_.shape[0]
        # a move touching none of the rows S leaves them as they are: bound = their max, gain 0
        touch = self.be.to_host((AS != 0).any(axis=0))
        hit = np.flatnonzero(touch[vars_].any(axis=1) & (vals != self.x[vars_]).any(axis=1))
        self.counters["screened"] += C
        lb_all = np.full(C, self.be.scalar(self.v[self.be.asarray(S)].max()))
        gain_all = np.zeros(C)
        if hit.size == 0:
            return lb_all, gain_all
        vars_, vals = vars_[hit], vals[hit]
        coef = xp.asarray(vals - self.x[vars_])
        Sd = self.be.asarray(S)
        rS, loS, upS, wS = self.r[Sd], self.lo[Sd], self.up[Sd], self.w[Sd]
        old = self.v[Sd].sum()
        lbs, gains = [], []
        C, T = vars_.shape
        chunk = max(1, 4_000_000 // max(1, len(S) * T))
        for a in range(0, C, chunk):
            vv = self.be.asarray(vars_[a : a + chunk])
            d = (AS[:, vv] * coef[a : a + chunk][None]).sum(axis=2)
            nr = rS[:, None] + d
            nv = wS[:, None] * xp.maximum(0.0, xp.maximum(loS[:, None] - nr, nr - upS[:, None]))
            lbs.append(self.be.to_host(nv.max(axis=0)))
            gains.append(self.be.to_host(nv.sum(axis=0) - old))
        lb_all[hit] = np.concatenate(lbs)
        gain_all[hit] = np.concatenate(gains)
        return lb_all, gain_all

    def exact(self, vars_: np.ndarray, vals: np.ndarray, support: bool = False):
        """Exact (new max, new tie) of each move over all rows; with `support`, also the max of the
        new violations on the rows the move changes."""
        if self.sparse_eval:
            return self._exact_sparse(vars_, vals, support)
        return self._exact_dense(vars_, vals, support)

    def _exact_sparse(self, vars_: np.ndarray, vals: np.ndarray, support: bool):
        """NumPy + sparse A: the same numbers from the touched rows only.

        new max = max(new violations of the touched rows, the largest violation of an untouched
        row), the latter read off the rows sorted by violation; the tie-break changes by the sum
        over the touched rows. Moves whose touched rows cover the whole sorted prefix fall back to
        the dense evaluation.
        """
        import scipy.sparse as sp

        C, T = vars_.shape
        coef = vals - self.x[vars_]
        D = None
        for t in range(T):
            part = self.host_csc[:, vars_[:, t]] @ sp.diags(coef[:, t])
            D = part if D is None else D + part
        D = sp.csc_matrix(D)
        D.sort_indices()
        rows, starts = D.indices, D.indptr
        r, v = self.r, self.v
        nr = r[rows] + D.data
        nv = self.model.weights[rows] * np.maximum(
            0.0, np.maximum(self.model.lower[rows] - nr, nr - self.model.upper[rows])
        )
        counts = np.diff(starts)
        ne = counts > 0
        touched_max = np.zeros(C)
        if ne.any():
            touched_max[ne] = np.maximum.reduceat(nv, starts[:-1][ne])
        if self.p.tiebreak == "sum":
            f_new, f_old = nv, v[rows]
        else:  # pnorm
            scale = self.maxv if self.maxv > 0 else 1.0
            f_new, f_old = nv / scale, v[rows] / scale
            for _ in range(PNORM_SQUARINGS):
                f_new, f_old = f_new * f_new, f_old * f_old
        dtie = np.zeros(C)
        if ne.any():
            dtie[ne] = np.add.reduceat(f_new - f_old, starts[:-1][ne])
        tie = self.tie + dtie
        # the largest untouched violation: first row of the sorted prefix that the move misses
        top = self._sorted_prefix()
        member = sp.csr_matrix(D)[top].toarray() != 0  # |top| x C
        first = np.argmax(~member, axis=0)
        covered = member.all(axis=0)
        untouched = v[top][first]
        mx = np.maximum(touched_max, np.where(covered, 0.0, untouched))
        self.counters["evaluated"] += C
        if covered.any():
            idx = np.flatnonzero(covered)
            out = self._exact_dense(vars_[idx], vals[idx], False)
            self.counters["evaluated"] -= idx.size
            mx[idx], tie[idx] = out[0], out[1]
        if support:
            return mx, tie, touched_max
        return mx, tie

    def _sorted_prefix(self) -> np.ndarray:
        """The (up to) 64 rows of largest violation, largest first; cached per residual."""
        if self._prefix is None:
            v = self.v
            k = min(64, self.m)
            part = np.argpartition(-v, k - 1)[:k] if k < self.m else np.arange(self.m)
            self._prefix = part[np.lexsort((part, -v[part]))]
        return self._prefix

    def _exact_dense(self, vars_: np.ndarray, vals: np.ndarray, support: bool = False):
        xp = self.xp
        C, T = vars_.shape
        maxes, ties, sups = [], [], []
        chunk = max(1, 4_000_000 // max(1, self.m * T))
        for a in range(0, C, chunk):
            V, c = vars_[a : a + chunk], vals[a : a + chunk] - self.x[vars_[a : a + chunk]]
            D = None
            for t in range(T):
                part = self.M.cols(V[:, t]) * xp.asarray(c[:, t])[None, :]
                D = part if D is None else D + part
            NV = self._viol(self.r[:, None] + D)
            mx = self.be.to_host(NV.max(axis=0))
            maxes.append(mx)
            ties.append(self._tie(NV, mx))
            if support:
                sups.append(self.be.to_host(xp.where(D != 0, NV, 0.0).max(axis=0)))
        self.counters["evaluated"] += C
        if support:
            return np.concatenate(maxes), np.concatenate(ties), np.concatenate(sups)
        return np.concatenate(maxes), np.concatenate(ties)

    # -- one local-search step -------------------------------------------------------------------
    def step(self) -> bool:
        """Apply the best improving move found (plus disjoint ones); False at a local optimum."""
        M = self.maxv
        S = self.worst_rows()
        AS = self.M.rows(S)
        tolM = _tol(M)
        limit = self.p.max_eval
        # phase 1: moves that may lower the maximum (screened on the K worst rows), and a few that
        # keep it but lower the violation of the other worst rows (for the tie-break)
        cands = []
        for b in self.moves(int(S[0]), sample=False):
            lb, gain = self._screen(S, AS, b)
            strict = lb < M - tolM
            self.counters["pruned"] += int((~strict).sum())
            aux = np.flatnonzero(~strict & (lb <= M + tolM) & (gain < 0))
            cands.append((b, np.flatnonzero(strict), lb[strict], aux, gain[aux]))
        if self._improve(cands, limit, M):
            return True
        # phase 2: a random sample of moves that keep the maximum, for the tie-break
        cands = []
        for b in self.moves(None, sample=True):
            C = b[0].shape[0]
            take = np.sort(self.rng.choice(C, min(C, 2 * limit), replace=False))
            sub = (b[0][take], b[1][take])
            lb, gain = self._screen(S, AS, sub)
            keep = np.flatnonzero(lb <= M + tolM)
            cands.append((sub, np.zeros(0, np.int64), np.zeros(0), keep, gain[keep]))
        return self._improve(cands, limit, M)

    def _improve(self, cands, limit, M) -> bool:
        """Exactly evaluate the most promising candidates; apply the best if it improves (max, tie)."""

        # (batch, index, rank key): strict candidates by screen bound, then aux ones by gain
        def pool(which_idx, which_key):
            bi = np.concatenate(
                [np.full(c[which_idx].size, k, dtype=np.int64) for k, c in enumerate(cands)]
            )
            ix = np.concatenate([c[which_idx] for c in cands]).astype(np.int64)
            ky = np.concatenate([np.asarray(c[which_key], dtype=np.float64) for c in cands])
            o = np.argsort(ky, kind="stable")
            return bi[o], ix[o]

        if not cands:
            return False
        s_b, s_i = pool(1, 2)
        a_b, a_i = pool(3, 4)
        n_aux = min(a_b.size, max(limit // 4, limit - s_b.size))
        n_strict = min(s_b.size, limit - n_aux)
        ch_b = np.concatenate([s_b[:n_strict], a_b[:n_aux]])
        ch_i = np.concatenate([s_i[:n_strict], a_i[:n_aux]])
        if ch_b.size == 0:
            return False
        multi = self.p.multi > 1 and self.M.sparse and self.p.tiebreak != "count"
        Vs, Xs, mxs, ties, sups = [], [], [], [], []
        for bi, b in enumerate(cands):
            sel = np.unique(ch_i[ch_b == bi])
            if sel.size == 0:
                continue
            V, X = b[0][0][sel], b[0][1][sel]
            out = self.exact(V, X, support=multi)
            Vs += list(V)
            Xs += list(X)
            mxs.append(out[0])
            ties.append(out[1])
            if multi:
                sups.append(out[2])
        mx, tie = np.concatenate(mxs), np.concatenate(ties)
        o = int(np.lexsort((tie, mx))[0])
        tolM, tolT = _tol(M), _tol(self.tie)
        if not (mx[o] < M - tolM or (mx[o] <= M + tolM and tie[o] < self.tie - tolT)):
            return False
        vars_, vals = [Vs[o]], [Xs[o]]
        if multi:
            sup = np.concatenate(sups)
            used_vars = set(Vs[o].tolist())
            used_rows = set(self._rows_of(Vs[o], Xs[o]))
            for i in np.argsort(tie, kind="stable").tolist():
                if len(vars_) >= self.p.multi or tie[i] >= self.tie - tolT:
                    break
                if i == o or mx[i] > M + tolM or sup[i] > mx[o] + tolM:
                    continue
                vi = set(Vs[i].tolist())
                ri = set(self._rows_of(Vs[i], Xs[i]))
                if vi & used_vars or ri & used_rows:
                    continue
                used_vars |= vi
                used_rows |= ri
                vars_.append(Vs[i])
                vals.append(Xs[i])
        self.apply(np.concatenate(vars_), np.concatenate(vals))
        return True

    def _rows_of(self, vars_: np.ndarray, vals: np.ndarray) -> list[int]:
        """Rows whose residual a move may change (host CSC of A)."""
        csc = self.host_csc
        out: list[int] = []
        for v, val in zip(vars_.tolist(), vals.tolist()):
            if val != self.x[v]:
                out += csc.indices[csc.indptr[v] : csc.indptr[v + 1]].tolist()
        return out

    # -- perturbation ----------------------------------------------------------------------------
    def perturb(self) -> None:
        """Destroy a few variables/groups (half of them touching a worst row), repair each greedily."""
        rng, n_units = self.rng, self.free.size + self.gfree.size
        if n_units == 0:
            return
        q = self.p.perturb_size or max(4, min(8, math.ceil(0.1 * n_units)))
        w = int(self.worst_rows()[0])
        row_w = self.be.to_host(self.M.rows(np.array([w])))[0]
        units = [("v", int(j)) for j in self.free] + [("g", int(g)) for g in self.gfree]
        touching = [
            i
            for i, (t, u) in enumerate(units)
            if (row_w[u] != 0 if t == "v" else row_w[self.gc[u, self.gactive[u]]] != 0)
        ]
        picks: list[int] = []
        if touching:
            picks += rng.choice(
                touching, min(len(touching), max(1, q // 2 + q % 2)), replace=False
            ).tolist()
        rest = [i for i in range(len(units)) if i not in set(picks)]
        if rest and len(picks) < q:
            picks += rng.choice(rest, min(len(rest), q - len(picks)), replace=False).tolist()
        chosen = [units[i] for i in picks]
        for t, u in chosen:  # destroy
            mv = self._random_move(t, u)
            if mv is not None:
                self.apply(*mv)
        for t, u in [chosen[i] for i in rng.permutation(len(chosen))]:  # repair
            mv = self._best_response(t, u)
            if mv is not None:
                self.apply(*mv)

    def _random_move(self, t: str, u: int):
        rng = self.rng
        if t == "v":
            R = self.p.perturb_radius
            steps = np.array(
                [s for s in range(-R, R + 1) if s and 0 <= self.xi[u] + s < self.dsize[u]]
            )
            if steps.size == 0:
                return None
            k = self.xi[u] + int(rng.choice(steps))
            return np.array([u]), np.array([self.dom[u, k]])
        valid = np.flatnonzero(self.gc[u] >= 0)
        if self.p.transfer and valid.size > 1:
            k = int(rng.choice(valid[valid != self.gactive[u]]))
            return np.array([self.gc[u, self.gactive[u]], self.gc[u, k]]), np.array([0.0, 1.0])
        if self.p.swap and self.gfree.size > 1:
            vars_, vals = self._swaps_of(u, self.gfree)
            if vars_.shape[0]:
                i = int(rng.integers(vars_.shape[0]))
                return vars_[i], vals[i]
        return None

    def _swaps_of(self, g: int, others: np.ndarray):
        b = others[others != g]
        k1 = np.full(b.size, self.gactive[g])
        k2 = self.gactive[b]
        ok = (k1 != k2) & (self.gc[g, k2] >= 0) & (self.gc[b, k1] >= 0)
        b, k1, k2 = b[ok], k1[ok], k2[ok]
        vars_ = np.stack([self.gc[g, k1], self.gc[g, k2], self.gc[b, k2], self.gc[b, k1]], 1)
        return vars_, np.tile([0.0, 1.0, 0.0, 1.0], (b.size, 1))

    def _best_response(self, t: str, u: int):
        """The best value for one variable (or option/swap for one group) given the others."""
        if t == "v":
            d = self.dom[u, : self.dsize[u]]
            V, X = np.full((d.size, 1), u), d[:, None]
        else:
            parts = []
            valid = np.flatnonzero(self.gc[u] >= 0)
            if self.p.transfer:
                a = self.gc[u, self.gactive[u]]
                parts.append(
                    (
                        np.stack([np.full(valid.size, a), self.gc[u, valid]], 1),
                        np.tile([0.0, 1.0], (valid.size, 1)),
                    )
                )
                parts[-1][1][valid == self.gactive[u]] = [1.0, 1.0]  # staying put: no change
            if self.p.swap and self.gfree.size > 1:
                others = self.gfree
                if others.size > self.p.swap_sample:
                    others = np.sort(self.rng.choice(others, self.p.swap_sample, replace=False))
                parts.append(self._swaps_of(u, others))
            parts = [p for p in parts if p[0].shape[0]]
            best = None
            for V, X in parts:
                mx, tie = self.exact(V, X)
                o = np.lexsort((tie, mx))[0]
                if best is None or (mx[o], tie[o]) < best[0]:
                    best = ((mx[o], tie[o]), (V[o], X[o]))
            return None if best is None else best[1]
        mx, tie = self.exact(V, X)
        o = np.lexsort((tie, mx))[0]
        return V[o], X[o]

    # -- main loop -------------------------------------------------------------------------------
    def run(self) -> MinMaxResult:
        p, c = self.p, self.counters
        start = time.monotonic()
        deadline = None if p.time_limit is None else start + p.time_limit
        best_score, best = self.score(), self.snapshot()
        history = [(0.0, best_score[0])]
        stall = 0
        termination = "stalled"

        def better(a, b):
            return a[0] < b[0] - _tol(b[0]) or (
                a[0] <= b[0] + _tol(b[0]) and a[1] < b[1] - _tol(b[1])
            )

        while True:
            if best_score[0] <= 0.0:
                termination = "optimal"
                break
            if deadline is not None and time.monotonic() >= deadline:
                termination = "time_limit"
                break
            if p.max_iters is not None and c["iterations"] >= p.max_iters:
                termination = "iteration_limit"
                break
            c["iterations"] += 1
            if self.step():
                if better(self.score(), best_score):
                    best_score, best = self.score(), self.snapshot()
                    history.append((time.monotonic() - start, best_score[0]))
                    stall = 0
                    if p.callback is not None:
                        p.callback(best[0].copy(), best_score[0])
                continue
            # local optimum: acceptance, then perturbation
            c["rounds"] += 1
            stall += 1
            if stall > p.max_stall:
                termination = "stalled"
                break
            if self.maxv > best_score[0] * (1.0 + p.accept) + _tol(best_score[0]):
                self.restore(best)
            self.perturb()
            if better(self.score(), best_score):
                best_score, best = self.score(), self.snapshot()
                history.append((time.monotonic() - start, best_score[0]))
                stall = 0
        x = best[0]
        mx, sm, cnt = evaluate(self.model, x)
        return MinMaxResult(
            x=x,
            max_violation=mx,
            sum_violation=sm,
            rows_at_max=cnt,
            optimal=mx <= 0.0,
            termination=termination,
            iterations=c["iterations"],
            rounds=c["rounds"],
            evaluated=c["evaluated"],
            screened=c["screened"],
            pruned=c["pruned"],
            runtime_s=time.monotonic() - start,
            backend=self.be.name,
            device=self.be.device,
            history=history,
        )


def solve(
    model: MinMaxModel,
    params: MinMaxParams | None = None,
    x0: Sequence[float] | None = None,
    **overrides: Any,
) -> MinMaxResult:
    """Minimise the maximum violation of `model` from `x0` (default: `model.default_start()`)."""
    params = params or MinMaxParams()
    if overrides:
        params = MinMaxParams(**{**params.__dict__, **overrides})
    return _Search(model, params, None if x0 is None else np.asarray(x0, dtype=np.float64)).run()

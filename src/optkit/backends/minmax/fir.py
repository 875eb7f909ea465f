"""Showcase of the min-max engine: fixed-point linear-phase FIR low-pass filter design.

A type-I linear-phase FIR filter of odd length N = 2L + 1 has symmetric taps h[n] = h[N-1-n] and
the real amplitude response

    A(w) = h[L] + 2 sum_{k=1..L} h[L-k] cos(k w).

Fixed point: every tap lies on the grid 2^-b, h[L-k] = c_k / 2^b with integer c_k, |c_k| <= 2^b.
On a frequency grid w_1..w_m in the passband [0, wp] (desired D = 1) and the stopband [ws, pi]
(D = 0) with weights W_i, the design problem is

    minimise  max_i  W_i | A(w_i) - D_i |    over the integer vectors c,

which is exactly a DMMV instance: rows = grid points, A_ik = basis_k(w_i) / 2^b, lower = upper =
D_i, row weights W_i. Four ways to solve it, all at the same time budget and on the same finite
domains (each c_k within `radius` grid steps of the rounded continuous optimum, clipped to
[-2^b, 2^b]):

* `continuous_minimax`: the LP without quantisation (scipy/HiGHS). Its optimum t* is a proven lower
  bound for every quantised design on this grid; rounding its taps is the naive baseline.
* `design_minmax`: the DMMV local search (`engine.solve`), started from the rounded design.
* `design_cpsat`: CP-SAT on the same model with the coefficients scaled to integers (2^20 per
  unit of deviation; the rounding changes the deviation by about 1e-6 at most), hinted with the
  rounded design.
* `design_mip`: min t s.t. -t <= W_i (sum_k A_ik c_k - D_i) <= t, c integer (PuLP + HiGHS).

Every deviation reported is recomputed in float64 from the integer taps by `max_deviation`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field

import numpy as np

from optkit.backends.minmax.engine import MinMaxModel, MinMaxParams, solve
from optkit.errors import InputError


@dataclass(frozen=True)
class FirSpec:
    """A low-pass design: N taps (odd), b fractional bits, band edges as fractions of Nyquist."""

    taps: int = 41
    bits: int = 10
    passband: float = 0.2  # wp / pi
    stopband: float = 0.3  # ws / pi
    grid: int = 16  # grid points per tap over [0, pi] (before removing the transition band)
    stop_weight: float = 1.0  # W in the stopband (1 in the passband)
    radius: int = 16  # domain: rounded continuous optimum +- radius grid steps

    def __post_init__(self) -> None:
        if self.taps < 3 or self.taps % 2 == 0:
            raise InputError(f"field 'taps': must be odd and >= 3, got {self.taps}")
        if not 1 <= self.bits <= 24:
            raise InputError(f"field 'bits': must be in 1..24, got {self.bits}")
        if not 0 < self.passband < self.stopband < 1:
            raise InputError("fields 'passband', 'stopband': need 0 < passband < stopband < 1")
        if self.grid < 1 or self.radius < 1 or self.stop_weight <= 0:
            raise InputError("fields 'grid', 'radius', 'stop_weight' must be positive")

    @property
    def L(self) -> int:
        return (self.taps - 1) // 2

    @property
    def label(self) -> str:
        return f"N={self.taps}, b={self.bits}, pass {self.passband}, stop {self.stopband}"


@dataclass
class FirDesign:
    method: str
    coefficients: np.ndarray  # integer c_0..c_L (c_0 = 2^b h[L], c_k = 2^b h[L-k])
    max_deviation: float  # recomputed on the design grid
    runtime_s: float
    status: str = ""  # e.g. optimal / feasible / time_limit / stalled
    bound: float | None = (
        None  # a proven lower bound on the quantised optimum, if the method has one
    )
    stats: dict = field(default_factory=dict)

    def taps(self, spec: FirSpec) -> np.ndarray:
        """The N filter taps h[0..N-1] as floats."""
        c = self.coefficients.astype(np.float64) / 2.0**spec.bits
        return np.concatenate([c[:0:-1], c])


def grid(spec: FirSpec) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """(w, D, W): grid frequencies in radians, desired response, weights."""
    total = spec.grid * spec.taps
    w = np.linspace(0.0, math.pi, total)
    wp, ws = spec.passband * math.pi, spec.stopband * math.pi
    keep = (w <= wp + 1e-12) | (w >= ws - 1e-12)
    w = w[keep]
    # include the band edges exactly
    w = np.unique(np.concatenate([w, [wp, ws]]))
    D = (w <= wp + 1e-12).astype(np.float64)
    W = np.where(D > 0, 1.0, spec.stop_weight)
    return w, D, W


def basis(spec: FirSpec, w: np.ndarray) -> np.ndarray:
    """m x (L+1): A(w) = basis @ h_half where h_half[k] = h[L-k]."""
    k = np.arange(spec.L + 1)
    B = np.cos(np.outer(w, k)) * 2.0
    B[:, 0] = 1.0
    return B


def max_deviation(spec: FirSpec, c: np.ndarray) -> float:
    """max_i W_i |A(w_i) - D_i| of integer coefficients c, in float64."""
    w, D, W = grid(spec)
    A = basis(spec, w) @ (np.asarray(c, dtype=np.float64) / 2.0**spec.bits)
    return float(np.max(W * np.abs(A - D)))


def continuous_minimax(spec: FirSpec) -> tuple[np.ndarray, float]:
    """(real taps h_half, optimal max deviation t*) of the unquantised LP (scipy, HiGHS)."""
    from scipy.optimize import linprog

    w, D, W = grid(spec)
    B = basis(spec, w)
    m, n = B.shape
    # variables: h (free), t >= 0; rows: W(Bh - D) <= t and -W(Bh - D) <= t
    WB = W[:, None] * B
    A_ub = np.block([[WB, -np.ones((m, 1))], [-WB, -np.ones((m, 1))]])
    b_ub = np.concatenate([W * D, -W * D])
    c = np.zeros(n + 1)
    c[-1] = 1.0
    res = linprog(c, A_ub=A_ub, b_ub=b_ub, bounds=[(None, None)] * n + [(0, None)], method="highs")
    if res.status != 0:
        raise RuntimeError(f"continuous LP failed: {res.message}")
    return res.x[:n], float(res.x[-1])


def domains(spec: FirSpec, center: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(lo, hi) integer bounds of each c_k: center +- radius within [-2^b, 2^b]."""
    top = 2**spec.bits
    lo = np.clip(center - spec.radius, -top, top).astype(np.int64)
    hi = np.clip(center + spec.radius, -top, top).astype(np.int64)
    return lo, hi


def minmax_model(spec: FirSpec, center: np.ndarray) -> MinMaxModel:
    w, D, W = grid(spec)
    A = basis(spec, w) / 2.0**spec.bits
    lo, hi = domains(spec, center)
    return MinMaxModel(A, D, D, [np.arange(a, b + 1) for a, b in zip(lo, hi)], weights=W)


def rounded(spec: FirSpec) -> tuple[np.ndarray, float]:
    """(rounded continuous coefficients, continuous optimum t*)."""
    h, t = continuous_minimax(spec)
    return np.round(h * 2.0**spec.bits).astype(np.int64), t


def design_rounded(spec: FirSpec) -> FirDesign:
    start = time.monotonic()
    c, t = rounded(spec)
    return FirDesign(
        "rounded LP", c, max_deviation(spec, c), time.monotonic() - start, "completed", bound=t
    )


def design_minmax(
    spec: FirSpec, time_limit: float = 10.0, seed: int = 0, backend: str = "numpy", **params
) -> FirDesign:
    start = time.monotonic()
    c0, t = rounded(spec)
    model = minmax_model(spec, c0)
    left = max(0.01, time_limit - (time.monotonic() - start))
    p = MinMaxParams(backend=backend, seed=seed, time_limit=left, max_stall=10**9, **params)
    res = solve(model, p, x0=c0)
    c = np.round(res.x).astype(np.int64)
    return FirDesign(
        "minmax",
        c,
        max_deviation(spec, c),
        time.monotonic() - start,
        res.termination,
        bound=t,
        stats={
            "iterations": res.iterations,
            "rounds": res.rounds,
            "evaluated": res.evaluated,
            "screened": res.screened,
            "pruned": res.pruned,
            "backend": res.backend,
        },
    )


def design_cpsat(
    spec: FirSpec, time_limit: float = 10.0, seed: int = 0, threads: int = 1
) -> FirDesign:
    from ortools.sat.python import cp_model

    start = time.monotonic()
    c0, t = rounded(spec)
    lo, hi = domains(spec, c0)
    w, D, W = grid(spec)
    B = basis(spec, w)
    scale = 2.0**20  # integer units per unit of deviation
    coef = np.round(scale * W[:, None] * B).astype(
        np.int64
    )  # per integer step c_k (÷ 2^b folded below)
    # deviation * scale * 2^b = sum_k coef_ik c_k - scale * 2^b * W_i D_i
    rhs = np.round(scale * 2.0**spec.bits * W * D).astype(np.int64)
    model = cp_model.CpModel()
    c = [model.new_int_var(int(a), int(b), f"c{k}") for k, (a, b) in enumerate(zip(lo, hi))]
    big = int(np.abs(coef).sum(axis=1).max() * (2**spec.bits) + np.abs(rhs).max() + 1)
    tv = model.new_int_var(0, big, "t")
    for i in range(len(w)):
        expr = sum(int(coef[i, k]) * c[k] for k in range(len(c)) if coef[i, k] != 0) - int(rhs[i])
        model.add(expr <= tv)
        model.add(expr >= -tv)
    model.minimize(tv)
    for k, v in enumerate(c):
        model.add_hint(v, int(c0[k]))
    solver = cp_model.CpSolver()
    solver.parameters.max_time_in_seconds = max(0.01, time_limit - (time.monotonic() - start))
    solver.parameters.num_workers = threads
    solver.parameters.random_seed = seed
    status = solver.solve(model)
    name = solver.status_name(status)
    if status not in (cp_model.OPTIMAL, cp_model.FEASIBLE):
        return FirDesign("cpsat", c0, float("nan"), time.monotonic() - start, name.lower())
    cc = np.array([solver.value(v) for v in c], dtype=np.int64)
    # the scaled bound is a bound of the scaled model only; report the LP bound t*, which is proven
    return FirDesign(
        "cpsat",
        cc,
        max_deviation(spec, cc),
        time.monotonic() - start,
        "optimal" if status == cp_model.OPTIMAL else "feasible",
        bound=t,
        stats={"scaled_bound": solver.best_objective_bound / (scale * 2.0**spec.bits)},
    )


def design_mip(
    spec: FirSpec, time_limit: float = 10.0, seed: int = 0, threads: int = 1
) -> FirDesign:
    import pulp

    from optkit.backends.pulp_model import solve_problem, value
    from optkit.solve import SolveOptions

    start = time.monotonic()
    c0, t = rounded(spec)
    lo, hi = domains(spec, c0)
    w, D, W = grid(spec)
    A = basis(spec, w) / 2.0**spec.bits
    prob = pulp.LpProblem("fir", pulp.LpMinimize)
    c = [
        prob.add_variable(f"c{k}", int(a), int(b), cat=pulp.LpInteger)
        for k, (a, b) in enumerate(zip(lo, hi))
    ]
    tv = prob.add_variable("t", 0)
    prob += tv
    for i in range(len(w)):
        expr = pulp.lpSum(float(W[i] * A[i, k]) * c[k] for k in range(len(c))) - float(W[i] * D[i])
        prob += expr <= tv
        prob += -expr <= tv
    opts = SolveOptions(
        time_limit=max(0.01, time_limit - (time.monotonic() - start)),
        threads=threads,
        seed=seed,
        params={"backend": "highs"},
    )
    ans = solve_problem(prob, opts)
    if not ans.has_solution:
        return FirDesign("mip", c0, float("nan"), time.monotonic() - start, ans.termination.value)
    cc = np.array([round(value(v)) for v in c], dtype=np.int64)
    bound = max(t, ans.bound) if ans.bound is not None else t
    return FirDesign(
        "mip",
        cc,
        max_deviation(spec, cc),
        time.monotonic() - start,
        "optimal" if ans.proven_optimal else "feasible",
        bound=bound,
        stats={"highs": ans.detail},
    )

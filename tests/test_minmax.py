"""The min-max violation engine (NumPy backend): brute force, the screen, determinism, backends."""

from __future__ import annotations

import itertools
import sys
import types

import numpy as np
import pytest
import scipy.sparse as sp
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from optkit.backends.minmax import backend as backend_mod
from optkit.backends.minmax.engine import (
    MinMaxModel,
    MinMaxParams,
    _Search,
    evaluate,
    screen,
    solve,
    violations,
)
from optkit.errors import InputError, SolverUnavailable

# -- helpers -------------------------------------------------------------------------------------


def brute_force(model: MinMaxModel) -> float:
    """The optimum max violation over every assignment (ungrouped variables only)."""
    doms = [d[~np.isnan(d)] for d in model.domains]
    best = np.inf
    for x in itertools.product(*doms):
        best = min(best, float(violations(model, np.array(x)).max()))
    return best


def brute_force_groups(model: MinMaxModel) -> float:
    """The optimum over every choice of one option per group (all variables grouped)."""
    n = model.shape[1]
    opts = [[v for v in g if v >= 0] for g in model.groups]
    best = np.inf
    for pick in itertools.product(*opts):
        x = np.zeros(n)
        x[list(pick)] = 1.0
        best = min(best, float(violations(model, x).max()))
    return best


@st.composite
def tiny_models(draw, sparse=False):
    m = draw(st.integers(1, 5))
    n = draw(st.integers(1, 4))
    A = np.array(draw(st.lists(st.integers(-3, 3), min_size=m * n, max_size=m * n)), float).reshape(
        m, n
    )
    lo = np.array(draw(st.lists(st.integers(-6, 3), min_size=m, max_size=m)), float)
    width = np.array(draw(st.lists(st.integers(0, 4), min_size=m, max_size=m)), float)
    doms = [
        sorted(set(draw(st.lists(st.integers(-2, 2), min_size=1, max_size=3)))) for _ in range(n)
    ]
    w = np.array(draw(st.lists(st.sampled_from([0.5, 1.0, 2.0]), min_size=m, max_size=m)))
    return MinMaxModel(sp.csr_matrix(A) if sparse else A, lo, lo + width, doms, weights=w)


def assignment_model(weights, bins, cap=None):
    """Items with weights into bins: x[i, b], one group per item, rows = bin loads <= cap."""
    k = len(weights)
    A = np.zeros((bins, k * bins))
    for i, wi in enumerate(weights):
        for b in range(bins):
            A[b, i * bins + b] = wi
    cap = sum(weights) / bins if cap is None else cap
    groups = [[i * bins + b for b in range(bins)] for i in range(k)]
    return MinMaxModel(A, None, np.full(bins, cap), [[0, 1]] * (k * bins), groups=groups)


# -- brute force -----------------------------------------------------------------------------------


@pytest.mark.slow
@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tiny_models(), st.integers(0, 3), st.booleans())
def test_reported_violation_is_recomputed_and_never_below_optimum(model, seed, sparse):
    if sparse:
        model = MinMaxModel(
            sp.csr_matrix(model.A), model.lower, model.upper, model.domains, weights=model.weights
        )
    res = solve(model, MinMaxParams(backend="numpy", seed=seed, max_iters=60, max_stall=5))
    mx, sm, _ = evaluate(model, res.x)
    assert res.max_violation == pytest.approx(mx, abs=1e-12)
    assert res.sum_violation == pytest.approx(sm, abs=1e-12)
    assert np.all(np.any(model.domains == res.x[:, None], axis=1)), "a value outside its domain"
    assert res.max_violation >= brute_force(model) - 1e-9
    if res.optimal:
        assert res.max_violation == 0.0


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2, 3, 4])
def test_finds_the_optimum_of_tiny_instances(seed):
    rng = np.random.default_rng(seed)
    m, n = 6, 4
    A = rng.integers(-3, 4, (m, n)).astype(float)
    lo = rng.integers(-5, 2, m).astype(float)
    model = MinMaxModel(
        A,
        lo,
        lo + rng.integers(0, 3, m),
        [range(-2, 3)] * n,
        weights=rng.choice([0.5, 1.0, 2.0], m),
    )
    res = solve(model, MinMaxParams(backend="numpy", seed=seed, max_iters=400, max_stall=40))
    assert res.max_violation == pytest.approx(brute_force(model), abs=1e-9)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_groups_stay_exact_and_reach_the_assignment_optimum(seed):
    rng = np.random.default_rng(seed)
    model = assignment_model(rng.integers(1, 10, 6).tolist(), 3)
    res = solve(model, MinMaxParams(backend="numpy", seed=seed, max_iters=400, max_stall=40))
    X = res.x.reshape(6, 3)
    assert (X.sum(axis=1) == 1).all()
    assert res.max_violation == pytest.approx(brute_force_groups(model), abs=1e-9)


def test_swaps_only_keep_every_option_count():
    w = [9, 7, 6, 5, 5, 4, 3, 2, 2, 1]
    model = assignment_model(w, 5)
    x0 = np.zeros(50)
    start = [i % 5 for i in range(10)]  # two items per bin
    x0[np.arange(10) * 5 + start] = 1.0
    res = solve(
        model,
        MinMaxParams(backend="numpy", seed=0, max_iters=300, transfer=False, single=False),
        x0=x0,
    )
    X = res.x.reshape(10, 5)
    assert (X.sum(axis=1) == 1).all()
    assert (X.sum(axis=0) == 2).all(), "swaps changed how many items a bin holds"
    assert res.max_violation <= evaluate(model, x0)[0]


# -- the screen ------------------------------------------------------------------------------------


def _all_moves_exact(search: _Search, batch):
    """New max violation of each move, recomputed from scratch."""
    out = []
    for vars_, vals in zip(*batch):
        x = search.x.copy()
        x[vars_] = vals
        out.append(float(violations(search.model, x).max()))
    return np.array(out)


@settings(max_examples=40, deadline=None)
@given(tiny_models(), st.integers(1, 3), st.integers(0, 5))
def test_a_pruned_single_move_never_lowers_the_maximum(model, k, seed):
    search = _Search(model, MinMaxParams(backend="numpy", seed=seed, top_k=k), None)
    M = search.maxv
    S = search.worst_rows()
    AS = search.M.rows(S)
    for batch in search.moves(int(S[0]), sample=False):
        lb = search.lower_bounds(S, AS, batch)
        exact = _all_moves_exact(search, batch)
        assert np.all(lb <= exact + 1e-9), "the screen's bound exceeds the true new maximum"
        pruned = ~(lb < M - 1e-9 * max(1.0, M))
        assert np.all(exact[pruned] >= M - 1e-9), "a pruned move lowers the maximum"


@settings(max_examples=30, deadline=None)
@given(
    st.lists(st.integers(1, 9), min_size=3, max_size=5),
    st.integers(2, 3),
    st.integers(1, 3),
    st.integers(0, 5),
)
def test_a_pruned_transfer_or_swap_never_lowers_the_maximum(weights, bins, k, seed):
    model = assignment_model(weights, bins, cap=sum(weights) / bins - 0.5)
    search = _Search(model, MinMaxParams(backend="numpy", seed=seed, top_k=k), None)
    M = search.maxv
    S = search.worst_rows()
    AS = search.M.rows(S)
    for batch in search.moves(int(S[0]), sample=False) + search.moves(None, sample=True):
        lb = search.lower_bounds(S, AS, batch)
        exact = _all_moves_exact(search, batch)
        assert np.all(lb <= exact + 1e-9)
        assert np.all(exact[lb >= M - 1e-9 * max(1.0, M)] >= M - 1e-9)


def test_screen_prunes_a_move_that_misses_a_worst_row():
    # rows 0 and 1 are both worst (violation 2); variable 0 touches row 0 only: it cannot help
    A = np.array([[1.0, 1.0], [0.0, 1.0], [1.0, 0.0]])
    r = np.array([3.0, 3.0, 0.0])
    lo, up, w = np.full(3, -np.inf), np.array([1.0, 1.0, 5.0]), np.ones(3)
    S = np.array([0, 1])
    deltas = np.stack([-A[S, 0], -A[S, 1]], axis=1)  # lower x0 by 1, lower x1 by 1
    keep = screen(r[S], lo[S], up[S], w[S], deltas, 2.0)
    assert keep.tolist() == [False, True]


# -- determinism, limits, parameters ---------------------------------------------------------------


@pytest.mark.slow
def test_same_seed_same_answer():
    rng = np.random.default_rng(7)
    A = sp.random(120, 60, density=0.1, random_state=7, format="csr")
    xs = rng.integers(-2, 3, 60)
    r = A @ xs
    model = MinMaxModel(A, r - 0.05, r + 0.05, [range(-2, 3)] * 60)
    x0 = rng.integers(-2, 3, 60)
    p = MinMaxParams(backend="numpy", seed=3, max_iters=150)
    a, b = solve(model, p, x0=x0), solve(model, p, x0=x0)
    assert np.array_equal(a.x, b.x) and a.max_violation == b.max_violation
    assert a.iterations == b.iterations and a.termination == b.termination
    assert a.max_violation <= evaluate(model, x0)[0]


def test_time_limit_is_honoured(monkeypatch):
    """The search reads the clock once per iteration and stops at the deadline: on a clock that
    advances 0.1 s per reading, a 0.3 s limit stops it after a few iterations, whatever the
    machine's speed."""
    import types

    from optkit.backends.minmax import engine

    now = [0.0]

    def tick():
        now[0] += 0.1
        return now[0]

    monkeypatch.setattr(engine, "time", types.SimpleNamespace(monotonic=tick))
    A = np.random.default_rng(0).normal(size=(200, 50))
    model = MinMaxModel(A, 0.5, 0.6, [range(-3, 4)] * 50)  # x = 0 violates every row
    res = solve(model, MinMaxParams(backend="numpy", time_limit=0.3, max_stall=10**9))
    assert res.termination == "time_limit"
    assert 1 <= res.iterations <= 3


def test_bad_inputs_are_named():
    with pytest.raises(InputError, match="tiebreak"):
        MinMaxParams(tiebreak="max")
    with pytest.raises(InputError, match="domains"):
        MinMaxModel(np.eye(2), 0, 1, [[0, 1]])
    with pytest.raises(InputError, match="x0"):
        solve(
            MinMaxModel(np.eye(2), 0, 1, [[0, 1], [0, 1]]), MinMaxParams(backend="numpy"), x0=[0, 5]
        )
    with pytest.raises(InputError, match="binary"):
        MinMaxModel(np.eye(2), 0, 1, [[0, 2], [0, 1]], groups=[[0, 1]])
    with pytest.raises(InputError, match="backend"):
        backend_mod.get_backend("gpu")


# -- backends ----------------------------------------------------------------------------------------


@pytest.fixture
def fresh_cupy_status():
    backend_mod.cupy_status.cache_clear()
    yield
    backend_mod.cupy_status.cache_clear()


def test_numpy_when_cupy_is_missing(monkeypatch, fresh_cupy_status):
    monkeypatch.setitem(sys.modules, "cupy", None)  # `import cupy` raises ImportError
    assert backend_mod.get_backend("auto").name == "numpy"
    assert backend_mod.get_backend("numpy").name == "numpy"
    with pytest.raises(SolverUnavailable, match="cupy"):
        backend_mod.get_backend("cupy")


def test_numpy_when_cupy_imports_but_has_no_gpu(monkeypatch, fresh_cupy_status):
    fake = types.ModuleType("cupy")

    class CUDARuntimeError(RuntimeError):
        pass

    def arange(*a, **k):
        raise CUDARuntimeError("cudaErrorNoDevice: no CUDA-capable device is detected")

    fake.arange, fake.float64 = arange, np.float64
    monkeypatch.setitem(sys.modules, "cupy", fake)
    assert backend_mod.get_backend("auto").name == "numpy"
    with pytest.raises(SolverUnavailable, match="no usable GPU"):
        backend_mod.get_backend("cupy")


def test_engine_reports_its_backend():
    model = MinMaxModel(np.eye(2), 0, 1, [[0, 1, 2]] * 2)
    res = solve(model, MinMaxParams(backend="numpy"))
    assert res.backend == "numpy" and res.optimal and res.termination == "optimal"


@pytest.mark.slow
@settings(max_examples=30, deadline=None)
@given(st.integers(0, 10**6), st.sampled_from(["pnorm", "sum"]))
def test_sparse_evaluation_matches_dense(seed, tiebreak):
    rng = np.random.default_rng(seed)
    m, n = int(rng.integers(3, 90)), int(rng.integers(2, 12))
    A = sp.random(m, n, density=0.3, random_state=seed, format="csr")
    A.data = rng.normal(size=A.nnz)
    lo = rng.normal(size=m) - 0.2
    model = MinMaxModel(A, lo, lo + 0.4, [range(-2, 3)] * n, weights=rng.choice([0.5, 1.0], m))
    x0 = rng.integers(-2, 3, n)
    a = _Search(model, MinMaxParams(backend="numpy", tiebreak=tiebreak, sparse_eval=True), x0)
    b = _Search(model, MinMaxParams(backend="numpy", tiebreak=tiebreak, sparse_eval=False), x0)
    assert a.sparse_eval and not b.sparse_eval
    S = a.worst_rows()
    for batch in a.moves(int(S[0]), sample=False):
        ma, ta, sa = a.exact(*batch, support=True)
        mb, tb, sb = b.exact(*batch, support=True)
        assert np.allclose(ma, mb, rtol=1e-9, atol=1e-12)
        assert np.allclose(ta, tb, rtol=1e-7, atol=1e-9)
        assert np.allclose(sa, sb, rtol=1e-9, atol=1e-12)


@pytest.fixture
def numpy_posing_as_cupy(monkeypatch, fresh_cupy_status):
    """A stand-in `cupy` (NumPy underneath) that passes the allocation probe: it runs the engine's
    CuPy branches (device transfers, cupyx sparse, no host-only fast paths) without a GPU."""
    import scipy.sparse

    fake = types.ModuleType("cupy")
    for name in dir(np):
        if not name.startswith("__"):
            setattr(fake, name, getattr(np, name))
    fake.__version__ = "0-numpy-shim"

    class _Stream:
        @staticmethod
        def synchronize():
            return None

    class _Device:
        id = 0

    cuda = types.SimpleNamespace(
        Stream=types.SimpleNamespace(null=_Stream()),
        Device=_Device,
        runtime=types.SimpleNamespace(getDeviceProperties=lambda i: {"name": b"Fake GPU"}),
    )
    fake.cuda = cuda
    fake.ndarray = np.ndarray

    class _GetArray(np.ndarray):
        def __new__(cls, a):
            return np.asarray(a).view(cls)

        def get(self):
            return np.asarray(self)

    fake.arange = lambda *a, **k: np.arange(*a, **k).view(_GetArray)
    cupyx = types.ModuleType("cupyx")
    cupyx_scipy = types.ModuleType("cupyx.scipy")
    cupyx_scipy.sparse = scipy.sparse
    cupyx.scipy = cupyx_scipy
    monkeypatch.setitem(sys.modules, "cupy", fake)
    monkeypatch.setitem(sys.modules, "cupyx", cupyx)
    monkeypatch.setitem(sys.modules, "cupyx.scipy", cupyx_scipy)
    monkeypatch.setitem(sys.modules, "cupyx.scipy.sparse", scipy.sparse)
    yield


@pytest.mark.parametrize("sparse", [False, True])
def test_the_cupy_code_path_runs_and_agrees(numpy_posing_as_cupy, sparse):
    be = backend_mod.get_backend("auto")
    assert be.name == "cupy" and "Fake GPU" in be.device
    rng = np.random.default_rng(5)
    A = rng.integers(-3, 4, (40, 12)).astype(float)
    A[rng.random(A.shape) < 0.6] = 0.0
    xs = rng.integers(-2, 3, 12)
    r = A @ xs
    model = MinMaxModel(sp.csr_matrix(A) if sparse else A, r - 0.5, r + 0.5, [range(-2, 3)] * 12)
    x0 = np.zeros(12)
    p = {"seed": 1, "max_iters": 200, "max_stall": 20}
    on_gpu = solve(model, MinMaxParams(backend="cupy", **p), x0=x0)
    on_cpu = solve(model, MinMaxParams(backend="numpy", sparse_eval=False, **p), x0=x0)
    assert on_gpu.backend == "cupy"
    assert on_gpu.max_violation == pytest.approx(evaluate(model, on_gpu.x)[0])
    # the same code on the same numbers: the same trajectory as NumPy with the dense evaluation
    assert np.array_equal(on_gpu.x, on_cpu.x)
    groups = assignment_model([5, 4, 3, 3, 2, 1], 3)
    res = solve(groups, MinMaxParams(backend="cupy", seed=0, max_iters=200))
    assert (res.x.reshape(6, 3).sum(axis=1) == 1).all()

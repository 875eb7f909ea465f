"""Expert placement heuristics: the fast rewrites agree with plain reference versions; time limits; params."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import optkit
from optkit.backends.heuristics.expert_placement import (
    _place_layer,
    _swap_search,
    balanced_pack,
    lpt_layer,
)
from optkit.problems.expert_placement import generate
from optkit.result import Status, Termination


def _balanced_pack_ref(weights, num_packs):
    """EPLB's balanced packing as published: heaviest first onto the lightest pack with room (argmin)."""
    n = len(weights)
    per = n // num_packs
    pack, rank = np.full(n, -1), np.full(n, -1)
    w, cnt = np.zeros(num_packs), np.zeros(num_packs, dtype=int)
    for item in np.argsort(-np.asarray(weights), kind="stable"):
        b = int(np.argmin(np.where(cnt < per, w, np.inf)))
        pack[item], rank[item] = b, cnt[b]
        w[b] += weights[item]
        cnt[b] += 1
    return pack, rank


def _lpt_ref(w, r, G, S):
    X = np.zeros((len(w), G), dtype=int)
    load, free, share = np.zeros(G), np.full(G, S), w / r
    for sh, e in sorted(
        ((share[i], i) for i in range(len(w)) for _ in range(r[i])), key=lambda t: (-t[0], t[1])
    ):
        cand = np.where((free > 0) & (X[e] == 0), load, np.inf)
        g = int(np.argmin(cand))
        if not np.isfinite(cand[g]):
            return None
        X[e, g], load[g], free[g] = 1, load[g] + sh, free[g] - 1
    return X


def _place_ref(share, r, sc, cap, S, slack=1.0):
    E, G = sc.shape
    X, load, free = np.zeros((E, G), dtype=int), np.zeros(G), np.full(G, S)
    eps = 1e-9 * max(1.0, cap)
    for sh, e in sorted(
        ((share[i], i) for i in range(E) for _ in range(r[i])), key=lambda t: (-t[0], t[1])
    ):
        ok = (free > 0) & (X[e] == 0)
        fit = ok & (load + sh <= cap + eps)
        if not fit.any():
            if not ok.any():
                return None
            g = int(np.argmin(np.where(ok, load, np.inf)))
        else:
            near = fit & (load <= load[fit].min() + slack * sh)
            g = int(np.argmax(np.where(near, sc[e] - 1e-12 * load, -np.inf)))
        X[e, g], load[g], free[g] = 1, load[g] + sh, free[g] - 1
    return X


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(1, 4), st.integers(1, 5), st.integers(0, 10**6))
def test_balanced_pack_matches_published_rule(packs, per, seed):
    rng = np.random.default_rng(seed)
    w = rng.integers(0, 6, size=packs * per).astype(float)  # many ties on purpose
    got, want = balanced_pack(w, packs), _balanced_pack_ref(w, packs)
    if per == 1:
        want = (np.arange(packs), np.zeros(packs, dtype=int))
    assert got[0].tolist() == want[0].tolist() and got[1].tolist() == want[1].tolist()


@settings(max_examples=40, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(2, 6), st.integers(1, 4), st.integers(0, 10**6))
def test_lpt_and_greedy_placement_match_plain_versions(G, S, seed):
    rng = np.random.default_rng(seed)
    E = int(rng.integers(max(1, G * S // 2), G * S + 1))
    w = rng.integers(1, 9, size=E).astype(float)
    r = np.ones(E, dtype=int)
    for e in rng.choice(E, size=min(E, G * S - E), replace=False):
        r[e] = min(G, 2)
    got, want = lpt_layer(w, r, G, S), _lpt_ref(w, r, G, S)
    assert (got is None) == (want is None) and (got is None or (got == want).all())
    sc = rng.integers(0, 4, size=(E, G)).astype(float)
    share = w / r
    for cap in (share.sum() / G, share.sum() / G * 1.2, np.inf):
        got, want = (
            _place_layer(share, r, sc, float(cap), S),
            _place_ref(share, r, sc, float(cap), S),
        )
        assert (got is None) == (want is None) and (got is None or (got == want).all())


def test_swap_search_keeps_cap_and_improves_score():
    rng = np.random.default_rng(5)
    E, G, S = 40, 8, 5
    w = rng.integers(1, 20, size=E).astype(float)
    r = np.ones(E, dtype=int)
    X = lpt_layer(w, r, G, S)
    cap = float((w @ X).max())
    sc = rng.random((E, G))
    before = float((sc * X).sum())
    Y = _swap_search(X.copy(), w, sc, cap, rounds=5)
    assert (Y.sum(axis=1) == 1).all() and (Y.sum(axis=0) <= S).all()
    assert (w @ Y).max() <= cap + 1e-9 and float((sc * Y).sum()) >= before


def _mid_instance():
    return generate(
        seed=4, shape="qwen-moe", layers=6, experts=64, gpus=8, nodes=2, slots_per_gpu=9, tokens=512
    )


def test_time_limit_cuts_the_search_but_keeps_the_balance_guarantee(monkeypatch):
    """The clock is made to say "expired" from the start (not a short limit that a fast machine
    might beat): the search stops at its first check and still keeps EPLB's balance."""
    from optkit.solve import SolveOptions

    p = _mid_instance()
    eplb = optkit.solve(p, "eplb", num_groups=2, repair=True).metrics["balancedness_per_layer"]
    with monkeypatch.context() as m:
        m.setattr(SolveOptions, "expired", lambda self: self.time_limit is not None)
        r = optkit.solve(p, "greedy-affinity", num_groups=2, time_limit=600)
    assert r.status == Status.FEASIBLE and r.termination == Termination.TIME_LIMIT
    assert r.stats["stopped_early"]
    assert all(a >= b - 1e-6 for a, b in zip(r.metrics["balancedness_per_layer"], eplb))
    full = optkit.solve(p, "greedy-affinity", num_groups=2)
    assert full.termination == Termination.COMPLETED and not full.stats["stopped_early"]


@pytest.mark.parametrize("traffic", ["cost", "gpu"])
def test_traffic_param(traffic):
    p = _mid_instance()
    eplb = optkit.solve(p, "eplb", num_groups=2, repair=True).metrics
    r = optkit.solve(p, "greedy-affinity", num_groups=2, traffic=traffic)
    assert r.status == Status.FEASIBLE
    assert all(
        a >= b - 1e-6
        for a, b in zip(r.metrics["balancedness_per_layer"], eplb["balancedness_per_layer"])
    )
    assert r.metrics["cross_gpu_traffic"] < eplb["cross_gpu_traffic"]


def test_bad_traffic_param_is_an_error():
    r = optkit.solve(_mid_instance(), "greedy-affinity", traffic="bytes")
    assert r.status == Status.ERROR and "traffic" in r.message

"""Expert placement: the lower bound on cross-GPU traffic against exhaustive search, and greedy-affinity's guarantees."""

from __future__ import annotations

import itertools

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import optkit
from optkit.backends.heuristics.expert_placement import _pair_stay_bound, traffic_lower_bound
from optkit.problems.expert_placement import ExpertPlacement, generate
from optkit.result import Status


def _min_cross_gpu(problem: ExpertPlacement) -> float:
    """The least cross-GPU traffic over every feasible placement (replicas included), by enumeration."""
    E, G, S = problem.num_experts, problem.gpus, problem.slots_per_gpu
    subsets = [c for size in range(S + 1) for c in itertools.combinations(range(E), size)]
    options = []
    for combo in itertools.product(subsets, repeat=G):
        if set().union(*map(set, combo)) == set(range(E)):
            options.append([e for c in combo for e in list(c) + [-1] * (S - len(c))])
    return min(
        problem.traffic(sol)["cross_gpu_traffic"]
        for sol in itertools.product(options, repeat=problem.num_layers)
    )


@st.composite
def tiny_affinity_instances(draw):
    G, S = draw(
        st.sampled_from([(2, 1), (2, 2), (3, 1), (4, 1)])
    )  # (2, 2) with 3 experts: replicas
    E = draw(st.integers(max(2, S + 1), min(4, G * S)))
    load = [[draw(st.integers(1, 9)) for _ in range(E)] for _ in range(2)]
    aff = [[[draw(st.integers(0, 9)) for _ in range(E)] for _ in range(E)]]
    return ExpertPlacement(gpus=G, slots_per_gpu=S, load=load, affinity=aff)


@pytest.mark.slow
@settings(max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tiny_affinity_instances())
def test_traffic_bound_below_exhaustive_optimum(problem):
    best = _min_cross_gpu(problem)
    for lp in (False, True):
        b = traffic_lower_bound(problem, lp=lp)
        assert b["cross_gpu_min"] <= best + 1e-6, (lp, b, best)
        assert 0.0 <= b["local_share_max"] <= 1.0


@pytest.mark.parametrize(
    "gpus, experts, optimum",
    [(2, 2, 2.0), (3, 3, 6.0), (4, 4, 12.0)],
)
def test_traffic_bound_is_positive_and_tight_when_traffic_must_cross(gpus, experts, optimum):
    """One slot per GPU and every expert talking to every expert: a token can stay only with the one
    expert of the next layer on its GPU, so E * E - E of the E * E pairs cross. A bound that says 0
    (or anything below the optimum here) fails."""
    ones = [[1] * experts for _ in range(experts)]
    p = ExpertPlacement(gpus=gpus, slots_per_gpu=1, load=[[1] * experts] * 2, affinity=[ones])
    assert _min_cross_gpu(p) == pytest.approx(optimum)
    for lp in (False, True):
        b = traffic_lower_bound(p, lp=lp)
        assert b["cross_gpu_min"] == pytest.approx(optimum), lp
        assert b["local_share_max"] == pytest.approx(1 - optimum / experts**2), lp


def test_traffic_bound_is_tight_on_block_affinity():
    # two GPUs x 2 slots, experts {0,1} talk only to {0,1}, {2,3} to {2,3}: everything can stay local
    blk = [[5, 5, 0, 0], [5, 5, 0, 0], [0, 0, 5, 5], [0, 0, 5, 5]]
    p = ExpertPlacement(gpus=2, slots_per_gpu=2, load=[[1] * 4] * 2, affinity=[blk])
    b = traffic_lower_bound(p)
    assert b["cross_gpu_min"] == pytest.approx(0.0)
    assert _min_cross_gpu(p) == 0.0


def test_lp_bound_at_least_as_tight_as_rows_and_columns():
    rng = np.random.default_rng(3)
    a = rng.integers(0, 20, size=(12, 12)).astype(float)
    lp, how = _pair_stay_bound(a, 3, lp=True)
    comb, _ = _pair_stay_bound(a, 3, lp=False)
    rows = np.sort(a, axis=1)[:, -3:].sum()
    cols = np.sort(a, axis=0)[-3:].sum()
    assert comb == pytest.approx(min(rows, cols))
    assert lp <= comb + 1e-6 and how == "lp"


def test_bound_below_heuristics_on_generated_instance():
    p = generate(
        seed=2, shape="qwen-moe", layers=4, experts=32, gpus=8, nodes=2, slots_per_gpu=5, tokens=512
    )
    b = traffic_lower_bound(p)
    for solver, kw in (("greedy-affinity", {"num_groups": 2}), ("eplb", {"repair": True})):
        r = optkit.solve(p, solver, **kw)
        assert r.status == Status.FEASIBLE
        assert r.metrics["cross_gpu_traffic"] >= b["cross_gpu_min"] - 1e-6
        assert r.metrics["local_share"] <= b["local_share_max"] + 1e-9


def test_no_affinity_bound_is_zero():
    p = ExpertPlacement(gpus=2, slots_per_gpu=2, load=[[1, 2, 3]])
    assert traffic_lower_bound(p)["cross_gpu_min"] == 0.0

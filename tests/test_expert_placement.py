"""Expert placement: the checker, EPLB reproduced, exact solvers against brute force, bad inputs."""

from __future__ import annotations

import json
import math

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import optkit
from conftest import solver_names
from optkit.backends.heuristics.expert_placement import eplb_slots
from optkit.cli import main
from optkit.errors import InputError
from optkit.problems.expert_placement import (
    ExpertPlacement,
    brute_force,
    generate,
    random_placement,
    read_eplb_example,
)
from optkit.result import Status, Termination

EXAMPLE = "expert_placement/eplb_readme_example.json"


@pytest.fixture(scope="module")
def example(shared_benchmarks):
    return read_eplb_example(shared_benchmarks / EXAMPLE)


# -- EPLB README example -----------------------------------------------------------------------


def test_eplb_reproduces_readme_example_exactly(example):
    problem, expected = example
    result = optkit.solve(problem, "eplb", num_groups=4)
    assert result.status == Status.FEASIBLE
    assert result.solution["slots"] == [list(r) for r in expected["slots"]]
    assert result.stats["policy"] == "hierarchical"
    loads = problem.gpu_loads(result.solution["slots"])
    assert loads[0].tolist() == expected["per_gpu_load_layer0"]
    per_layer = result.metrics["balancedness_per_layer"]
    assert [round(b, 3) for b in per_layer] == expected["balancedness_mean_over_max"]


def test_balancedness_is_mean_over_max_and_load_summed(example):
    problem, expected = example
    m = problem.check({"slots": expected["slots"]}).metrics
    means = problem.load_array.sum(axis=1) / problem.gpus  # 129.125, 144.5
    maxes = problem.layer_max_loads(expected["slots"])  # 156, 179.5
    assert maxes.tolist() == [156.0, 179.5]
    assert m["balancedness_per_layer"] == [round(means[0] / 156, 6), round(means[1] / 179.5, 6)]
    assert m["balancedness"] == pytest.approx(means.sum() / maxes.sum())
    assert m["max_gpu_load"] == 179.5 and m["same_gpu_replicas"] == 0


def test_eplb_global_policy_duplicates_are_an_error_unless_repaired(example):
    problem, _ = example
    slots, policy = eplb_slots(problem, 1)
    assert policy == "global"
    assert problem.replica_matrix(slots).max() > 1  # EPLB itself doubles up replicas here
    faithful = optkit.solve(problem, "eplb", num_groups=1)
    assert faithful.status == Status.ERROR and "repair=true" in faithful.message
    repaired = optkit.solve(problem, "eplb", num_groups=1, repair=True)
    assert repaired.status == Status.FEASIBLE and repaired.stats["repair_swaps"] >= 1


@pytest.mark.slow
@pytest.mark.parametrize("solver", ["greedy-affinity", "cpsat", "mip"])
def test_at_least_as_balanced_as_eplb_on_readme_example(example, solver):
    problem, _ = example
    result = optkit.solve(problem, solver, time_limit=3, num_groups=4)
    assert result.status in (Status.OPTIMAL, Status.FEASIBLE), result.message
    per_layer = result.metrics["balancedness_per_layer"]
    assert per_layer[0] >= 0.8277 and per_layer[1] >= 0.8050
    assert result.metrics["balancedness"] >= 0.8155


def _two_slot_layer_optimum(load, gpus):
    """Exact optimum of one layer with two slots per GPU and no communication term, found without
    any solver: for every replica count vector (at most 2 * gpus replicas), pad the replica loads
    with empty slots to 2 * gpus and pair the smallest with the largest (which minimises the largest
    pair sum); returns (value, slots) of the best pairing that puts no expert twice on one GPU, and
    the smallest pair value over all vectors (a lower bound on the layer's busiest GPU)."""
    import itertools
    from fractions import Fraction

    E, S = len(load), 2 * gpus
    lower, best = None, None
    for extra in range(S - E + 1):
        for combo in itertools.combinations_with_replacement(range(E), extra):
            r = [1] * E
            for e in combo:
                r[e] += 1
            if max(r) > gpus:
                continue
            items = sorted((Fraction(load[e], r[e]), e) for e in range(E) for _ in range(r[e]))
            items = [(Fraction(0), -1)] * (S - len(items)) + items
            pairs = [(items[i], items[-1 - i]) for i in range(gpus)]
            value = max(a[0] + b[0] for a, b in pairs)
            lower = value if lower is None else min(lower, value)
            if all(a[1] != b[1] or a[1] < 0 for a, b in pairs):
                if best is None or value < best[0]:
                    best = (value, [e for a, b in pairs for e in (a[1], b[1])])
    return lower, best


@pytest.mark.slow
def test_exact_models_respect_the_independently_known_readme_optimum(example):
    """The README example has no communication term, so each layer is a two-slots-per-GPU pairing
    problem solved exactly above: optimum 136 + 172 = 308. Whatever the exact models finish with in
    their time, the objective is never below it and a claimed bound never above it."""
    problem, _ = example
    assert problem.slots_per_gpu == 2 and problem.weight == 0
    lowers, witness = [], []
    for layer in problem.load:
        lower, (value, slots) = _two_slot_layer_optimum(layer, problem.gpus)
        assert value == lower  # the pairing bound is attained by a placement
        lowers.append(lower)
        witness.append(slots)
    optimum = float(sum(lowers))
    assert optimum == 308.0
    report = problem.check({"slots": witness})
    assert report.feasible and report.objective == optimum
    for solver in ("cpsat", "mip"):
        r = optkit.solve(problem, solver, time_limit=3)
        assert r.status in (Status.OPTIMAL, Status.FEASIBLE), (solver, r.message)
        assert r.objective >= optimum - 1e-9, solver
        if r.bound is not None:
            assert r.bound <= optimum + 1e-6, solver
        if r.status == Status.OPTIMAL:
            assert r.objective == optimum, solver


# -- the checker -------------------------------------------------------------------------------


def _tiny(**kw):
    base = {
        "gpus": 2,
        "slots_per_gpu": 2,
        "load": [[4, 2, 2], [3, 3, 2]],
        "affinity": [[[2, 1, 1], [0, 2, 0], [1, 0, 1]]],
        "comm_weight": 1,
    }
    base.update(kw)
    return ExpertPlacement(**base)


def test_same_gpu_replicas_are_infeasible():
    p = _tiny()
    report = p.check({"slots": [[0, 0, 1, 2], [0, 1, 2, -1]]})
    assert not report.feasible and "same expert" in report.violations[0]
    assert report.metrics["same_gpu_replicas"] == 1


def test_missing_expert_and_bad_shapes_are_infeasible():
    p = _tiny()
    assert not p.check(
        {"slots": [[0, 1, -1, -1], [0, 1, 2, -1]]}
    ).feasible  # expert 2 missing in layer 0
    assert not p.check({"slots": [[0, 1, 2, -1]]}).feasible
    assert not p.check({"slots": [[0, 1, 2], [0, 1, 2, -1]]}).feasible
    assert not p.check({"slots": [[0, 1, 2, 7], [0, 1, 2, -1]]}).feasible
    assert not p.check({"slots": "nope"}).feasible


def test_replicated_loads_and_locality_aware_traffic():
    p = _tiny()
    # layer 0: expert 0 on both GPUs (share 2 each); layer 1: experts 0,1 on GPU 0, 2 on GPU 1
    slots = [[0, 1, 0, 2], [0, 1, 2, -1]]
    loads = p.gpu_loads(slots)
    assert loads[0].tolist() == [4.0, 4.0] and loads[1].tolist() == [6.0, 2.0]
    tr = p.traffic(slots)
    # pairs (e at l0 -> f at l1), a: (0,0)=2 half of e0 on GPU0 -> stays min(1/2, 1)=1/2 -> 1 crosses;
    # (0,1)=1 -> 1/2 crosses; (0,2)=1 -> e0 half on GPU1 with f2 -> 1/2 crosses; (1,1)=2 both GPU0 -> 0;
    # (2,0)=1 crosses; (2,2)=1 both GPU1 -> 0.  total 1 + 0.5 + 0.5 + 1 = 3
    assert tr["cross_gpu_traffic"] == pytest.approx(3.0)
    report = p.check({"slots": slots})
    assert report.objective == 4.0 + 6.0 + 3.0
    assert report.metrics["local_share"] == pytest.approx(1 - 3 / 8)


def test_cross_node_traffic_costs_more():
    p = ExpertPlacement(
        gpus=4,
        slots_per_gpu=1,
        load=[[1, 1, 1, 1]] * 2,
        gpu_node=[0, 0, 1, 1],
        affinity=[np.eye(4, dtype=int)[[1, 0, 2, 3]].tolist()],
        link_cost={"intra_node": 1, "inter_node": 5},
        comm_weight=1,
    )
    # tokens: 0->1, 1->0, 2->2, 3->3; identity placement: 0->1 and 1->0 cross GPUs inside node 0
    r = p.check({"slots": [[0, 1, 2, 3], [0, 1, 2, 3]]})
    assert r.metrics["cross_gpu_traffic"] == 2 and r.metrics["cross_node_traffic"] == 0
    assert r.metrics["comm_cost"] == 2
    r = p.check(
        {"slots": [[0, 1, 2, 3], [2, 1, 0, 3]]}
    )  # 0->1: GPU0->GPU1; 1->0: GPU1->GPU2; 2->2: GPU2->GPU0
    assert r.metrics["cross_gpu_traffic"] == 3 and r.metrics["cross_node_traffic"] == 2
    assert r.metrics["comm_cost"] == 1 * 1 + 5 * 2


# -- bad inputs --------------------------------------------------------------------------------

BAD = [
    ({"gpus": 2, "slots_per_gpu": 1, "load": [[1, 2, 3]]}, "slots_per_gpu"),
    ({"gpus": 2, "slots_per_gpu": 2, "load": [[1, 2, 3], [1, 2]]}, "load.1"),
    ({"gpus": 2, "slots_per_gpu": 2, "load": [[1, -2, 3]]}, "load.0.1"),
    (
        {"gpus": 2, "slots_per_gpu": 2, "load": [[1, 2], [1, 2]], "affinity": [[[1, 2], [3]]]},
        "affinity.0.1",
    ),
    ({"gpus": 2, "slots_per_gpu": 2, "load": [[1, 2], [1, 2]], "affinity": []}, "affinity"),
    (
        {"gpus": 2, "slots_per_gpu": 2, "load": [[1, 2], [1, 2]], "affinity": [[[1, 2]]]},
        "affinity.0",
    ),
    ({"gpus": 2, "slots_per_gpu": 2, "load": [[1, 2]], "gpu_node": [0]}, "gpu_node"),
    ({"gpus": 2, "slots_per_gpu": 2, "load": [[1, 2]], "gpu_node": [0, 2]}, "gpu_node"),
    ({"gpus": 2, "slots_per_gpu": 2, "load": [[1, 2]], "comm_weight": -1}, "comm_weight"),
    ({"gpus": 0, "slots_per_gpu": 2, "load": [[1, 2]]}, "gpus"),
    ({"gpus": 2, "slots_per_gpu": 2, "load": [[1, 2]], "unknown": 1}, "unknown"),
]


@pytest.mark.parametrize("data,field", BAD, ids=[f for _, f in BAD])
def test_bad_instance_exits_2_naming_the_field(tmp_path, capsys, data, field):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"problem": "expert-placement", **data}))
    assert main(["solve", str(path)]) == 2
    err = capsys.readouterr().err
    assert field in err and "bad.json" in err


def test_nan_load_rejected():
    with pytest.raises(InputError, match="load.0.1"):
        ExpertPlacement.from_dict({"gpus": 2, "slots_per_gpu": 2, "load": [[1.0, math.nan]]})
    with pytest.raises(InputError, match="affinity.0.0.1"):
        ExpertPlacement.from_dict(
            {
                "gpus": 2,
                "slots_per_gpu": 2,
                "load": [[1, 1], [1, 1]],
                "affinity": [[[1.0, math.inf], [0, 0]]],
            }
        )


def test_nan_in_json_file_exits_2(tmp_path, capsys):
    path = tmp_path / "nan.json"
    path.write_text(
        '{"problem": "expert-placement", "gpus": 2, "slots_per_gpu": 2, "load": [[1, NaN]]}'
    )
    assert main(["solve", str(path)]) == 2
    assert "NaN" in capsys.readouterr().err


# -- exact solvers against brute force ---------------------------------------------------------


@st.composite
def tiny_instances(draw):
    L = draw(st.integers(1, 2))
    G = draw(st.integers(1, 2))
    S = draw(st.integers(1, 2))
    E = draw(st.integers(1, min(3, G * S)))
    load = [[draw(st.integers(0, 12)) for _ in range(E)] for _ in range(L)]
    aff = None
    if L > 1 and draw(st.booleans()):
        aff = [[[draw(st.integers(0, 6)) for _ in range(E)] for _ in range(E)]]
    w = draw(st.sampled_from([0, 0.5, 2]))
    return ExpertPlacement(gpus=G, slots_per_gpu=S, load=load, affinity=aff, comm_weight=w or None)


@pytest.mark.slow
@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tiny_instances())
def test_exact_solvers_match_brute_force(problem):
    best, _ = brute_force(problem)
    for solver in solver_names("expert-placement", exact=True):
        r = optkit.solve(problem, solver, time_limit=10)
        assert r.status == Status.OPTIMAL, (solver, r.message)
        assert r.objective == pytest.approx(best, abs=1e-6), solver
    for solver in ("greedy-affinity",):
        r = optkit.solve(problem, solver)
        assert r.status == Status.FEASIBLE and r.objective >= best - 1e-6


@settings(max_examples=15, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.integers(0, 10_000), st.integers(1, 3), st.integers(2, 4), st.integers(1, 3))
def test_heuristics_feasible_on_generated(seed, layers, gpus, extra):
    experts = gpus + extra
    p = generate(
        seed=seed,
        shape="tiny",
        layers=layers,
        experts=experts,
        gpus=gpus,
        slots_per_gpu=-(-experts // gpus) + 1,
        tokens=64,
        comm_weight=0.1,
    )
    g = optkit.solve(p, "greedy-affinity")
    assert g.status == Status.FEASIBLE
    e = optkit.solve(p, "eplb", repair=True)
    assert e.status == Status.FEASIBLE
    # never less balanced than EPLB (layer by layer)
    assert all(
        a >= b - 1e-6
        for a, b in zip(g.metrics["balancedness_per_layer"], e.metrics["balancedness_per_layer"])
    )


# -- generator and windows ---------------------------------------------------------------------


@pytest.mark.parametrize("shape", ["mixtral", "qwen-moe", "tiny"])
def test_generator_shapes(shape):
    p = generate(seed=3, shape=shape, layers=3, tokens=256)
    assert p.num_layers == 3 and p.affinity_array.shape == (2, p.num_experts, p.num_experts)
    k = {"mixtral": 2, "qwen-moe": 8, "tiny": 2}[shape]
    assert p.load_array.sum(axis=1).tolist() == [256 * k] * 3
    # every token contributes k*k pairs between consecutive layers
    assert p.affinity_array.sum(axis=(1, 2)).tolist() == [256 * k * k] * 2


def test_generated_instance_round_trips_through_a_file(tmp_path):
    p = generate(seed=3, shape="tiny", layers=3, tokens=64, comm_weight=0.1)
    optkit.dump(p, tmp_path / "p.json")
    again = optkit.load(tmp_path / "p.json")
    assert again.to_dict() == p.to_dict()
    slots = random_placement(p, 1)
    assert again.check({"slots": slots}) == p.check({"slots": slots})


def test_generator_deepseek_shape_metadata():
    p = generate(seed=0, shape="deepseek-v3", layers=2, tokens=64)
    assert (p.num_experts, p.gpus, p.slots_per_gpu, p.num_nodes) == (256, 32, 9, 4)
    assert p.num_slots == 288


def test_windows_drift_and_plans_carry_over():
    a = generate(seed=7, shape="mixtral", layers=4, window=0)
    b = generate(seed=7, shape="mixtral", layers=4, window=1)
    assert a.load != b.load
    plan = optkit.solve(a, "greedy-affinity").solution
    assert b.check(plan).feasible  # a plan of one window can be scored on the next


def test_cli_generate_and_solve(tmp_path, capsys):
    path = tmp_path / "m.json"
    assert (
        main(
            [
                "generate",
                "expert-placement",
                "--seed",
                "1",
                "-o",
                str(path),
                "--layers",
                "3",
                "--tokens",
                "128",
                "--comm-weight",
                "0.1",
            ]
        )
        == 0
    )
    assert main(["solve", str(path), "--solver", "eplb", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == "feasible" and out["metrics"]["same_gpu_replicas"] == 0


def test_random_placement_is_feasible():
    p = generate(seed=1, shape="tiny", tokens=32)
    assert p.check({"slots": random_placement(p, 3)}).feasible


@pytest.mark.slow
@pytest.mark.parametrize("solver", solver_names("expert-placement", exact=True, warm_start=True))
def test_exact_solver_killed_at_the_wall_clock_returns_its_warm_start(solver):
    """HiGHS can sit past its time limit in its root cut loop: `hard_limit` kills the solve, and the
    warm start the exact models report first comes back (checked, no bound, never worse than EPLB)."""
    p = generate(seed=0, shape="mixtral", gpus=4, slots_per_gpu=2, comm_weight=0.05)
    r = optkit.solve(p, solver, time_limit=1.5, hard_limit=True, threads=1)
    # FEASIBLE when killed (a faster machine may finish and prove: then OPTIMAL with its bound)
    assert r.status in (Status.FEASIBLE, Status.OPTIMAL) and r.solution is not None
    assert p.check(r.solution).feasible
    if r.status == Status.OPTIMAL:
        assert r.termination == Termination.COMPLETED and r.gap == 0.0
    assert r.objective <= optkit.solve(p, "eplb").objective

"""The `minmax` solvers of expert placement and pod packing, the FIR showcase, and the CLI."""

from __future__ import annotations

import json

import numpy as np
import pytest

import optkit
from optkit.cli import main
from optkit.result import Status

ep = pytest.importorskip("optkit.problems.expert_placement")
pp = pytest.importorskip("optkit.problems.pod_packing")


# -- expert placement ------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_expert_placement_is_checked_and_never_beats_brute_force(seed):
    problem = ep.generate(seed=seed, shape="tiny", layers=2)
    optimum, _ = ep.brute_force(problem)
    result = optkit.solve(problem, "minmax", time_limit=10, seed=0)
    assert result.status in (Status.FEASIBLE, Status.OPTIMAL), result.message
    report = optkit.check(problem, result.solution)
    assert report.feasible and report.objective == result.objective
    assert result.objective >= optimum - 1e-6
    assert result.bound is not None and result.bound <= optimum + 1e-6


@pytest.mark.slow
def test_expert_placement_with_communication_is_checked():
    problem = ep.generate(seed=3, shape="mixtral", layers=4, comm_weight=0.2)
    result = optkit.solve(problem, "minmax", time_limit=10, seed=0)
    assert result.status in (Status.FEASIBLE, Status.OPTIMAL), result.message
    report = optkit.check(problem, result.solution)
    assert report.feasible and report.objective == result.objective


@pytest.mark.slow
def test_expert_placement_at_least_as_balanced_as_eplb(shared_benchmarks):
    problem, eplb = ep.read_eplb_example(
        shared_benchmarks / "expert_placement" / "eplb_readme_example.json"
    )
    result = optkit.solve(problem, "minmax", time_limit=10, seed=0)
    assert result.status in (Status.FEASIBLE, Status.OPTIMAL), result.message
    assert result.objective <= problem.objective_of(eplb["slots"]) + 1e-9
    # 308 is the example's optimum (test_expert_placement derives it without a solver)
    assert result.objective >= 308.0 - 1e-9
    assert result.bound is None or result.bound <= 308.0 + 1e-6


@pytest.mark.slow
def test_expert_placement_warm_start_is_never_worse():
    problem = ep.generate(seed=4, shape="qwen-moe", layers=1, experts=16, gpus=4, slots_per_gpu=5)
    start = {"slots": ep.random_placement(problem, seed=1)}
    result = optkit.solve(problem, "minmax", time_limit=10, initial_solution=start)
    assert result.objective <= problem.objective_of(start["slots"]) + 1e-9


# -- pod packing -----------------------------------------------------------------------------------


@pytest.mark.slow
@pytest.mark.parametrize(
    "args",
    [
        {"seed": 1, "nodes": 4, "pods_per_node": 4, "priorities": 2, "util": 1.1},
        {"seed": 2, "nodes": 8, "pods_per_node": 6, "priorities": 3, "util": 1.0},
    ],
)
def test_pod_packing_is_checked_and_beats_no_one_unfairly(args):
    problem = pp.generate(**args)
    result = optkit.solve(problem, "minmax", time_limit=10, seed=0)
    assert result.status in (Status.FEASIBLE, Status.OPTIMAL), result.message
    report = optkit.check(problem, result.solution)
    assert report.feasible and report.objective == result.objective
    # at least as many pods placed per priority tier as the default scheduler
    kube = optkit.solve(problem, "kube-default", time_limit=10, seed=0)
    tiers = len(problem.priorities)
    assert result.objective[:tiers] <= kube.objective[:tiers]


@pytest.mark.slow
def test_pod_packing_respects_taints_selectors_and_fixed_pods():
    nodes = [
        {
            "name": "a",
            "capacity": {"cpu": 1000, "memory": 1000, "pods": 3},
            "labels": {"zone": "x"},
        },
        {
            "name": "b",
            "capacity": {"cpu": 1000, "memory": 1000},
            "labels": {"zone": "y"},
            "taints": [{"key": "gpu", "effect": "NoSchedule"}],
        },
        {"name": "c", "capacity": {"cpu": 500, "memory": 2000}, "unschedulable": True},
    ]
    pods = [
        {"name": "sys", "requests": {"cpu": 300}, "priority": 100, "node": "a", "movable": False},
        {
            "name": "g1",
            "requests": {"cpu": 600, "memory": 100},
            "priority": 10,
            "tolerations": [{"key": "gpu", "operator": "Exists"}],
        },
        {
            "name": "z1",
            "requests": {"cpu": 400, "memory": 400},
            "priority": 10,
            "node_selector": {"zone": "x"},
        },
        {
            "name": "z2",
            "requests": {"cpu": 400, "memory": 400},
            "priority": 5,
            "node_selector": {"zone": "x"},
        },
        {"name": "w1", "requests": {"cpu": 300, "memory": 300}, "priority": 5, "node": "c"},
        {"name": "w2", "requests": {"cpu": 500, "memory": 100}, "priority": 1},
    ]
    problem = pp.PodPacking(name="handmade", nodes=nodes, pods=pods)
    result = optkit.solve(problem, "minmax", time_limit=10, seed=0)
    assert result.status == Status.FEASIBLE, result.message
    a = result.solution["assignment"]
    assert a["sys"] == "a" and a["g1"] == "b" and a["z1"] == "a"
    assert optkit.check(problem, result.solution).feasible


# -- FIR showcase ----------------------------------------------------------------------------------


@pytest.mark.slow
def test_fir_designs_respect_the_lp_bound():
    from optkit.backends.minmax import fir

    spec = fir.FirSpec(taps=15, bits=6, grid=8, radius=4)
    base = fir.design_rounded(spec)
    mm = fir.design_minmax(spec, time_limit=1.0, seed=0)
    assert mm.max_deviation <= base.max_deviation + 1e-12  # starts from the rounded design
    assert mm.max_deviation >= base.bound - 1e-9  # the LP optimum bounds every quantised design
    assert mm.max_deviation == pytest.approx(fir.max_deviation(spec, mm.coefficients))
    for design in (fir.design_cpsat(spec, 1.0), fir.design_mip(spec, 1.0)):
        if np.isfinite(design.max_deviation):
            assert design.max_deviation >= base.bound - 1e-9
    assert fir.FirDesign("x", mm.coefficients, 0, 0).taps(spec).size == 15


def test_fir_spec_rejects_even_lengths():
    from optkit.backends.minmax import fir
    from optkit.errors import InputError

    with pytest.raises(InputError, match="taps"):
        fir.FirSpec(taps=10)


# -- CLI ---------------------------------------------------------------------------------------------


def _instance(tmp_path):
    path = tmp_path / "ep.json"
    path.write_text(json.dumps(ep.generate(seed=0, shape="tiny").to_dict()))
    return path


def test_cli_cupy_backend_without_gpu_exits_3(tmp_path, capsys, monkeypatch):
    from optkit.backends.minmax import backend

    monkeypatch.setattr(backend, "cupy_status", lambda: (None, "CuPy is not installed"))
    code = main(
        ["solve", str(_instance(tmp_path)), "--solver", "minmax", "--param", "backend=cupy"]
    )
    assert code == 3
    assert "cupy" in capsys.readouterr().err.lower()


def test_cli_unknown_backend_exits_2(tmp_path, capsys):
    code = main(["solve", str(_instance(tmp_path)), "--solver", "minmax", "--param", "backend=gpu"])
    assert code == 2
    assert "backend" in capsys.readouterr().err


@pytest.mark.slow
def test_cli_numpy_backend_solves(tmp_path, capsys):
    code = main(
        [
            "solve",
            str(_instance(tmp_path)),
            "--solver",
            "minmax",
            "--param",
            "backend=numpy",
            "--time-limit",
            "5",
            "--json",
        ]
    )
    assert code == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] in ("feasible", "optimal") and out["params"]["backend"] == "numpy"

"""gpu-selection: Mélange's optima, brute force on tiny instances, the checker, bad inputs, profiles."""

from __future__ import annotations

import itertools
import json
import math
from fractions import Fraction

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import optkit
from conftest import INSTANCES, solver_names
from optkit.cli import main
from optkit.errors import InputError
from optkit.problems.gpu_profiles import build_throughput, profile_from_csv, roofline_profiles
from optkit.problems.gpu_selection import (
    GpuSelection,
    from_melange,
    generate,
    import_melange,
    workload_distribution,
)
from optkit.result import Status

EXACT = tuple(solver_names("gpu-selection", exact=True))
ALL = tuple(solver_names("gpu-selection"))
PROFILES = INSTANCES / "gpu-selection" / "profiles"


def tiny(types, dist, rate, sf=1, packing="pooled"):
    return GpuSelection.from_dict(
        {
            "gpu_types": [
                {
                    "name": n,
                    "cost_per_hour": c,
                    "throughput": tp,
                    **({"max_count": m} if m is not None else {}),
                }
                for n, c, tp, m in types
            ],
            "workload": {"distribution": dist, "request_rate": rate},
            "slice_factor": sf,
            "packing": packing,
        }
    )


# -- Mélange's example -------------------------------------------------------------------------


@pytest.mark.parametrize("sf", [1, 2, 4, 8, 16])
@pytest.mark.parametrize("solver", EXACT)
def test_melange_example_optima(shared_benchmarks, sf, solver):
    data = json.loads((shared_benchmarks / "gpu_selection" / "melange_example.json").read_text())
    known = data["known_optima_pooled_capacity"]
    expect = known["slice_factor_1"] if sf == 1 else known["slice_factor_2_to_16"]
    problem = from_melange(data, slice_factor=sf)
    result = optkit.solve(problem, solver, threads=1)
    assert result.status == Status.OPTIMAL
    assert result.objective == expect["cost"]  # exactly 6.7 / 5.69: the cost is computed exactly
    assert result.metrics["instances"] == {"A10G": expect["A10G"], "A100-80GB": expect["A100-80GB"]}
    assert result.bound == expect["cost"]


@pytest.mark.parametrize("sf", [3, 6])
def test_melange_example_is_cheaper_at_slice_factors_divisible_by_3(sf):
    # The shared file says 5.69 "for slice factors 2 to 16"; that holds for 2, 4, 8, 16 (and 5, 7, ...).
    # With 3 | sf, one A10G takes exactly one whole A10G of load and the A100 is left with exactly
    # 1.0: 1 A10G + 1 A100 = 4.68, which brute force confirms (in exact arithmetic, no tolerance).
    problem = melange(sf)
    for solver in EXACT:
        result = optkit.solve(problem, solver)
        assert result.status == Status.OPTIMAL and result.objective == 4.68
        assert result.metrics["load_per_type"] == {"A10G": 1.0, "A100-80GB": 1.0}
    if sf == 3:
        assert brute_force(problem) == Fraction(468, 100)


def test_shipped_melange_instances_match_the_shared_file(shared_benchmarks):
    folder = INSTANCES / "gpu-selection" / "melange-example"
    optima = json.loads((folder / "optima.json").read_text())
    data = json.loads((shared_benchmarks / "gpu_selection" / "melange_example.json").read_text())
    for stem, cost in optima.items():
        problem = optkit.load(folder / f"{stem}.json")
        assert problem.model_copy(update={"name": None}) == from_melange(
            data, slice_factor=problem.slice_factor
        )
        assert cost == (6.70 if problem.slice_factor == 1 else 5.69)


def test_melange_importer(tmp_path):
    src = tmp_path / "example.json"
    src.write_text(
        json.dumps(
            {
                "gpu_info": {
                    "A10G": {"cost": 1.01, "tputs": [[2, 1], [5, 2]]},
                    "A100-80GB": {"cost": 3.67, "tputs": [[20, 20], [40, 20]]},
                },
                "workload_distribution": [[0.2, 0.1], [0.5, 0.2]],
                "total_request_rate": 30.0,
            }
        )
    )
    problems = import_melange(src)
    assert {(p.slice_factor, p.packing) for p in problems} >= {(1, "pooled"), (16, "per_instance")}
    assert main(["import", "melange", str(src), "-o", str(tmp_path / "out")]) == 0
    assert len(list((tmp_path / "out").glob("*.json"))) == len(problems)


def test_per_instance_costs_more_when_a_slice_exceeds_a_small_gpu():
    # slice factor 2: a slice of bucket (1,1) is 1.5 A10G, so per_instance cannot split it over A10Gs
    base = GpuSelection.from_dict(
        json.loads(
            (
                INSTANCES / "gpu-selection" / "melange-example" / "melange_example_sf2.json"
            ).read_text()
        )
    )
    per = base.model_copy(update={"packing": "per_instance"})
    pooled_cost = optkit.solve(base, "mip").objective
    per_result = optkit.solve(per, "mip")
    assert (
        pooled_cost == 5.69 and per_result.objective == 7.34 and per_result.status == Status.OPTIMAL
    )


# -- brute force ---------------------------------------------------------------------------------


def brute_force(problem: GpuSelection) -> Fraction | None:
    """The cheapest cost over every assignment of slices (per_instance: to canonical instances)."""
    T = range(len(problem.gpu_types))
    slices = [b for b in problem.buckets for _ in range(problem.slice_factor)]
    caps = [g.max_count for g in problem.gpu_types]
    best = None
    if problem.packing == "pooled":
        for choice in itertools.product(T, repeat=len(slices)):
            if any(b not in problem.loads[t] for t, b in zip(choice, slices)):
                continue
            load = [
                sum((problem.loads[t][b] for tt, b in zip(choice, slices) if tt == t), Fraction(0))
                for t in T
            ]
            counts = [math.ceil(x) for x in load]
            if any(c is not None and n > c for n, c in zip(counts, caps)):
                continue
            cost = sum((problem.costs[t] * counts[t] for t in T), Fraction(0))
            best = cost if best is None or cost < best else best
        return best

    def rec(k, bins):  # bins: list of (type, load)
        nonlocal best
        if k == len(slices):
            counts = [sum(1 for t, _ in bins if t == tt) for tt in T]
            if any(c is not None and n > c for n, c in zip(counts, caps)):
                return
            cost = sum((problem.costs[t] for t, _ in bins), Fraction(0))
            best = cost if best is None or cost < best else best
            return
        b = slices[k]
        for i, (t, load) in enumerate(bins):
            lo = problem.loads[t].get(b)
            if lo is not None and load + lo <= 1:
                bins[i] = (t, load + lo)
                rec(k + 1, bins)
                bins[i] = (t, load)
        for t in T:
            lo = problem.loads[t].get(b)
            if lo is not None and lo <= 1:
                bins.append((t, lo))
                rec(k + 1, bins)
                bins.pop()

    rec(0, [])
    return best


tput = st.sampled_from([0, 0.5, 1, 1.5, 2, 3, 4.5, 6])
price = st.sampled_from([0.7, 1, 1.01, 2.5, 3.67])


@st.composite
def tiny_instances(draw):
    rows, cols = draw(st.integers(1, 2)), draw(st.integers(1, 2))
    cells = rows * cols
    units = draw(
        st.lists(st.integers(0, 4), min_size=cells, max_size=cells).filter(lambda u: sum(u) > 0)
    )
    total = sum(units)
    shares = [Fraction(u, total) for u in units]
    # shares as short decimals that sum to exactly 1
    dec = [round(float(s), 2) for s in shares]
    dec[dec.index(max(dec))] = round(dec[dec.index(max(dec))] + 1 - sum(dec), 2)
    if min(dec) < 0:
        dec = [1.0] + [0.0] * (cells - 1)
    dist = [dec[r * cols : (r + 1) * cols] for r in range(rows)]
    n_types = draw(st.integers(1, 3))
    types = []
    for k in range(n_types):
        table = [[draw(tput) for _ in range(cols)] for _ in range(rows)]
        types.append((f"G{k}", draw(price), table, draw(st.one_of(st.none(), st.integers(0, 3)))))
    packing = draw(st.sampled_from(["pooled", "per_instance"]))
    nonzero = sum(1 for x in dec if x > 0)
    sf = draw(st.integers(1, max(1, 6 // nonzero)))
    rate = draw(st.sampled_from([0.5, 1, 2, 3.5, 5]))
    return tiny(types, dist, rate, sf, packing)


@pytest.mark.slow
@settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tiny_instances())
def test_exact_solvers_agree_with_brute_force(problem):
    best = brute_force(problem)
    for solver in ALL:
        result = optkit.solve(problem, solver, threads=1, time_limit=20)
        assert result.status != Status.ERROR, result.message
        if best is None:
            assert result.status in (
                (Status.INFEASIBLE,) if solver in EXACT else (Status.INFEASIBLE, Status.UNKNOWN)
            )
            continue
        if solver in EXACT:
            assert result.status == Status.OPTIMAL, (solver, result.message)
            assert result.objective == float(best), solver
        elif result.status.has_solution:
            assert result.objective >= float(best)
            assert optkit.check(problem, result.solution).feasible
        if result.status.has_solution and result.metrics["single_type_baseline"] is not None:
            assert (
                result.metrics["savings_vs_single_type"]
                >= (0 if solver != "single-type" else -1e-9) - 1e-9
                or solver not in EXACT
            )


# -- the checker ---------------------------------------------------------------------------------


def melange(sf=2, packing="pooled"):
    return from_melange(
        {
            "gpu_info": {
                "A10G": {"cost": 1.01, "tputs": [[2, 1], [5, 2]]},
                "A100-80GB": {"cost": 3.67, "tputs": [[20, 20], [40, 20]]},
            },
            "workload_distribution": [[0.2, 0.1], [0.5, 0.2]],
            "total_request_rate": 30.0,
        },
        slice_factor=sf,
        packing=packing,
    )


def test_checker_metrics_and_savings():
    problem = melange(2)
    result = optkit.solve(problem, "cpsat")
    m = result.metrics
    assert m["cost_per_hour"] == 5.69
    assert m["single_type_baseline"] == {"gpu_type": "A100-80GB", "count": 2, "cost_per_hour": 7.34}
    assert m["savings_vs_single_type"] == round(1 - 5.69 / 7.34, 6)
    assert m["mix"] == "A10G+A100-80GB"
    assert len(m["load_per_instance"]["A10G"]) == 2 and m["slices"] == 8


def test_checker_rejects_bad_solutions():
    problem = melange(1, "per_instance")
    good = optkit.solve(problem, "mip").solution
    assert optkit.check(problem, good).feasible
    bad = {"counts": dict(good["counts"]), "assignment": good["assignment"][:-1]}
    assert "unassigned" in " ".join(optkit.check(problem, bad).violations)
    dup = {"counts": good["counts"], "assignment": good["assignment"] + good["assignment"][:1]}
    assert "twice" in " ".join(optkit.check(problem, dup).violations)
    over = {
        "counts": {"A10G": 0, "A100-80GB": 1},
        "assignment": [
            {"bucket": list(b), "slice": 0, "gpu_type": "A100-80GB", "instance": 0}
            for b in problem.buckets
        ],
    }
    assert "> 1" in " ".join(optkit.check(problem, over).violations)  # 1.125 A100s on one instance
    capped = problem.model_copy(
        update={
            "gpu_types": (
                problem.gpu_types[0],
                problem.gpu_types[1].model_copy(update={"max_count": 1}),
            )
        }
    )
    assert "max_count" in " ".join(optkit.check(capped, good).violations)
    unknown = {"counts": {"V100": 1}, "assignment": []}
    assert "unknown GPU type" in " ".join(optkit.check(problem, unknown).violations)
    no_instance = {
        "counts": good["counts"],
        "assignment": [{k: v for k, v in a.items() if k != "instance"} for a in good["assignment"]],
    }
    assert "needs the instance" in " ".join(optkit.check(problem, no_instance).violations)


def test_checker_is_exact_at_full_load():
    # three slices of 0.1 req/s each on a GPU that does 0.3 req/s: load exactly 1 (floats say 1.0000000000000002)
    problem = tiny([("G", 1.0, [[0.3]], None)], [[1.0]], 0.3, sf=3, packing="per_instance")
    solution = {
        "counts": {"G": 1},
        "assignment": [
            {"bucket": [0, 0], "slice": s, "gpu_type": "G", "instance": 0} for s in range(3)
        ],
    }
    report = optkit.check(problem, solution)
    assert report.feasible and report.objective == 1.0
    for solver in ALL:
        assert optkit.solve(problem, solver).objective == 1.0


def test_zero_throughput_assignment_rejected():
    problem = tiny([("A", 1, [[1, 0]], None), ("B", 2, [[1, 1]], None)], [[0.5, 0.5]], 1)
    solution = {
        "counts": {"A": 1},
        "assignment": [
            {"bucket": [0, 0], "slice": 0, "gpu_type": "A"},
            {"bucket": [0, 1], "slice": 0, "gpu_type": "A"},
        ],
    }
    assert "throughput 0" in " ".join(optkit.check(problem, solution).violations)
    assert optkit.solve(problem, "mip").metrics["instances"] == {
        "A": 0,
        "B": 1,
    }  # B takes both: 2 < 1 + 2


# -- infeasible instances ------------------------------------------------------------------------


def test_bucket_no_gpu_can_serve_is_infeasible(tmp_path, capsys):
    problem = tiny([("A", 1, [[1, 0]], None), ("B", 2, [[3, 0]], None)], [[0.5, 0.5]], 1)
    for solver in ALL:
        result = optkit.solve(problem, solver)
        assert result.status == Status.INFEASIBLE, solver
        assert "bucket [0, 1]" in result.message
    path = tmp_path / "inf.json"
    optkit.dump(problem, path)
    assert main(["solve", str(path), "--solver", "mip"]) == 1


def test_max_count_too_small_is_infeasible():
    problem = tiny(
        [("A", 1, [[1]], 2), ("B", 2, [[2]], 1)], [[1.0]], 5, sf=4
    )  # needs 5 A-units, has 4
    for solver in EXACT:
        assert optkit.solve(problem, solver).status == Status.INFEASIBLE, solver
    for solver in ("greedy", "single-type"):
        result = optkit.solve(problem, solver)
        assert result.status == Status.UNKNOWN and result.message


def test_per_instance_slice_larger_than_every_gpu_is_infeasible():
    problem = tiny([("A", 1, [[1]], None)], [[1.0]], 3, sf=2, packing="per_instance")
    result = optkit.solve(problem, "greedy")
    assert result.status == Status.INFEASIBLE and "slice_factor" in result.message
    assert optkit.solve(problem.model_copy(update={"slice_factor": 3}), "cpsat").objective == 3.0


# -- bad inputs ----------------------------------------------------------------------------------

GOOD = {
    "problem": "gpu-selection",
    "gpu_types": [{"name": "A", "cost_per_hour": 1.0, "throughput": [[1, 2], [3, 4]]}],
    "workload": {"distribution": [[0.25, 0.25], [0.25, 0.25]], "request_rate": 2},
}


@pytest.mark.parametrize(
    "patch,needle",
    [
        (
            {"gpu_types": [{"name": "A", "cost_per_hour": 1.0, "throughput": [[1, 2]]}]},
            "gpu_types.0.throughput",
        ),
        (
            {"gpu_types": [{"name": "A", "cost_per_hour": 1.0, "throughput": [[1, 2], [3]]}]},
            "gpu_types.0.throughput.1",
        ),
        (
            {"gpu_types": [{"name": "A", "cost_per_hour": 1.0, "throughput": [[1, -2], [3, 4]]}]},
            "throughput",
        ),
        (
            {"gpu_types": [{"name": "A", "cost_per_hour": -1.0, "throughput": [[1, 2], [3, 4]]}]},
            "cost_per_hour",
        ),
        (
            {
                "gpu_types": [
                    {"name": "A", "cost_per_hour": 1, "throughput": [[1, 2], [3, 4]]},
                    {"name": "A", "cost_per_hour": 2, "throughput": [[1, 2], [3, 4]]},
                ]
            },
            "appears twice",
        ),
        (
            {"workload": {"distribution": [[0.25, 0.25], [0.25, 0.2]], "request_rate": 2}},
            "sum to 0.95",
        ),
        (
            {"workload": {"distribution": [[0.5, 0.5], [0.25, -0.25]], "request_rate": 2}},
            "distribution",
        ),
        (
            {"workload": {"distribution": [[0.25, 0.25], [0.25, 0.25]], "request_rate": -2}},
            "request_rate",
        ),
        (
            {"workload": {"distribution": [[0.5, 0.5], [0.5]], "request_rate": 2}},
            "workload.distribution.1",
        ),
        ({"slice_factor": 0}, "slice_factor"),
        ({"slice_factor": 2.0}, "slice_factor"),
        ({"packing": "spread"}, "packing"),
        ({"extra": 1}, "extra"),
    ],
)
def test_bad_inputs_exit_2_naming_the_field(tmp_path, capsys, patch, needle):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({**GOOD, **patch}))
    assert main(["solve", str(path)]) == 2
    err = capsys.readouterr().err
    assert needle in err and "bad.json" in err


def test_distribution_tolerance():
    """Shares may sum to 1 within 1e-6 (written decimals are compared exactly); beyond that the
    distribution is rejected naming the field."""

    def with_last_share(x):
        dist = {"distribution": [[0.25, 0.25], [0.25, x]], "request_rate": 2}
        return {**GOOD, "workload": dist}

    for inside in (0.2500001, 0.249999, 0.250001):
        assert GpuSelection.from_dict(with_last_share(inside)).workload.distribution[1][1] == inside
    for outside in (0.2500011, 0.2499989, 0.26):
        with pytest.raises(InputError, match="workload.distribution"):
            GpuSelection.from_dict(with_last_share(outside))


# -- profiles and the generator --------------------------------------------------------------------


def test_profile_builder_rules():
    rows = [
        {
            "gpu": "X",
            "input_bucket": 0,
            "output_bucket": 0,
            "request_rate": 1,
            "achieved_rate": 1,
            "p99": 50,
        },
        {
            "gpu": "X",
            "input_bucket": 0,
            "output_bucket": 0,
            "request_rate": 2,
            "achieved_rate": 1.9,
            "p99": 90,
        },
        {
            "gpu": "X",
            "input_bucket": 0,
            "output_bucket": 0,
            "request_rate": 4,
            "achieved_rate": 3.5,
            "p99": 95,
        },  # < 0.9 x
        {
            "gpu": "X",
            "input_bucket": 0,
            "output_bucket": 0,
            "request_rate": 3,
            "achieved_rate": 3,
            "p99": 150,
        },  # SLO
        {
            "gpu": "X",
            "input_bucket": 1,
            "output_bucket": 0,
            "request_rate": 1,
            "achieved_rate": 1,
            "p99": 500,
        },
        {
            "gpu": "Y",
            "input_bucket": 0,
            "output_bucket": 0,
            "request_rate": 8,
            "achieved_rate": 7.2,
            "p99": 10,
        },  # = 0.9 x
    ]
    tables = build_throughput(rows, {"p99": 100})
    assert tables == {"X": [[2], [0.0]], "Y": [[8], [0.0]]}
    with pytest.raises(InputError, match="p50"):
        build_throughput(rows, {"p50": 100})


def test_profile_csv_and_generator_cli(tmp_path, capsys):
    csv = PROFILES / "sample-measurements.csv"
    tables = profile_from_csv(csv, "ttft_p99_ms=1000,tpot_p99_ms=100")
    assert set(tables) == {"A10G", "A100-80GB"} and len(tables["A10G"]) == 2
    out = tmp_path / "g.json"
    assert (
        main(
            [
                "generate",
                "gpu-selection",
                "--seed",
                "0",
                "-o",
                str(out),
                "--profiles",
                str(csv),
                "--slo",
                "ttft_p99_ms=1000,tpot_p99_ms=100",
                "--request-rate",
                "6",
            ]
        )
        == 0
    )
    problem = optkit.load(out)
    assert [g.name for g in problem.gpu_types] == ["A10G", "A100-80GB"]
    assert problem.gpu_types[0].cost_per_hour == 1.01
    bad = tmp_path / "bad.csv"
    bad.write_text("gpu,input_bucket,request_rate\nA,0,1\n")
    assert main(["generate", "gpu-selection", "-o", str(out), "--profiles", str(bad)]) == 2
    assert "missing column" in capsys.readouterr().err


def test_shipped_profile_file_is_the_roofline_set():
    shipped = json.loads((PROFILES / "roofline-llama2-7b.json").read_text())
    assert shipped == json.loads(json.dumps(roofline_profiles()))
    assert set(shipped["gpus"]) == {"L4", "A10G", "A100-80GB", "H100"}
    assert "source" in shipped and "price_source" in shipped


@pytest.mark.parametrize("workload", ["short-context", "long-context", "mixed"])
def test_generator_workloads(workload):
    dist = workload_distribution(workload)
    assert sum(Fraction(str(x)) for row in dist for x in row) == 1
    problem = generate(
        workload=workload,
        request_rate=4,
        slice_factor=1,
        packing="per_instance",
        jitter=0.3,
        seed=3,
    )
    assert problem.packing == "per_instance" and len(problem.gpu_types) == 4
    result = optkit.solve(problem, "greedy")
    assert result.status == Status.FEASIBLE


def test_generator_rejects_bad_options(tmp_path):
    out = str(tmp_path / "x.json")
    assert main(["generate", "gpu-selection", "-o", out, "--workload", "video"]) == 2
    assert main(["generate", "gpu-selection", "-o", out, "--gpus", "TPU"]) == 2
    assert main(["generate", "gpu-selection", "-o", out, "--packing", "spread"]) == 2


@pytest.mark.parametrize("packing,sf", [("pooled", 1), ("per_instance", 2)])
@pytest.mark.parametrize("tput", [1000003, 10**13 - 1])
def test_cpsat_rounding_never_overloads(packing, sf, tput):
    # load 1 + 1/tput: the 1e6-scaled relaxation rounds it down to exactly one GPU; the exact check
    # rejects that. For 1000003 the 1e9 scale separates it (optimal); for 1e13 - 1 no scale does, so
    # the restricted model (loads rounded up) answers, and optimality is not claimed from the relaxation.
    problem = tiny([("G", 1, [[tput]], None)], [[1.0]], tput + 1, sf=sf, packing=packing)
    result = optkit.solve(problem, "cpsat")
    assert result.status in (Status.FEASIBLE, Status.OPTIMAL) and result.objective == 2.0
    assert result.bound is None or result.bound <= 2.0
    assert result.stats.get("restricted_resolve", False) == (tput > 10**12)
    if tput < 10**12:
        assert result.status == Status.OPTIMAL
    assert optkit.solve(problem, "mip").objective == 2.0
    assert brute_force(problem) == 2


@pytest.mark.parametrize("sf,cost", [(1, 6.70), (2, 5.69)])
def test_mip_cbc_backend(sf, cost):
    result = optkit.solve(melange(sf), "mip", backend="cbc")
    assert result.status == Status.OPTIMAL and result.objective == cost and result.bound == cost


@pytest.mark.parametrize("packing", ["pooled", "per_instance"])
def test_zero_request_rate_costs_nothing(packing):
    problem = tiny([("G", 1, [[0]], None)], [[1.0]], 0, packing=packing)
    for solver in ALL:
        result = optkit.solve(problem, solver)
        assert result.status.has_solution and result.objective == 0.0, solver


def test_max_count_zero_everywhere_is_found_by_inspection():
    problem = tiny([("A", 1, [[1]], 0), ("B", 2, [[2]], 0)], [[1.0]], 1)
    for solver in ALL:
        result = optkit.solve(problem, solver)
        assert result.status == Status.INFEASIBLE and "max_count 0" in result.message, solver


def _first_fit_decreasing_in_fractions(loads: list[Fraction]) -> list[list[int]]:
    order = sorted(range(len(loads)), key=lambda k: (-loads[k], k))
    bins: list[list[int]] = []
    room: list[Fraction] = []
    for k in order:
        for i, r in enumerate(room):
            if loads[k] <= r:
                bins[i].append(k)
                room[i] -= loads[k]
                break
        else:
            bins.append([k])
            room.append(1 - loads[k])
    return bins


@settings(max_examples=60, deadline=None)
@given(
    sizes=st.lists(
        st.fractions(min_value=0, max_value=1, max_denominator=97), min_size=1, max_size=6
    ),
    picks=st.lists(st.integers(0, 5), max_size=40),
)
def test_first_fit_decreasing_in_integers_packs_as_in_fractions(sizes, picks):
    """The integer FFD (with its resumed search for equal items) is the plain FFD, exactly."""
    from optkit.problems.gpu_selection import first_fit_decreasing

    loads = [sizes[k % len(sizes)] for k in picks]
    assert first_fit_decreasing(loads) == _first_fit_decreasing_in_fractions(loads)

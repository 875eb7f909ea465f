"""Software pipelining: checker, known optima, brute force on tiny loops, infeasible and bad inputs."""

from __future__ import annotations

import itertools
import json

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import optkit
from conftest import INSTANCES, solver_names
from optkit.backends.mip.software_pipelining import dependence_rows
from optkit.cli import main
from optkit.problems.software_pipelining import SoftwarePipelining, generate
from optkit.problems.software_pipelining_output import (
    listing,
    render,
    reservation_table,
    schedule_rows,
    triton_attributes,
)
from optkit.result import Status

FOLDER = INSTANCES / "software-pipelining"


def toy(shared_benchmarks) -> SoftwarePipelining:
    return optkit.load(shared_benchmarks / "software_pipelining" / "twill_fig1.json")


def solve(problem, solver, **kw):
    return optkit.solve(problem, solver, time_limit=30, threads=1, seed=0, **kw)


# -- checker -----------------------------------------------------------------------------------------


def test_toy_checker(shared_benchmarks):
    p = toy(shared_benchmarks)
    good = p.check({"ii": 2, "start": {"S": 0, "P": 1, "O": 3}})
    assert good.feasible and good.objective == [2, 4]
    assert good.metrics["mii"] == 2 and good.metrics["res_mii"] == 2 and good.metrics["stages"] == 2
    clash = p.check({"ii": 2, "start": {"S": 0, "P": 1, "O": 2}})  # S and O in one TC slot
    assert not clash.feasible and "unit 'TC'" in clash.violations[0]
    late = p.check({"ii": 2, "start": {"S": 0, "P": 0, "O": 3}})
    assert not late.feasible and "dependence S -> P" in late.violations[0]
    assert not p.check({"ii": 2, "start": {"S": 0, "P": 1}}).feasible
    assert not p.check(
        {"ii": 2, "start": {"S": 0, "P": 1, "O": 3}, "warp_group": {"S": 0}}
    ).feasible
    assert not p.check({"ii": 0, "start": {"S": 0, "P": 1, "O": 3}}).feasible


@pytest.mark.parametrize("solver", solver_names("software-pipelining"))
def test_toy_optimum(shared_benchmarks, solver):
    p = toy(shared_benchmarks)
    r = solve(p, solver)
    assert r.objective == [2, 4]
    if solver != "ims":
        assert r.status == Status.OPTIMAL and r.bound == [2, 4]


def test_register_and_group_semantics():
    p = SoftwarePipelining(
        units={"A": 1, "B": 1},
        ops=[
            {"name": "x", "unit": "A", "cycles": 2, "regs": 10, "issue_cycles": 0},
            {"name": "y", "unit": "B", "cycles": 1, "regs": 5},
        ],
        edges=[{"from": "x", "to": "y", "latency": 2, "blocking": True}],
        warp_groups={"count": 2, "reg_limit": [12, 12], "handoff": 1},
    )
    # same group: x's registers live [0, 3) and y's [3, 4): 10 and 5, never together; the group is
    # busy [0, 3) waiting (blocking) plus [3, 4) running y: 4 cycles, so II >= 4
    same = p.check({"ii": 4, "start": {"x": 0, "y": 3}, "warp_group": {"x": 1, "y": 1}})
    assert same.feasible and same.metrics["peak_registers"] == [0, 10]
    busy = p.check({"ii": 3, "start": {"x": 0, "y": 3}, "warp_group": {"x": 1, "y": 1}})
    assert not busy.feasible and any("busy" in v or "at once" in v for v in busy.violations)
    # across groups the handoff adds a cycle of latency
    cross = p.check({"ii": 3, "start": {"x": 0, "y": 2}, "warp_group": {"x": 0, "y": 1}})
    assert not cross.feasible and "handoff" in cross.violations[0]
    assert p.check({"ii": 3, "start": {"x": 0, "y": 3}, "warp_group": {"x": 0, "y": 1}}).feasible
    # lifetimes longer than II overlap themselves: x live [0, 5) at II 2: 3 copies in cycle 0, 2 in cycle 1
    q = p.model_copy(update={"warp_groups": None})
    assert q.register_use(2, [0, 5], [0, 0])[0] == [3 * 10, 2 * 10 + 5]  # y live [5, 6)


def test_structured_dependence_rows_match_the_inequality():
    for ii in range(1, 5):
        for lat in range(7):
            for d in range(3):
                rows = dependence_rows(ii, lat, d)
                for au, av in itertools.product(range(ii), repeat=2):
                    for ku, kv in itertools.product(range(4), repeat=2):
                        ok = av + ii * kv + d * ii >= au + ii * ku + lat
                        rows_ok = all((au >= r) + (av <= w) + ku - kv <= rhs for r, w, rhs in rows)
                        assert ok == rows_ok, (ii, lat, d, au, av, ku, kv)


# -- brute force on tiny loops --------------------------------------------------------------------


def brute_force(p: SoftwarePipelining) -> list[int] | None:
    mii = p.mii()
    names = [op.name for op in p.ops]
    groups = range(p.warp_groups.count) if p.warp_groups else [None]
    for ii in range(mii, mii + 8):
        best = None
        horizon = p.horizon_for(ii)
        for start in itertools.product(range(horizon), repeat=p.n):
            if min(start) != 0:
                continue
            length = max(s + op.cycles for s, op in zip(start, p.ops))
            if best is not None and length >= best or length > horizon:
                continue
            for grp in itertools.product(groups, repeat=p.n):
                sol = {"ii": ii, "start": dict(zip(names, start))}
                if p.warp_groups:
                    sol["warp_group"] = dict(zip(names, grp))
                if p.check(sol).feasible:
                    best = length
                    break
        if best is not None:
            return [ii, best]
    return None


@st.composite
def tiny_loops(draw, warp: bool = False):
    n = draw(st.integers(2, 3))
    ops = [
        {
            "name": f"o{i}",
            "unit": draw(st.sampled_from(["A", "B"])),
            "cycles": draw(st.integers(1, 2)),
        }
        for i in range(n)
    ]
    edges = []
    for i in range(1, n):
        edges.append(
            {
                "from": f"o{draw(st.integers(0, i - 1))}",
                "to": f"o{i}",
                "latency": draw(st.integers(0, 2)),
            }
        )
    if draw(st.booleans()):
        edges.append(
            {
                "from": f"o{n - 1}",
                "to": "o0",
                "latency": draw(st.integers(1, 3)),
                "distance": draw(st.integers(1, 2)),
            }
        )
    if draw(st.booleans()):  # a reservation table: A at offset 0, B one cycle later
        ops[0]["reservation"] = {"A": [0], "B": [1]}
    data = {"units": {"A": 1, "B": draw(st.integers(1, 2))}, "ops": ops, "edges": edges}
    if warp:
        for op in ops:
            op["regs"] = draw(st.sampled_from([0, 4, 8]))
            op["issue_cycles"] = draw(st.integers(0, 1))
        if draw(st.booleans()):
            ops[0].update(variable_latency=True, regs=0)
        for e in edges:
            e["blocking"] = draw(st.booleans())
            e["carries_value"] = draw(st.booleans())
            e["same_group"] = draw(st.sampled_from([False, False, True]))
        data["warp_groups"] = {
            "count": 2,
            "reg_limit": [8, 12],
            "handoff": draw(st.integers(0, 1)),
            "producer_exclusive": draw(st.booleans()),
        }
    return SoftwarePipelining(**data)


@settings(max_examples=12, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tiny_loops())
def test_exact_solvers_match_brute_force(p):
    expected = brute_force(p)
    for solver in solver_names("software-pipelining", exact=True):
        r = solve(p, solver)
        assert r.status == Status.OPTIMAL and r.objective == expected, (solver, r.message)
    h = solve(p, "ims")
    assert h.status.has_solution and not p.better(h.objective, expected)


@pytest.mark.slow
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(tiny_loops(warp=True))
def test_joint_model_matches_brute_force(p):
    expected = brute_force(p)
    r = solve(p, "cpsat")
    if expected is None:
        assert r.status != Status.OPTIMAL or r.objective[0] >= p.mii() + 8
    else:
        assert r.status == Status.OPTIMAL and r.objective == expected, r.message
    h = solve(p, "ims")
    if h.status.has_solution and expected is not None:
        assert not p.better(h.objective, expected)


# -- FlashAttention instances -----------------------------------------------------------------------


def test_fa3_hopper_optimal_with_ping_pong():
    p = optkit.load(FOLDER / "fa3_hopper.json")
    r = solve(p, "cpsat")
    assert r.status == Status.OPTIMAL and r.objective == [16, 30]
    assert r.metrics["mii"] == 16  # tensor-core bound: 4 GEMMs x 4 units
    g = r.solution["warp_group"]
    a = {g[x] for x in ("SA", "MA", "EA", "RA", "OA")}
    b = {g[x] for x in ("SB", "MB", "EB", "RB", "OB")}
    assert (
        len(a) == 1 and len(b) == 1 and a != b and 0 not in a | b
    )  # one consumer group per sub-tile
    assert g["LK"] == g["LV"] == 0
    # with a single consumer group the best II is worse, and proven so
    d = p.to_dict()
    d["warp_groups"].update(count=2, reg_limit=[24, 240])
    one = solve(SoftwarePipelining.from_dict(d), "cpsat")
    assert one.status == Status.OPTIMAL and one.objective[0] > 16


@pytest.mark.slow
def test_fa4_blackwell_optimal():
    p = optkit.load(FOLDER / "fa4_blackwell.json")
    r = solve(p, "cpsat")
    assert r.status == Status.OPTIMAL and r.objective == [16, 38]
    h = solve(p, "ims")
    assert h.status == Status.FEASIBLE and h.objective[0] >= 16


def test_mip_declines_warp_groups():
    r = solve(optkit.load(FOLDER / "fa3_hopper.json"), "mip")
    assert r.status == Status.ERROR and "cpsat" in r.message


# -- infeasible and bad inputs -------------------------------------------------------------------------

BASE = {
    "units": {"A": 1, "Z": 0},
    "ops": [{"name": "x", "unit": "A", "cycles": 1}, {"name": "y", "unit": "A", "cycles": 1}],
}


@pytest.mark.parametrize(
    "case,needle",
    [
        (
            {
                "edges": [
                    {"from": "x", "to": "y", "latency": 1},
                    {"from": "y", "to": "x", "latency": 0},
                ]
            },
            "total distance 0",
        ),
        ({"ops": [{"name": "x", "unit": "Z", "cycles": 1}]}, "capacity 0"),
        (
            {
                "ops": [{"name": "x", "unit": "A", "cycles": 1, "regs": 300}],
                "warp_groups": {"count": 2, "reg_limit": [24, 240]},
            },
            "above every warp group",
        ),
    ],
)
@pytest.mark.parametrize("solver", ["ims", "cpsat", "mip"])
def test_infeasible_instances(case, needle, solver):
    p = SoftwarePipelining(**{**BASE, **case})
    r = solve(p, solver)
    assert r.status == Status.INFEASIBLE and needle in r.message


def test_infeasible_exit_code(tmp_path, capsys):
    path = tmp_path / "cyc.json"
    path.write_text(
        json.dumps(
            {
                "problem": "software-pipelining",
                **BASE,
                "edges": [{"from": "x", "to": "x", "latency": 1}],
            }
        )
    )
    assert main(["solve", str(path), "--solver", "cpsat"]) == 1


@pytest.mark.parametrize(
    "patch,field",
    [
        ({"ops": [{"name": "x", "unit": "Q", "cycles": 1}]}, "ops.0.unit"),
        ({"ops": [{"name": "x", "unit": "A", "cycles": 0}]}, "ops.0.cycles"),
        ({"edges": [{"from": "x", "to": "nope", "latency": 1}]}, "edges.0.to"),
        ({"edges": [{"from": "x", "to": "y", "latency": 1.0}]}, "edges.0.latency"),
        ({"warp_groups": {"count": 2, "reg_limit": [1]}}, "warp_groups.reg_limit"),
        (
            {
                "ops": [
                    {"name": "x", "unit": "A", "cycles": 1},
                    {"name": "x", "unit": "A", "cycles": 1},
                ]
            },
            "ops.1.name",
        ),
    ],
)
def test_bad_inputs_exit_2(tmp_path, capsys, patch, field):
    path = tmp_path / "bad.json"
    path.write_text(json.dumps({"problem": "software-pipelining", **BASE, **patch}))
    assert main(["solve", str(path)]) == 2
    assert field in capsys.readouterr().err


# -- rendering, generator, CLI -----------------------------------------------------------------------


def test_rendering(shared_benchmarks, tmp_path, capsys):
    p = toy(shared_benchmarks)
    sol = {"ii": 2, "start": {"S": 0, "P": 1, "O": 3}}
    rows = schedule_rows(p, sol)
    assert [(r["op"], r["stage"], r["cycle"]) for r in rows] == [
        ("S", 0, 0),
        ("P", 0, 1),
        ("O", 1, 1),
    ]
    assert triton_attributes(p, sol)["O"] == {"loop.stage": 1, "loop.cluster": 1}
    assert "O@1" in reservation_table(p, sol)
    text = listing(p, sol)
    assert "prologue step 0" in text and "O[i]" in text and "O[N-1]" in text
    assert "triton loop attributes" in render(p, sol)
    inst, res = tmp_path / "toy.json", tmp_path / "res.json"
    optkit.dump(p, inst)
    assert main(["solve", str(inst), "--solver", "cpsat", "-o", str(res), "--json"]) == 0
    capsys.readouterr()
    assert main(["render", str(inst), str(res)]) == 0
    assert "kernel" in capsys.readouterr().out


def test_generator_and_ims_never_beat_cpsat(tmp_path):
    path = tmp_path / "g.json"
    assert (
        main(["generate", "software-pipelining", "--seed", "4", "--n", "6", "-o", str(path)]) == 0
    )
    p = optkit.load(path)
    exact, heur = solve(p, "cpsat"), solve(p, "ims")
    assert exact.status == Status.OPTIMAL and heur.status == Status.FEASIBLE
    assert not p.better(heur.objective, exact.objective)
    w = generate(seed=2, n=6, warp_groups=3)
    r = solve(w, "cpsat")
    assert r.status.has_solution and optkit.check(w, r.solution).feasible

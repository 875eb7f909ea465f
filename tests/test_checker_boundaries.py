"""Hand-built cases at the edges of each checker's rules that random draws reach too seldom.

Each test here was written for a mutant of a checker that the drawn cases of tests/test_checkers.py
let through (benchmarks/mutation.py): the instance is small and the expected verdict, objective or
metric is worked out by hand in the test.
"""

from __future__ import annotations

from fractions import Fraction

import pytest

from optkit.problems import gpu_selection
from optkit.problems.expert_placement import ExpertPlacement
from optkit.problems.gpu_selection import GpuSelection
from optkit.problems.pod_packing import PodPacking, Requirement, Taint, Toleration
from optkit.problems.software_pipelining import SoftwarePipelining

# -- gpu selection ---------------------------------------------------------------------------------


def _gpu(types, dist=((1,),), rate=1, slice_factor=1, packing="pooled"):
    """A GPU selection instance from (name, cost, max_count, throughput table) per type."""
    return GpuSelection.model_validate(
        {
            "problem": "gpu-selection",
            "gpu_types": [
                {"name": n, "cost_per_hour": c, "max_count": m, "throughput": t}
                for n, c, m, t in types
            ],
            "workload": {"distribution": dist, "request_rate": rate},
            "slice_factor": slice_factor,
            "packing": packing,
        }
    )


def _slices(gpu_type, bucket=(0, 0), n=1):
    """Slices 0 .. n - 1 of the bucket on the type (pooled: no instance)."""
    return [{"bucket": list(bucket), "slice": s, "gpu_type": gpu_type} for s in range(n)]


def test_gpu_selection_can_serve_at_max_count_0_and_1_and_a_whole_instance():
    """A type with max_count 0 serves nothing, max_count 1 does; per instance, one slice may fill
    an instance exactly (load 1) but not more (load 2); pooled, any load is served."""
    p = _gpu(
        [("none", 1, 0, [[1]]), ("one", 1, 1, [[1]]), ("slow", 1, None, [[0.5]])],
        packing="per_instance",
    )
    assert [p.can_serve(t, (0, 0)) for t in range(3)] == [False, True, False]
    pooled = _gpu([("slow", 1, None, [[0.5]])])
    assert pooled.can_serve(0, (0, 0))  # load 2: two pooled instances


def test_gpu_selection_single_type_count_pooled_against_per_instance():
    """Three slices of load 0.6: pooled, the ceiling of 1.8 is 2 instances; per instance, no two
    share one (first-fit decreasing opens 3)."""
    types = [("G", 1, None, [[0.5]])]
    assert _gpu(types, rate=0.9, slice_factor=3).single_type_count(0) == 2
    assert _gpu(types, rate=0.9, slice_factor=3, packing="per_instance").single_type_count(0) == 3


def test_gpu_selection_single_type_count_at_max_count():
    """Two instances needed: a max_count of 2 allows them, 1 does not."""
    assert _gpu([("G", 1, 2, [[0.5]])]).single_type_count(0) == 2
    assert _gpu([("G", 1, 1, [[0.5]])]).single_type_count(0) is None


def test_gpu_selection_counts_at_max_count():
    """max_count 1: one instance is allowed, two are one violation."""
    p = _gpu([("G", 1, 1, [[1]])])
    assert p.check({"counts": {"G": 1}, "assignment": _slices("G")}).feasible
    report = p.check({"counts": {"G": 2}, "assignment": _slices("G")})
    assert list(report.violations) == ["counts: 2 instances of 'G' exceed its max_count 1"]


def test_gpu_selection_first_fit_decreasing_at_exact_fill():
    """Two halves fill one bin exactly; 0.6 then 0.5 do not share one (0.4 room left). Called
    through the module, so that benchmarks/mutation.py's edits of it are the ones tested."""
    first_fit_decreasing = gpu_selection.first_fit_decreasing
    half = Fraction(1, 2)
    assert first_fit_decreasing([half, half]) == [[0, 1]]
    assert first_fit_decreasing([Fraction(3, 5), half]) == [[0], [1]]
    assert first_fit_decreasing([half, Fraction(3, 5), Fraction(2, 5)]) == [[1, 2], [0]]
    third = Fraction(3, 10)
    assert first_fit_decreasing([half, third, third]) == [[0, 1], [2]]  # 0.2 left, not 0.8


def test_gpu_selection_a_type_left_out_of_counts_has_none():
    """counts may leave a type out: it then has 0 instances, costs nothing, and slices put on it
    do not fit (pooled load 1 > 0 instances)."""
    p = _gpu([("A", 2, None, [[1]]), ("B", 3, None, [[1]])])
    report = p.check({"counts": {"A": 1}, "assignment": _slices("A")})
    assert report.feasible and report.objective == 2
    assert report.metrics["instances"] == {"A": 1, "B": 0}
    assert report.metrics["mix"] == "A"
    assert set(report.metrics["load_per_instance"]) == set(report.metrics["load_per_type"]) == {"A"}
    bad = p.check({"counts": {"A": 1}, "assignment": _slices("B")})
    assert not bad.feasible
    assert any("exceeds its 0 instance(s)" in v for v in bad.violations), bad.violations


@pytest.mark.parametrize("bucket", [(1, 0), (0, 2), (1, 2), (2, 0)])
def test_gpu_selection_bucket_just_outside_the_table(bucket):
    """A 1x2 distribution: row 1 or column 2 is outside it (not a bucket without traffic), whether
    the other coordinate is inside or not."""
    p = _gpu([("G", 1, None, [[1, 1]])], dist=[[0.5, 0.5]])
    solution = {"counts": {"G": 1}, "assignment": _slices("G") + _slices("G", (0, 1))}
    assert p.check(solution).feasible
    solution["assignment"].append({"bucket": list(bucket), "slice": 0, "gpu_type": "G"})
    report = p.check(solution)
    assert len(report.violations) == 1 and "is outside the 1x2 distribution" in report.violations[0]


def test_gpu_selection_a_slice_given_twice_is_one_violation_and_counted_once():
    """Slice 0 listed twice: one violation; its load counts once, so one instance still suffices."""
    p = _gpu([("G", 1, None, [[1]])], slice_factor=2)
    slices = _slices("G", n=2)
    assert p.check({"counts": {"G": 1}, "assignment": slices}).feasible
    report = p.check({"counts": {"G": 1}, "assignment": [*slices, slices[0]]})
    assert list(report.violations) == ["assignment.2: slice 0 of bucket [0, 0] is assigned twice"]


def test_gpu_selection_decimals_are_read_as_written():
    """0.3 req/s per GPU serves three slices of 0.1 req/s exactly (in binary floats 0.1 / 0.3 is
    a hair above 1/3); 2 x 1.01 + 3.67 is 5.69, not the float sum 5.6899999999999995."""
    p = _gpu([("A", 1, None, [[0.3]])], slice_factor=10, packing="per_instance")
    assignment = [
        {"bucket": [0, 0], "slice": s, "gpu_type": "A", "instance": s // 3} for s in range(10)
    ]
    report = p.check({"counts": {"A": 4}, "assignment": assignment})
    assert report.feasible, report.violations
    assert report.metrics["load_per_instance"] == {"A": [1.0, 1.0, 1.0, 0.333333]}
    costs = _gpu([("A", 1.01, None, [[1]]), ("B", 3.67, None, [[1]])])
    assert costs.check({"counts": {"A": 2, "B": 1}, "assignment": _slices("B")}).objective == 5.69


def test_gpu_selection_slice_index_at_the_slice_factor():
    """Slices are numbered 0 .. slice_factor - 1: slice 2 of slice_factor 2 does not exist."""
    p = _gpu([("G", 1, None, [[1]])], slice_factor=2)
    slices = _slices("G", n=2)
    report = p.check({"counts": {"G": 2}, "assignment": [*slices, {**slices[0], "slice": 2}]})
    assert list(report.violations) == ["assignment.2: slice 2 >= slice_factor 2"]


def test_gpu_selection_unassigned_message_names_the_missing_slice():
    p = _gpu([("G", 1, None, [[1]])], slice_factor=3)
    report = p.check({"counts": {"G": 1}, "assignment": [_slices("G", n=3)[k] for k in (0, 2)]})
    assert list(report.violations) == ["1 slice(s) unassigned, e.g. (bucket, slice) [([0, 0], 1)]"]


def test_gpu_selection_metrics_of_a_mix_to_six_digits():
    """Two buckets, each served twice as fast by one of two types of cost 1: the mix (one of each)
    costs 2, either type alone needs 1 + 2 = 3 pooled instances, so the savings are 1/3, rounded
    to six digits; so are the loads per type and per pooled instance (thirds and sixths)."""
    types = [("A", 1, None, [[0.5, 0.25]]), ("B", 1, None, [[0.25, 0.5]])]
    p = _gpu(types, dist=[[0.5, 0.5]])
    report = p.check(
        {"counts": {"A": 1, "B": 1}, "assignment": _slices("A") + _slices("B", (0, 1))}
    )
    assert report.objective == 2
    assert report.metrics["single_type_baseline"] == {
        "gpu_type": "A",
        "count": 3,
        "cost_per_hour": 3.0,
    }
    assert report.metrics["savings_vs_single_type"] == 0.333333
    assert report.metrics["load_per_instance"] == {"A": [1.0], "B": [1.0]}
    # A: two slices of 1/3 on 2 pooled instances; B alone would be 1 instance at cost 1
    third = _gpu([("A", 3, None, [[1.5]]), ("B", 1, None, [[2.5]])], slice_factor=2)
    r = third.check({"counts": {"A": 2, "B": 0}, "assignment": _slices("A", n=2)})
    assert r.metrics["load_per_type"] == {"A": 0.666667}
    assert r.metrics["load_per_instance"] == {"A": [0.333333, 0.333333]}
    assert r.metrics["single_type_baseline"] == {"gpu_type": "B", "count": 1, "cost_per_hour": 1.0}
    assert r.metrics["savings_vs_single_type"] == -5.0


def test_gpu_selection_baseline_is_the_cheapest_type_first_on_ties():
    """A alone: 1 instance at 3; B alone: 2 at 1 (cost 2, the baseline); with A at 2 the two tie
    at 2 and the first type listed is the baseline."""
    types = [("A", 3, None, [[1]]), ("B", 1, None, [[0.5]])]
    assert _gpu(types).single_type_baseline == (1, 2, 2)
    types[0] = ("A", 2, None, [[1]])
    assert _gpu(types).single_type_baseline == (0, 1, 2)


def test_gpu_selection_no_traffic_saves_nothing():
    """Request rate 0: no slices, no instances needed; the baseline costs 0 and saves 0."""
    p = _gpu([("G", 1, None, [[1]])], rate=0)
    report = p.check({"counts": {}, "assignment": []})
    assert report.feasible and report.objective == 0
    assert report.metrics["single_type_baseline"] == {
        "gpu_type": "G",
        "count": 0,
        "cost_per_hour": 0.0,
    }
    assert report.metrics["savings_vs_single_type"] == 0.0


def test_gpu_selection_per_instance_loads_to_six_digits():
    """Per instance: slices of 1/9 on instances 0 and 1 of A, nothing on its instance 2, 1/3 on
    the one instance of B; a type with one instance is listed, one with none is not."""
    p = _gpu(
        [("A", 1, None, [[3]]), ("B", 1, None, [[1]]), ("C", 1, None, [[1]])],
        slice_factor=3,
        packing="per_instance",
    )
    assignment = [
        {"bucket": [0, 0], "slice": 0, "gpu_type": "A", "instance": 0},
        {"bucket": [0, 0], "slice": 1, "gpu_type": "A", "instance": 1},
        {"bucket": [0, 0], "slice": 2, "gpu_type": "B", "instance": 0},
    ]
    r = p.check({"counts": {"A": 3, "B": 1, "C": 0}, "assignment": assignment})
    assert r.feasible, r.violations
    assert r.metrics["load_per_instance"] == {"A": [0.111111, 0.111111, 0.0], "B": [0.333333]}
    assert r.metrics["load_per_type"] == {"A": 0.222222, "B": 0.333333}
    assert r.metrics["mix"] == "A+B"


# -- pod packing -----------------------------------------------------------------------------------


def test_pod_packing_a_pinned_pod_stays_where_it_runs():
    """A pod that is not movable may only stay: on its node the solution is feasible; moved or
    evicted, that is one violation of the pinned-pod rule (not of eligibility), while a movable
    pod may go either way."""
    p = PodPacking.model_validate(
        {
            "problem": "pod-packing",
            "nodes": [{"name": "a", "capacity": {"cpu": 2}}, {"name": "b", "capacity": {"cpu": 2}}],
            "pods": [
                {"name": "pinned", "requests": {"cpu": 1}, "node": "a", "movable": False},
                {"name": "free", "requests": {"cpu": 1}, "node": "a"},
            ],
        }
    )
    for free in ("a", "b", None):
        assert p.check({"assignment": {"pinned": "a", "free": free}}).feasible, free
    for pinned in ("b", None):
        report = p.check({"assignment": {"pinned": pinned, "free": "a"}})
        assert list(report.violations) == ["pod 'pinned' is not movable: it must stay on 'a'"], (
            pinned
        )


# -- software pipelining ---------------------------------------------------------------------------


def _sp(ops, edges=(), warp_groups=None):
    """Ops as (name, cycles, regs) on units of their own; edges as (from, to, latency, distance)."""
    return SoftwarePipelining.model_validate(
        {
            "problem": "software-pipelining",
            "units": {f"U{k}": 1 for k in range(len(ops))},
            "ops": [
                {"name": n, "unit": f"U{k}", "cycles": c, "regs": r}
                for k, (n, c, r) in enumerate(ops)
            ],
            "edges": [
                {"from": a, "to": b, "latency": lat, "distance": d} for a, b, lat, d in edges
            ],
            "warp_groups": warp_groups,
        }
    )


def test_software_pipelining_default_horizon_by_hand():
    """(n - 1) * (largest latency + handoff + ii - 1) + the longest op: 1 * (3 + 2 + 4) + 5."""
    p = _sp(
        [("a", 2, 0), ("b", 5, 0)],
        [("a", "b", 3, 0)],
        {"count": 2, "reg_limit": [0, 0], "handoff": 2},
    )
    assert p.default_horizon(5) == 14
    assert p.check({"ii": 5, "start": {"a": 0, "b": 9}, "warp_group": {"a": 0, "b": 1}}).feasible
    report = p.check({"ii": 5, "start": {"a": 0, "b": 10}, "warp_group": {"a": 0, "b": 1}})
    assert list(report.violations) == ["schedule length 15 exceeds the horizon 14"]
    # no edges: the largest latency is 0, so (2 - 1) * (0 + 2 - 1) + 1 at II 2
    free = _sp([("a", 1, 0), ("b", 1, 0)])
    assert free.default_horizon(2) == 2
    assert free.check({"ii": 2, "start": {"a": 0, "b": 1}}).feasible
    assert not free.check({"ii": 2, "start": {"a": 0, "b": 2}}).feasible


def test_software_pipelining_handoff_only_between_two_assigned_groups():
    """a -> b, latency 1, handoff 2: in different groups b waits 3 cycles, in one group 1; an op
    without a group yet (the heuristic's partial schedules) adds no handoff."""
    p = _sp(
        [("a", 1, 0), ("b", 1, 0)],
        [("a", "b", 1, 0)],
        {"count": 2, "reg_limit": [0, 0], "handoff": 2},
    )
    apart = {"ii": 4, "warp_group": {"a": 0, "b": 1}}
    assert p.check({**apart, "start": {"a": 0, "b": 3}}).feasible
    report = p.check({**apart, "start": {"a": 0, "b": 2}})
    assert list(report.violations) == [
        "dependence a -> b: start 2 + 0*4 < 0 + latency 1 + handoff 2"
    ]
    assert p.check({"ii": 4, "start": {"a": 0, "b": 1}, "warp_group": {"a": 1, "b": 1}}).feasible
    for groups in ([None, 1], [0, None], [None, None]):
        assert p.violations(4, [0, 1], groups) == [], groups
    assert len(p.violations(4, [0, 1], [0, 1])) == 1


@pytest.mark.parametrize("distance", [1, 2, 3])
def test_software_pipelining_loop_carried_dependence_at_its_distance(distance):
    """a -> b with latency 5 * distance - 1 at II 5: b of `distance` iterations later may start one
    cycle before a of this one (b at 0, a at 1), not two (a at 2); the distance counts as written,
    neither one more nor one less."""
    p = _sp([("a", 1, 0), ("b", 1, 0)], [("a", "b", 5 * distance - 1, distance)])
    assert p.check({"ii": 5, "start": {"a": 1, "b": 0}}).feasible
    report = p.check({"ii": 5, "start": {"a": 2, "b": 0}})
    lat = 5 * distance - 1
    assert list(report.violations) == [
        f"dependence a -> b: start 0 + {distance}*5 < 2 + latency {lat}"
    ]


@pytest.mark.parametrize("latency, rec_mii", [(0, 1), (2, 1), (3, 2), (4, 2), (5, 3)])
def test_software_pipelining_rec_mii_of_a_distance_2_self_loop(latency, rec_mii):
    """An op feeding itself two iterations later: the least II with latency <= 2 * II (at least 1)."""
    p = _sp([("a", 1, 0)], [("a", "a", latency, 2)])
    assert p.rec_mii() == rec_mii
    assert p.check({"ii": 3, "start": {"a": 0}}).metrics["rec_mii"] == rec_mii


def _sp_data(ops, edges, warp_groups=None, units=None):
    """Ops as (name, unit, cycles, regs); edges as dicts (from, to, latency and the rest)."""
    return SoftwarePipelining.model_validate(
        {
            "problem": "software-pipelining",
            "units": units or {u: 1 for _, u, _, _ in ops},
            "ops": [{"name": n, "unit": u, "cycles": c, "regs": r} for n, u, c, r in ops],
            "edges": edges,
            "warp_groups": warp_groups,
        }
    )


def test_software_pipelining_unit_use_wraps_around_the_ii():
    """Two ops on one unit of capacity 1 at II 2 (b at least 2 cycles after a): starts 0 and 2 use
    it in the same cycle 0 of the II; starts 0 and 3 do not."""
    p = _sp_data([("a", "U", 1, 0), ("b", "U", 1, 0)], [{"from": "a", "to": "b", "latency": 2}])
    assert p.check({"ii": 2, "start": {"a": 0, "b": 3}}).feasible
    report = p.check({"ii": 2, "start": {"a": 0, "b": 2}})
    assert list(report.violations) == ["unit 'U' used 2 times in cycle 0 of the II (capacity 1)"]


@pytest.mark.parametrize("limit", [3, 4])
def test_software_pipelining_registers_live_until_a_later_iteration_reads_them(limit):
    """a (2 registers) feeds b of the next iteration at II 2: a's result lives from cycle 0 to
    b's start plus one II, 1 + 2 = 3, so cycle 0 of the II holds two copies (4 registers). A limit
    of 4 holds them, 3 does not."""
    p = _sp_data(
        [("a", "A", 1, 2), ("b", "B", 1, 0)],
        [{"from": "a", "to": "b", "latency": 1, "distance": 1}],
        {"count": 1, "reg_limit": [limit]},
    )
    report = p.check({"ii": 2, "start": {"a": 0, "b": 1}, "warp_group": {"a": 0, "b": 0}})
    assert report.metrics["peak_registers"] == [4]
    expected = (
        [] if limit == 4 else ["warp group 0 holds 4 registers in cycle 0 of the II (limit 3)"]
    )
    assert list(report.violations) == expected


def test_software_pipelining_a_blocking_wait_keeps_the_group_busy():
    """a -> b blocking, both in group 0, at II 4: the group is busy from a's start (0) to b's (2),
    so c may not run in cycle 1, but may in cycle 3."""
    p = _sp_data(
        [("a", "A", 1, 0), ("b", "B", 1, 0), ("c", "C", 1, 0)],
        [{"from": "a", "to": "b", "latency": 1, "blocking": True}],
        {"count": 1, "reg_limit": [0]},
    )
    group = {"a": 0, "b": 0, "c": 0}
    assert p.check({"ii": 4, "start": {"a": 0, "b": 2, "c": 3}, "warp_group": group}).feasible
    report = p.check({"ii": 4, "start": {"a": 0, "b": 2, "c": 1}, "warp_group": group})
    assert list(report.violations) == ["warp group 0 runs a, c at once in cycle 1 of the II"]


def test_software_pipelining_every_op_needs_a_start_and_a_group():
    """An op left out, or a name that is no op, in start or in warp_group; a group one past the
    last: each rejected with its message, whether or not the other list is complete."""
    p = _sp([("a", 1, 0), ("b", 1, 0)], warp_groups={"count": 2, "reg_limit": [8, 8]})
    ok = {"ii": 1, "start": {"a": 0, "b": 0}, "warp_group": {"a": 0, "b": 1}}
    assert p.check(ok).feasible
    for field, value, message in [
        ("start", {"a": 0}, "start must give every op exactly once (missing ['b'], unknown [])"),
        (
            "start",
            {"a": 0, "b": 0, "c": 0},
            "start must give every op exactly once (missing [], unknown ['c'])",
        ),
        (
            "warp_group",
            {"a": 0},
            "warp_group must give every op exactly once (missing ['b'], unknown [])",
        ),
        (
            "warp_group",
            {"a": 0, "b": 1, "c": 0},
            "warp_group must give every op exactly once (missing [], unknown ['c'])",
        ),
        ("warp_group", {"a": 0, "b": 2}, "warp_group of ['b'] is not below count 2"),
    ]:
        report = p.check({**ok, field: value})
        assert list(report.violations) == [message], (field, value)


def test_software_pipelining_register_use_by_hand():
    """One row without warp groups; ops with no group yet (the heuristic's partial schedules)
    hold no registers; a 1-cycle result of 2 registers is live in cycle 0 of II 2."""
    alone = _sp([("a", 1, 2)])
    assert alone.register_use(2, [0], [None]) == [[2, 0]]
    assert alone.register_use(3, [4], [None]) == [[0, 2, 0]]  # start 4 is cycle 1 of II 3
    groups = _sp([("a", 1, 2), ("b", 1, 3)], warp_groups={"count": 2, "reg_limit": [8, 8]})
    assert groups.register_use(2, [0, 1], [0, None]) == [[2, 0], [0, 0]]
    assert groups.register_use(2, [0, 1], [1, 1]) == [[0, 0], [2, 3]]


def test_software_pipelining_violations_shown_ten_by_default():
    """A chain of 12 ops all started at 0, each waiting 5 cycles for the one before: 11 broken
    dependences; `violations` lists 10 unless asked for all (limit 0)."""
    ops = [(f"o{k}", 1, 0) for k in range(12)]
    p = _sp(ops, [(f"o{k}", f"o{k + 1}", 5, 0) for k in range(11)])
    assert len(p.violations(1, [0] * 12, [None] * 12)) == 10
    assert len(p.violations(1, [0] * 12, [None] * 12, limit=0)) == 11


def test_software_pipelining_zero_distance_cycles():
    """A cycle of distance 0 is infeasible only when its latency is positive: a self-loop of
    latency 1 (not 0); a two-op cycle of latencies 1 and 0 (not 0 and 0, even with positive
    latencies into, out of, or at distance 1 around that cycle). rec_mii is None for the former."""
    ops = [("a", 1, 0), ("b", 1, 0), ("c", 1, 0), ("e", 1, 0)]
    assert _sp(ops, [("a", "a", 1, 0)]).zero_distance_cycle() == ["a"]
    assert _sp(ops, [("a", "a", 0, 0)]).zero_distance_cycle() is None
    positive = _sp(ops, [("a", "b", 1, 0), ("b", "a", 0, 0)])
    assert positive.zero_distance_cycle() == ["a", "b"]
    assert positive.rec_mii() is None
    start = {"a": 0, "b": 1, "c": 0, "e": 0}
    assert positive.check({"ii": 1, "start": start}).metrics["rec_mii"] is None
    zero = [("a", "b", 0, 0), ("b", "a", 0, 0)]
    assert _sp(ops, zero).zero_distance_cycle() is None
    around = [("c", "a", 1, 0), ("b", "e", 1, 0), ("a", "b", 1, 1), ("b", "a", 1, 2)]
    assert _sp(ops, zero + around).zero_distance_cycle() is None
    assert _sp(ops, zero + around).rec_mii() is not None


def test_pod_packing_tolerations_without_a_key():
    """An empty or absent key with Exists tolerates every taint (of its effect, if it names one);
    with Equal it tolerates none."""
    taints = [
        Taint(key=k, value=v, effect=e)
        for k, v, e in [("gpu", "", "NoSchedule"), ("spot", "1", "NoExecute")]
    ]
    for key in (None, ""):
        assert all(Toleration(key=key, operator="Exists").tolerates(t) for t in taints)
        assert not any(Toleration(key=key, operator="Equal").tolerates(t) for t in taints)
        only = Toleration(key=key, operator="Exists", effect="NoExecute")
        assert [only.tolerates(t) for t in taints] == [False, True]


@pytest.mark.parametrize(
    "order, objective",
    [
        # placed at >= 10, >= 5, >= 0 (negated), then evictions, then moves
        ("placement-first", [-1, -2, -2, 1, 1]),
        # per priority from the highest: placed (negated), then disruption (eviction 1, move 2)
        ("per-tier", [-1, 2, -2, 2, -2, 3]),
    ],
)
def test_pod_packing_objective_with_a_move_and_an_eviction(order, objective):
    """Three priorities: `hi` (10) moves from a to b, `lo` (0) is evicted from a, `new` (5) is
    placed on a; the objective in either order, worked out by hand."""
    p = PodPacking.model_validate(
        {
            "problem": "pod-packing",
            "objective": order,
            "nodes": [{"name": "a", "capacity": {"cpu": 4}}, {"name": "b", "capacity": {"cpu": 4}}],
            "pods": [
                {"name": "hi", "priority": 10, "requests": {"cpu": 1}, "node": "a"},
                {"name": "lo", "priority": 0, "requests": {"cpu": 1}, "node": "a"},
                {"name": "new", "priority": 5, "requests": {"cpu": 1}},
            ],
        }
    )
    report = p.check({"assignment": {"hi": "b", "lo": None, "new": "a"}})
    assert report.feasible and report.objective == objective
    assert (report.metrics["evictions"], report.metrics["moves"]) == (1, 1)


@pytest.mark.parametrize(
    "operator, values, on_a, on_b, unlabelled",
    [
        ("In", ["a"], True, False, False),
        ("NotIn", ["a"], False, True, True),  # a node without the label is not in the set
        ("Exists", [], True, True, False),
        ("DoesNotExist", [], False, False, True),
    ],
)
def test_pod_packing_node_affinity_operators(operator, values, on_a, on_b, unlabelled):
    """Each operator on a node labelled zone=a, one labelled zone=b, and one without the label."""
    req = Requirement(key="zone", operator=operator, values=values)
    assert [req.matches(labels) for labels in ({"zone": "a"}, {"zone": "b"}, {"disk": "a"})] == [
        on_a,
        on_b,
        unlabelled,
    ]


# -- expert placement ------------------------------------------------------------------------------


def _ep(load, slots_per_gpu, gpu_node=None, affinity=None, comm_weight=1, **extra):
    return ExpertPlacement(
        gpus=len(gpu_node) if gpu_node else extra.pop("gpus"),
        slots_per_gpu=slots_per_gpu,
        load=load,
        affinity=affinity,
        gpu_node=gpu_node,
        link_cost={"intra_node": 1, "inter_node": 10},
        comm_weight=comm_weight,
        **extra,
    )


def test_expert_placement_traffic_of_a_replicated_expert_across_nodes():
    """Expert 0 of layer 0 on GPU 0 (node 0) and GPU 1 (node 1), expert 1 of layer 1 on GPU 0
    only; one token from the first to the second: half of it stays on GPU 0 (a replica there takes
    half of expert 0's tokens), the other half crosses GPUs and nodes: cost 10 x 0.5."""
    p = _ep([[1, 1], [1, 1]], 2, gpu_node=[0, 1], affinity=[[[0, 1], [0, 0]]])
    m = p.check({"slots": [[0, 1, 0, -1], [0, 1, -1, -1]]}).metrics
    assert (m["cross_gpu_traffic"], m["cross_node_traffic"], m["comm_cost"]) == (0.5, 0.5, 5.0)
    assert m["local_share"] == 0.5


def test_expert_placement_replicas_of_different_layers_are_their_own():
    """One node, three layers: expert 0 has 2 replicas in layer 0, expert 1 has 2 in layer 2.
    A token from expert 0 (layer 0) to expert 0 (layer 1, GPU 0 only) and one from expert 1
    (layer 1, GPU 0) to expert 1 (layer 2, GPUs 0 and 1) each stay on GPU 0 half the time."""
    affinity = [[[1, 0], [0, 0]], [[0, 0], [0, 1]]]
    p = _ep([[1, 1]] * 3, 2, gpus=2, affinity=affinity)
    slots = [[0, 1, 0, -1], [0, 1, -1, -1], [0, 1, 1, -1]]
    m = p.check({"slots": slots}).metrics
    assert (m["cross_gpu_traffic"], m["cross_node_traffic"], m["comm_cost"]) == (1.0, 0.0, 1.0)
    assert m["local_share"] == 0.5


def test_expert_placement_traffic_between_gpus_of_one_node():
    """GPUs 0 and 1 on node 0, GPU 2 on node 1, three layers: a token from expert 0 (GPU 0) to
    expert 1 (GPU 1) crosses GPUs but not nodes (cost 1); then one from expert 0 (GPU 2) to expert
    0 (GPU 0) crosses both (cost 10). Each pair of layers is its own: layer 2 is not layer -1."""
    affinity = [[[0, 1], [0, 0]], [[1, 0], [0, 0]]]
    p = _ep([[1, 1]] * 3, 1, gpu_node=[0, 0, 1], affinity=affinity)
    m = p.check({"slots": [[0, 1, -1], [-1, 1, 0], [0, -1, 1]]}).metrics
    assert (m["cross_gpu_traffic"], m["cross_node_traffic"], m["comm_cost"]) == (2.0, 1.0, 11.0)


def test_expert_placement_defaults_one_node_and_no_comm_weight():
    """Without gpu_node every GPU is on node 0 (one node); without comm_weight (or at 0) the
    objective is the sum of the busiest GPU's loads alone, whatever the traffic."""
    p = _ep([[1, 1], [1, 1]], 1, gpus=2, affinity=[[[0, 1], [0, 0]]])
    assert p.node_of_gpu.tolist() == [0, 0] and p.num_nodes == 1
    assert _ep([[1, 1]], 1, gpu_node=[0, 2, 1]).num_nodes == 3
    for weight in (None, 0):
        q = _ep(
            [[1, 1], [1, 1]], 1, gpu_node=[0, 1], affinity=[[[0, 1], [0, 0]]], comm_weight=weight
        )
        assert q.weight == 0.0
        report = q.check({"slots": [[0, 1], [0, 1]]})
        assert report.metrics["comm_cost"] == 10.0 and report.objective == 2.0


@pytest.mark.parametrize("bad", [-2, 2])
def test_expert_placement_expert_ids_from_minus_one_to_the_last(bad):
    """Two experts: ids -1 (empty), 0 and 1 are slots; -2 and 2 are not."""
    p = _ep([[1, 1]], 2, gpus=2)
    assert p.check({"slots": [[0, -1, 1, -1]]}).feasible
    report = p.check({"slots": [[0, bad, 1, -1]]})
    assert list(report.violations) == ["slots[0]: expert ids must be in -1..1 (-1 = empty slot)"]


def test_expert_placement_replicas_on_one_gpu_and_the_load_split():
    """Expert 0 (load 2) on both GPUs: each replica takes 1, so GPU 0 (with expert 1, load 1)
    carries 2 and GPU 1 carries 1; two replicas of expert 0 on GPU 0 are one violation."""
    p = _ep([[2, 1]], 2, gpus=2)
    report = p.check({"slots": [[0, 1, 0, -1]]})
    assert report.objective == 2.0 and report.metrics["max_gpu_load"] == 2.0
    twice = p.check({"slots": [[0, 0, 1, -1]]})
    assert list(twice.violations) == [
        "1 replica(s) share a GPU with another replica of the same expert "
        "(e.g. layer 0, expert 0, GPU 0)"
    ]


def test_expert_placement_balancedness_below_one_token():
    """Loads 0.5 and 0.25 on two GPUs: mean 0.375 over max 0.5, even though the loads sum to less
    than one."""
    p = _ep([[0.5, 0.25]], 1, gpus=2)
    m = p.check({"slots": [[0, 1]]}).metrics
    assert m["balancedness"] == 0.75 and m["sum_max_gpu_load"] == 0.5
    assert m["balancedness_per_layer"] == [0.75] and m["balancedness_min"] == 0.75

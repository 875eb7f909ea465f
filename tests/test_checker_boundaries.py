"""Hand-built cases at the edges of each checker's rules that random draws reach too seldom.

Each test here was written for a mutant of a checker that the drawn cases of tests/test_checkers.py
let through (benchmarks/mutation.py): the instance is small and the expected verdict, objective or
metric is worked out by hand in the test.
"""

from __future__ import annotations

from fractions import Fraction

import pytest

from optkit.problems import gpu_selection
from optkit.problems.gpu_selection import GpuSelection

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


def _slices(gpu_type, bucket=(0, 0), n=1, instance=None):
    out = [{"bucket": list(bucket), "slice": s, "gpu_type": gpu_type} for s in range(n)]
    if instance is not None:
        for a in out:
            a["instance"] = instance
    return out


def test_gpu_selection_can_serve_at_max_count_0_and_1_and_a_whole_instance():
    """A type with max_count 0 serves nothing, max_count 1 does; per instance, one slice may fill
    an instance exactly (load 1) but not more (load 3/2); pooled, any load is served."""
    p = _gpu(
        [("none", 1, 0, [[1]]), ("one", 1, 1, [[1]]), ("half", 1, None, [[Fraction(2, 3)]])],
        packing="per_instance",
    )
    assert [p.can_serve(t, (0, 0)) for t in range(3)] == [False, True, False]
    pooled = _gpu([("half", 1, None, [[0.5]])])
    assert pooled.can_serve(0, (0, 0))  # load 2: two pooled instances


def test_gpu_selection_single_type_count_pooled_against_per_instance():
    """Three slices of load 0.6: pooled, the ceiling of 1.8 is 2 instances; per instance, no two
    share one (first-fit decreasing opens 3)."""
    types = [("G", 1, None, [[0.5]])]
    assert _gpu(types, rate=0.9, slice_factor=3).single_type_count(0) == 2
    assert _gpu(types, rate=0.9, slice_factor=3, packing="per_instance").single_type_count(0) == 3


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

"""Every known optimum of the solver suite (instances/*/suite/optima.json) confirmed by exhaustive
search written here, independent of the solvers: the optimum is attained by some solution, and no
solution does better. The software-pipelining search also re-derives the II from its lower bound;
the GPU selection search proves every cheaper instance mix infeasible by the LP relaxation of the
slice assignment (scipy's HiGHS), falling back to enumerating the slices where the LP is feasible.
"""

from __future__ import annotations

import itertools
import json

import numpy as np
import pytest

import optkit
from conftest import INSTANCES


def _optima(problem: str) -> dict:
    return json.loads((INSTANCES / problem / "suite" / "optima.json").read_text())


def _cases(problem: str, slow: tuple[str, ...] = ()):
    return [
        pytest.param(name, value, id=name, marks=(pytest.mark.slow,) if name in slow else ())
        for name, value in sorted(_optima(problem).items())
    ]


def _load(problem: str, name: str):
    return optkit.load(INSTANCES / problem / "suite" / f"{name}.json")


# -- tardiness -------------------------------------------------------------------------------------


@pytest.mark.parametrize("name, optimum", _cases("tardiness"))
def test_tardiness_suite_optimum(name, optimum):
    p = _load("tardiness", name)
    w, r = p.weights or [1] * p.n, p.release_dates or [0] * p.n

    def cost(seq):
        t = total = 0
        for j in seq:
            t = max(t, r[j]) + p.processing_times[j]
            total += w[j] * max(0, t - p.due_dates[j])
        return total

    assert min(cost(s) for s in itertools.permutations(range(p.n))) == optimum


# -- expert placement ------------------------------------------------------------------------------


@pytest.mark.parametrize("name, optimum", _cases("expert-placement"))
def test_expert_placement_suite_optimum(name, optimum):
    from optkit.problems.expert_placement import brute_force

    p = _load("expert-placement", name)
    best, slots = brute_force(p)
    assert best == pytest.approx(optimum, abs=1e-9)
    assert p.check({"slots": slots}).objective == pytest.approx(optimum, abs=1e-9)


# -- pod packing -----------------------------------------------------------------------------------


def _pod_placements(p):
    """Every placement that respects eligibility and capacity (depth-first, capacity pruned)."""
    R = len(p.resources)
    used = [[0] * R for _ in range(p.n_nodes)]
    where: list = [None] * p.n_pods
    options = [
        [j for j in range(p.n_nodes) if p.allowed(i, j)] + ([None] if p.pods[i].movable else [])
        for i in range(p.n_pods)
    ]

    def fits(i, j):
        return all(
            c is None or used[j][r] + p.request_matrix[i][r] <= c
            for r, c in enumerate(p.capacity_matrix[j])
        )

    def place(i):
        if i == p.n_pods:
            yield list(where)
            return
        for j in options[i]:
            if j is not None and not fits(i, j):
                continue
            where[i] = j
            if j is not None:
                for r in range(R):
                    used[j][r] += p.request_matrix[i][r]
            yield from place(i + 1)
            if j is not None:
                for r in range(R):
                    used[j][r] -= p.request_matrix[i][r]

    return place(0)


@pytest.mark.parametrize("name, optimum", _cases("pod-packing", slow=("gen_n3_ppn3_k2",)))
def test_pod_packing_suite_optimum(name, optimum):
    p = _load("pod-packing", name)
    best = min(_pod_placements(p), key=p.objective_of)
    assert p.objective_of(best) == optimum
    assert p.check(p.to_solution(best)).objective == optimum


# -- software pipelining ---------------------------------------------------------------------------


@pytest.mark.parametrize(
    "name, optimum", _cases("software-pipelining", slow=("gen_n6_s11", "gen_n6_s12"))
)
def test_software_pipelining_suite_optimum(name, optimum):
    """II: the optimum's II is the lower bound max(ResMII, RecMII), so no smaller II schedules.
    Length: every start vector of that II within the optimum's length (starts from 0: shifting all
    starts changes no constraint) is tried; the shortest feasible one has the optimum's length."""
    p = _load("software-pipelining", name)
    ii, length = optimum
    assert p.warp_groups is None and p.mii() == ii
    best, witness = None, None
    for start in itertools.product(*[range(length - op.cycles + 1) for op in p.ops]):
        if min(start) == 0 and not p.violations(ii, list(start), [None] * p.n, limit=1):
            span = max(s + op.cycles for s, op in zip(start, p.ops))
            if best is None or span < best:
                best, witness = span, list(start)
    assert best == length
    assert p.check(p.solution_from(ii, witness)).objective == [ii, length]


# -- gpu selection ---------------------------------------------------------------------------------


def _cheaper_mixes(p, optimum):
    costs = [float(c) for c in p.costs]
    caps = [g.max_count for g in p.gpu_types]
    tops = [int(optimum // c) + 1 if cap is None else cap for c, cap in zip(costs, caps)]
    for n in itertools.product(*[range(top + 1) for top in tops]):
        if float(p.exact_cost(dict(zip(p.names, n)))) < optimum - 1e-9:
            yield n


def _lp_feasible(p, n) -> bool:
    """Is there a fractional split of every bucket's slices over the types of mix `n` within their
    capacity (pooled: the count; per instance: also the count, a relaxation)?"""
    from scipy.optimize import linprog

    T, B = len(p.gpu_types), p.buckets
    var = [
        (b, t)
        for b in B
        for t in range(T)
        if b in p.loads[t] and n[t] > 0 and (p.packing == "pooled" or p.loads[t][b] <= 1)
    ]
    if not var:
        return not B
    a_eq = np.zeros((len(B), len(var)))
    a_ub = np.zeros((T, len(var)))
    for k, (b, t) in enumerate(var):
        a_eq[B.index(b), k] = 1
        a_ub[t, k] = float(p.loads[t][b])
    res = linprog(
        np.zeros(len(var)),
        A_ub=a_ub,
        b_ub=np.array(n, dtype=float),
        A_eq=a_eq,
        b_eq=np.full(len(B), float(p.slice_factor)),
        method="highs",
    )
    return res.status == 0


def _integer_feasible(p, n) -> bool:
    """Exhaustive: every slice to one instance of a type of mix `n` (small mixes only)."""
    if p.packing == "pooled":  # one pool per type, as large as its count
        room = {(t, 0): n[t] for t in range(len(n)) if n[t]}
    else:
        room = {(t, i): 1 for t in range(len(n)) for i in range(n[t])}
    slices = sorted(
        [b for b in p.buckets for _ in range(p.slice_factor)],
        key=lambda b: -max(float(p.loads[t].get(b, 0)) for t in range(len(n))),
    )

    def go(k):
        if k == len(slices):
            return True
        for key in room:
            load = p.loads[key[0]].get(slices[k])
            if load is not None and load <= room[key]:
                room[key] -= load
                if go(k + 1):
                    return True
                room[key] += load
        return False

    return go(0)


@pytest.mark.parametrize(
    "name, optimum",
    _cases("gpu-selection", slow=("long_r8_sf4_per_instance", "short_r24_sf4_pooled_max3")),
)
def test_gpu_selection_suite_optimum(name, optimum):
    p = _load("gpu-selection", name)
    for n in _cheaper_mixes(p, optimum):
        assert not _lp_feasible(p, n) or not _integer_feasible(p, n), n
    witness = optkit.solve(p, "mip", time_limit=60)  # attains it: checked by the facade
    assert witness.objective == pytest.approx(optimum, abs=1e-9)
    assert p.check(witness.solution).objective == witness.objective

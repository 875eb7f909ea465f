"""An independent proof of the FA3 (Hopper) and FA4 (Blackwell) schedule lengths, 30 and 38 at II 16.

II 16 is the lower bound: the four tensor-core ops of one iteration hold the one TC unit 16 cycles.
The length is confirmed by a second exact model written here from the rules of the problem
(docs/software_pipelining.md), unlike the cpsat backend's: time-indexed, one boolean per op and
absolute start cycle, and per op and cycle whether it keeps its warp group busy or holds its
registers, counted modulo the II per group. At II 16 it finds no schedule one cycle shorter than the
known length, and one of the known length, which the checker accepts.
"""

from __future__ import annotations

import pytest
from ortools.sat.python import cp_model

import optkit
from conftest import INSTANCES

II = 16


def _model(p, length: int):
    """The time-indexed model of `p` at II 16 with every op ending by `length`."""
    m = cp_model.CpModel()
    wg = p.warp_groups
    G, n = wg.count, p.n
    ops, at = p.ops, {op.name: k for k, op in enumerate(p.ops)}
    edges = [(at[e.from_], at[e.to], e) for e in p.edges]
    span = length + 3 * II  # blocking waits and lifetimes reach into later iterations
    x = [
        [m.new_bool_var(f"x{v}_{t}") for t in range(length - op.cycles + 1)]
        for v, op in enumerate(ops)
    ]
    start = []
    for v in range(n):
        m.add_exactly_one(x[v])
        s = m.new_int_var(0, length, f"s{v}")
        m.add(s == sum(t * b for t, b in enumerate(x[v])))
        start.append(s)
    y = [[m.new_bool_var(f"y{v}_{g}") for g in range(G)] for v in range(n)]
    for v, op in enumerate(ops):
        m.add_exactly_one(y[v])
        if op.variable_latency:
            m.add(y[v][wg.producer] == 1)
        elif wg.producer_exclusive:
            m.add(y[v][wg.producer] == 0)

    def same(u, v):  # a boolean: u and v in one group
        b = m.new_bool_var("")
        both = [m.new_bool_var("") for _ in range(G)]
        for g in range(G):
            m.add_min_equality(both[g], [y[u][g], y[v][g]])
        m.add_max_equality(b, both)
        return b

    for u, v, e in edges:
        together = same(u, v)
        if e.same_group:
            m.add(together == 1)
        m.add(start[v] + e.distance * II >= start[u] + e.latency + wg.handoff * (1 - together))
    # one unit per use and cycle of the II (reservation table, modulo)
    for unit, cap in p.units.items():
        for r in range(II):
            terms = [
                x[v][t]
                for v, op in enumerate(ops)
                for t in range(len(x[v]))
                for u, off in _uses(op)
                if u == unit and (t + off) % II == r
            ]
            if len(terms) > cap:
                m.add(sum(terms) <= cap)

    def interval(v, ends):  # cycle booleans of [start_v, max(ends)), absolute
        end = m.new_int_var(0, span, "")
        m.add_max_equality(end, ends)
        cells = []
        for t in range(span):
            c = m.new_bool_var("")
            after, before = m.new_bool_var(""), m.new_bool_var("")
            m.add(start[v] <= t).only_enforce_if(after)
            m.add(start[v] > t).only_enforce_if(after.Not())
            m.add(end > t).only_enforce_if(before)
            m.add(end <= t).only_enforce_if(before.Not())
            m.add_min_equality(c, [after, before])
            cells.append(c)
        return end, cells

    busy = [[[] for _ in range(II)] for _ in range(G)]
    regs = [[[] for _ in range(II)] for _ in range(G)]
    for v, op in enumerate(ops):
        issue = op.cycles if op.issue_cycles is None else op.issue_cycles
        waits = [start[v] + issue, start[v]]
        for u, w, e in edges:
            if u == v and e.blocking:  # waits for w when w shares v's group
                wait = m.new_int_var(0, span, "")
                together = same(v, w)
                m.add(wait == start[w] + e.distance * II).only_enforce_if(together)
                m.add(wait == start[v]).only_enforce_if(together.Not())
                waits.append(wait)
        end, cells = interval(v, waits)
        m.add(end - start[v] <= II)
        lives = [start[v] + op.cycles] + [
            start[w] + e.distance * II for u, w, e in edges if u == v and e.carries_value
        ]
        _, alive = interval(v, lives)
        for g in range(G):
            for t in range(span):
                on = m.new_bool_var("")
                m.add_min_equality(on, [cells[t], y[v][g]])
                busy[g][t % II].append(on)
                if op.regs:
                    held = m.new_bool_var("")
                    m.add_min_equality(held, [alive[t], y[v][g]])
                    regs[g][t % II].append(op.regs * held)
    for g in range(G):
        for r in range(II):
            m.add(sum(busy[g][r]) <= 1)
            m.add(sum(regs[g][r]) <= wg.reg_limit[g])
    return m, start, y


def _uses(op):
    reservation = op.reservation or {op.unit: tuple(range(op.cycles))}
    return [(u, off) for u, offs in reservation.items() for off in offs]


@pytest.mark.slow
@pytest.mark.parametrize("name, length", [("fa3_hopper", 30), ("fa4_blackwell", 38)])
def test_fa_schedule_length_is_optimal_at_ii_16(name, length):
    p = optkit.load(INSTANCES / "software-pipelining" / f"{name}.json")
    tc = sum(1 for op in p.ops for u, _ in _uses(op) if u == "TC")
    assert tc == II and p.units["TC"] == 1 and p.res_mii() == II  # no II below 16
    solver = cp_model.CpSolver()
    solver.parameters.num_workers = 1
    solver.parameters.max_time_in_seconds = 300
    shorter, *_ = _model(p, length - 1)
    assert solver.solve(shorter) == cp_model.INFEASIBLE
    model, start, y = _model(p, length)
    assert solver.solve(model) in (cp_model.OPTIMAL, cp_model.FEASIBLE)
    starts = [solver.value(s) for s in start]
    groups = [next(g for g, b in enumerate(row) if solver.value(b)) for row in y]
    report = p.check(p.solution_from(II, starts, groups))
    assert report.feasible, report.violations
    assert report.objective == [II, length]

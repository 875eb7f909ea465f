"""Exact modulo scheduling (and warp specialization) with CP-SAT: II upward from MII.

For each candidate II a CP-SAT model of the modulo schedule minimises the schedule length; an
II whose model is proven infeasible is ruled out, so the first II with a solution is optimal when
every smaller II from MII up was proven infeasible. With warp groups the model is joint: each op
on one group, variable-latency ops on the producer, one op at a time per group (issue cycles and
blocking waits, modulo II), registers live per group and cycle of the II within the limit, and
handoff latency on dependences that cross groups. See docs/software_pipelining.md for the
formulation.
"""

from __future__ import annotations

import itertools
from collections import Counter

from optkit.backends.starts import start_from
from optkit.problems.software_pipelining import SoftwarePipelining
from optkit.registry import register
from optkit.result import Termination
from optkit.solve import Outcome, SolveOptions


def build_model(
    problem: SoftwarePipelining, ii: int, hint: dict | None = None, opts: SolveOptions | None = None
):
    """The CP-SAT model at a fixed II: (model, start vars, group vars or None, length var).
    With `opts`, the clock is checked while it is built (`TimeUp`)."""
    # kept whole (155 lines): one model, read top to bottom against the formulation in the module
    # docstring
    from ortools.sat.python import cp_model

    m = cp_model.CpModel()
    n = problem.n
    H = problem.horizon_for(ii)
    wg = problem.warp_groups
    ops = problem.ops
    s = [m.new_int_var(0, max(0, H - op.cycles), f"s_{op.name}") for op in ops]
    a = [m.new_int_var(0, ii - 1, f"a_{op.name}") for op in ops]
    k = [m.new_int_var(0, H // ii + 1, f"k_{op.name}") for op in ops]
    for v in range(n):
        m.add(s[v] == ii * k[v] + a[v])
    length = m.new_int_var(problem.length_lower_bound(), H, "length")
    for v, op in enumerate(ops):
        m.add(length >= s[v] + op.cycles)

    # modulo resources: each run of consecutive offsets on a unit is a cyclic interval of the II
    by_unit: dict[str, list] = {u: [] for u in problem.units}
    full: dict[str, int] = {u: 0 for u in problem.units}
    for v in range(n):
        if opts is not None:
            opts.check_clock()
        for unit, off, run in _runs(problem.uses[v]):
            q, rem = divmod(run, ii)
            full[unit] += q
            if rem:
                p = m.new_int_var(0, ii - 1, "")
                w = m.new_bool_var("")
                m.add(p == a[v] + off % ii - ii * w)
                by_unit[unit].append(m.new_fixed_size_interval_var(p, rem, ""))
                by_unit[unit].append(m.new_fixed_size_interval_var(p - ii, rem, ""))
    for unit, ivs in by_unit.items():
        cap = problem.units[unit] - full[unit]
        if cap < 0 or (cap == 0 and ivs):
            m.add_bool_or([])  # infeasible at this II
        elif ivs and cap == 1:
            m.add_no_overlap(ivs)
        elif ivs and cap < len(ivs):
            m.add_cumulative(ivs, [1] * len(ivs), cap)

    group = None
    same: dict[int, object] = {}
    if wg is None:
        for u, v, lat, d, _ in problem.arcs:
            m.add(s[v] + d * ii >= s[u] + lat)
    else:
        G = wg.count
        x = [[m.new_bool_var(f"x_{op.name}_{g}") for g in range(G)] for op in ops]
        group = [m.new_int_var(0, G - 1, f"g_{op.name}") for op in ops]
        for v, op in enumerate(ops):
            m.add_exactly_one(x[v])
            m.add(group[v] == sum(g * x[v][g] for g in range(G)))
            if op.variable_latency:
                m.add(x[v][wg.producer] == 1)
            elif wg.producer_exclusive:
                m.add(x[v][wg.producer] == 0)
            for g in range(G):
                if op.regs > wg.reg_limit[g]:
                    m.add(x[v][g] == 0)
        for edge in problem.edges:
            if edge.same_group:
                u, v = problem.index[edge.from_], problem.index[edge.to]
                m.add(group[u] == group[v])
        for e, (u, v, lat, d, blocking) in enumerate(problem.arcs):
            if u == v:
                m.add(s[v] + d * ii >= s[u] + lat)
                continue
            if wg.handoff or blocking:
                b = m.new_bool_var("")
                m.add(group[u] == group[v]).only_enforce_if(b)
                m.add(group[u] != group[v]).only_enforce_if(~b)
                same[e] = b
                m.add(s[v] + d * ii >= s[u] + lat + wg.handoff * (1 - b))
            else:
                m.add(s[v] + d * ii >= s[u] + lat)
        # one op at a time per group: occupancy [s, s + occ) with occ = issue or blocking wait
        occ_ivs: list[list] = [[] for _ in range(G)]
        for v in range(n):
            waits = [
                (e, w, d)
                for e, (u, w, _, d, blocking) in enumerate(problem.arcs)
                if u == v and blocking
            ]
            base = problem.issue(v)
            if base == 0 and not waits:
                continue
            if base > ii:
                m.add_bool_or([])
                continue
            occ = m.new_int_var(base, ii, "")
            for e, w, d in waits:
                if w == v:
                    m.add(occ >= d * ii)
                else:
                    m.add(occ >= s[w] + d * ii - s[v]).only_enforce_if(same[e])
            end = m.new_int_var(0, 2 * ii, "")
            for g in range(G):
                occ_ivs[g].append(m.new_optional_interval_var(a[v], occ, end, x[v][g], ""))
                occ_ivs[g].append(
                    m.new_optional_interval_var(a[v] - ii, occ, end - ii, x[v][g], "")
                )
        for g in range(G):
            if occ_ivs[g]:
                m.add_no_overlap(occ_ivs[g])
        # registers: lifetime L = q * ii + rem; q copies all the time plus a cyclic interval of rem
        reg_ivs: list[list] = [[] for _ in range(G)]
        reg_dem: list[list[int]] = [[] for _ in range(G)]
        const: list[list] = [[] for _ in range(G)]
        maxd = max([d for _, _, _, d, _ in problem.arcs] + [0])
        for v, op in enumerate(ops):
            if not op.regs:
                continue
            life = m.new_int_var(op.cycles, H + maxd * ii, "")
            m.add(life >= op.cycles)
            for u, w, d in problem.value_arcs:
                if u == v:
                    m.add(life >= s[w] + d * ii - s[v])
            q = m.new_int_var(0, (H + maxd * ii) // ii + 1, "")
            rem = m.new_int_var(0, ii - 1, "")
            m.add(life == q * ii + rem)
            end = m.new_int_var(0, 2 * ii, "")
            for g in range(G):
                reg_ivs[g].append(m.new_optional_interval_var(a[v], rem, end, x[v][g], ""))
                reg_ivs[g].append(
                    m.new_optional_interval_var(a[v] - ii, rem, end - ii, x[v][g], "")
                )
                reg_dem[g] += [op.regs, op.regs]
                z = m.new_int_var(0, (H + maxd * ii) // ii + 1, "")
                m.add(z == q).only_enforce_if(x[v][g])
                m.add(z == 0).only_enforce_if(~x[v][g])
                const[g].append((op.regs, z))
        for g in range(G):
            if not reg_ivs[g]:
                continue
            total = sum(op.regs for op in ops)
            dem = m.new_int_var(0, total * ((H + maxd * ii) // ii + 1), "")
            m.add(dem == sum(r * z for r, z in const[g]))
            reg_ivs[g].append(m.new_fixed_size_interval_var(-ii, 3 * ii, ""))
            reg_dem[g].append(dem)
            m.add_cumulative(reg_ivs[g], reg_dem[g], wg.reg_limit[g])
        # symmetry: interchangeable consumer groups (same limit) used in order of their first op
        _break_group_symmetry(m, problem, x)

    m.minimize(length)
    if hint is not None:
        for v, op in enumerate(ops):
            m.add_hint(s[v], hint["start"][op.name])
            if group is not None:
                m.add_hint(group[v], hint["warp_group"][op.name])
    return m, s, group, length


def _break_group_symmetry(m, problem: SoftwarePipelining, x) -> None:
    """Groups g < h with equal limits, neither the producer: the lowest-indexed op in h must
    have a group-g op before it (by index), i.e. group g is used before group h."""
    wg = problem.warp_groups
    classes: dict[int, list[int]] = {}
    for g in range(wg.count):
        if g != wg.producer:
            classes.setdefault(wg.reg_limit[g], []).append(g)
    for gs in classes.values():
        for g, h in itertools.pairwise(gs):
            # op v in h  =>  some op u < v in g
            for v in range(problem.n):
                m.add_bool_or([x[u][g] for u in range(v)] + [~x[v][h]])


def _runs(uses: list[tuple[str, int]]) -> list[tuple[str, int, int]]:
    """(unit, first offset, length) of each maximal run of consecutive offsets; repeats kept."""
    out = []
    by_unit: dict[str, list[int]] = {}
    for u, off in uses:
        by_unit.setdefault(u, []).append(off)
    for u, offs in by_unit.items():  # linear in the uses: a 65,536-cycle op has as many
        count = Counter(offs)
        for first in sorted(count):
            while count[first] > 0:
                t = first
                while count.get(t, 0) > 0:
                    count[t] -= 1
                    t += 1
                out.append((u, first, t - first))
    return out


def solve_at(
    problem: SoftwarePipelining, ii: int, opts: SolveOptions, hint: dict | None
) -> Outcome:
    from optkit.backends.cpsat._common import solve_model

    m, s, group, _ = build_model(problem, ii, hint, opts)

    def extract(value) -> dict:
        start = [value(x) for x in s]
        grp = [value(x) for x in group] if group is not None else None
        return problem.solution_from(ii, start, grp)

    def objective_of(sol: dict) -> list[int]:
        return [ii, max(sol["start"][op.name] + op.cycles for op in problem.ops)]

    return solve_model(m, opts, extract, objective_of=objective_of)


@register(
    "cpsat",
    "software-pipelining",
    exact=True,
    bounds=True,
    warm_start=True,
    deterministic=True,
    requires=("ortools",),
    versions=("ortools",),
    params={"log": False, "ims_start": True},
    default=True,
)
def cpsat(problem: SoftwarePipelining, opts: SolveOptions) -> Outcome:
    """II upward from MII, each a CP-SAT model minimising the schedule length (jointly with warp groups)."""
    reason = problem.infeasibility_reason()
    if reason is not None:
        return Outcome(proven_infeasible=True, message=reason)
    mii = problem.mii()
    assert mii is not None
    incumbent = opts.initial_solution
    if incumbent is None and opts.params.get("ims_start", True):
        # a hint at MII, if cheap: at most a third of the time
        start = start_from(problem, "ims", opts, 1 / 3, True, budget=6, tries=2, ii_max=mii)
        incumbent = start.solution if start else None
    ii_max = max(incumbent["ii"] if incumbent else 0, problem.default_ii_max())
    lb = mii  # every II below lb is proven infeasible
    proven_chain = True
    infeasible: list[int] = []
    stats: dict = {"mii": mii, "ims_ii": incumbent["ii"] if incumbent else None}
    for ii in range(mii, ii_max + 1):
        if opts.expired():
            break
        hint = incumbent if incumbent and incumbent["ii"] == ii else None
        out = solve_at(problem, ii, opts, hint)
        if out.termination == Termination.ERROR:
            return out
        if out.proven_infeasible:
            infeasible.append(ii)
            if proven_chain:
                lb = ii + 1
            continue
        if out.solution is None:  # time limit at this II: nothing proven about it
            proven_chain = False
            continue
        sol = out.solution
        obj = [ii, max(sol["start"][op.name] + op.cycles for op in problem.ops)]
        stats.update(ii_proven_infeasible=infeasible, cpsat=out.stats)
        if proven_chain and lb == ii:
            len_bound = out.bound[1] if isinstance(out.bound, list) else out.bound
            bound = [ii, len_bound] if len_bound is not None else [ii, problem.length_lower_bound()]
            return Outcome(
                solution=sol,
                objective=obj,
                termination=out.termination,
                proven_optimal=out.proven_optimal,
                bound=bound,
                stats=stats,
            )
        return Outcome(
            solution=sol,
            objective=obj,
            termination=out.termination,
            bound=[lb, problem.length_lower_bound()],
            stats=stats,
            message="II optimality not proven (a smaller II timed out)",
        )
    stats.update(ii_proven_infeasible=infeasible)
    if incumbent is not None:  # the time ran out before the incumbent's II was reached
        obj = problem.check(incumbent).objective
        return Outcome(
            solution=incumbent,
            objective=obj,
            termination=Termination.TIME_LIMIT,
            bound=[lb, problem.length_lower_bound()] if lb <= incumbent["ii"] else None,
            stats=stats,
            message="time limit before the II search ended",
        )
    if opts.expired():
        return Outcome(
            termination=Termination.TIME_LIMIT,
            bound=[lb, problem.length_lower_bound()],
            stats=stats,
            message=f"time limit reached; every II below {lb} is proven infeasible",
        )
    return Outcome(
        bound=[lb, problem.length_lower_bound()],
        stats=stats,
        message=f"no schedule found with II in [{mii}, {ii_max}]",
    )

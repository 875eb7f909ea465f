"""Exact modulo scheduling as a 0-1 structured integer program (Eichenberger and Davidson).

At a fixed II each op v has a one-hot row a[v][r] (its cycle r within the II) and an integer
stage k[v], start = sum_r r a[v][r] + II k[v]. Resources are linear in a; each dependence is the
family of structured (facet-like) rows, one per r in [0, II):

    sum_{y >= r} a[u][y] + sum_{y <= w_r} a[v][y] + k[u] - k[v] <= d + 1 - q_r,
    where r + latency - 1 = II * q_r + w_r (0 <= w_r < II),

which together say start[v] + d II >= start[u] + latency (see docs/software_pipelining.md).
II goes upward from MII; the first II with a solution, every smaller one proven infeasible,
is optimal, and the schedule length is minimised at that II. Warp groups are not modelled
here (use `cpsat`).
"""

from __future__ import annotations

from optkit.backends.starts import start_from
from optkit.problems.software_pipelining import SoftwarePipelining
from optkit.registry import register
from optkit.result import Termination
from optkit.solve import Outcome, SolveOptions


def dependence_rows(ii: int, latency: int, distance: int) -> list[tuple[int, int, int]]:
    """The structured rows of one dependence as (r, w_r, right-hand side): row r reads
    sum_{y >= r} a_u[y] + sum_{y <= w_r} a_v[y] + k_u - k_v <= right-hand side."""
    rows = []
    for r in range(ii):
        q, w = divmod(r + latency - 1, ii)
        rows.append((r, w, distance + 1 - q))
    return rows


def build(problem: SoftwarePipelining, ii: int, opts: SolveOptions | None = None):
    """The PuLP model at a fixed II: (problem, a, k, length). With `opts`, the clock is checked
    while it is built (`TimeUp`): its size grows with n x II and edges x II^2."""
    import pulp

    H = problem.horizon_for(ii)
    n = problem.n
    K = H // ii
    prob = pulp.LpProblem(f"modulo_ii{ii}", pulp.LpMinimize)
    a: list[list] = [[] for _ in range(n)]
    for v in range(n):
        for r in range(ii):
            if opts is not None and r % 1024 == 0:
                opts.check_clock()  # a long op makes the II, and each op's row, long
            a[v].append(prob.add_variable(f"a_{v}_{r}", cat="Binary"))
    k = [prob.add_variable(f"k_{v}", lowBound=0, upBound=K, cat="Integer") for v in range(n)]
    length = prob.add_variable("length", lowBound=problem.length_lower_bound(), upBound=H)
    prob += length
    start = []
    for v in range(n):
        if opts is not None:
            opts.check_clock()
        start.append(pulp.lpSum(r * a[v][r] for r in range(ii)) + ii * k[v])
    for v, op in enumerate(problem.ops):
        if opts is not None:
            opts.check_clock()
        prob += pulp.lpSum(a[v]) == 1, f"one_{v}"
        prob += length >= start[v] + op.cycles, f"len_{v}"
        prob += start[v] + op.cycles <= H, f"hor_{v}"
    for e, (u, v, lat, d, _) in enumerate(problem.arcs):
        if opts is not None:
            opts.check_clock()
        if u == v:
            continue  # lat <= d * ii holds since ii >= RecMII
        for r, w, rhs in dependence_rows(ii, lat, d):
            prob += (
                (
                    pulp.lpSum(a[u][y] for y in range(r, ii))
                    + pulp.lpSum(a[v][y] for y in range(w + 1))
                    + k[u]
                    - k[v]
                    <= rhs
                ),
                f"dep_{e}_{r}",
            )
    for unit, cap in problem.units.items():
        for r in range(ii):
            if opts is not None:
                opts.check_clock()
            terms = [
                a[v][(r - off) % ii] for v in range(n) for u, off in problem.uses[v] if u == unit
            ]
            if len(terms) > cap:
                prob += pulp.lpSum(terms) <= cap, f"res_{unit}_{r}"
    return prob, a, k, length


@register(
    "mip",
    "software-pipelining",
    exact=True,
    bounds=True,
    deterministic=True,
    requires=("pulp",),
    versions=("pulp", "highspy"),
    params={"backend": "highs", "log": False},
)
def mip(problem: SoftwarePipelining, opts: SolveOptions) -> Outcome:
    """Eichenberger-Davidson structured 0-1 formulation, II upward from MII (no warp groups)."""
    import time

    from optkit.backends.pulp_model import ensure_time_to_hand_over, solve_problem, value

    reason = problem.infeasibility_reason()
    if reason is not None:
        return Outcome(proven_infeasible=True, message=reason)
    if problem.warp_groups is not None:
        return Outcome(
            termination=Termination.ERROR,
            message="solver 'mip' models modulo scheduling without warp groups; "
            "use --solver cpsat (joint model) or ims for this instance",
        )
    mii = problem.mii()
    assert mii is not None
    start = start_from(problem, "ims", opts, 1 / 3, True, budget=6, tries=1)  # a third of the time
    incumbent = start.solution if start else None
    ii_max = incumbent["ii"] if incumbent else problem.default_ii_max()
    lb, chain, infeasible = mii, True, []
    for ii in range(mii, ii_max + 1):
        if opts.expired():
            break
        built = time.monotonic()
        prob, a, k, _ = build(problem, ii, opts)
        ensure_time_to_hand_over(opts, time.monotonic() - built)
        ans = solve_problem(prob, opts)
        if ans.proven_infeasible:
            infeasible.append(ii)
            if chain:
                lb = ii + 1
            continue
        if not ans.has_solution:
            chain = False
            continue
        start = [
            round(sum(r * value(a[v][r]) for r in range(ii)) + ii * value(k[v]))
            for v in range(problem.n)
        ]
        sol = problem.solution_from(ii, start)
        obj = [ii, max(sol["start"][op.name] + op.cycles for op in problem.ops)]
        stats = {"mii": mii, "ii_proven_infeasible": infeasible, "mip_status": ans.detail}
        opts.report(sol, obj)
        if chain and lb == ii:
            import math

            len_lb = (
                math.ceil(ans.bound - 1e-6)
                if ans.bound is not None
                else problem.length_lower_bound()
            )
            return Outcome(
                solution=sol,
                objective=obj,
                termination=ans.termination,
                proven_optimal=ans.proven_optimal,
                bound=[ii, min(len_lb, obj[1])],
                stats=stats,
            )
        return Outcome(
            solution=sol,
            objective=obj,
            termination=ans.termination,
            bound=[lb, problem.length_lower_bound()],
            stats=stats,
            message="II optimality not proven (a smaller II timed out)",
        )
    if incumbent is not None:
        return Outcome(
            solution=incumbent,
            objective=problem.check(incumbent).objective,
            termination=Termination.TIME_LIMIT,
            bound=[lb, problem.length_lower_bound()],
            message="time limit before the II search ended",
        )
    term = Termination.TIME_LIMIT if opts.expired() else Termination.COMPLETED
    return Outcome(termination=term, message=f"no schedule found with II in [{mii}, {ii_max}]")

"""MIP (PuLP: HiGHS or CBC) model of MoE expert placement, the same model as the CP-SAT one.

Binary `y[l,e,k]` (expert e of layer l has k replicas) and `z[l,e,g,k]` (it has one on GPU g and
k in all); the share of e's tokens served on g is `p[l,e,g] = sum_k z[l,e,g,k] / k` (linear).
`M[l] >= sum_e load[l,e] p[l,e,g]` for every GPU; communication with continuous
`0 <= m[l,e,f,g] <= p[l,e,g], p[l+1,f,g]` (tokens kept on g) and `nd[l,e,f,v]` the same for node
sums; minimise `sum_l M[l] + w sum a (c_in (1 - sum_g m) + (c_out - c_in)(1 - sum_v nd))`.
Since the objective pushes m and nd up, their upper bounds are all that is needed: this is the
exact min-cost transport between the two replica distributions (see the problem module).
"""

from __future__ import annotations

from optkit.problems.expert_placement import ExpertPlacement
from optkit.registry import register
from optkit.solve import Outcome, SolveOptions


@register(
    "mip",
    "expert-placement",
    exact=True,
    bounds=True,
    warm_start=True,
    requires=("pulp",),
    versions=("pulp", "highspy"),
    params={"backend": "highs", "num_groups": 1, "log": False},
)
def mip(problem: ExpertPlacement, opts: SolveOptions) -> Outcome:
    """Exact MIP (HiGHS/CBC) with replica counts, slots and linearised communication."""
    # kept whole (151 lines): one model, read top to bottom against the formulation in the module
    # docstring
    import math
    import time

    import pulp

    from optkit.backends.expert_placement_exact import prepare
    from optkit.backends.pulp_model import (
        MipAnswer,
        backend_solver,
        ensure_time_to_hand_over,
        value,
    )

    L, E, G, S = problem.num_layers, problem.num_experts, problem.gpus, problem.slots_per_gpu
    N = problem.num_nodes
    settled, warm, K = prepare(problem, opts, mip)
    if settled is not None:
        return settled
    W = problem.load_array
    A = problem.affinity_array
    c_in, c_out = problem.link_costs
    w = problem.weight
    use_comm = A is not None and w > 0
    ks = range(1, K + 1)

    built = time.monotonic()
    prob = pulp.LpProblem("expert_placement", pulp.LpMinimize)
    y = {
        (l, e, k): prob.add_variable(f"y_{l}_{e}_{k}", cat="Binary")
        for l in range(L)
        for e in range(E)
        for k in ks
    }
    z = {}
    for l in range(L):
        for e in range(E):
            opts.check_clock()  # building a large model can take the whole limit
            for g in range(G):
                for k in ks:
                    z[l, e, g, k] = prob.add_variable(f"z_{l}_{e}_{g}_{k}", cat="Binary")
    x = {
        (l, e, g): pulp.lpSum(z[l, e, g, k] for k in ks)
        for l in range(L)
        for e in range(E)
        for g in range(G)
    }
    p = {
        (l, e, g): pulp.lpSum(z[l, e, g, k] * (1.0 / k) for k in ks)
        for l in range(L)
        for e in range(E)
        for g in range(G)
    }
    M = [prob.add_variable(f"M_{l}", lowBound=0) for l in range(L)]
    for l in range(L):
        for e in range(E):
            opts.check_clock()
            prob += pulp.lpSum(y[l, e, k] for k in ks) == 1
            for k in ks:
                prob += pulp.lpSum(z[l, e, g, k] for g in range(G)) == k * y[l, e, k]
            for g in range(G):
                prob += x[l, e, g] <= 1
        for g in range(G):
            prob += pulp.lpSum(x[l, e, g] for e in range(E)) <= S
            prob += pulp.lpSum(float(W[l, e]) * p[l, e, g] for e in range(E)) <= M[l]
    # symmetry breaking, as in the CP-SAT model
    import numpy as np

    sizes = np.bincount(problem.node_of_gpu)
    consecutive = list(problem.node_of_gpu) == sorted(problem.node_of_gpu)
    for l in range(L) if not use_comm else range(1):
        if N == 1 and K == 1:
            for e in range(E):
                for g in range(e + 1, G):
                    prob += x[l, e, g] == 0
        elif (N == 1 or not use_comm) or (consecutive and len(set(sizes.tolist())) == 1):
            prob += x[l, 0, 0] == 1
    objective = [pulp.lpSum(M)]
    const = 0.0
    if use_comm:
        cn = (c_out - c_in) if N > 1 else 0.0
        for l in range(L - 1):
            for e in range(E):
                opts.check_clock()
                for f in range(E):
                    a = float(A[l, e, f])
                    if a <= 0:
                        continue
                    const += w * a * (c_in + cn)
                    if c_in:
                        for g in range(G):
                            m = prob.add_variable(f"m_{l}_{e}_{f}_{g}", lowBound=0, upBound=1)
                            prob += m <= p[l, e, g]
                            prob += m <= p[l + 1, f, g]
                            objective.append(-w * a * c_in * m)
                    if cn:
                        for v in range(N):
                            gs = [g for g in range(G) if problem.node_of_gpu[g] == v]
                            nd = prob.add_variable(f"n_{l}_{e}_{f}_{v}", lowBound=0, upBound=1)
                            prob += nd <= pulp.lpSum(p[l, e, g] for g in gs)
                            prob += nd <= pulp.lpSum(p[l + 1, f, g] for g in gs)
                            objective.append(-w * a * cn * nd)
    prob += pulp.lpSum(
        objective
    )  # the constant is added to the bound below (not passed to the solver)

    # warm start (used by CBC; HiGHS through PuLP ignores it, the heuristic answer is kept anyway)
    Xw = problem.replica_matrix(warm)
    rw = Xw.sum(axis=2)
    for (l, e, k), var in y.items():
        var.setInitialValue(int(rw[l, e] == k))
    for (l, e, g, k), var in z.items():
        var.setInitialValue(int(rw[l, e] == k and Xw[l, e, g] > 0))

    ensure_time_to_hand_over(opts, time.monotonic() - built)
    solver = backend_solver(opts, warm_start=True, gap_abs=1e-7)
    code = prob.solve(solver)
    ans = MipAnswer(prob, solver, code)
    stats = {"mip_status": ans.detail, "max_replicas": K}
    warm_obj = problem.objective_of(warm)
    if ans.bound is not None:
        # HiGHS's dual bound stopped early can sit far below zero; every layer's busiest GPU carries at
        # least the mean load and traffic costs are >= 0, so that sum is a bound too
        trivial = float((W.sum(axis=1) / G).sum())
        ans.bound = max(ans.bound + const, trivial) if math.isfinite(ans.bound + const) else trivial
    if not ans.has_solution:
        bound = ans.bound if ans.bound is not None and math.isfinite(ans.bound) else None
        return Outcome(
            solution={"slots": warm}, termination=ans.termination, bound=_floor6(bound), stats=stats
        )
    rows = []
    for l in range(L):
        row = []
        for g in range(G):
            es = [e for e in range(E) if value(x[l, e, g]) > 0.5]
            row += es + [-1] * (S - len(es))
        rows.append(row)
    sol = rows if problem.check({"slots": rows}).feasible else warm
    if problem.objective_of(warm) < problem.objective_of(sol):
        sol = warm
    optimal = ans.proven_optimal and abs(
        problem.objective_of(sol) - (ans.bound if ans.bound is not None else -1)
    ) <= 1e-6 * max(1.0, abs(warm_obj))
    return Outcome(
        solution={"slots": sol},
        termination=ans.termination,
        proven_optimal=optimal,
        bound=None if optimal else _floor6(ans.bound),
        stats=stats,
    )


def _floor6(bound):
    import math

    if bound is None or not math.isfinite(bound):
        return None
    return math.floor(bound * 1e6 - 1e-3) / 1e6

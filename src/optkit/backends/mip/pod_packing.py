"""MIP for pod packing through PuLP (HiGHS or CBC): the CP-SAT assignment model, solved tier by tier.

x[i, j] binary for the nodes pod i is allowed on and fits on when empty; y_i = sum_j x[i, j] <= 1;
sum_i q_ir x[i, j] <= C_jr per node and resource; non-movable pods fixed. Terms in lexicographic
order: -c_p = -sum_{i: prio p} y_i per priority from the highest, evictions = sum_{running} (1 - y_i),
moves = sum_{running} (y_i - x[i, cur_i]). Each term is minimised with the proven optima of the
earlier ones fixed (no big weights, so no numerical trouble). The bound is the proven prefix, the
current term's dual bound rounded up, then each later term's trivial minimum.
"""

from __future__ import annotations

import math

from optkit.problems.pod_packing import PodPacking
from optkit.registry import register
from optkit.result import Termination
from optkit.solve import Outcome, SolveOptions


@register(
    "mip",
    "pod-packing",
    exact=True,
    bounds=True,
    deterministic=True,
    requires=("pulp",),
    versions=("pulp", "highspy"),
    params={"backend": "highs", "log": False},
)
def mip(problem: PodPacking, opts: SolveOptions) -> Outcome:
    """Tier-by-tier MIP of the assignment model (PuLP; backend=highs|cbc)."""
    import pulp

    from optkit.backends.cpsat.pod_packing import term_ranges, to_cumulative
    from optkit.backends.mip._common import solve_problem, value

    P = problem
    R = P.resources
    req, cap = P.request_matrix, P.capacity_matrix
    prob = pulp.LpProblem("pod_packing", pulp.LpMinimize)
    x = {}
    by_node: dict[int, list[int]] = {j: [] for j in range(P.n_nodes)}
    for i in range(P.n_pods):
        for j in P.candidates[i]:
            x[i, j] = prob.add_variable(f"x_{i}_{j}", cat="Binary")
            by_node[j].append(i)
    y = {i: pulp.lpSum(x[i, j] for j in P.candidates[i]) for i in range(P.n_pods)}
    for i in range(P.n_pods):
        if len(P.candidates[i]) > 1:
            prob += y[i] <= 1, f"one_{i}"
        if not P.pods[i].movable:
            cur = P.current[i]
            if (i, cur) not in x:
                return Outcome(
                    proven_infeasible=True,
                    message=f"non-movable pod '{P.pods[i].name}' cannot stay",
                )
            prob += x[i, cur] == 1, f"fixed_{i}"
    for j in range(P.n_nodes):
        for r in range(len(R)):
            c = cap[j][r]
            pods = [i for i in by_node[j] if req[i][r] > 0]
            if c is not None and sum(req[i][r] for i in pods) > c:
                prob += pulp.lpSum(req[i][r] * x[i, j] for i in pods) <= c, f"cap_{j}_{r}"
    terms = [
        -pulp.lpSum(y[i] for i in range(P.n_pods) if P.pods[i].priority == p) for p in P.priorities
    ]
    running = [i for i in range(P.n_pods) if P.current[i] is not None]
    terms.append(pulp.lpSum(1 - y[i] for i in running))
    terms.append(pulp.lpSum(y[i] - (x.get((i, P.current[i]), 0)) for i in running))
    ranges = term_ranges(P)
    proven: list[int] = []
    where = None
    bound_terms = None
    details = []
    for k, term in enumerate(terms):
        prob.setObjective(term + 0)
        if opts.time_limit is not None and opts.remaining() <= 0:
            bound_terms = proven + [lo for lo, _ in ranges[k:]] if k else None
            break
        ans = solve_problem(prob, opts)
        details.append(ans.detail)
        if ans.proven_infeasible:
            return Outcome(proven_infeasible=True, stats={"statuses": details})
        if ans.termination == Termination.ERROR:
            if where is None:
                return Outcome(termination=Termination.ERROR, message=f"MIP backend: {ans.detail}")
            break
        if ans.has_solution:
            where = [None] * P.n_pods
            for (i, j), v in x.items():
                if value(v) > 0.5:
                    where[i] = j
            opts.report(P.to_solution(where), P.objective_of(where))
        if not ans.proven_optimal:
            if ans.bound is not None:
                bound_terms = (
                    proven
                    + [max(ranges[k][0], math.ceil(ans.bound - 1e-6))]
                    + [lo for lo, _ in ranges[k + 1 :]]
                )
            elif k:
                bound_terms = proven + [lo for lo, _ in ranges[k:]]
            break
        v = round(value(term))
        proven.append(v)
        prob += term == v, f"tier_{k}"
    stats = {"statuses": details}
    bound = to_cumulative(bound_terms) if bound_terms else None
    if where is None:
        return Outcome(termination=Termination.TIME_LIMIT, bound=bound, stats=stats)
    if len(proven) == len(terms):
        return Outcome(solution=P.to_solution(where), proven_optimal=True, stats=stats)
    return Outcome(
        solution=P.to_solution(where), termination=Termination.TIME_LIMIT, bound=bound, stats=stats
    )

"""MIP for pod packing through PuLP (HiGHS or CBC): the assignment model, term by term in the
instance's order through the shared lexicographic driver (`optkit.problems.pod_lex`).

x[i, j] binary for the nodes pod i is allowed on and fits on when empty; placed_i = sum_j x[i, j]
<= 1; sum_i q_ir x[i, j] <= C_jr per node and resource; non-movable pods fixed. Each objective term
(`optkit.problems.pod_objective`) is linear in placed_i and stays_i = x[i, current node]; each is
minimised with the proven optima of the earlier ones fixed (no big weights, so no numerical
trouble). The bound is the proven prefix, the current term's dual bound rounded up, then each
later term's trivial bound.
"""

from __future__ import annotations

import math

from optkit.problems.pod_lex import StageAnswer, solve_lexicographic
from optkit.problems.pod_packing import PodPacking
from optkit.registry import register
from optkit.result import Termination
from optkit.solve import Outcome, SolveOptions


class MipStages:
    """The driver's `Stages` over one PuLP model."""

    def __init__(self, problem: PodPacking, opts: SolveOptions):
        import pulp

        self.pulp, self.p, self.opts = pulp, problem, opts
        P = problem
        prob = self.prob = pulp.LpProblem("pod_packing", pulp.LpMinimize)
        self.x = {}
        by_node: dict[int, list[int]] = {j: [] for j in range(P.n_nodes)}
        for i in range(P.n_pods):
            for j in P.candidates[i]:
                self.x[i, j] = prob.add_variable(f"x_{i}_{j}", cat="Binary")
                by_node[j].append(i)
        self.y = {i: pulp.lpSum(self.x[i, j] for j in P.candidates[i]) for i in range(P.n_pods)}
        self.ok = True
        for i in range(P.n_pods):
            if len(P.candidates[i]) > 1:
                prob += self.y[i] <= 1, f"one_{i}"
            if not P.pods[i].movable:
                if (i, P.current[i]) not in self.x:
                    self.ok = False
                    return
                prob += self.x[i, P.current[i]] == 1, f"fixed_{i}"
        req, cap = P.request_matrix, P.capacity_matrix
        for j in range(P.n_nodes):
            for r in range(len(P.resources)):
                c = cap[j][r]
                pods = [i for i in by_node[j] if req[i][r] > 0]
                if c is not None and sum(req[i][r] for i in pods) > c:
                    prob += pulp.lpSum(req[i][r] * self.x[i, j] for i in pods) <= c, f"cap_{j}_{r}"
        self.terms = [self._expr(t) for t in P.objective_terms]

    def _expr(self, term):
        const, placed, stays = term.linear(self.p)
        parts = [a * self.y[i] for i, a in placed.items()]
        parts += [
            b * self.x[i, self.p.current[i]]
            for i, b in stays.items()
            if (i, self.p.current[i]) in self.x
        ]
        return self.pulp.lpSum(parts) + const

    def minimise(self, k: int) -> StageAnswer:
        from optkit.backends.pulp_model import solve_problem, value

        self.prob.setObjective(self.terms[k] + 0)
        ans = solve_problem(self.prob, self.opts)
        if ans.proven_infeasible:
            return StageAnswer("infeasible", detail=ans.detail)
        if ans.termination == Termination.ERROR:
            return StageAnswer("error", detail=f"MIP backend: {ans.detail}")
        where = None
        if ans.has_solution:
            where = [None] * self.p.n_pods
            for (i, j), v in self.x.items():
                if value(v) > 0.5:
                    where[i] = j
        bound = None if ans.bound is None else math.ceil(ans.bound - 1e-6)
        status = "optimal" if ans.proven_optimal else "feasible" if where else "unknown"
        return StageAnswer(status, where, bound, ans.detail)

    def fix(self, k: int, value: int, proven: bool = True) -> None:
        term = self.terms[k]
        self.prob += (term == value) if proven else (term <= value), f"term_{k}"

    def hint(self, where) -> None:
        """PuLP's HiGHS interface takes no start; the driver keeps the incumbent itself."""


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
    """Term-by-term MIP of the assignment model (PuLP; backend=highs|cbc)."""
    stages = MipStages(problem, opts)
    if not stages.ok:
        return Outcome(proven_infeasible=True, message="a non-movable pod cannot stay")
    return solve_lexicographic(problem, stages, opts)
